"""The log loader: a panel (built in numpy, and one simulated from a solved model) survives a CSV
round trip (rows and columns in any order), and every impossible row is refused by name (file
line, member, month, column)."""

import sys

import jax
import numpy as np
import pytest

from prime_science.membership import model, panel, simulate

LEVELS, LOCK = 3, 3
NUM_MEMBERS, NUM_MONTHS = 40, 10


def _random_panel(seed):
    """A valid panel built in numpy: free members choose uniformly, locked ones ride the term,
    plans follow ``model.next_plan``; every other state is uniform on its range."""
    rng = np.random.default_rng(seed)
    follows = model.next_plan(LOCK)
    plan = np.zeros((NUM_MEMBERS, NUM_MONTHS), np.int32)
    choice = np.zeros_like(plan)
    plan[:, 0] = rng.integers(0, model.num_plans(LOCK), NUM_MEMBERS)
    for month in range(NUM_MONTHS):
        locked = plan[:, month] >= 2
        choice[:, month] = np.where(locked, model.ANNUAL, rng.integers(0, 3, NUM_MEMBERS))
        if month + 1 < NUM_MONTHS:
            plan[:, month + 1] = follows[plan[:, month], choice[:, month]]
    uniform = lambda high: rng.integers(0, high, plan.shape).astype(np.int32)  # noqa: E731
    return simulate.Panel(
        plan=plan,
        tenure=uniform(6),
        ship=uniform(LEVELS),
        video=uniform(LEVELS),
        content=uniform(2),
        regime=uniform(3),
        segment=rng.integers(0, 2, NUM_MEMBERS).astype(np.int32),
        choice=choice,
    )


@pytest.fixture(scope="module")
def simulated():
    return _random_panel(0)


@pytest.fixture
def csv_lines(simulated, tmp_path):
    path = panel.write_panel(
        tmp_path / "logs.csv",
        simulated,
        member_ids=np.arange(NUM_MEMBERS) * 10 + 7,
        first_month=100,
    )
    return path, path.read_text().splitlines()


def _line(member, month):
    """1-based file line of panel row ``member``, column ``month`` as written."""
    return 2 + member * NUM_MONTHS + month


def _set(lines, line, column, value):
    cells = lines[line - 1].split(",")
    cells[panel.COLUMNS.index(column)] = str(value)
    lines[line - 1] = ",".join(cells)


def _read(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return panel.read_panel(path, levels=LEVELS, lock_months=LOCK)


def _assert_same(a, b):
    for name, x, y in zip(simulate.Panel._fields, a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)


@pytest.mark.slow
def test_simulated_panel_round_trip(tmp_path):
    params = model.true_params(
        annual_price=40.0,
        ship_target=[[0.8, 1.8], [0.4, 1.5]],
        video_target=[[0.2, 1.5], [0.2, 1.2]],
    )
    simulated, _ = jax.jit(
        lambda key: simulate.simulate_panel(
            key, params, NUM_MEMBERS, NUM_MONTHS, burn_in=12, levels=LEVELS, lock_months=LOCK
        )
    )(jax.random.key(3))
    plan, choice = np.asarray(simulated.plan), np.asarray(simulated.choice)
    assert np.any(plan >= 2) and np.any(choice == model.NONE) and np.any(plan == 1)
    path = panel.write_panel(tmp_path / "logs.csv", simulated)
    logs = panel.read_panel(path, levels=LEVELS, lock_months=LOCK)
    _assert_same(simulated, logs.panel)
    np.testing.assert_array_equal(logs.member_ids, np.arange(NUM_MEMBERS))
    assert logs.first_month == 0


def test_csv_round_trip(simulated, csv_lines):
    path, _ = csv_lines
    logs = panel.read_panel(path, levels=LEVELS, lock_months=LOCK)
    _assert_same(simulated, logs.panel)
    np.testing.assert_array_equal(logs.member_ids, np.arange(NUM_MEMBERS) * 10 + 7)
    assert logs.first_month == 100
    assert logs.panel.plan.dtype == np.int32


def test_rows_in_any_order_and_columns_in_any_order(simulated, csv_lines):
    path, lines = csv_lines
    rows = [line.split(",") for line in lines[1:]]
    permutation = np.random.default_rng(0).permutation(len(rows))
    column_order = np.random.default_rng(1).permutation(len(panel.COLUMNS))
    header = ",".join(panel.COLUMNS[i] for i in column_order)
    shuffled = [header] + [",".join(rows[r][i] for i in column_order) for r in permutation]
    _assert_same(simulated, _read(path, shuffled).panel)


def test_parquet_without_pyarrow_names_the_fix(monkeypatch, tmp_path, simulated):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    target = tmp_path / "logs.parquet"
    target.write_bytes(b"PAR1")
    with pytest.raises(panel.ParquetUnavailableError, match="pip install pyarrow"):
        panel.read_panel(target)
    with pytest.raises(panel.ParquetUnavailableError, match="pip install pyarrow"):
        panel.write_panel(tmp_path / "out.parquet", simulated)


def test_parquet_round_trip(simulated, tmp_path):
    pytest.importorskip("pyarrow")
    path = panel.write_panel(tmp_path / "logs.parquet", simulated, first_month=3)
    logs = panel.read_panel(path, levels=LEVELS, lock_months=LOCK)
    _assert_same(simulated, logs.panel)
    assert logs.first_month == 3


def _first(simulated, condition):
    """``(member, month)`` of the first panel cell where ``condition`` holds, months >= 1."""
    hits = np.argwhere(condition)
    hits = hits[hits[:, 1] >= 1]
    assert hits.size, "the simulated panel lacks the case"
    return tuple(int(v) for v in hits[0])


def test_missing_column(csv_lines):
    path, lines = csv_lines
    drop = panel.COLUMNS.index("regime")
    cut = [",".join(c for i, c in enumerate(line.split(",")) if i != drop) for line in lines]
    with pytest.raises(panel.PanelFormatError, match=r"line 1 \(header\).*missing regime"):
        _read(path, cut)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("ship", "2.5", "an integer, got '2.5'"),
        ("tenure", "", "an integer, got ''"),
        ("ship", LEVELS, f"an integer in 0 .. {LEVELS - 1}, got {LEVELS}"),
        ("video", -1, f"an integer in 0 .. {LEVELS - 1}, got -1"),
        ("plan", LOCK + 2, f"an integer in 0 .. {LOCK + 1}, got {LOCK + 2}"),
        ("regime", 3, "an integer in 0 .. 2, got 3"),
        ("choice", 3, "an integer in 0 .. 2, got 3"),
        ("segment", 2, "an integer in 0 .. 1, got 2"),
    ],
)
def test_bad_cell_names_line_member_month_column(csv_lines, column, value, expected):
    path, lines = csv_lines
    line = _line(4, 6)
    _set(lines, line, column, value)
    pattern = rf"line {line} \(member 47, month 106\), column {column}: expected {expected}"
    with pytest.raises(panel.PanelFormatError, match=pattern):
        _read(path, lines)


