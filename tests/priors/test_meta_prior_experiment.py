"""The meta-prior experiment on a tiny world: runner contract, shapes, the weak-prior refit
against scipy, and the NumPyro-vs-moments helper."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats

from experiments import meta_prior
from prime_science.core.experiment import check_experiment

TINY = meta_prior.Config(
    estimator_group_sizes=(250, 1000),
    estimator_replicates=40,
    num_initial_items=100,
    new_items_per_day=5,
    logged_hours=4,
    logged_impressions_per_hour=20,
    refit_steps=30,
    deploy_days=2,
    hours_per_day=3,
    traffic_levels=(2, 8),
    eb_max_features=512,
    eb_iters=3,
)
SEEDS = 2


@pytest.fixture(scope="module")
def outcome(instrumented_run):
    return instrumented_run(meta_prior, TINY, SEEDS)


def test_passes_registration_checks_and_configs_hash():
    assert check_experiment(meta_prior) is meta_prior
    for config in (meta_prior.Config.quick(), meta_prior.Config.full()):
        hash(config)


def test_compiles_once_and_shapes(outcome):
    _, traces, results, _ = outcome
    assert len(traces) == 1
    hours = TINY.num_deploy_hours
    assert results.estimator_untruncated.shape == (SEEDS, 2, TINY.estimator_replicates)
    np.testing.assert_array_equal(
        results.estimator_truncated, np.maximum(results.estimator_untruncated, 0)
    )
    assert set(results.policies) == {f"t{t}" for t in TINY.traffic_levels}
    for traffic in TINY.traffic_levels:
        level = f"t{traffic}"
        assert results.oracle_value[level].shape == (SEEDS, hours)
        for trace in results.policies[level].values():
            assert trace.regret.shape == (SEEDS, hours)
            assert trace.regret.min() >= -1e-5
            np.testing.assert_allclose(
                trace.value + trace.regret, results.oracle_value[level], rtol=1e-4
            )
    assert np.all(results.learned_variance >= TINY.min_prior_variance * (1 - 1e-6))


def test_results_file_metrics_and_plots(outcome):
    record, _, _, folder = outcome
    saved = json.loads((folder / "results.json").read_text())
    assert saved["metrics"].keys() == record["metrics"].keys()
    expected = ["estimator_sd.png", "learned_tau.png", "regret_vs_traffic.png"]
    assert sorted(record["plots"]) == expected
    assert {t["metric"] for t in record["targets"]} <= set(record["metrics"])
    metrics = {name: m["mean"] for name, m in record["metrics"].items()}
    for traffic in TINY.traffic_levels:
        for policy in meta_prior.POLICIES:
            assert metrics[f"regret_per_impression_{policy}_t{traffic}"] >= 0


def test_weak_prior_refit_matches_scipy():
    """The L-BFGS MAP equals scipy's on a small design; s^2 is the inverse diagonal of the
    expected Fisher information at the MAP (computed here by hand)."""
    rng = np.random.default_rng(0)
    num_features, num_events = 6, 400
    events = np.stack(
        [np.zeros(num_events, int), rng.integers(1, 4, num_events), rng.integers(4, 6, num_events)],
        axis=1,
    ).astype(np.int32)
    events[::7, 2] = -1  # padding
    x = np.zeros((num_events, num_features))
    for column in range(3):
        valid = events[:, column] >= 0
        x[np.flatnonzero(valid), events[valid, column]] = 1.0
    truth = np.array([-1.0, 0.3, -0.2, 0.1, 0.5, -0.5])
    clicks = rng.uniform(size=num_events) < stats.norm.cdf(x @ truth)
    signs = 2.0 * clicks - 1.0
    config = meta_prior.Config(refit_prior_variance=10.0, refit_steps=100)

    def loss(w):
        return -stats.norm.logcdf(signs * (x @ w)).sum() + 0.5 * w @ w / 10.0

    expected = optimize.minimize(loss, np.zeros(num_features), method="BFGS", tol=1e-10).x
    got, noise = jax.jit(meta_prior._weak_prior_refit, static_argnums=(2, 3))(
        jnp.asarray(events), jnp.asarray(clicks), num_features, config
    )
    np.testing.assert_allclose(got, expected, atol=2e-4)
    margin = x @ expected
    info = stats.norm.pdf(margin) ** 2 / (stats.norm.cdf(margin) * stats.norm.cdf(-margin))
    np.testing.assert_allclose(noise, 1.0 / ((x**2).T @ info), rtol=2e-3)


@pytest.mark.slow
def test_numpyro_agreement_helper():
    out = meta_prior.numpyro_agreement(0)
    scale = np.asarray(out["true"]["scale"])
    for fit in ("moments", "type2_svi", "autonormal", "nuts"):
        np.testing.assert_allclose(out[fit]["mean"], out["true"]["mean"], atol=0.2)
        np.testing.assert_allclose(out[fit]["scale"], scale, atol=0.1)
        np.testing.assert_allclose(out[fit]["scale"], out["moments"]["scale"], atol=0.03)
    assert out["nuts_max_r_hat"] < 1.05
