"""The runner: the experiment contract, seeds, results.json (strict JSON, labels, n/a reasons),
plots, pass/fail, crash records, progress lines; and the report of a real run record."""

import itertools
import json
import types

import jax
import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.core.experiment import Target, check_experiment
from prime_science.report import write_report
from prime_science.runner import run_experiment, write_crash_record


def test_the_contract_is_checked_before_anything_runs(tmp_path, make_fake):
    incomplete = types.SimpleNamespace(NAME="x", Config=None, run=None, summarize=None, targets=[])
    with pytest.raises(InvalidArgumentError, match="plot"):
        check_experiment(incomplete)
    with pytest.raises(InvalidArgumentError, match="plot"):
        run_experiment(incomplete, seeds=1, out_dir=tmp_path, progress=False)
    bad = make_fake()
    bad.targets = [Target("mean_x", "==", 1.0, "", "")]
    with pytest.raises(InvalidArgumentError, match="op"):
        check_experiment(bad)
    assert not (tmp_path / "x").exists()
    fake = make_fake()
    assert check_experiment(fake) is fake


def test_fake_experiment_over_two_seeds_writes_results_plot_and_report(tmp_path, make_fake):
    record = run_experiment(make_fake(), seeds=2, out_dir=tmp_path, progress=False)
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
    fake = make_fake()
    expected = [float(np.mean(fake.run(key, fake.Config())["x"])) for key in keys]
    metric = record["metrics"]["mean_x"]
    np.testing.assert_allclose(metric["values"], expected, rtol=1e-6)
    assert metric["mean"] == pytest.approx(np.mean(expected))
    assert metric["se"] == pytest.approx(np.std(expected, ddof=1) / np.sqrt(2))

    report = write_report({"fake": record}, tmp_path)
    text = report.read_text()
    assert report == tmp_path / "report.md"
    assert "| fake | ok | 1/2 |" in text
    assert "| `mean_x` |" in text and "| < 10 | pass |" in text and "| > 10 | **fail** |" in text
    assert " ± " in text and "SCIENCE" not in text and "shared" not in text
    assert "![x](fake/x.png)" in text
    assert jax.__version__ in text


def test_chunked_seeds_match_one_seed_per_call(tmp_path, make_fake):
    one = run_experiment(make_fake(), seeds=3, out_dir=tmp_path / "a", progress=False)
    chunked = run_experiment(
        make_fake(), seeds=3, out_dir=tmp_path / "b", seeds_per_call=2, progress=False
    )
    assert chunked["seeds_per_call"] == 2
    np.testing.assert_allclose(
        chunked["metrics"]["mean_x"]["values"], one["metrics"]["mean_x"]["values"], rtol=1e-6
    )


def test_full_scale_and_bad_arguments(tmp_path, make_fake):
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


def test_pooled_metrics_are_recorded_with_a_jackknife_standard_error(tmp_path, make_fake):
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


def test_pooled_metric_without_finite_leave_one_out_has_no_standard_error(tmp_path, make_fake):
    fake = make_fake()

    def pooled(results, config):
        seeds = np.asarray(results["x"]).shape[0]
        return {"ratio": 1.0 if seeds == 3 else float("nan")}

    fake.pooled = pooled
    record = run_experiment(fake, seeds=3, out_dir=tmp_path, progress=False)
    assert record["metrics"]["ratio"] == {"mean": 1.0, "se": None, "pooled": True, "label": "ratio"}


def _strict_json(text):
    """``json.loads`` that refuses ``NaN``/``Infinity`` (not JSON, though Python writes them)."""

    def refuse(constant):
        raise ValueError(f"{constant} in results.json")

    return json.loads(text, parse_constant=refuse)


def test_labels_and_non_finite_metrics_are_recorded_as_strict_json(tmp_path, make_fake):
    """Labels come from ``METRIC_LABELS`` (default: the key); a mean that is not finite is
    ``null`` on disk with an ``na_reason`` from ``NA_REASONS``, else counted over seeds."""
    fake = make_fake()
    calls = itertools.count()

    def summarize(results, config):
        first_seed = next(calls) == 0
        return {
            "mean_x": float(np.mean(results["x"])),
            "sometimes": np.nan if first_seed else 1.0,
            "never": np.inf,
        }

    fake.summarize = summarize
    fake.METRIC_LABELS = {"mean_x": "mean of x (units)"}
    fake.NA_REASONS = {"never": "infinite by construction"}
    fake.targets = [*fake.targets, Target("never", "<", 1.0, "directional: finite", "test")]
    record = run_experiment(fake, seeds=4, out_dir=tmp_path, progress=False)
    text = (tmp_path / "fake" / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    on_disk = _strict_json(text)
    metrics = on_disk["metrics"]
    assert metrics["mean_x"]["label"] == "mean of x (units)"
    assert "na_reason" not in metrics["mean_x"]
    assert metrics["never"]["label"] == "never"
    assert metrics["never"]["mean"] is None and metrics["never"]["values"] == [None] * 4
    assert metrics["never"]["na_reason"] == "infinite by construction"
    assert metrics["sometimes"]["mean"] is None and metrics["sometimes"]["se"] is None
    assert metrics["sometimes"]["values"] == [None, 1.0, 1.0, 1.0]
    assert metrics["sometimes"]["na_reason"] == "not finite in 1 of 4 seeds"
    assert on_disk["targets"][-1]["measured"] is None and not on_disk["targets"][-1]["passed"]
    assert np.isinf(record["metrics"]["never"]["mean"])  # in memory the float stays


def test_crash_record_is_written_and_a_later_run_overwrites_it(tmp_path, make_fake):
    record = write_crash_record(
        "fake", "Traceback: boom", tmp_path, scale="quick", seeds=2, total_s=0.5
    )
    path = tmp_path / "fake" / "results.json"
    assert _strict_json(path.read_text()) == json.loads(json.dumps(record))
    assert record["status"] == "error" and record["error"] == "Traceback: boom"
    run_experiment(make_fake(), seeds=2, out_dir=tmp_path, progress=False)
    assert _strict_json(path.read_text())["status"] == "ok"


def test_datasets_are_recorded_with_where_they_were_read(tmp_path, monkeypatch, make_fake):
    monkeypatch.delenv("PRIME_SCIENCE_DATA", raising=False)
    fake = make_fake()
    fake.DATASETS = ("rust_bus",)
    record = run_experiment(fake, seeds=1, out_dir=tmp_path, progress=False)
    assert record["datasets"] == {"rust_bus": "rust_bus: the copy shipped in the package"}
    assert run_experiment(make_fake(), seeds=1, out_dir=tmp_path, progress=False)["datasets"] == {}


def test_progress_names_the_silent_stretches_and_their_durations(tmp_path, capsys, make_fake):
    run_experiment(make_fake(), seeds=1, out_dir=tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "fake: compiling…" in err and "fake: compiling took " in err
    assert "fake: summarising and plotting took " in err
    run_experiment(make_fake(), seeds=1, out_dir=tmp_path, progress=False)
    assert capsys.readouterr().err == ""
