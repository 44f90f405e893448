"""The ope benchmark: its numpy baseline does the same work as the library, and the suite runs
at a small size through the driver."""

import jax
import numpy as np
import pytest

from prime_science.bench import ope as ope_bench
from prime_science.bench.driver import Suite, SuiteConfig, run_suite
from prime_science.bench.registry import SUITES
from prime_science.evaluation.ope import ESTIMATORS, bootstrap_intervals, estimate_all


def test_workload_is_a_valid_log():
    data, dist, model = ope_bench.ope_workload(5000, 0)
    assert dist.shape == model.shape == (1, ope_bench.NUM_ACTIONS, ope_bench.NUM_POSITIONS)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, rtol=1e-5)
    assert 0 < data.reward.mean() < 0.02
    estimate_all(data, dist, model)  # passes every check of the library


def test_numpy_estimates_equal_the_library():
    data, dist, model = ope_bench.ope_workload(20_000, 1)
    stats = ope_bench.numpy_row_statistics(data, dist, model)
    ours = estimate_all(data, dist, model)
    theirs = ope_bench.numpy_estimates(stats.sum(axis=0, dtype=np.float64))
    for name in ESTIMATORS:
        np.testing.assert_allclose(float(ours[name]), theirs[name], rtol=1e-5, err_msg=name)


def test_numpy_and_library_bootstrap_agree_in_distribution():
    """numpy's multinomial and the library's Poisson bootstrap estimate the same sampling
    distribution: with 400 resamples each, the 95% widths agree within 20% (each end quantile
    has ~6% relative standard error)."""
    data, dist, model = ope_bench.ope_workload(20_000, 2)
    theirs = ope_bench.numpy_bootstrap_intervals(
        np.random.default_rng(0), data, dist, model, num_resamples=400
    )
    ours = bootstrap_intervals(jax.random.key(0), data, dist, model, num_resamples=400)
    for name in ESTIMATORS:
        estimate, low, high = theirs[name]
        np.testing.assert_allclose(float(ours[name].estimate), estimate, rtol=1e-5)
        np.testing.assert_allclose(
            float(ours[name].high - ours[name].low), high - low, rtol=0.2, err_msg=name
        )


@pytest.mark.slow
def test_suite_runs_at_a_small_size():
    entry = SUITES[ope_bench.NAME]
    suite = entry.build()
    assert isinstance(suite, Suite) and entry.batches == ope_bench.BATCHES
    config = SuiteConfig(sizes=(5000,), batches=(20,), repeats=2, max_seconds=20.0)
    results = run_suite(suite, config)
    rows = {row["kernel"]: row for row in results["rows"]}
    assert set(rows) == {"ours", "numpy"}
    assert all(row["status"] == "ok" and row["median_seconds"] > 0 for row in rows.values())
    assert rows["ours"]["speedup_vs_numpy"] > 0 and rows["ours"]["compile_seconds"] > 0
    assert results["device"]["cpu_model"]
    assert results["posteriors"]["5000"]["num_actions"] == ope_bench.NUM_ACTIONS
