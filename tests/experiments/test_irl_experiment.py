"""The irl experiment through the runner on a tiny config: exact targets, shapes, plots."""

import json

import jax
import numpy as np
import pytest

from experiments import irl
from prime_science.core.errors import InvalidArgumentError
from prime_science.core.experiment import check_experiment
from prime_science.runner import run_experiment

pytestmark = pytest.mark.slow  # runs a whole experiment (or its fixture does)

TINY = irl.Config(
    num_states=10,
    bus_num_buses=(2, 4),
    bus_num_months=60,
    nfxp_max_iters=20,
    tabular_sample_sizes=(500, 20_000),
)
SEEDS = 2


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("results")
    record = run_experiment(irl, seeds=SEEDS, config=TINY, out_dir=out_dir, progress=False)
    return record, out_dir / irl.NAME


def test_passes_registration_checks():
    assert check_experiment(irl) is irl
    for config in (irl.Config.quick(), irl.Config.full()):
        hash(config)
        assert all(max(config.bus_num_buses) % size == 0 for size in config.bus_num_buses)


def test_exact_targets_pass_and_files_are_written(record):
    record, folder = record
    assert json.loads((folder / "results.json").read_text())["status"] == "ok"
    assert sorted(record["plots"]) == ["keep_reward.png", "reward_rmse.png"]
    for plot in record["plots"]:
        assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    exact = [t for t in record["targets"] if t["metric"].startswith("exact_")]
    assert len(exact) == 5 and all(t["passed"] for t in exact), exact
    assert {t["metric"] for t in record["targets"]} <= set(record["metrics"])


def test_metrics_are_sane_and_differ_between_seeds(record):
    record, _ = record
    metrics = record["metrics"]
    for method in irl.BUS_METHODS:
        for size in TINY.bus_num_buses:
            values = metrics[f"bus_rmse_{method}_{size}buses"]["values"]
            assert len(values) == SEEDS and all(np.isfinite(values) & (np.asarray(values) >= 0))
    # MaxEnt's raw keep-minus-replace reward is 0: its RMSE is the RMS of RC - 0.001 theta11 x
    # over the visited bins (about RC = 11.7 at low mileage)
    assert 9.0 < metrics[f"bus_rmse_maxent_raw_{TINY.bus_num_buses[-1]}buses"]["mean"] < 11.8
    values = metrics["tabular_rmse_pqr_n500"]["values"]
    assert values[0] != values[1]
    # with 20,000 transitions on 10 states PQR is accurate; MaxEnt (state-only) is not
    assert metrics["tabular_rmse_pqr_n20000"]["mean"] < 0.3
    assert metrics["tabular_pqr_minus_maxent_rmse"]["mean"] < 0


def test_run_is_jittable_for_one_seed_and_matches_the_runner(record):
    """``jit(run)`` of the runner's second key, under x64 as ``Config.precision`` asks, gives
    that seed's numbers (the runner's vmap over seeds runs them one after the other)."""
    record, _ = record
    assert TINY.precision == "float64"
    key = jax.random.split(jax.random.key(0), SEEDS)[1]
    with jax.enable_x64(True):
        single = jax.jit(lambda key: irl.run(key, TINY))(key)
        jaxpr = jax.make_jaxpr(lambda key: irl.run(key, TINY))(key)
    assert "callback" not in str(jaxpr)
    assert single.bus_rmse["nfxp"].shape == (len(TINY.bus_num_buses),)
    assert single.tabular_rmse["pqr"].dtype == np.float64
    np.testing.assert_allclose(
        single.tabular_rmse["pqr"][0],
        record["metrics"]["tabular_rmse_pqr_n500"]["values"][1],
        rtol=1e-6,
    )


def test_bad_panel_sizes_raise_a_named_error():
    with pytest.raises(InvalidArgumentError, match="^config.bus_num_buses:"):
        irl.run(jax.random.key(0), TINY._replace(bus_num_buses=(3, 4)))
