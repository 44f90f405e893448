"""Contractual retention cohorts: survivors by year of two published cohorts of 1,000 subscribers.

Fader and Hardie (2007), "How to Project Customer Retention", Journal of Interactive Marketing
21(1), 76-90 (data from Berry and Linoff 2004): of 1,000 customers who signed up in year 0, how
many are still subscribed at the end of years 1-12, for a "regular" and a "high-end" cohort. The
standard exercise fits a retention model on years 1-7 and projects years 8-12.

File: ``retention/cohort_survival.csv`` (shipped; see its PROVENANCE.md), columns ``year`` and
one column of survivor counts per cohort. Survivor counts ``S_t`` are integers, ``S_0 > 0`` and
non-increasing in ``t``; the retention rate of year ``t`` is ``r_t = S_t / S_{t-1}``.
"""

from __future__ import annotations

import csv
import io
import os
from typing import NamedTuple

import numpy as np

from prime_science.core import errors
from prime_science.datasets.source import DataNotFoundError, dataset_dir

__all__ = ["RetentionCohorts", "load_retention", "retention_rates"]

FILE_NAME = "cohort_survival.csv"


class RetentionCohorts(NamedTuple):
    """Survivors by year (numpy arrays).

    Attributes:
      year: ``int64[T]`` years ``0 .. T - 1``.
      survivors: ``dict[str, int64[T]]`` cohort name -> customers still subscribed at the end
        of each year (``survivors[c][0]`` is the cohort size).
    """

    year: np.ndarray
    survivors: dict[str, np.ndarray]


def load_retention(path: str | os.PathLike[str] | None = None) -> RetentionCohorts:
    """The cohorts from the shipped file, or from ``<path>/retention/cohort_survival.csv``.

    Raises :class:`~prime_science.core.errors.InvalidArgumentError` naming the row and column
    of a malformed entry (not an integer, negative, a survivor count that rises, years not
    ``0, 1, 2, ...``), and :class:`~prime_science.datasets.source.DataNotFoundError` when an
    override folder lacks the file.
    """
    file = dataset_dir("retention", path).joinpath(FILE_NAME)
    if not file.is_file():
        raise DataNotFoundError(f"retention file {FILE_NAME}: not found in {file.parent}")
    name = f"retention file {FILE_NAME}"
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        errors.fail(name, "UTF-8 text", f"an undecodable byte at offset {error.start}")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0][:1] != ["year"] or len(rows[0]) < 2:
        errors.fail(name, "a header 'year,<cohort>,...'", rows[0] if rows else "an empty file")
    header, body = rows[0], [row for row in rows[1:] if row]
    if not body:
        errors.fail(name, "at least one year of counts", "no data rows")
    table = np.zeros((len(body), len(header)), np.int64)
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            errors.fail(f"{name}, line {line}", f"{len(header)} fields", len(row))
        for column, field in enumerate(row):
            try:
                table[line - 2, column] = int(field)
            except ValueError:
                errors.fail(
                    f"{name}, line {line}, column {header[column]}", "an integer", repr(field)
                )
    if not np.array_equal(table[:, 0], np.arange(len(body))):
        errors.fail(f"{name}, column year", "the years 0, 1, 2, ... in order", table[:, 0].tolist())
    survivors = {}
    for column, cohort in enumerate(header[1:], start=1):
        counts = table[:, column]
        if counts[0] <= 0:
            errors.fail(f"{name}, column {cohort}", "a positive cohort size", counts[0])
        if np.any(counts < 0):
            errors.fail(f"{name}, column {cohort}", "non-negative counts", counts.min())
        rises = np.flatnonzero(np.diff(counts) > 0)
        if rises.size:
            errors.fail(
                f"{name}, column {cohort}",
                "survivor counts that never rise",
                f"{counts[rises[0]]} in year {rises[0]} then {counts[rises[0] + 1]}",
            )
        survivors[cohort] = counts
    return RetentionCohorts(table[:, 0], survivors)


def retention_rates(survivors: np.ndarray) -> np.ndarray:
    """``float64[T - 1]``: ``r_t = S_t / S_{t-1}`` for ``t = 1 .. T - 1`` (``nan`` once a cohort
    has no survivors left to retain)."""
    survivors = np.asarray(survivors, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(survivors[:-1] > 0, survivors[1:] / survivors[:-1], np.nan)
