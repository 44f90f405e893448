"""The batched-solve benchmark on a tiny problem: all sides agree, every solve converges, and
the benchmark runs (with a note) without quantecon."""

import sys

import numpy as np
import pytest

from prime_science.bench.bellman import benchmark_bus_solves, quantecon_value_iteration


@pytest.mark.slow
@pytest.mark.parametrize(("banded", "batch_size"), [(True, 3), (False, None)])
def test_benchmark_sides_agree(banded, batch_size):
    record = benchmark_bus_solves(
        4, num_states=30, repeats=1, banded=banded, quantecon_limit=2, batch_size=batch_size
    )
    assert record["all_converged"] and record["max_residual"] < 1e-10
    assert record["max_abs_difference"] < 1e-8
    assert record["numpy_timed_params"] == 4 and not record["numpy_extrapolated"]
    assert record["jax_run_s"] > 0 and record["speedup"] > 0
    if record["quantecon_available"]:
        assert record["quantecon_timed_params"] == 2 and record["quantecon_extrapolated"]
        assert record["quantecon_s"] > 0


def test_benchmark_runs_without_quantecon(monkeypatch):
    monkeypatch.setitem(sys.modules, "quantecon", None)  # import quantecon -> ImportError
    monkeypatch.setitem(sys.modules, "quantecon.markov", None)
    record = benchmark_bus_solves(2, num_states=20, repeats=1, method="successive")
    assert record["quantecon_available"] is False and "quantecon_s" not in record
    assert record["all_converged"]


def test_quantecon_stop_rule_means_bellman_residual_below_tol():
    pytest.importorskip("quantecon")
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(12, 2))
    transitions = rng.dirichlet(np.ones(12), size=(2, 12))
    value, _ = quantecon_value_iteration(rewards, transitions, 0.95, 1e-10)
    # the last iterate v_k with max |v_k - v_{k-1}| < tol; T v_k - v_k is beta times smaller
    bellman = np.max(rewards + 0.95 * np.einsum("ast,t->sa", transitions, value), axis=1)
    assert np.max(np.abs(bellman - value)) < 1e-10
