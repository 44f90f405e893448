"""The membership_counterfactual benchmark: its numpy baseline simulates the same population
as the library, the offerings are the price grid they say, and the suite runs through the
driver at a small size."""

import jax
import numpy as np
import pytest

from prime_science.bench import membership_counterfactual as bench
from prime_science.bench.driver import Suite, SuiteConfig, run_suite
from prime_science.bench.membership import forward_simulation, numpy_forward_simulation
from prime_science.bench.registry import SUITES
from prime_science.core.errors import InvalidArgumentError
from prime_science.membership import model, simulate


def test_offering_factors_and_bad_counts():
    np.testing.assert_allclose(bench.offering_factors(1), [1.0])
    np.testing.assert_allclose(bench.offering_factors(5), [0.8, 0.9, 1.0, 1.1, 1.2])
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InvalidArgumentError, match="batch"):
            bench.offering_factors(bad)
        with pytest.raises(InvalidArgumentError, match="num_customers"):
            bench.counterfactual_workload(bad, 0)


@pytest.mark.slow
def test_offerings_are_solved_models_and_numpy_simulates_the_same_year():
    """The stacked tables are the true model with the annual price scaled (offering 1 equals
    ``simulate.tables`` of the plain model), and numpy's year of 20,000 customers ends with the
    plan shares of the library's within Monte Carlo error (|difference| < 4 standard errors)."""
    tables = bench.offering_tables(np.asarray([0.8, 1.0]))
    plain = simulate.tables(model.true_params())
    np.testing.assert_allclose(
        np.asarray(tables.log_policy[1]), np.asarray(plain.log_policy), atol=1e-4
    )  # float32 solves to 1e-5, mapped and alone: the rounding moves the last digits
    cheaper, prices = np.asarray(tables.prices[0]), np.asarray(plain.prices)
    np.testing.assert_allclose(cheaper[:, model.ANNUAL], 0.8 * prices[:, model.ANNUAL], rtol=1e-6)
    np.testing.assert_array_equal(cheaper[:, model.MONTHLY], prices[:, model.MONTHLY])
    states = bench.counterfactual_workload(20_000, 0)
    ours, _ = jax.device_get(
        forward_simulation(jax.random.key(1), plain, jax.tree.map(np.asarray, states), 12)
    )
    host = jax.tree.map(np.asarray, plain)
    theirs, _ = numpy_forward_simulation(np.random.default_rng(1), host, states, 12)
    se = np.sqrt(theirs[-1] * (1 - theirs[-1]) * 2 / 20_000)
    assert np.all(np.abs(ours[-1] - theirs[-1]) < 4 * se + 1e-9)
    assert ours[-1, 0] < 1.0  # some customers joined within the year


@pytest.mark.slow
def test_suite_runs_at_a_small_size():
    entry = SUITES[bench.NAME]
    suite = entry.build()
    assert isinstance(suite, Suite) and entry.batches == bench.BATCHES
    config = SuiteConfig(sizes=(2000,), batches=(1, 2), repeats=2, max_seconds=20.0)
    results = run_suite(suite, config)
    rows = {(row["kernel"], row["batch"]): row for row in results["rows"]}
    assert set(rows) == {("ours", 1), ("ours", 2), ("numpy", 1), ("numpy", 2)}
    assert all(row["status"] == "ok" and row["median_seconds"] > 0 for row in rows.values())
    assert rows[("ours", 2)]["speedup_vs_numpy"] > 0 and rows[("ours", 1)]["compile_seconds"] > 0
    assert results["device"]["cpu_model"]
    assert results["posteriors"]["2000"]["months"] == bench.MONTHS