@pytest.mark.parametrize("choice", [model.NONE, model.MONTHLY])
def test_free_choice_while_locked(simulated, csv_lines, choice):
    path, lines = csv_lines
    member, month = _first(simulated, np.asarray(simulated.plan) >= 2)
    _set(lines, _line(member, month), "choice", choice)
    with pytest.raises(
        panel.PanelFormatError, match=rf"line {_line(member, month)} .*column choice: expected 2"
    ):
        _read(path, lines)


def test_plan_must_follow_last_month(simulated, csv_lines):
    path, lines = csv_lines
    plan, choice = np.asarray(simulated.plan), np.asarray(simulated.choice)
    after_none = np.zeros_like(plan, bool)
    after_none[:, 1:] = choice[:, :-1] == model.NONE
    member, month = _first(simulated, after_none)
    _set(lines, _line(member, month), "plan", model.PLAN_FREE)
    pattern = (
        rf"line {_line(member, month)} .*column plan: expected 0 \(plan \d and choice none at "
        rf".*line {_line(member, month - 1)}"
    )
    with pytest.raises(panel.PanelFormatError, match=pattern):
        _read(path, lines)


def test_missing_month(csv_lines):
    path, lines = csv_lines
    del lines[_line(5, 4) - 1]
    with pytest.raises(
        panel.PanelFormatError, match=r"member 57: expected every month 100 \.\. 109.*104 missing"
    ):
        _read(path, lines)


def test_duplicate_month(csv_lines):
    path, lines = csv_lines
    _set(lines, _line(2, 5), "month", 104)
    pattern = (
        rf"line {_line(2, 5)} \(member 27, month 104\), column month: expected each month once "
        rf"per member \(already at .*line {_line(2, 4)}"
    )
    with pytest.raises(panel.PanelFormatError, match=pattern):
        _read(path, lines)


def test_segment_changes_within_member(simulated, csv_lines):
    path, lines = csv_lines
    segment = int(simulated.segment[3])
    _set(lines, _line(3, 7), "segment", 1 - segment)
    with pytest.raises(
        panel.PanelFormatError,
        match=rf"line {_line(3, 7)} .*column segment: expected the member's segment {segment}",
    ):
        _read(path, lines)


def test_empty_and_ragged_files(tmp_path, csv_lines):
    path, lines = csv_lines
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(panel.PanelFormatError, match="empty file"):
        panel.read_panel(empty)
    lines[3] += ",9"
    with pytest.raises(panel.PanelFormatError, match="line 4: expected 10 comma-separated cells"):
        _read(path, lines)
    with pytest.raises(panel.PanelFormatError, match="no rows"):
        _read(path, lines[:1])
