"""The meta-prior experiment on a tiny world: runner contract, shapes, and the
NumPyro-vs-moments helper (the weak-prior refit is tested in ``test_refit.py``)."""

import json

import numpy as np
import pytest

from experiments import meta_prior
from prime_science.core.experiment import check_experiment

pytestmark = pytest.mark.slow  # runs a whole experiment (or its fixture does)

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


@pytest.mark.slow
def test_numpyro_agreement_helper():
    out = meta_prior.numpyro_agreement(0)
    scale = np.asarray(out["true"]["scale"])
    for fit in ("moments", "type2_svi", "autonormal", "nuts"):
        np.testing.assert_allclose(out[fit]["mean"], out["true"]["mean"], atol=0.2)
        np.testing.assert_allclose(out[fit]["scale"], scale, atol=0.1)
        np.testing.assert_allclose(out[fit]["scale"], out["moments"]["scale"], atol=0.03)
    assert out["nuts_max_r_hat"] < 1.05
