"""Read a user's membership logs into a :class:`~.simulate.Panel`, and write one back out.

**Format.** One row per member-month, ten integer columns (any order, header required)::

    member_id, month, segment, plan, tenure, ship, video, content, regime, choice

* ``member_id``: any integer naming the customer; ``month``: an integer calendar index
  (e.g. months since some date). Every member is observed on the same ``T`` consecutive months
  ``m0 .. m0 + T - 1`` (the panel is rectangular), each once.
* The state at the start of the month, coded as in :mod:`.model`: ``segment`` 0 or 1 (fixed per
  member), ``plan`` 0 none, 1 a member free to choose, ``2 .. 1 + L`` locked in an annual term
  with ``L, .., 1`` months left (``L = lock_months``); ``tenure`` bucket ``0 .. 5``
  (:data:`.model.TENURE_WIDTHS`); ``ship`` and ``video`` engagement buckets ``0 .. E - 1``
  (``E = levels``); ``content`` 0 or 1; ``regime`` 0 regular, 1 promotion, 2 higher annual
  price.
* ``choice``: the action taken that month, 0 none, 1 monthly, 2 annual; a locked month
  (``plan >= 2``) records 2, the term running on.

CSV is read with the standard library (one header line, then one row per line; line numbers in
errors count the header as line 1). Parquet (``.parquet`` / ``.pq``) needs ``pyarrow``; its
rows are numbered from 0 in errors.

**Checks** (:class:`PanelFormatError`, naming the file and the line or row, with its member and
month where they could be read): a missing column; a cell that is not an integer; a value out of
range; a ``none`` or ``monthly`` choice in a locked month; a plan that does not follow from last
month's plan and choice (``plan[t + 1] = next_plan[plan[t], choice[t]]``,
:func:`.model.next_plan`); a member with a missing or duplicated month; a segment that changes
within a member. Members come out sorted by ``member_id`` (:attr:`PanelLogs.member_ids`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from prime_science.core import errors
from prime_science.membership import model
from prime_science.membership.simulate import Panel

__all__ = [
    "COLUMNS",
    "PanelFormatError",
    "PanelLogs",
    "ParquetUnavailableError",
    "panel_from_columns",
    "read_panel",
    "write_panel",
]

COLUMNS = (
    "member_id",
    "month",
    "segment",
    "plan",
    "tenure",
    "ship",
    "video",
    "content",
    "regime",
    "choice",
)
"""The columns of a log file, in the order :func:`write_panel` writes them."""
PARQUET_SUFFIXES = (".parquet", ".pq")


class PanelFormatError(errors.InvalidArgumentError):
    """A log file that no member panel can have; the message names the file, the line (or row),
    the member and month, the column, what was expected and what came."""


class ParquetUnavailableError(errors.InvalidArgumentError):
    """A Parquet file asked for without ``pyarrow`` installed."""


class PanelLogs(NamedTuple):
    """A panel read from logs.

    Attributes:
      panel: the :class:`~.simulate.Panel` (``int32[N, T]`` fields, ``segment`` ``int32[N]``).
      member_ids: ``int64[N]``, the member of each panel row (ascending).
      first_month: the calendar ``month`` of panel column 0.
    """

    panel: Panel
    member_ids: np.ndarray
    first_month: int


def _require_pyarrow(path: Path):
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise ParquetUnavailableError(
            f"{path}: expected pyarrow to read or write Parquet (pip install pyarrow; or save "
            "the logs as CSV, which needs nothing), got a Parquet file without pyarrow"
        ) from None
    return parquet


def _ranges(levels: int, lock_months: int) -> dict[str, tuple[int, int]]:
    """Inclusive ``(low, high)`` of every state and choice column."""
    return {
        "segment": (0, 1),
        "plan": (0, model.num_plans(lock_months) - 1),
        "tenure": (0, len(model.TENURE_WIDTHS) - 1),
        "ship": (0, levels - 1),
        "video": (0, levels - 1),
        "content": (0, 1),
        "regime": (0, len(model.REGIMES) - 1),
        "choice": (0, len(model.ACTIONS) - 1),
    }


class _Rows:
    """Where row ``i`` (in file order) sits in the file, for messages."""

    def __init__(self, source: str, first_line: int | None, member_ids, months):
        self.source, self.first_line = source, first_line
        self.member_ids, self.months = member_ids, months

    def where(self, row: int) -> str:
        place = f"row {row}" if self.first_line is None else f"line {row + self.first_line}"
        known = []
        if self.member_ids is not None:
            known.append(f"member {self.member_ids[row]}")
        if self.months is not None:
            known.append(f"month {self.months[row]}")
        return f"{self.source} {place}" + (f" ({', '.join(known)})" if known else "")

    def fail(self, row: int, column: str, expected: str, got) -> None:
        raise PanelFormatError(
            f"{self.where(row)}, column {column}: expected {expected}, got {got}"
        )


def _integers(text_cells: list[str], column: str, rows: _Rows) -> np.ndarray:
    values = np.empty(len(text_cells), np.int64)
    for row, cell in enumerate(text_cells):
        try:
            values[row] = int(cell.strip())
        except (ValueError, AttributeError):
            rows.fail(row, column, "an integer", repr(cell))
    return values


def _read_csv(path: Path) -> tuple[dict[str, list[str]], int]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise PanelFormatError(
                f"{path}: expected a header line naming {COLUMNS}, got an empty file"
            )
        header = [name.strip() for name in header]
        missing = [name for name in COLUMNS if name not in header]
        if missing:
            raise PanelFormatError(
                f"{path} line 1 (header): expected columns {', '.join(COLUMNS)}, got "
                f"{', '.join(header)} (missing {', '.join(missing)})"
            )
        position = {name: header.index(name) for name in COLUMNS}
        cells: dict[str, list[str]] = {name: [] for name in COLUMNS}
        for line, record in enumerate(reader, start=2):
            if len(record) != len(header):
                raise PanelFormatError(
                    f"{path} line {line}: expected {len(header)} comma-separated cells, got "
                    f"{len(record)}"
                )
            for name, index in position.items():
                cells[name].append(record[index])
    return cells, 2


def _read_parquet(path: Path) -> dict[str, np.ndarray]:
    parquet = _require_pyarrow(path)
    import pyarrow.compute as compute
    import pyarrow.types as types

    table = parquet.read_table(path)
    missing = [name for name in COLUMNS if name not in table.column_names]
    if missing:
        raise PanelFormatError(
            f"{path}: expected columns {', '.join(COLUMNS)}, got "
            f"{', '.join(table.column_names)} (missing {', '.join(missing)})"
        )
    columns = {}
    for name in COLUMNS:
        column = table.column(name)
        if not types.is_integer(column.type):
            raise PanelFormatError(
                f"{path}, column {name}: expected an integer column, got type {column.type}"
            )
        if column.null_count:
            row = int(compute.index(compute.is_null(column), True).as_py())
            raise PanelFormatError(
                f"{path} row {row}, column {name}: expected an integer, got a missing value"
            )
        columns[name] = column.to_numpy().astype(np.int64)
    return columns


def read_panel(path, *, levels: int = 5, lock_months: int = 11) -> PanelLogs:
    """Read and check a log file (CSV, or Parquet by its suffix): module docstring.

    Args:
      path: the file; ``.parquet`` or ``.pq`` is read as Parquet (needs ``pyarrow``), anything
        else as CSV.
      levels: engagement buckets ``E`` of the model the panel is for.
      lock_months: months locked after buying annual (``L``).

    Returns:
      :class:`PanelLogs`.
    """
    path = Path(path)
    if not path.is_file():
        errors.fail("path", "an existing log file", str(path))
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return panel_from_columns(
            _read_parquet(path), source=str(path), levels=levels, lock_months=lock_months
        )
    cells, first_line = _read_csv(path)
    rows = _Rows(str(path), first_line, None, None)
    member_ids = _integers(cells["member_id"], "member_id", rows)
    rows.member_ids = member_ids
    months = _integers(cells["month"], "month", rows)
    rows.months = months
    columns = {"member_id": member_ids, "month": months}
    for name in COLUMNS[2:]:
        columns[name] = _integers(cells[name], name, rows)
    return panel_from_columns(
        columns, source=str(path), first_line=first_line, levels=levels, lock_months=lock_months
    )


def panel_from_columns(
    columns,
    *,
    source: str = "logs",
    first_line: int | None = None,
    levels: int = 5,
    lock_months: int = 11,
) -> PanelLogs:
    """Check integer columns (a mapping from every name of :data:`COLUMNS` to an equal-length
    integer array, one entry per member-month in any order) and arrange them as a panel.

    ``source`` and ``first_line`` (the file line of entry 0; ``None``: name entries by row)
    only shape the error messages.
    """
    missing = [name for name in COLUMNS if name not in columns]
    if missing:
        raise PanelFormatError(
            f"{source}: expected columns {', '.join(COLUMNS)}, missing {', '.join(missing)}"
        )
    data = {}
    for name in COLUMNS:
        values = np.asarray(columns[name])
        if values.ndim != 1:
            raise PanelFormatError(
                f"{source}, column {name}: expected one value per row, got shape {values.shape}"
            )
        if values.dtype.kind not in "iu":
            raise PanelFormatError(
                f"{source}, column {name}: expected integers, got dtype {values.dtype}"
            )
        data[name] = values.astype(np.int64)
    lengths = {len(values) for values in data.values()}
    if len(lengths) != 1:
        raise PanelFormatError(
            f"{source}: expected columns of one length, got lengths {sorted(lengths)}"
        )
    if not lengths.pop():
        raise PanelFormatError(f"{source}: expected at least one member-month, got no rows")
    rows = _Rows(source, first_line, data["member_id"], data["month"])

    for name, (low, high) in _ranges(levels, lock_months).items():
        outside = np.flatnonzero((data[name] < low) | (data[name] > high))
        if outside.size:
            row = outside[0]
            rows.fail(row, name, f"an integer in {low} .. {high}", data[name][row])
    locked_free_choice = np.flatnonzero((data["plan"] >= 2) & (data["choice"] != model.ANNUAL))
    if locked_free_choice.size:
        row = locked_free_choice[0]
        rows.fail(
            row,
            "choice",
            f"{model.ANNUAL} (annual: plan {data['plan'][row]} is locked in an annual term)",
            f"{data['choice'][row]} ({model.ACTIONS[data['choice'][row]]})",
        )

    order = np.lexsort((data["month"], data["member_id"]))  # by member, then month
    member_ids, first_rows, counts = np.unique(
        data["member_id"][order], return_index=True, return_counts=True
    )
    first_month, last_month = int(data["month"].min()), int(data["month"].max())
    num_months = last_month - first_month + 1
    sorted_month = data["month"][order]
    same_member = np.repeat(np.arange(member_ids.size), counts)
    repeated = np.flatnonzero(
        (sorted_month[1:] == sorted_month[:-1]) & (same_member[1:] == same_member[:-1])
    )
    if repeated.size:
        row = order[repeated[0] + 1]
        first = order[repeated[0]]
        rows.fail(
            row,
            "month",
            f"each month once per member (already at {rows.where(first)})",
            "a duplicate",
        )
    incomplete = np.flatnonzero(counts != num_months)
    if incomplete.size:
        member = incomplete[0]
        seen = set(sorted_month[first_rows[member] : first_rows[member] + counts[member]].tolist())
        gaps = [m for m in range(first_month, last_month + 1) if m not in seen]
        shown = ", ".join(map(str, gaps[:5])) + (", .." if len(gaps) > 5 else "")
        raise PanelFormatError(
            f"{source}, member {member_ids[member]}: expected every month {first_month} .. "
            f"{last_month} of the panel, got months {shown} missing"
        )

    grid = {name: data[name][order].reshape(member_ids.size, num_months) for name in COLUMNS}
    file_row = order.reshape(member_ids.size, num_months)
    changed = np.argwhere(grid["segment"][:, 1:] != grid["segment"][:, :1])
    if changed.size:
        member, month = changed[0]
        row = file_row[member, month + 1]
        rows.fail(
            row,
            "segment",
            f"the member's segment {grid['segment'][member, 0]} (fixed per member)",
            grid["segment"][member, month + 1],
        )
    follows = model.next_plan(lock_months)[grid["plan"][:, :-1], grid["choice"][:, :-1]]
    broken = np.argwhere(grid["plan"][:, 1:] != follows)
    if broken.size:
        member, month = broken[0]
        before = file_row[member, month]
        rows.fail(
            file_row[member, month + 1],
            "plan",
            f"{follows[member, month]} (plan {grid['plan'][member, month]} and choice "
            f"{model.ACTIONS[grid['choice'][member, month]]} at {rows.where(before)})",
            grid["plan"][member, month + 1],
        )

    as_int32 = lambda name: jnp.asarray(grid[name], jnp.int32)  # noqa: E731
    panel = Panel(
        plan=as_int32("plan"),
        tenure=as_int32("tenure"),
        ship=as_int32("ship"),
        video=as_int32("video"),
        content=as_int32("content"),
        regime=as_int32("regime"),
        segment=jnp.asarray(grid["segment"][:, 0], jnp.int32),
        choice=as_int32("choice"),
    )
    return PanelLogs(panel, member_ids, first_month)


def write_panel(path, panel: Panel, *, member_ids=None, first_month: int = 0) -> Path:
    """Write ``panel`` as logs :func:`read_panel` reads back (one row per member-month, member
    by member; CSV, or Parquet for a ``.parquet`` / ``.pq`` suffix with ``pyarrow``).

    ``member_ids`` (``int[N]``, default ``0 .. N - 1``) name the panel's rows; months are
    ``first_month .. first_month + T - 1``. Returns the path written.
    """
    path = Path(path)
    if not isinstance(panel, Panel):
        errors.fail("panel", "a simulate.Panel", type(panel).__name__)
    plan = np.asarray(panel.plan)
    if plan.ndim != 2:
        errors.fail("panel.plan", "int[N members, T months]", f"shape {plan.shape}")
    num_members, num_months = plan.shape
    for name in ("tenure", "ship", "video", "content", "regime", "choice"):
        if np.shape(getattr(panel, name)) != plan.shape:
            errors.fail(
                f"panel.{name}",
                f"shape {plan.shape} like panel.plan",
                np.shape(getattr(panel, name)),
            )
    if np.shape(panel.segment) != (num_members,):
        errors.fail("panel.segment", f"shape ({num_members},)", np.shape(panel.segment))
    member_ids = np.arange(num_members) if member_ids is None else np.asarray(member_ids)
    if member_ids.shape != (num_members,) or len(np.unique(member_ids)) != num_members:
        errors.fail("member_ids", f"{num_members} distinct integers", member_ids.tolist())
    columns = {
        "member_id": np.repeat(member_ids, num_months),
        "month": np.tile(np.arange(num_months) + int(first_month), num_members),
        "segment": np.repeat(np.asarray(panel.segment), num_months),
    }
    for name in COLUMNS[3:]:
        columns[name] = np.asarray(getattr(panel, name)).reshape(-1)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        parquet = _require_pyarrow(path)
        import pyarrow as arrow

        table = arrow.table({name: columns[name].astype(np.int64) for name in COLUMNS})
        parquet.write_table(table, path)
        return path
    table = np.stack([columns[name].astype(np.int64) for name in COLUMNS], axis=1)
    with path.open("w", newline="") as handle:
        handle.write(",".join(COLUMNS) + "\n")
        np.savetxt(handle, table, fmt="%d", delimiter=",")
    return path
