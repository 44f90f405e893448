"""The rust_bus experiment through the runner: Table IX targets, Monte Carlo shapes, plots."""

import json

import jax
import numpy as np
import pytest

from experiments import rust_bus
from prime_science.core.experiment import check_experiment
from prime_science.runner import run_experiment

pytestmark = pytest.mark.slow  # runs a whole experiment (or its fixture does)

TINY = rust_bus.Config(mc_num_datasets=2)
SEEDS = 2


def test_passes_registration_checks():
    assert check_experiment(rust_bus) is rust_bus
    for config in (rust_bus.Config.quick(), rust_bus.Config.full()):
        hash(config)


def test_run_declares_float64_and_has_no_callback():
    assert TINY.precision == "float64"
    with jax.enable_x64(True):
        jaxpr = jax.make_jaxpr(lambda key: rust_bus.run(key, TINY))(jax.random.key(0))
    assert "callback" not in str(jaxpr)
    assert all(str(v.aval.dtype) != "float32" for v in jaxpr.jaxpr.outvars)


@pytest.mark.slow
def test_runs_end_to_end_and_replicates_table_ix(tmp_path):
    record = run_experiment(rust_bus, seeds=SEEDS, config=TINY, out_dir=tmp_path, progress=False)
    folder = tmp_path / rust_bus.NAME
    assert json.loads((folder / "results.json").read_text())["status"] == "ok"
    assert all((folder / p).is_file() for p in record["plots"])
    metrics = record["metrics"]
    table_ix = [t for t in record["targets"] if not t["metric"].startswith("mc_")]
    assert len(table_ix) == 8 and all(t["passed"] for t in table_ix), table_ix
    # part 1 does not depend on the seed
    assert metrics["group4_rc"]["values"][0] == metrics["group4_rc"]["values"][1]
    assert metrics["groups1to4_converged"]["mean"] == 1.0
    # part 2: different panels per seed, estimates near the truth
    values = metrics["mc_rc_mean"]["values"]
    assert values[0] != values[1]
    assert metrics["mc_converged_share"]["mean"] == 1.0
    assert 0 < metrics["mc_theta11_mean"]["mean"] < 10 and 0 < metrics["mc_rc_mean"]["mean"] < 30
    # NPL reaches NFXP's maximum on every panel (the oracle: the MLE); RMSE >= |bias|
    assert metrics["mc_npl_nfxp_max_abs_diff"]["mean"] < 1e-3
    assert metrics["mc_npl_max_step"]["mean"] < 1e-6
    for name in ("rc", "theta11"):
        for seed in range(SEEDS):
            rmse = metrics[f"mc_{name}_rmse"]["values"][seed]
            bias = abs(metrics[f"mc_{name}_mean"]["values"][seed] - (11.7257, 2.4569)[name != "rc"])
            assert rmse >= bias - 1e-9
    assert 1 <= metrics["mc_max_iters"]["mean"] <= TINY.mc_max_iters
    assert "monte_carlo.png" in " ".join(record["plots"])
    assert np.isfinite(metrics["group4_se_rc"]["mean"])
