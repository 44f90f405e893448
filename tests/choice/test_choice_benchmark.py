"""The batched-solve benchmark on a tiny problem: both sides agree and every solve converges."""

from prime_science.choice.benchmark import benchmark_bus_solves


def test_benchmark_sides_agree():
    record = benchmark_bus_solves(4, num_states=30, repeats=1)
    assert record["all_converged"] and record["max_residual"] < 1e-10
    assert record["max_abs_difference"] < 1e-8
    assert record["numpy_timed_params"] == 4 and not record["numpy_extrapolated"]
    assert record["jax_run_s"] > 0 and record["speedup"] > 0
