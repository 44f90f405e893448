"""Rust (1987) bus engine replacement data: raw ``.asc`` files -> panel -> discretised states.

Files (``<data>/rust_bus/``, see its PROVENANCE.md). Each file is one column of numbers, a
``rows x buses`` matrix stacked column by column. In every column rows 1-11 are a header (bus
id, purchase month/year, 1st replacement month/year/odometer, 2nd replacement
month/year/odometer, first data month/year; odometer 0 = no replacement) and the rest are
monthly odometer readings, which never decrease. Groups 1-8 are Rust's (Table I):

=====  ===========  ============
group  file         rows x buses
=====  ===========  ============
1      g870.asc     36 x 15
2      rt50.asc     60 x 4
3      t8h203.asc   81 x 48
4      a530875.asc  128 x 37
5      a530874.asc  137 x 12
6      a452374.asc  137 x 10
7      a530872.asc  137 x 18
8      a452372.asc  137 x 18
=====  ===========  ============

Panel (:class:`BusPanel`, one row per bus-month, conventions of PROVENANCE.md, the same as
``ruspy``'s). The replacement month of a replacement with odometer ``r`` (header rows 6, 9) is
the last month whose reading is below ``r``; it has ``replacement = 1``. From the next month
on, ``mileage`` (miles since the last replacement) is ``odometer - r``.

Discretisation (:func:`discretise`, ``num_bins`` bins of ``bin_size`` miles):

* state ``x_t = min(floor(mileage_t / bin_size), num_bins - 1)``;
* increment after a keep month ``x_{t+1} - x_t``; after a replacement month
  ``ceil(mileage_{t+1} / bin_size)`` (the bus restarts from bin 0); ``-1`` for a bus's last month.

Every bus-month, the first included, is a choice observation. With 5,000-mile bins the group-4
increment counts are ``[1682, 2555, 55]`` (Rust's theta3 = .3919, .5953 exactly).
"""

from __future__ import annotations

import math
import os
from importlib.resources.abc import Traversable
from typing import NamedTuple

import numpy as np

from prime_science.core import errors
from prime_science.datasets.source import DataNotFoundError, dataset_dir

__all__ = [
    "GROUP_FILES",
    "HEADER_ROWS",
    "BusPanel",
    "BusData",
    "load_group",
    "load_rust_bus",
    "sample_name",
    "discretise",
    "increment_counts",
]

HEADER_ROWS = 11
"""Header rows at the top of every bus's column."""

GROUP_FILES: dict[int, tuple[str, int, int]] = {
    1: ("g870.asc", 36, 15),
    2: ("rt50.asc", 60, 4),
    3: ("t8h203.asc", 81, 48),
    4: ("a530875.asc", 128, 37),
    5: ("a530874.asc", 137, 12),
    6: ("a452374.asc", 137, 10),
    7: ("a530872.asc", 137, 18),
    8: ("a452372.asc", 137, 18),
}
"""Rust's group -> (file name, rows per bus including the header, number of buses)."""


class BusPanel(NamedTuple):
    """One row per bus-month, sorted by bus then month (numpy arrays, length ``n``).

    Attributes:
      group: ``int64[n]`` Rust's group (1-8).
      bus: ``int64[n]`` bus id (header row 1).
      month: ``int64[n]`` month index within the bus, from 0.
      odometer: ``float64[n]`` the raw odometer reading.
      mileage: ``float64[n]`` miles since the last engine replacement (the state variable).
      replacement: ``int64[n]`` 1 in the month the engine is replaced, else 0.
    """

    group: np.ndarray
    bus: np.ndarray
    month: np.ndarray
    odometer: np.ndarray
    mileage: np.ndarray
    replacement: np.ndarray


class BusData(NamedTuple):
    """A discretised panel (numpy arrays, length ``n``; see the module docstring).

    Attributes:
      state: ``int32[n]`` mileage bin ``x_t`` in ``[0, num_bins)``.
      decision: ``int32[n]`` 0 = keep, 1 = replace.
      increment: ``int32[n]`` bins moved to the next month, ``-1`` in a bus's last month.
      bus: ``int64[n]`` bus id.
      num_bins: number of mileage bins.
      bin_size: miles per bin.
    """

    state: np.ndarray
    decision: np.ndarray
    increment: np.ndarray
    bus: np.ndarray
    num_bins: int
    bin_size: float


