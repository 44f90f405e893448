"""The README's API example runs as printed, twice in a row, and prints its selection."""

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_api_example_runs_twice_and_prints_its_selection(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "the README has one Python example"
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
