"""The ``prime-science`` command: list, version, help, reproduce (tiny configs), the report rebuilt
from every results.json, crash records, usage errors found before any work, the data preflight,
progress lines and the summary table, report, bench."""

import importlib.metadata
import json

import pytest

import experiments
from experiments import callout_regret
from prime_science import cli, runner
from prime_science.bench import command as bench_command
from prime_science.core.errors import InvalidArgumentError

TINY = callout_regret.Config(
    num_arms=1_000, num_new_arms=40, num_rounds=48, slate_size=16, rounds_per_day=6
)


@pytest.fixture
def register(monkeypatch, make_fake):
    """``register(name, **attributes)``: a fake experiment in ``experiments.EXPERIMENTS`` for
    this test (replacing one registered before under the same name)."""

    def add(name, **attributes):
        fake = make_fake(name)
        for attribute, value in attributes.items():
            setattr(fake, attribute, value)
        others = tuple(e for e in experiments.EXPERIMENTS if e.NAME != name)
        monkeypatch.setattr(experiments, "EXPERIMENTS", (*others, fake))
        return fake

    return add


def _one_line(text):
    return " ".join(text.split())


def test_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "callout_regret\tCallout regret:" in out


def test_known_experiments_are_the_experiments_package_by_name(monkeypatch, make_fake):
    known = cli.known_experiments()
    assert list(known) == [experiment.NAME for experiment in experiments.EXPERIMENTS]
    assert known["callout_regret"] is callout_regret
    monkeypatch.setattr(experiments, "EXPERIMENTS", (make_fake("twin"), make_fake("twin")))
    with pytest.raises(InvalidArgumentError, match="'twin' twice"):
        cli.known_experiments()
    monkeypatch.setattr(experiments, "EXPERIMENTS", (object(),))
    with pytest.raises(InvalidArgumentError, match="NAME"):
        cli.known_experiments()


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == (
        f"prime-science {importlib.metadata.version('prime-science')}"
    )


def test_reproduce_help_states_defaults_and_exit_statuses_in_words(capsys):
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--help"])
    out = _one_line(capsys.readouterr().out)
    assert "default: 5 at quick scale, 10 at full" in out and "{" not in out
    assert "missing data sets are found before anything runs" in out
    assert "exit status 2" in out and "PRIME_SCIENCE_DATA" in out


