"""The layout experiments on tiny configs: end to end through the runner, shapes, sane metrics."""

import json
import types

import numpy as np
import pytest
from scipy.stats import norm

from experiments import layout_search, layouts
from prime_science.core.experiment import check_experiment
from prime_science.runner import run_experiment

pytestmark = pytest.mark.slow  # runs a whole experiment (or its fixture does)

TINY = layouts.Config(
    num_rounds=12,
    batch_size=16,
    restarts=3,
    steps=3,
    crossing_window=3,
    live_policies=("mvt2",),
    live_days=1,
    live_batches_per_day=3,
    ab_days=6_600.0,
)
TINY_SEARCH = layout_search.Config(restarts=(1, 5, 10), steps=(5, 10), num_worlds=8)


@pytest.fixture(scope="module")
def regret_record(tmp_path_factory):
    """Through the runner, with a ``plot`` that keeps the stacked results of all seeds."""
    kept = []

    def keeping_plot(results, config, out_dir):
        kept.append(results)
        return layouts.plot(results, config, out_dir)

    experiment = types.SimpleNamespace(
        **{name: getattr(layouts, name) for name in layouts.__all__}, __doc__=layouts.__doc__
    )
    experiment.plot = keeping_plot
    out_dir = tmp_path_factory.mktemp("layouts")
    record = run_experiment(experiment, seeds=2, config=TINY, out_dir=out_dir, progress=False)
    return record, out_dir, kept[0]


@pytest.mark.slow
def test_layouts_runs_end_to_end(regret_record):
    record, out_dir, _ = regret_record
    folder = out_dir / layouts.NAME
    assert json.loads((folder / "results.json").read_text())["status"] == "ok"
    assert sorted(record["plots"]) == ["live_lift.png", "regret.png"]
    assert all((folder / p).read_bytes()[:4] == b"\x89PNG" for p in record["plots"])
    metrics = {name: m["mean"] for name, m in record["metrics"].items()}
    assert {t["metric"] for t in record["targets"]} <= set(metrics)
    for name in TINY.policies:
        assert metrics[f"regret_{name}"] >= -1e-6
        assert metrics[f"regret_{name}"] <= metrics["best_probability"]
    # uniform's realised regret is close to its expectation p* - mean p
    assert abs(metrics["regret_uniform"] - metrics["uniform_expected_regret"]) < 0.02
    for name in TINY.live_policies:
        assert -1.0 < metrics[f"live_lift_{name}"] <= metrics["live_best_lift"] + 1e-6
    assert metrics["live_impressions"] == layouts.daily_traffic(TINY) * TINY.live_days


@pytest.mark.slow
def test_layouts_result_shapes(regret_record):
    results = regret_record[2]
    assert set(results.regret) == set(TINY.policies)
    for trace in results.regret.values():
        assert trace.shape == (2, TINY.num_rounds)
        assert np.all(np.asarray(trace) >= -1e-6)
    batches = TINY.live_days * TINY.live_batches_per_day
    assert set(results.live_regret) == set(TINY.live_policies)
    assert all(t.shape == (2, batches) for t in results.live_regret.values())


def test_quick_config_runs_only_what_the_targets_need():
    quick = layouts.Config.quick()
    assert set(layouts.REQUIRED) <= set(quick.policies)
    assert quick.live_policies[0] == "mvt2"
    for config in (quick, layouts.Config.full(), layout_search.Config.quick()):
        hash(config)


def test_daily_traffic_is_the_ab_test_over_66_days():
    config = layouts.Config()
    p = norm.cdf(config.live_world.probit_centre)
    z = norm.ppf(0.975) + norm.ppf(0.8)
    per_layout = z**2 * 2 * p * (1 - p) / (0.1 * p) ** 2
    expected = 48 * per_layout / 66
    traffic = layouts.daily_traffic(config)
    assert traffic % config.live_batches_per_day == 0
    assert expected <= traffic < expected + config.live_batches_per_day


def test_crossing_round():
    regret = np.array([5.0, 4.0, 3.0, 0.5, 0.5, 0.5, 0.5])
    assert layouts._crossing_round(regret, 1.0, 1) == 4.0
    assert layouts._crossing_round(regret, 1.0, 3) == 6.0
    assert layouts._crossing_round(regret, 0.1, 2) == 8.0  # never: censored at rounds + 1


@pytest.mark.slow
def test_layout_search_runs_end_to_end(tmp_path):
    record = run_experiment(
        layout_search, seeds=2, config=TINY_SEARCH, out_dir=tmp_path, progress=False
    )
    metrics = {name: m["mean"] for name, m in record["metrics"].items()}
    assert {t["metric"] for t in record["targets"]} <= set(metrics)
    for s in TINY_SEARCH.restarts:
        for k in TINY_SEARCH.steps:
            assert 0.0 <= metrics[f"gap_S{s}_K{k}"] <= 100.0
            assert 0.0 <= metrics[f"exact_share_S{s}_K{k}"] <= 1.0
    assert metrics["gap_S10_K10"] <= metrics["gap_S1_K5"]
    assert (tmp_path / layout_search.NAME / "search_gap.png").is_file()


def test_experiments_keep_the_contract():
    for module in (layouts, layout_search):
        assert check_experiment(module) is module
