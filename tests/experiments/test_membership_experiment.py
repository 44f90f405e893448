"""The membership experiment through the runner on a tiny config: labels, targets, plots, the
jitted single seed."""

import json

import jax
import numpy as np
import pytest

from experiments import membership
from prime_science.core.experiment import check_experiment
from prime_science.runner import run_experiment

pytestmark = pytest.mark.slow  # runs a whole experiment

TINY = membership.Config(
    num_members=600,
    months=12,
    horizon=14,
    price_grid=(119.0, 139.0, 159.0),
    sweep_correlations=(0.0, 0.95),
    sweep_members=400,
    sweep_months=12,
    sweep_replicates=2,
    cohort_members=6_000,
    cohort_years=2,
    deep_pqr_sizes=(),
    estimators=("static", "ccp", "npl", "pqr"),  # NFXP has its own tests (test_estimate)
)


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("results")
    record = run_experiment(membership, seeds=1, config=TINY, out_dir=out_dir, progress=False)
    return record, out_dir / membership.NAME


def test_passes_registration_checks():
    assert check_experiment(membership) is membership
    for config in (membership.Config.quick(), membership.Config.full()):
        hash(config)
        assert config.horizon > 12  # the 12-month share exists
    assert {t.metric for t in membership.targets} <= set(membership.METRIC_LABELS)


def test_every_metric_is_labelled_and_files_are_written(record):
    record, folder = record
    assert json.loads((folder / "results.json").read_text())["status"] == "ok"
    assert set(record["metrics"]) <= set(membership.METRIC_LABELS)
    assert {t["metric"] for t in record["targets"]} <= set(record["metrics"])
    # NFXP is not in TINY: its targets are listed as not checked, not failed
    assert set(record["targets_not_checked"]) == {
        t.metric for t in membership.targets if t.metric.endswith("_nfxp")
    }
    assert sorted(record["plots"]) == sorted(
        [
            "recovery.png",
            "identification_sweep.png",
            "counterfactual_shares.png",
            "price_search.png",
            "cohort_survival.png",
        ]
    )
    for plot in record["plots"]:
        assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_are_in_range(record):
    record, _ = record
    metrics = {name: value["mean"] for name, value in record["metrics"].items()}
    # the truth's own counterfactual: a higher annual price lowers the annual share
    assert metrics["annual_share_change_truth_up"] < 0 < metrics["annual_share_change_truth_down"]
    assert metrics["best_price_truth"] in TINY.price_grid
    for name in TINY.estimators:
        assert 0 <= metrics[f"annual_share_error_up_{name}"] <= 100
        assert metrics[f"revenue_loss_{name}"] >= 0
    assert 0 < metrics["renewal_year1_homogeneous"] < 1
    # the common shock shows in the panels
    assert (
        metrics["sweep_engagement_corr_rho0.95_nocontent"]
        > metrics["sweep_engagement_corr_rho0_nocontent"] + 0.2
    )


def test_run_is_jittable_for_one_seed_and_matches_the_runner(record):
    record, _ = record
    key = jax.random.split(jax.random.key(0), 1)[0]
    single = jax.device_get(jax.jit(lambda key: membership.run(key, TINY))(key))
    metrics = membership.summarize(single, TINY)
    # simulated shares are counts of the same draws: equal; fitted numbers differ by float32
    # rounding between the vmapped and the single-seed program
    for name in ("annual_share_truth_up", "renewal_rise_types"):
        assert metrics[name] == pytest.approx(record["metrics"][name]["mean"], rel=1e-6)
    np.testing.assert_allclose(
        metrics["max_abs_error_npl"], record["metrics"]["max_abs_error_npl"]["mean"], rtol=1e-3
    )