def _read_matrix(path: Traversable, rows: int, buses: int) -> np.ndarray:
    """The ``rows x buses`` matrix of one file, checked: numbers only, the right count."""
    name = f"rust_bus file {path.name}"
    try:
        text = path.read_bytes().decode("ascii")
    except OSError as error:
        raise errors.InvalidArgumentError(
            f"{name}: expected a readable file, got {error.strerror or error} ({path})"
        ) from error
    except UnicodeDecodeError as error:
        errors.fail(name, "an ASCII text file", f"a non-ASCII byte at offset {error.start}")
    tokens = text.split()
    try:
        values = np.array([float(token) for token in tokens], dtype=np.float64)
    except ValueError:
        bad = next(token for token in tokens if not _is_number(token))
        errors.fail(name, "one number per line", f"the token {bad!r}")
    if values.size != rows * buses:
        errors.fail(name, f"{rows * buses} numbers ({rows} rows x {buses} buses)", values.size)
    if not np.all(np.isfinite(values)):
        errors.fail(name, "finite numbers", "NaN or inf")
    return values.reshape(buses, rows).T


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def load_group(group: int, path: str | os.PathLike[str] | None = None) -> BusPanel:
    """The panel of one of Rust's groups (1-8) from the shipped files, or from
    ``<path>/rust_bus/`` (see :func:`prime_science.datasets.source.dataset_dir`)."""
    if isinstance(group, bool) or not isinstance(group, int | np.integer):
        errors.fail("groups", f"integer group numbers in {sorted(GROUP_FILES)}", repr(group))
    if group not in GROUP_FILES:
        errors.fail("groups", f"group numbers in {sorted(GROUP_FILES)}", group)
    filename, rows, buses = GROUP_FILES[group]
    file = dataset_dir("rust_bus", path).joinpath(filename)
    if not file.is_file():
        raise DataNotFoundError(f"rust_bus file {filename}: not found in {file.parent}")
    matrix = _read_matrix(file, rows, buses)
    columns = []
    for column in matrix.T:
        bus_id = int(column[0])
        odometer = column[HEADER_ROWS:]
        label = f"rust_bus file {filename}, bus {bus_id}"
        if np.any(np.diff(odometer) < 0):
            errors.fail(label, "non-decreasing odometer readings", "a decrease")
        mileage = odometer.copy()
        replacement = np.zeros(odometer.size, np.int64)
        previous = 0.0
        for header_row in (5, 8):
            replaced_at = column[header_row]
            if replaced_at == 0:
                continue
            below = np.flatnonzero(odometer < replaced_at)
            if below.size in (0, odometer.size) or replaced_at <= previous:
                errors.fail(
                    label,
                    "a replacement odometer inside the readings "
                    f"({odometer[0]:g} .. {odometer[-1]:g} miles, after any earlier one)",
                    replaced_at,
                )
            month = below[-1]
            replacement[month] = 1
            mileage[month + 1 :] = odometer[month + 1 :] - replaced_at
            previous = replaced_at
        months = odometer.size
        columns.append(
            (
                np.full(months, group, np.int64),
                np.full(months, bus_id, np.int64),
                np.arange(months, dtype=np.int64),
                odometer,
                mileage,
                replacement,
            )
        )
    return BusPanel(*(np.concatenate(parts) for parts in zip(*columns, strict=True)))


def load_rust_bus(
    groups: tuple[int, ...] | list[int] = (1, 2, 3, 4),
    path: str | os.PathLike[str] | None = None,
) -> BusPanel:
    """The panel of the given groups, concatenated in the order given.

    Raises :class:`~prime_science.core.errors.InvalidArgumentError` for an empty or unknown
    group selection and for a malformed file (naming the file and the problem), and
    :class:`~prime_science.datasets.source.DataNotFoundError` when an override folder lacks the
    files.
    """
    if not isinstance(groups, tuple | list):
        errors.fail("groups", "a tuple or list of Rust's group numbers, e.g. (4,)", repr(groups))
    groups = tuple(groups)
    if not groups:
        errors.fail("groups", "at least one of Rust's groups 1-8", "an empty selection")
    if len(set(groups)) != len(groups):
        errors.fail("groups", "distinct group numbers", groups)
    panels = [load_group(group, path) for group in groups]
    return BusPanel(*(np.concatenate(parts) for parts in zip(*panels, strict=True)))


def sample_name(groups: tuple[int, ...]) -> str:
    """A file- and key-safe name for a selection of Rust's groups, as results record it:
    ``group4`` for one group, ``groups1to4`` for consecutive groups, ``groups1_3`` otherwise."""
    if len(groups) == 1:
        return f"group{groups[0]}"
    if groups == tuple(range(groups[0], groups[-1] + 1)):
        return f"groups{groups[0]}to{groups[-1]}"
    return "groups" + "_".join(map(str, groups))


def discretise(panel: BusPanel, num_bins: int = 90, bin_size: float = 5_000.0) -> BusData:
    """States, decisions and increments with ``num_bins`` bins of ``bin_size`` miles.

    Rust's Table IX uses 90 bins of 5,000 miles; Table X 175 bins of ``450_000 / 175``
    (2,571.43) miles.
    """
    if not (isinstance(num_bins, int | np.integer) and num_bins >= 2):
        errors.fail("num_bins", "an integer >= 2", num_bins)
    if not isinstance(panel, BusPanel):
        errors.fail("panel", "a BusPanel (from load_rust_bus)", type(panel).__name__)
    if not (
        isinstance(bin_size, int | float | np.integer | np.floating)
        and math.isfinite(bin_size)
        and bin_size > 0
    ):
        errors.fail("bin_size", "a positive number of miles", bin_size)
    if panel.bus.size == 0:
        errors.fail("panel", "at least one bus-month", "an empty panel")
    state = np.minimum(np.floor(panel.mileage / bin_size), num_bins - 1).astype(np.int32)
    decision = panel.replacement.astype(np.int32)
    same_bus = (panel.bus[1:] == panel.bus[:-1]) & (panel.group[1:] == panel.group[:-1])
    after_keep = state[1:] - state[:-1]
    after_replacement = np.ceil(panel.mileage[1:] / bin_size).astype(np.int32)
    increment = np.where(decision[:-1] == 1, after_replacement, after_keep)
    increment = np.append(np.where(same_bus, increment, -1), -1).astype(np.int32)
    if np.any(increment[increment != -1] < 0):
        errors.fail("panel", "non-negative mileage increments", "a negative one")
    return BusData(state, decision, increment, panel.bus, int(num_bins), float(bin_size))


def increment_counts(data: BusData, num_increments: int | None = None) -> np.ndarray:
    """``int64[J]``: how many months move up ``0 .. J - 1`` bins (``J`` defaults to the largest
    observed increment plus one)."""
    observed = data.increment[data.increment >= 0]
    size = int(observed.max()) + 1 if num_increments is None else num_increments
    if observed.size and observed.max() >= size:
        errors.fail("num_increments", f"> the largest observed increment {observed.max()}", size)
    return np.bincount(observed, minlength=size)
