"""The runner and the report: registry, seeds, results.json, plots, pass/fail rows, data_dir."""

import json
import types
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import pytest
from matplotlib.figure import Figure

from prime_science import runner
from prime_science.core.errors import InvalidArgumentError
from prime_science.report import format_measurement, write_report
from prime_science.runner import DataNotFoundError, Target, data_dir, run_experiment


class FakeConfig(NamedTuple):
    size: int = 4
    shift: float = 1.0

    @classmethod
    def quick(cls):
        return cls()

    @classmethod
    def full(cls):
        return cls(size=8)


def _fake_run(key, config):
    return {"x": config.shift + jax.random.normal(key, (config.size,))}


def _fake_plot(results, config, out_dir):
    figure = Figure()
    figure.subplots().plot(np.asarray(results["x"]).T)
    path = Path(out_dir) / "x.png"
    figure.savefig(path)
    return [path]


def make_fake():
    """A tiny experiment: one target that passes, one that fails."""
    return types.SimpleNamespace(
        __doc__="A fake experiment for the runner tests.\n\nMore words.",
        NAME="fake",
        Config=FakeConfig,
        run=_fake_run,
        summarize=lambda results, config: {"mean_x": float(np.mean(results["x"]))},
        targets=[
            Target("mean_x", "<", 10.0, "directional: small", "test"),
            Target("mean_x", ">", 10.0, "directional: large", "test"),
        ],
        plot=_fake_plot,
    )


def test_registry_lists_the_callout_experiment():
    experiments = runner.registry()
    assert "callout_regret" in experiments
    assert runner.get_experiment("callout_regret") is experiments["callout_regret"]
    with pytest.raises(InvalidArgumentError, match="callout_regret"):
        runner.get_experiment("no_such_experiment")


def test_register_checks_the_experiment(monkeypatch):
    monkeypatch.setattr(runner, "_REGISTRY", {})
    with pytest.raises(InvalidArgumentError, match="plot"):
        runner.register(
            types.SimpleNamespace(NAME="x", Config=None, run=None, summarize=None, targets=[])
        )
    bad = make_fake()
    bad.targets = [Target("mean_x", "==", 1.0, "", "")]
    with pytest.raises(InvalidArgumentError, match="op"):
        runner.register(bad)
    fake = runner.register(make_fake())
    assert runner.registry()["fake"] is fake


def test_fake_experiment_over_two_seeds_writes_results_plot_and_report(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "_REGISTRY", {})
    runner.register(make_fake())
    record = run_experiment("fake", seeds=2, out_dir=tmp_path, progress=False)
    folder = tmp_path / "fake"
    on_disk = json.loads((folder / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert record["config"] == {"size": 4, "shift": 1.0}
    assert record["description"] == "A fake experiment for the runner tests."
    assert record["plots"] == ["x.png"] and (folder / "x.png").stat().st_size > 0
    assert [t["passed"] for t in record["targets"]] == [True, False]
    assert {"compile_s", "run_s", "total_s"} <= set(record["timings"])
    assert record["device"]["platform"] == jax.devices()[0].platform

    keys = jax.random.split(jax.random.key(0), 2)
    expected = [float(np.mean(_fake_run(key, FakeConfig())["x"])) for key in keys]
    metric = record["metrics"]["mean_x"]
    np.testing.assert_allclose(metric["values"], expected, rtol=1e-6)
    assert metric["mean"] == pytest.approx(np.mean(expected))
    assert metric["se"] == pytest.approx(np.std(expected, ddof=1) / np.sqrt(2))

    report = write_report({"fake": record}, tmp_path)
    text = report.read_text()
    assert report == tmp_path / "report.md"
    assert "| fake | ok | 1/2 |" in text
    assert "| `mean_x` |" in text and "| < 10 | pass |" in text and "| > 10 | **fail** |" in text
    assert "![x](fake/x.png)" in text
    assert jax.__version__ in text


def test_chunked_seeds_match_one_seed_per_call(tmp_path):
    one = run_experiment(make_fake(), seeds=3, out_dir=tmp_path / "a", progress=False)
    chunked = run_experiment(
        make_fake(), seeds=3, out_dir=tmp_path / "b", seeds_per_call=2, progress=False
    )
    assert chunked["seeds_per_call"] == 2
    np.testing.assert_allclose(
        chunked["metrics"]["mean_x"]["values"], one["metrics"]["mean_x"]["values"], rtol=1e-6
    )


def test_full_scale_and_bad_arguments(tmp_path):
    record = run_experiment(make_fake(), seeds=1, scale="full", out_dir=tmp_path, progress=False)
    assert record["config"]["size"] == 8 and record["metrics"]["mean_x"]["se"] is None
    with pytest.raises(InvalidArgumentError, match="scale"):
        run_experiment(make_fake(), seeds=1, scale="huge", out_dir=tmp_path)
    with pytest.raises(InvalidArgumentError, match="seeds"):
        run_experiment(make_fake(), seeds=0, out_dir=tmp_path)


def test_report_shows_a_crashed_experiment(tmp_path):
    text = write_report(
        {"boom": {"name": "boom", "status": "error", "error": "Boom!"}}, tmp_path
    ).read_text()
    assert "| boom | **crashed** |" in text and "Boom!" in text


def test_format_measurement():
    assert format_measurement(0.91234, 0.0041) == "0.9123 ± 0.0041"
    assert format_measurement(3.0, None) == "3"


def test_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(runner.DATA_ENV_VAR, str(tmp_path))
    assert data_dir() == tmp_path
    assert data_dir(tmp_path / "..") == tmp_path / ".."
    monkeypatch.setenv(runner.DATA_ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(DataNotFoundError, match=runner.DATA_ENV_VAR):
        data_dir()
    monkeypatch.delenv(runner.DATA_ENV_VAR)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataNotFoundError, match="shared/data"):
        data_dir()


def test_pooled_metrics_are_recorded_with_a_jackknife_standard_error(tmp_path):
    """``pooled`` sees every seed at once; its s.e. is the leave-one-seed-out jackknife, which
    for a plain mean over seeds equals the usual standard error of the seed means."""
    fake = make_fake()
    fake.pooled = lambda results, config: {"pooled_mean_x": float(np.mean(results["x"]))}
    fake.targets = [Target("pooled_mean_x", "<", 10.0, "directional: small", "test")]
    record = run_experiment(fake, seeds=5, out_dir=tmp_path, progress=False)
    pooled, per_seed = record["metrics"]["pooled_mean_x"], record["metrics"]["mean_x"]
    assert pooled["pooled"] is True
    np.testing.assert_allclose(pooled["mean"], per_seed["mean"], rtol=1e-6)
    np.testing.assert_allclose(pooled["se"], per_seed["se"], rtol=1e-6)
    assert record["targets"][0]["passed"]


def test_pooled_metric_without_finite_leave_one_out_has_no_standard_error(tmp_path):
    fake = make_fake()

    def pooled(results, config):
        seeds = np.asarray(results["x"]).shape[0]
        return {"ratio": 1.0 if seeds == 3 else float("nan")}

    fake.pooled = pooled
    record = run_experiment(fake, seeds=3, out_dir=tmp_path, progress=False)
    assert record["metrics"]["ratio"] == {"mean": 1.0, "se": None, "pooled": True}
