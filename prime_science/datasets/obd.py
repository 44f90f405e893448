"""Open Bandit Dataset (Saito et al. 2021): logged impressions of a fashion site, with propensities.

ZOZOTOWN showed three items (positions 1-3: left, centre, right) per impression, chosen either
uniformly at random or by a production Bernoulli Thompson sampler (BTS), in three campaigns
(``all``: 80 items, ``men``: 34, ``women``: 46). Each logged row is one (impression, position)
record ``(x_i, a_i, k_i, r_i, p_i)``: user context, item, position, click, and the behaviour
policy's probability ``p_i = pi_b(a_i, k_i | x_i)`` of showing that item in that position. The
shipped sample has 10,000 rows per (policy, campaign); the full data (about 26 M rows) can be
read from a user folder in the same layout (``--data`` / ``PRIME_SCIENCE_DATA``).

Layout: ``obd/{random,bts}/{all,men,women}/{campaign}.csv[.gz]`` and ``item_context.csv[.gz]``
beside it; ``obd/prior_bts.yaml`` holds the production BTS prior, a Beta ``(alpha, beta)`` per
item and campaign (see ``prime_science/datasets/data/obd/PROVENANCE.md``). Plain ``.csv`` is read
when present, else the gzip-compressed ``.csv.gz`` that ships with the package.

Hashed categorical features (``user_feature_0..3``, ``item_feature_1..3``) become integer ids,
per column, in sorted order of the hash strings (so ids do not depend on row order).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from importlib.resources.abc import Traversable
from typing import NamedTuple

import numpy as np
import yaml

from prime_science.core import errors
from prime_science.datasets.source import DataNotFoundError, dataset_dir

__all__ = ["CAMPAIGNS", "POLICIES", "ItemContext", "LoggedBandit", "load_bts_prior", "load_obd"]

CAMPAIGNS: dict[str, int] = {"all": 80, "men": 34, "women": 46}
"""Campaign -> number of items."""

POLICIES = ("random", "bts")
"""Behaviour policies: uniform random, and the production Bernoulli Thompson sampler."""

NUM_POSITIONS = 3
_USER_COLUMNS = tuple(f"user_feature_{j}" for j in range(4))
_LOG_COLUMNS = ("item_id", "position", "click", "propensity_score", *_USER_COLUMNS)
_ITEM_COLUMNS = ("item_id", "item_feature_0", "item_feature_1", "item_feature_2", "item_feature_3")


class ItemContext(NamedTuple):
    """Item features, one row per item id ``0 .. num_items - 1``.

    Attributes:
      numeric: ``float64[num_items]`` ``item_feature_0``.
      categorical: ``int32[num_items, 3]`` ids of ``item_feature_1..3``.
      vocabularies: the hash strings behind each categorical column's ids.
    """

    numeric: np.ndarray
    categorical: np.ndarray
    vocabularies: tuple[tuple[str, ...], ...]


class LoggedBandit(NamedTuple):
    """One (behaviour policy, campaign) log, rows in logged order.

    Attributes:
      item: ``int32[n]`` the item shown, in ``[0, num_items)``.
      position: ``int32[n]`` the slot, 0-based (0 = left, 1 = centre, 2 = right).
      click: ``int8[n]`` 1 if clicked.
      propensity: ``float64[n]`` ``pi_b(item, position | context)`` in ``(0, 1]``.
      user_features: ``int32[n, 4]`` ids of ``user_feature_0..3``.
      user_vocabularies: the hash strings behind each user column's ids.
      affinity: ``float32[n, num_items]`` the ``user-item_affinity_<k>`` columns.
      items: the item context.
      policy: ``"random"`` or ``"bts"``.
      campaign: ``"all"``, ``"men"`` or ``"women"``.
    """

    item: np.ndarray
    position: np.ndarray
    click: np.ndarray
    propensity: np.ndarray
    user_features: np.ndarray
    user_vocabularies: tuple[tuple[str, ...], ...]
    affinity: np.ndarray
    items: ItemContext
    policy: str
    campaign: str

    @property
    def num_items(self) -> int:
        return self.affinity.shape[1]


def _check_choice(policy: str, campaign: str) -> None:
    if policy not in POLICIES:
        errors.fail("policy", f"one of {POLICIES}", repr(policy))
    if campaign not in CAMPAIGNS:
        errors.fail("campaign", f"one of {tuple(CAMPAIGNS)}", repr(campaign))


def _open_table(folder: Traversable, stem: str) -> tuple[str, list[list[str]]]:
    """The rows of ``stem.csv`` (preferred) or ``stem.csv.gz`` in ``folder``, header first."""
    for name in (f"{stem}.csv", f"{stem}.csv.gz"):
        file = folder.joinpath(name)
        if file.is_file():
            break
    else:
        raise DataNotFoundError(f"obd: neither {stem}.csv nor {stem}.csv.gz in {folder}")
    label = f"obd file {name}"
    try:
        raw = file.read_bytes()
        text = (gzip.decompress(raw) if name.endswith(".gz") else raw).decode("utf-8")
    except (OSError, EOFError, zlib.error) as error:
        errors.fail(label, "a readable (gzip) CSV file", f"{type(error).__name__}: {error}")
    except UnicodeDecodeError as error:
        errors.fail(label, "UTF-8 text", f"an undecodable byte at offset {error.start}")
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if not rows:
        errors.fail(label, "a header and data rows", "an empty file")
    return label, rows


def _columns(label: str, rows: list[list[str]], wanted: tuple[str, ...]) -> dict[str, list[str]]:
    header = rows[0]
    missing = [name for name in wanted if name not in header]
    if missing:
        errors.fail(label, f"the columns {', '.join(wanted)}", f"no column {', '.join(missing)}")
    if len(rows) < 2:
        errors.fail(label, "at least one data row", "only a header")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            errors.fail(f"{label}, line {line}", f"{len(header)} fields", len(row))
    index = {name: header.index(name) for name in wanted}
    return {name: [row[i] for row in rows[1:]] for name, i in index.items()}


def _numbers(label: str, column: str, values: list[str], dtype: type) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64).astype(dtype)
    except ValueError:
        line, bad = next((i, v) for i, v in enumerate(values, start=2) if not _is_float(v))
        errors.fail(f"{label}, line {line}, column {column}", "a number", repr(bad))


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _ids(values: list[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    vocabulary, ids = np.unique(np.asarray(values), return_inverse=True)
    return ids.astype(np.int32), tuple(vocabulary.tolist())


def _first_bad(label: str, column: str, bad: np.ndarray, values: np.ndarray, expected: str):
    line = int(np.flatnonzero(bad)[0])
    errors.fail(f"{label}, line {line + 2}, column {column}", expected, values[line])


def _load_items(folder: Traversable, num_items: int) -> ItemContext:
    label, rows = _open_table(folder, "item_context")
    columns = _columns(label, rows, _ITEM_COLUMNS)
    item_id = _numbers(label, "item_id", columns["item_id"], np.float64)
    if not np.array_equal(item_id, np.arange(num_items)):
        errors.fail(f"{label}, column item_id", f"the items 0 .. {num_items - 1} in order", item_id)
    numeric = _numbers(label, "item_feature_0", columns["item_feature_0"], np.float64)
    if not np.all(np.isfinite(numeric)):
        _first_bad(label, "item_feature_0", ~np.isfinite(numeric), numeric, "a finite number")
    coded = [_ids(columns[f"item_feature_{j}"]) for j in (1, 2, 3)]
    categorical = np.stack([ids for ids, _ in coded], axis=1)
    return ItemContext(numeric, categorical, tuple(vocabulary for _, vocabulary in coded))


def load_obd(
    policy: str = "random", campaign: str = "all", path: str | os.PathLike[str] | None = None
) -> LoggedBandit:
    """The log of one behaviour policy and campaign (shipped sample, or ``<path>/obd/``).

    Raises:
      InvalidArgumentError: an unknown ``policy`` or ``campaign``; a malformed row, named by
        file, line and column: a missing column, a non-numeric field, an item outside the
        campaign's items, a position outside 1-3, a click other than 0 or 1, a propensity
        outside (0, 1].
      DataNotFoundError: an override folder without the files.
    """
    _check_choice(policy, campaign)
    num_items = CAMPAIGNS[campaign]
    folder = dataset_dir("obd", path).joinpath(policy, campaign)
    label, rows = _open_table(folder, campaign)
    affinity_columns = tuple(f"user-item_affinity_{k}" for k in range(num_items))
    columns = _columns(label, rows, _LOG_COLUMNS + affinity_columns)

    item = _numbers(label, "item_id", columns["item_id"], np.float64)
    bad = (item < 0) | (item >= num_items) | (item != np.round(item))
    if bad.any():
        _first_bad(label, "item_id", bad, item, f"an item id in 0 .. {num_items - 1}")
    position = _numbers(label, "position", columns["position"], np.float64)
    bad = ~np.isin(position, np.arange(1, NUM_POSITIONS + 1))
    if bad.any():
        _first_bad(label, "position", bad, position, f"a position in 1 .. {NUM_POSITIONS}")
    click = _numbers(label, "click", columns["click"], np.float64)
    if (bad := ~np.isin(click, (0.0, 1.0))).any():
        _first_bad(label, "click", bad, click, "0 or 1")
    propensity = _numbers(label, "propensity_score", columns["propensity_score"], np.float64)
    bad = ~((propensity > 0) & (propensity <= 1))  # NaN fails too
    if bad.any():
        _first_bad(label, "propensity_score", bad, propensity, "a probability in (0, 1]")
    affinity = np.stack(
        [_numbers(label, name, columns[name], np.float32) for name in affinity_columns], axis=1
    )
    if not np.all(np.isfinite(affinity)):
        errors.fail(label, "finite user-item affinities", "NaN or inf")
    coded = [_ids(columns[name]) for name in _USER_COLUMNS]
    return LoggedBandit(
        item=item.astype(np.int32),
        position=(position - 1).astype(np.int32),
        click=click.astype(np.int8),
        propensity=propensity,
        user_features=np.stack([ids for ids, _ in coded], axis=1),
        user_vocabularies=tuple(vocabulary for _, vocabulary in coded),
        affinity=affinity,
        items=_load_items(folder, num_items),
        policy=policy,
        campaign=campaign,
    )


def load_bts_prior(
    campaign: str = "all", path: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha, beta)``, ``float64[num_items]`` each: the Beta prior of the production BTS policy
    that logged the ``bts`` data (``obd/prior_bts.yaml``). Named errors for a missing campaign,
    a wrong length or a non-positive entry."""
    _check_choice("bts", campaign)
    file = dataset_dir("obd", path).joinpath("prior_bts.yaml")
    if not file.is_file():
        raise DataNotFoundError(f"obd: no prior_bts.yaml in {file.parent}")
    label = "obd file prior_bts.yaml"
    try:
        prior = yaml.safe_load(file.read_bytes().decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        errors.fail(label, "valid UTF-8 YAML", f"{type(error).__name__}: {error}")
    entry = prior.get(campaign) if isinstance(prior, dict) else None
    if not isinstance(entry, dict) or not {"alpha", "beta"} <= set(entry):
        errors.fail(label, f"a mapping {campaign}: {{alpha: [...], beta: [...]}}", repr(entry)[:80])
    shapes = []
    for name in ("alpha", "beta"):
        try:
            values = np.asarray(entry[name], np.float64)
        except (TypeError, ValueError):
            errors.fail(f"{label}, {campaign}.{name}", "a list of numbers", repr(entry[name])[:80])
        if values.shape != (CAMPAIGNS[campaign],):
            errors.fail(
                f"{label}, {campaign}.{name}", f"{CAMPAIGNS[campaign]} values", values.shape
            )
        if not np.all(np.isfinite(values) & (values > 0)):
            errors.fail(f"{label}, {campaign}.{name}", "positive finite values", values.min())
        shapes.append(values)
    return shapes[0], shapes[1]
