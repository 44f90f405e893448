"""The ``prime-science`` command: list, reproduce (tiny config), crash handling, bench."""

import json
import types

import pytest

from experiments import callout_regret
from prime_science import benchmarking, cli, runner

TINY = callout_regret.Config(
    num_arms=1_000, num_new_arms=40, num_rounds=48, slate_size=16, rounds_per_day=6
)


def test_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "callout_regret\tCallout regret:" in out


def test_reproduce_one_experiment(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(callout_regret.Config, "quick", classmethod(lambda cls: TINY))
    status = cli.main(
        ["reproduce", "--only", "callout_regret", "--seeds", "2", "--out", str(tmp_path)]
    )
    assert status == 0
    report = tmp_path / "report.md"
    assert capsys.readouterr().out.strip() == str(report)
    record = json.loads((tmp_path / "callout_regret" / "results.json").read_text())
    assert record["seeds"] == 2 and record["config"]["num_arms"] == TINY.num_arms
    text = report.read_text()
    assert "## callout_regret" in text and "![cumulative_regret]" in text


def test_reproduce_reports_a_crash_and_fails(tmp_path, capsys, monkeypatch):
    def crash(key, config):
        raise RuntimeError("simulated crash")

    broken = types.SimpleNamespace(
        **{name: getattr(callout_regret, name) for name in callout_regret.__all__}
    )
    broken.NAME, broken.run = "broken", crash
    monkeypatch.setitem(runner._REGISTRY, "broken", broken)
    status = cli.main(["reproduce", "--only", "broken", "--seeds", "1", "--out", str(tmp_path)])
    assert status == 1
    assert "simulated crash" in capsys.readouterr().err
    assert "| broken | **crashed** |" in (tmp_path / "report.md").read_text()


def test_bench_forwards_its_arguments(monkeypatch):
    seen = []
    monkeypatch.setattr(benchmarking, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["bench", "--quick", "--help"]) == 0
    assert seen == [["--quick", "--help"]]


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["frobnicate"])
    assert exit_info.value.code == 2