@pytest.mark.slow
def test_reproduce_one_experiment(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(callout_regret.Config, "quick", classmethod(lambda cls: TINY))
    status = cli.main(
        ["reproduce", "--only", "callout_regret", "--seeds", "2", "--out", str(tmp_path)]
    )
    assert status == 0
    report = tmp_path / "report.md"
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[-1] == str(report)
    assert lines[0].split() == ["experiment", "targets", "passed", "time", "status"]
    assert lines[1].startswith("callout_regret ") and lines[1].endswith(" ok")
    assert "[1/1] callout_regret: started" in captured.err
    assert "callout_regret: compiling…" in captured.err
    assert "[1/1] callout_regret: done in " in captured.err and " passed; elapsed " in captured.err
    record = json.loads((tmp_path / "callout_regret" / "results.json").read_text())
    assert record["seeds"] == 2 and record["config"]["num_arms"] == TINY.num_arms
    text = report.read_text()
    assert "## callout_regret" in text and "![cumulative_regret]" in text


def test_only_rebuilds_the_report_from_every_experiment_on_disk(tmp_path, capsys, register):
    register("alpha")
    register("beta")
    out = str(tmp_path)
    assert (
        cli.main(["reproduce", "--only", "alpha", "--only", "beta", "--seeds", "1", "--out", out])
        == 0
    )
    err = capsys.readouterr().err
    assert "[1/2] alpha: started" in err and "[2/2] beta: started" in err
    assert "[1/2] alpha: done in " in err and "targets 1/2 passed" in err and " left" in err
    assert cli.main(["reproduce", "--only", "beta", "--seeds", "1", "--out", out]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "## alpha" in text and "## beta" in text
    assert "| alpha | ok | 1/2 |" in text and "| beta | ok | 1/2 |" in text


def test_reproduce_reports_a_crash_and_fails(tmp_path, capsys, register):
    def crash(key, config):
        raise RuntimeError("simulated crash")

    register("broken", run=crash)
    out = str(tmp_path)
    assert cli.main(["reproduce", "--only", "broken", "--seeds", "1", "--out", out]) == 1
    captured = capsys.readouterr()
    assert "simulated crash" in captured.err and "[1/1] broken: done in " in captured.err
    assert captured.out.splitlines()[1].split()[-1] == "crashed"
    record = json.loads((tmp_path / "broken" / "results.json").read_text())
    assert record["status"] == "error" and "simulated crash" in record["error"]
    assert "| broken | **crashed** |" in (tmp_path / "report.md").read_text()

    # The crash survives a rebuild, and a later successful run replaces it.
    assert cli.main(["report", "--out", out]) == 0
    assert "| broken | **crashed** |" in (tmp_path / "report.md").read_text()
    register("broken")
    assert cli.main(["reproduce", "--only", "broken", "--seeds", "1", "--out", out]) == 0
    assert "| broken | ok | 1/2 |" in (tmp_path / "report.md").read_text()


def test_unknown_experiment_is_a_usage_error_before_any_work(tmp_path, capsys, register):
    register("alpha")
    report = tmp_path / "report.md"
    report.write_text("the previous report\n")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(
            ["reproduce", "--only", "alpha", "--only", "calout_regret", "--out", str(tmp_path)]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown experiment(s) 'calout_regret'" in err
    assert "known: " in err and "callout_regret" in err and "alpha" in err
    assert "Traceback" not in err
    assert report.read_text() == "the previous report\n"
    assert not (tmp_path / "alpha").exists()


def test_missing_data_stops_before_any_work_in_one_line(tmp_path, capsys, monkeypatch, register):
    register("alpha")
    register("needs_bus", DATASETS=("rust_bus",))
    register("needs_obd", DATASETS=("obd", "rust_bus"))
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PRIME_SCIENCE_DATA", str(empty))
    out = tmp_path / "results"
    argv = ["reproduce", "--only", "alpha", "--only", "needs_bus", "--only", "needs_obd"]
    assert cli.main([*argv, "--seeds", "1", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert "needs_bus, needs_obd needs rust_bus" in captured.err
    assert "needs_obd needs obd" in captured.err and "nothing was run" in captured.err
    assert not out.exists()

    # --data overrides the environment; a folder with the data sets lets the run go ahead.
    data = tmp_path / "data"
    (data / "rust_bus").mkdir(parents=True)
    only_bus = ["reproduce", "--only", "needs_bus", "--seeds", "1", "--out", str(out)]
    assert cli.main([*only_bus, "--data", str(data)]) == 0
    record = json.loads((out / "needs_bus" / "results.json").read_text())
    assert record["datasets"]["rust_bus"].startswith(f"rust_bus: {data / 'rust_bus'}")


def test_report_command_rebuilds_from_disk(tmp_path, capsys, make_fake):
    assert cli.main(["report", "--out", str(tmp_path)]) == 2
    assert "no results under" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()
    runner.run_experiment(make_fake("alpha"), seeds=1, out_dir=tmp_path, progress=False)
    runner.write_crash_record("beta", "Boom!", tmp_path, scale="quick", seeds=1, total_s=0.1)
    assert cli.main(["report", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "report.md")
    text = (tmp_path / "report.md").read_text()
    assert "| alpha | ok | 1/2 |" in text and "| beta | **crashed** |" in text and "Boom!" in text


@pytest.mark.parametrize("flag", ["--seeds", "--seeds-per-call"])
def test_seeds_must_be_positive(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["reproduce", flag, "0"])
    assert exit_info.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_bench_forwards_its_arguments(monkeypatch):
    seen = []
    monkeypatch.setattr(bench_command, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["bench", "--quick", "--help"]) == 0
    assert seen == [["--quick", "--help"]]


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["frobnicate"])
    assert exit_info.value.code == 2
