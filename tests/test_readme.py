"""The README's API example runs as printed, twice in a row, and prints its selection."""

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _run_block(block: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(README), "exec"), {})  # noqa: S102 - the README's own code
    return out.getvalue()


@pytest.mark.slow
def test_api_example_runs_twice_and_prints_its_selection(tmp_path, monkeypatch):
    blocks = _python_blocks()
    assert "beta_bernoulli" in blocks[0], "the first Python example is the sampler's"
    monkeypatch.chdir(tmp_path)
    printed = []
    for _ in range(2):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(blocks[0], str(README), "exec"), {})  # noqa: S102 - the README's own code
        printed.append(out.getvalue())
    assert printed[0] == printed[1]
    arms = re.search(r"show arms \[([\d, ]+)\]", printed[0])
    assert arms and len(arms.group(1).split(",")) == 10
    assert "saved" in printed[0] and (tmp_path / "ckpt" / "step_00000001").is_dir()


@pytest.mark.slow
def test_membership_counterfactual_example_prints_what_the_readme_says():
    block = next(b for b in _python_blocks() if "counterfactual" in b)
    printed = _run_block(block)
    share = re.search(r"annual share at month 12: ([\d.]+) -> ([\d.]+)", printed)
    assert share, printed
    base, dearer = float(share.group(1)), float(share.group(2))
    assert f"{base:.3f} -> {dearer:.3f}" in README.read_text()


@pytest.mark.slow
def test_off_policy_example_prints_every_estimator_with_an_interval():
    from prime_science.evaluation.ope import ESTIMATORS

    block = next(b for b in _python_blocks() if "bootstrap_intervals" in b)
    printed = _run_block(block)
    for name in ESTIMATORS:
        line = re.search(rf"^{name}: ([\d.]+)% \[([\d.]+)%, ([\d.]+)%\]$", printed, flags=re.M)
        assert line, (name, printed)
        estimate, low, high = map(float, line.groups())
        assert low <= estimate <= high
