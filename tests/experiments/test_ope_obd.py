"""The ope_obd experiment through the runner at a tiny config: plot written, metrics finite."""

import json

import numpy as np
import pytest

from experiments import ope_obd
from prime_science.core.experiment import check_experiment
from prime_science.runner import run_experiment

pytestmark = pytest.mark.slow  # runs the whole experiment

TINY = ope_obd.Config(
    campaigns=("all",),  # the targets name campaign all
    reward_models=("probit",),
    num_rankings=1_000_000,
    learned_num_rankings=2_000,
    contextual_num_rankings=20,
    num_folds=2,
    num_resamples=20,
)


def test_passes_registration_checks():
    assert check_experiment(ope_obd) is ope_obd
    for config in (ope_obd.Config.quick(), ope_obd.Config.full()):
        hash(config)
    assert ope_obd.DATASETS == ("obd",)


def test_runs_end_to_end(tmp_path):
    record = run_experiment(ope_obd, seeds=1, config=TINY, out_dir=tmp_path, progress=False)
    folder = tmp_path / ope_obd.NAME
    assert json.loads((folder / "results.json").read_text())["status"] == "ok"
    assert record["plots"] and all((folder / p).is_file() for p in record["plots"])
    metrics = record["metrics"]
    assert all(name in ope_obd.METRIC_LABELS for name in metrics)
    finite = [k for k in metrics if not k.endswith("replay_beta_ctr") and "replay" not in k]
    assert all(np.isfinite(metrics[k]["mean"]) for k in finite)
    assert metrics["all_bts_top_item_is_best_prior_mean"]["mean"] == 1.0
    for key in ("all_bts_from_random_ipw", "all_random_from_bts_dr_probit"):
        low, mid, high = (metrics[f"{key}{s}"]["mean"] for s in ("_low", "", "_high"))
        assert 0 <= low <= mid <= high < 0.05
    assert 0.6 < metrics["all_replay_beta_matched_ratio"]["mean"] < 1.4
    assert metrics["all_probit_beats_beta_ipw"]["mean"] in (-1.0, 0.0, 1.0)
