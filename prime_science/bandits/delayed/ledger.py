"""Delayed feedback: an impression ledger, training strategies, the DFM likelihood, OTF.

Clicks and conversions arrive hours or days after the impression that caused them (in
Criteo's logs, Chapelle 2014: about 35% of conversions within 1 h and 50% within 24 h, 30-day
attribution window).
A model that counts every impression without a label as a negative and later adds the
positive counts that impression twice. This module keeps the facts in one place, keyed by
impression id, and derives training data from them.

Times are float32 hours throughout (shown, label and ``now``); float32 resolves about
``1e-7 * t``, i.e. about 4 s at one year. Times and scalars must be finite in float32
(``|t| <= 3.4e38``): ``1e39`` would be stored as ``inf``, which means "no label yet".

**Ledger.** :class:`LedgerState` holds a fixed number of slots. Impression ``i`` lives in
slot ``i mod capacity``; a slot is free or holds one live impression, and the slot's
``impression_id`` says which. With sequential ids this is a ring buffer, so ``capacity``
must exceed the number of ids issued during one attribution window plus the logging
latency, after which :func:`expire` frees the slot. An id whose slot is taken (the ledger
is full, or two live ids collide mod ``capacity``) is an error at the boundary.

* :func:`record_impressions` fills free slots (``label_at = inf``: no label yet).
* :func:`record_labels` records a click/conversion for a live impression: ``label = 1`` and
  ``label_at`` = its time. A second label for the same impression (later call, or twice in
  one call: the earliest time of the first call that labels it wins) changes nothing and is
  counted in ``info.num_duplicate_labels``.
* :func:`expire` makes every impression with ``now - shown_at >= window`` final and frees
  its slot: positive when its label came within ``window`` of the impression, negative
  otherwise. It also returns the expired impressions as a ledger, so that any strategy below
  turns them into final training rows once.
* :func:`ledger_view` reads the ledger at a time ``now``: elapsed times, delays, and the
  positive / negative / pending / matured sets.

Under ``jit`` nothing is re-checked, but nothing is corrupted either: impressions
whose slot is taken and labels for unknown ids are dropped and counted in ``info``.

**Strategies.** Each is a pure function ``(state, now, ...) -> TrainingBatch`` with one row
per slot: the row reference ``(item, context)`` (the caller keeps the features), a
``label``, a ``weight`` (0 for rows that do not count) and ``time`` (the delay of a positive,
how long a row was watched without a label otherwise). Any model that takes per-observation
labels and weights can consume them. They are **snapshots**, not increments:

    model_now = fold(model_final, strategy(ledger, now))          # decisions at ``now``
    ledger, expired = expire(ledger, now, window)
    model_final = fold(model_final, strategy(expired, now))       # once, on expiry

``model_final`` only ever receives final rows, each once; the live part is recomputed from
the ledger at each ``now`` and replaces (never adds to) the previous snapshot. When a late
label turns a pending impression positive, the next snapshot simply carries label 1, so no
impression is ever counted twice. An online model that cannot un-learn (probit ADF) either
runs the ledger with ``window = m`` and folds ``wait_for_matured(expired, now, m)`` once per
:func:`expire` (every row it sees is already final), or looks at each impression at a few
ages and folds in, each time, only what the likelihood gained since the previous look:
:func:`dfm_probit_log_ratio` with :func:`prime_science.bandits.probit.adf_factor_update`
(the ratios telescope to the DFM likelihood; ``experiments/delays.py``).

* :func:`wait_for_matured` — rows with elapsed ``>= m``; label = converted within ``m``.
* :func:`naive` — every shown impression, label = converted by ``now`` (pending = 0). For an
  impression with elapsed ``e`` its expectation is ``p F(e)`` (it follows from the delay model).
* :func:`censored` — the same rows read as censored observations: ``time`` is the delay of a
  positive and the censoring time ``min(elapsed, window)`` of the rest; fit them with
  :func:`dfm_log_likelihood` / :func:`fit_dfm` (Chapelle 2014, KDD), or give a
  Bernoulli model the fractional labels of :func:`dfm_conversion_probability` (the E-step).
* OTF (Vernade et al. 2020, ICML): the windowed label is
  ``Y_{s,t} = X_s 1{D_s <= min(m, t - s)}``, i.e. :func:`naive` with ``window = m``;
  :func:`otf_statistics` builds ``(V, b)`` and :func:`otf_estimate` ``V^-1 b -> tau_m theta``.

**Delay distributions.** :class:`DelayDistribution` is an exponential / log-normal mixture
truncated at an attribution window; :func:`calibrated_delay_mixture` solves for the
log-normal part so that ``F(1 h) = 0.35`` and ``F(24 h) = 0.50`` (Chapelle 2014's
statistics; the mixture's form is this project's choice).
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
from jax.scipy.special import log_ndtr, ndtr, ndtri
from scipy import optimize, special

from prime_science.core import errors
from prime_science.core.types import PRNGKey, SolverInfo

__all__ = [
    "LedgerInfo",
    "LedgerState",
    "LedgerView",
    "TrainingBatch",
    "ledger_init",
    "record_impressions",
    "record_labels",
    "expire",
    "contains",
    "ledger_view",
    "wait_for_matured",
    "naive",
    "censored",
    "dfm_log_likelihood",
    "dfm_conversion_probability",
    "dfm_probit_log_ratio",
    "DfmParams",
    "fit_dfm",
    "otf_statistics",
    "otf_estimate",
    "DelayDistribution",
    "exponential_delays",
    "calibrated_delay_mixture",
    "delay_cdf",
    "sample_delays",
]

_MAX_ID = np.iinfo(np.int32).max
_FLOAT32_MAX = float(np.finfo(np.float32).max)


# ----------------------------------------------------------------------------- ledger


class LedgerInfo(NamedTuple):
    """Running ``int32`` counters of a ledger.

    Attributes:
      num_recorded: impressions accepted into the ledger.
      num_expired_positive: impressions made final with a credited label and dropped.
      num_expired_negative: impressions made final without one and dropped.
      num_duplicate_labels: labels ignored because the impression already had one.
      num_dropped_labels: labels for unknown ids (only under ``jit``; eagerly an error).
      num_dropped_impressions: impressions whose slot was taken (only under ``jit``).

    Conservation: ``num_recorded == live + num_expired_positive + num_expired_negative``.
    """

    num_recorded: jax.Array
    num_expired_positive: jax.Array
    num_expired_negative: jax.Array
    num_duplicate_labels: jax.Array
    num_dropped_labels: jax.Array
    num_dropped_impressions: jax.Array


class LedgerState(NamedTuple):
    """Impressions awaiting their final label, one per slot (slot = id mod capacity).

    Attributes:
      impression_id: ``int32[capacity]`` the id held by each slot (``-1``: never used).
      item: ``int32[capacity]`` the item (arm) shown.
      context: ``int32[capacity]`` the context row; features stay with the caller.
      shown_at: ``float32[capacity]`` impression time, hours.
      label_at: ``float32[capacity]`` time of the click/conversion; ``inf`` = none yet.
      label: ``float32[capacity]`` 1 once a label is recorded, else 0.
      occupied: ``bool[capacity]`` which slots hold a live impression.
      info: :class:`LedgerInfo` counters.
    """

    impression_id: jax.Array
    item: jax.Array
    context: jax.Array
    shown_at: jax.Array
    label_at: jax.Array
    label: jax.Array
    occupied: jax.Array
    info: LedgerInfo


class LedgerView(NamedTuple):
    """The ledger read at time ``now`` (all ``[capacity]``; free slots are in no set).

    Attributes:
      elapsed: ``now - shown_at`` on live slots, 0 elsewhere.
      delay: ``label_at - shown_at`` on positive slots, ``inf`` elsewhere.
      positive: live, label arrived by ``now`` and within ``window`` of the impression.
      negative: live, no credited label and ``elapsed >= window`` (final, awaiting expiry).
      pending: live, no credited label yet and ``elapsed < window``.
      matured: live and ``elapsed >= matured_after``.

    ``positive + negative + pending`` partitions the live slots.
    """

    elapsed: jax.Array
    delay: jax.Array
    positive: jax.Array
    negative: jax.Array
    pending: jax.Array
    matured: jax.Array


class TrainingBatch(NamedTuple):
    """Training rows, one per ledger slot.

    Attributes:
      impression_id: ``int32[capacity]``; ``-1`` on rows with weight 0.
      item: ``int32[capacity]`` item of the row; 0 on rows with weight 0 (a valid id).
      context: ``int32[capacity]`` context of the row; 0 on rows with weight 0.
      label: ``float32[capacity]`` 0/1; 0 on rows with weight 0.
      weight: ``float32[capacity]`` 1 for rows that count, 0 otherwise.
      time: ``float32[capacity]`` delay for label 1, observed time without a label for
        label 0 (the censoring time); 0 on rows with weight 0.
    """

    impression_id: jax.Array
    item: jax.Array
    context: jax.Array
    label: jax.Array
    weight: jax.Array
    time: jax.Array


def _concrete(*values: Any) -> bool:
    return all(errors.is_concrete(v) for v in jax.tree_util.tree_leaves(values))


def _check_ids(name: str, values: Any) -> None:
    errors.check_rank(name, values, 1)
    errors.check_dtype_kind(name, values, "iu", "integer ids")
    if _concrete(values):
        array = np.asarray(values).astype(np.int64)
        bad = (array < 0) | (array > _MAX_ID)
        if bad.any():
            errors.fail(name, f"ids in [0, {_MAX_ID}]", f"{array[bad][:5].tolist()}")


def _check_times(name: str, values: Any) -> None:
    errors.check_rank(name, values, 1)
    errors.check_dtype_kind(name, values, "iuf", "real-valued times (hours)")
    if _concrete(values):
        array = np.asarray(values, np.float64)
        bad = ~(np.abs(array) <= _FLOAT32_MAX)  # NaN, inf, or inf once in float32
        if bad.any():
            expected = "finite times (no NaN or inf; |t| <= 3.4e38, float32)"
            errors.fail(name, expected, f"{array[bad][:5].tolist()}")


def _check_scalar(name: str, value: Any, *, positive: bool = False, allow_inf: bool = False):
    """A real scalar; when concrete, not NaN, finite in float32 (or exactly ``inf`` with
    ``allow_inf``) and, with ``positive``, > 0."""
    dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
    if np.ndim(value) != 0 or np.dtype(dtype).kind not in "iuf":
        errors.fail(name, "a real number (a scalar)", f"{type(value).__name__} {value!r}")
    if _concrete(value):
        x = float(np.asarray(value))
        too_big = np.isfinite(x) and abs(x) > _FLOAT32_MAX
        if np.isnan(x) or (np.isinf(x) and not allow_inf) or (positive and x <= 0) or too_big:
            what = ("a number" if allow_inf else "a finite number") + (" > 0" if positive else "")
            errors.fail(name, f"{what} (finite ones at most 3.4e38, float32)", repr(x))


def _check_finite(name: str, values: Any, upper: float = np.inf) -> None:
    """Real values; when concrete, finite (no NaN) and at most ``upper``."""
    errors.check_dtype_kind(name, values, "biuf", "real values")
    if _concrete(values):
        array = np.asarray(values, np.float64)
        bad = ~(np.isfinite(array) & (array <= upper))
        if bad.any():
            what = "finite values (no NaN)" + (f" <= {upper:.4g}" if np.isfinite(upper) else "")
            errors.fail(name, what, f"{np.atleast_1d(array)[np.atleast_1d(bad)][:5].tolist()}")


def _check_ledger(state: Any) -> None:
    if not isinstance(state, LedgerState):
        errors.fail("state", "a LedgerState (from ledger_init)", type(state).__name__)


def _check_capacity(capacity: Any) -> None:
    if not isinstance(capacity, int | np.integer) or not 1 <= capacity <= _MAX_ID:
        errors.fail("capacity", f"an integer in [1, {_MAX_ID}]", repr(capacity))


def ledger_init(capacity: int) -> LedgerState:
    """An empty ledger with ``capacity`` slots (impression ``i`` goes to ``i mod capacity``)."""
    _check_capacity(capacity)
    zero = jnp.zeros((), jnp.int32)
    return LedgerState(
        impression_id=jnp.full((capacity,), -1, jnp.int32),
        item=jnp.zeros((capacity,), jnp.int32),
        context=jnp.zeros((capacity,), jnp.int32),
        shown_at=jnp.zeros((capacity,), jnp.float32),
        label_at=jnp.full((capacity,), jnp.inf, jnp.float32),
        label=jnp.zeros((capacity,), jnp.float32),
        occupied=jnp.zeros((capacity,), bool),
        info=LedgerInfo(zero, zero, zero, zero, zero, zero),
    )


def _as(values: Any, dtype: Any) -> Any:
    """``values`` as ``dtype``: a numpy array when concrete, a traced array otherwise."""
    return np.asarray(values, dtype) if _concrete(values) else jnp.asarray(values, dtype)


def _padded(num: int, *arrays: Any) -> tuple[jax.Array, ...]:
    """Pad a batch to the next power of two (at least 8) plus a validity mask, so a stream
    of batches of varying sizes compiles a handful of programs, not one per size."""
    size = max(8, 1 << max(num - 1, 0).bit_length())
    pad = np.pad if _concrete(arrays) else jnp.pad  # host padding compiles nothing
    padded = tuple(pad(a, (0, size - num)) for a in arrays)
    return (*padded, np.arange(size) < num)


@jax.jit
def _record_impressions(state, impression_ids, items, contexts, times, valid):
    capacity = state.occupied.shape[0]
    size = impression_ids.shape[0]
    slots = impression_ids % capacity
    order = jnp.arange(size, dtype=jnp.int32)
    first = jnp.full((capacity,), size, jnp.int32).at[slots].min(jnp.where(valid, order, size))
    accept = valid & (first[slots] == order) & ~state.occupied[slots]
    target = jnp.where(accept, slots, capacity)  # out of range: dropped by the scatter
    put = lambda field, values: field.at[target].set(values, mode="drop")
    num_accepted = jnp.sum(accept, dtype=jnp.int32)
    num_valid = jnp.sum(valid, dtype=jnp.int32)
    info = state.info._replace(
        num_recorded=state.info.num_recorded + num_accepted,
        num_dropped_impressions=state.info.num_dropped_impressions + num_valid - num_accepted,
    )
    return LedgerState(
        impression_id=put(state.impression_id, impression_ids),
        item=put(state.item, items),
        context=put(state.context, contexts),
        shown_at=put(state.shown_at, times),
        label_at=put(state.label_at, jnp.inf),
        label=put(state.label, 0.0),
        occupied=put(state.occupied, True),
        info=info,
    )


def record_impressions(
    state: LedgerState,
    impression_ids: jax.Array,
    items: jax.Array,
    contexts: jax.Array,
    times: jax.Array,
) -> LedgerState:
    """Record a batch of impressions ``(id, item, context, shown_at)``.

    Raises ``InvalidArgumentError`` (state untouched) for: mismatched lengths; ids, items or
    contexts that are not non-negative int32 integers; NaN or infinite times; an id twice in
    the batch; an id whose slot ``id mod capacity`` holds a live impression (the same id:
    already recorded; another id: the ledger is full or the ids collide — expire old
    impressions or raise ``capacity``). Under ``jit`` such impressions are dropped and
    counted in ``info.num_dropped_impressions``.
    """
    _check_ledger(state)
    for name, values in (
        ("impression_ids", impression_ids),
        ("items", items),
        ("contexts", contexts),
    ):
        _check_ids(name, values)
    _check_times("times", times)
    for name, values in (("items", items), ("contexts", contexts), ("times", times)):
        errors.check_same_length(("impression_ids", name), impression_ids, values)
    if _concrete(impression_ids, state.occupied, state.impression_id):
        ids = np.asarray(impression_ids).astype(np.int64)
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            errors.fail("impression_ids", "distinct ids", f"repeated {unique[counts > 1][:5]}")
        capacity = state.occupied.shape[0]
        slots = ids % capacity
        slot_values, slot_counts = np.unique(slots, return_counts=True)
        if (slot_counts > 1).any():
            clash = ids[np.isin(slots, slot_values[slot_counts > 1])][:5].tolist()
            errors.fail(
                "impression_ids",
                f"ids with distinct slots (id mod capacity {capacity})",
                f"ids {clash} sharing a slot: raise capacity",
            )
        occupied = np.asarray(state.occupied)[slots]
        holder = np.asarray(state.impression_id)[slots]
        again = occupied & (holder == ids)
        if again.any():
            errors.fail("impression_ids", "ids not yet recorded", f"{ids[again][:5].tolist()}")
        if occupied.any():
            errors.fail(
                "impression_ids",
                f"ids whose slot (id mod capacity {capacity}) is free",
                f"ids {ids[occupied][:5].tolist()} whose slots hold live impressions "
                f"{holder[occupied][:5].tolist()} (ledger full or ids collide: expire old "
                "impressions or raise capacity)",
            )
    batch = _padded(
        np.shape(impression_ids)[0],
        *(_as(x, np.int32) for x in (impression_ids, items, contexts)),
        _as(times, np.float32),
    )
    return _record_impressions(state, *batch)


@jax.jit
def _record_labels(state, impression_ids, times, valid):
    capacity = state.occupied.shape[0]
    num = jnp.sum(valid, dtype=jnp.int32)
    slots = impression_ids % capacity
    known = valid & state.occupied[slots] & (state.impression_id[slots] == impression_ids)
    fresh = known & (state.label[slots] == 0)
    target = jnp.where(fresh, slots, capacity)
    label_at = state.label_at.at[target].min(times, mode="drop")
    label = state.label.at[target].set(1.0, mode="drop")
    num_new = jnp.sum((label == 1) & (state.label == 0), dtype=jnp.int32)
    num_known = jnp.sum(known, dtype=jnp.int32)
    info = state.info._replace(
        num_duplicate_labels=state.info.num_duplicate_labels + num_known - num_new,
        num_dropped_labels=state.info.num_dropped_labels + num - num_known,
    )
    return state._replace(label_at=label_at, label=label, info=info)


def record_labels(state: LedgerState, impression_ids: jax.Array, times: jax.Array) -> LedgerState:
    """Record clicks/conversions: ``label = 1`` and ``label_at = time`` for each impression.

    Only the first label of an impression counts: a label for an impression that already
    has one is ignored, and several in one batch keep the earliest time; every ignored label
    adds 1 to ``info.num_duplicate_labels``. Labels later than the attribution window are
    stored but never credited (see :func:`expire` and :func:`ledger_view`).

    Raises ``InvalidArgumentError`` (state untouched) for: mismatched lengths; non-integer
    ids; NaN or infinite times; an id that is not a live impression (never recorded, or
    already expired: filter late labels with :func:`contains`); a time before the
    impression's (negative delay). Under ``jit`` unknown ids are dropped and counted in
    ``info.num_dropped_labels``; negative delays are not checked.
    """
    _check_ledger(state)
    _check_ids("impression_ids", impression_ids)
    _check_times("times", times)
    errors.check_same_length(("impression_ids", "times"), impression_ids, times)
    if _concrete(impression_ids, times, state.occupied, state.impression_id, state.shown_at):
        ids = np.asarray(impression_ids).astype(np.int64)
        slots = ids % state.occupied.shape[0]
        known = np.asarray(state.occupied)[slots] & (np.asarray(state.impression_id)[slots] == ids)
        if not known.all():
            errors.fail("impression_ids", "ids of live impressions", f"{ids[~known][:5].tolist()}")
        shown = np.asarray(state.shown_at)[slots]
        label_times = np.asarray(times).astype(np.float32)
        early = label_times < shown
        if early.any():
            errors.fail(
                "times",
                "label times >= their impression's time (delay >= 0)",
                f"ids {ids[early][:5].tolist()} at {label_times[early][:5].tolist()} shown at "
                f"{shown[early][:5].tolist()}",
            )
    batch = _padded(
        np.shape(impression_ids)[0], _as(impression_ids, np.int32), _as(times, np.float32)
    )
    return _record_labels(state, *batch)


def contains(state: LedgerState, impression_ids: jax.Array) -> jax.Array:
    """``bool[n]``: which ids are live impressions of the ledger (labels may be recorded)."""
    _check_ledger(state)
    _check_ids("impression_ids", impression_ids)
    num = np.shape(impression_ids)[0]
    return _contains(state, *_padded(num, _as(impression_ids, np.int32)))[:num]


@jax.jit
def _contains(state, impression_ids, valid):
    slots = impression_ids % state.occupied.shape[0]
    return valid & state.occupied[slots] & (state.impression_id[slots] == impression_ids)


@jax.jit
def _expire(state, now, window):
    due = state.occupied & (now - state.shown_at >= window)
    credited = (state.label == 1) & (state.label_at - state.shown_at <= window)
    num_positive = jnp.sum(due & credited, dtype=jnp.int32)
    num_due = jnp.sum(due, dtype=jnp.int32)
    info = state.info._replace(
        num_expired_positive=state.info.num_expired_positive + num_positive,
        num_expired_negative=state.info.num_expired_negative + num_due - num_positive,
    )
    return state._replace(occupied=state.occupied & ~due, info=info), state._replace(occupied=due)


def expire(state: LedgerState, now: Any, window: Any) -> tuple[LedgerState, LedgerState]:
    """Make impressions with ``now - shown_at >= window`` final and free their slots.

    An expired impression is a final positive when its label came within ``window`` of the
    impression (``label_at - shown_at <= window``), a final negative otherwise; the counts go
    to ``info.num_expired_positive`` / ``info.num_expired_negative``. A label that would have
    arrived later can no longer be recorded (its id is unknown), so call ``expire`` with a
    ``now`` that leaves room for logging latency.

    Returns:
      ``(state, expired)``: the ledger without the expired impressions, and a ledger whose
      live slots are exactly the impressions just expired (its ``info`` is the one before
      expiry). Apply a strategy to ``expired`` at the same ``now`` to get their final rows.
    """
    _check_ledger(state)
    _check_scalar("now", now)
    _check_scalar("window", window, positive=True, allow_inf=True)
    return _expire(state, jnp.asarray(now, jnp.float32), jnp.asarray(window, jnp.float32))


def ledger_view(
    state: LedgerState, now: Any, window: Any = jnp.inf, matured_after: Any = None
) -> LedgerView:
    """The ledger at time ``now`` with attribution ``window`` (``matured_after``: default
    ``window``). See :class:`LedgerView`; labels with ``label_at > now`` are not yet seen."""
    _check_ledger(state)
    _check_scalar("now", now)
    _check_scalar("window", window, positive=True, allow_inf=True)
    matured_after = window if matured_after is None else matured_after
    _check_scalar("matured_after", matured_after, allow_inf=True)
    return _view(state, *(jnp.asarray(x, jnp.float32) for x in (now, window, matured_after)))


@jax.jit
def _view(state, now, window, matured_after):
    live = state.occupied
    elapsed = jnp.where(live, now - state.shown_at, 0.0)
    delay = state.label_at - state.shown_at
    positive = live & (state.label_at <= now) & (delay <= window)
    unlabelled = live & ~positive
    return LedgerView(
        elapsed=elapsed,
        delay=jnp.where(positive, delay, jnp.inf),
        positive=positive,
        negative=unlabelled & (elapsed >= window),
        pending=unlabelled & (elapsed < window),
        matured=live & (elapsed >= matured_after),
    )


# ------------------------------------------------------------------------- strategies


def _rows(state, keep, label, time) -> TrainingBatch:
    return TrainingBatch(
        impression_id=jnp.where(keep, state.impression_id, -1),
        item=jnp.where(keep, state.item, 0),
        context=jnp.where(keep, state.context, 0),
        label=jnp.where(keep, label, 0.0).astype(jnp.float32),
        weight=keep.astype(jnp.float32),
        time=jnp.where(keep, time, 0.0).astype(jnp.float32),
    )


@jax.jit
def _matured_rows(state, now, matured_after):
    keep = state.occupied & (now - state.shown_at >= matured_after)
    delay = state.label_at - state.shown_at
    label = (state.label_at <= now) & (delay <= matured_after)
    return _rows(state, keep, label, jnp.where(label, delay, matured_after))


def wait_for_matured(state: LedgerState, now: Any, matured_after: Any) -> TrainingBatch:
    """Rows for impressions with elapsed ``>= m`` (``m = matured_after``), labelled by
    whether the label came within ``m`` of the impression; ``time`` = delay or ``m``.

    Unbiased for ``P(D <= m) p`` (the rate scaled by ``F(m)``); nothing younger than ``m``
    is used. With ``m <= window`` the rows of :func:`expire`'s ``expired`` ledger are final.
    """
    _check_ledger(state)
    _check_scalar("now", now)
    _check_scalar("matured_after", matured_after, positive=True)
    return _matured_rows(
        state, jnp.asarray(now, jnp.float32), jnp.asarray(matured_after, jnp.float32)
    )


@jax.jit
def _observed_rows(state, now, window):
    view = _view(state, now, window, window)
    keep = state.occupied & (view.elapsed >= 0)  # impressions shown after ``now`` wait
    censored_at = jnp.minimum(view.elapsed, window)
    return _rows(state, keep, view.positive, jnp.where(view.positive, view.delay, censored_at))


def naive(state: LedgerState, now: Any, window: Any = jnp.inf) -> TrainingBatch:
    """Every impression shown by ``now``; label 1 if its label arrived by ``now`` (within
    ``window``), 0 otherwise — pending counts as negative *in this snapshot*.

    The rows are a snapshot (module docstring): the next snapshot corrects a pending row
    whose label arrives by carrying label 1, and replaces this one; never add both. The
    expected label of an impression with elapsed ``e`` is ``p F(e)`` (bias ``1 - F(e)``).
    ``naive(state, t, window=m)`` is the windowed OTF label of Vernade et al. 2020.
    """
    _check_ledger(state)
    _check_scalar("now", now)
    _check_scalar("window", window, positive=True, allow_inf=True)
    return _observed_rows(state, jnp.asarray(now, jnp.float32), jnp.asarray(window, jnp.float32))


def censored(state: LedgerState, now: Any, window: Any = jnp.inf) -> TrainingBatch:
    """The rows of :func:`naive`, read as censored observations (Chapelle 2014).

    ``label = 1``: converted with delay ``time``; ``label = 0``: no conversion during
    ``time = min(elapsed, window)``. Consume them with :func:`dfm_log_likelihood` /
    :func:`fit_dfm` (``labels=batch.label, times=batch.time, weights=batch.weight``), or
    give a Bernoulli model the fractional labels of :func:`dfm_conversion_probability`.
    """
    return naive(state, now, window)


# ------------------------------------------------------------------------------- DFM


def _check_dfm_data(labels: Any, times: Any) -> None:
    if _concrete(labels, times):
        y = np.asarray(labels, np.float64)
        if not np.isin(y, (0.0, 1.0)).all():
            errors.fail("labels", "0/1 labels", f"{np.unique(y[~np.isin(y, (0.0, 1.0))])[:5]}")
        t = np.asarray(times, np.float64)
        bad = ~(np.isfinite(t) & (t >= 0))
        if bad.any():
            errors.fail("times", "finite delays / elapsed times >= 0", f"{t[bad][:5].tolist()}")


def _check_dfm_params(dtype: Any, **values: Any) -> None:
    """Finite parameters; a ``*log_rate`` also with ``exp`` finite in ``dtype``."""
    largest_log = float(np.log(jnp.finfo(dtype).max))
    for name, value in values.items():
        _check_finite(name, value, largest_log if name.endswith("log_rate") else np.inf)


def dfm_log_likelihood(
    logit_p: jax.Array, log_rate: jax.Array, labels: jax.Array, times: jax.Array
) -> jax.Array:
    """Per-observation log-likelihood of the delayed feedback model (broadcasting).

    ``p = sigmoid(logit_p)`` is the probability of an eventual conversion and the delay is
    ``Exponential(lambda)``, ``lambda = exp(log_rate)`` (per hour). With ``t = times``::

        label 1 (converted after delay t):  log p + log lambda - lambda t
        label 0 (nothing during t):         log(1 - p + p exp(-lambda t))

    The second is ``log1p(-p q)``, ``q = -expm1(-lambda t)``, while ``p q < 1/2`` and
    ``logaddexp(log(1 - p), log p - lambda t)`` beyond (where ``log1p`` would cancel), so
    both stay accurate from ``lambda t -> 0`` to ``lambda t -> inf`` and ``|logit_p|`` large.
    Gradients are finite everywhere (both branches are evaluated on safe inputs).

    Raises ``InvalidArgumentError`` (concrete inputs) for labels other than 0/1, times that
    are not finite and >= 0, a NaN or infinite ``logit_p``, and a ``log_rate`` that is not
    finite or whose ``exp`` overflows the dtype (``> 88.7`` in float32).
    """
    _check_dfm_data(labels, times)
    dtype = jnp.result_type(float, logit_p, log_rate, times)
    _check_dfm_params(dtype, logit_p=logit_p, log_rate=log_rate)
    logit_p, log_rate, times = (jnp.asarray(x, dtype) for x in (logit_p, log_rate, times))
    converted = jnp.asarray(labels) > 0.5
    rate = jnp.exp(log_rate)
    log_p = -jax.nn.softplus(-logit_p)
    log_not_p = -jax.nn.softplus(logit_p)
    converted_ll = log_p + log_rate - rate * jnp.where(converted, times, 0.0)
    hazard = rate * jnp.where(converted, 0.0, times)
    p_times_q = jax.nn.sigmoid(logit_p) * -jnp.expm1(-hazard)
    small = p_times_q < 0.5
    waiting_ll = jnp.where(
        small,
        jnp.log1p(-jnp.where(small, p_times_q, 0.0)),
        jnp.logaddexp(log_not_p, log_p - hazard),
    )
    return jnp.where(converted, converted_ll, waiting_ll)


def dfm_conversion_probability(
    logit_p: jax.Array, log_rate: jax.Array, labels: jax.Array, times: jax.Array
) -> jax.Array:
    """``P(C = 1 | observation)``: 1 for a conversion; for nothing during ``t``,
    ``p e^{-lambda t} / (1 - p + p e^{-lambda t}) = sigmoid(logit_p - lambda t)``.

    The E-step of EM for the DFM: as fractional labels it lets any Bernoulli model learn the
    eventual conversion rate from :func:`censored` rows. Checks as
    :func:`dfm_log_likelihood`.
    """
    _check_dfm_data(labels, times)
    dtype = jnp.result_type(float, logit_p, log_rate, times)
    _check_dfm_params(dtype, logit_p=logit_p, log_rate=log_rate)
    logit_p, log_rate, times = (jnp.asarray(x, dtype) for x in (logit_p, log_rate, times))
    waiting = jax.nn.sigmoid(logit_p - jnp.exp(log_rate) * times)
    return jnp.where(jnp.asarray(labels) > 0.5, jnp.ones_like(waiting), waiting)


def _log_one_minus_p_cdf(u: jax.Array, log_rate: jax.Array, elapsed: jax.Array) -> jax.Array:
    """``log(1 - Phi(u) F(e))`` with ``F(e) = 1 - exp(-lambda e)``: ``logaddexp(log Phi(-u),
    log Phi(u) - lambda e)``, exact at ``e = 0`` (0) and stable for large ``|u|``."""
    return jnp.logaddexp(log_ndtr(-u), log_ndtr(u) - jnp.exp(log_rate) * elapsed)


def dfm_probit_log_ratio(
    u: jax.Array,
    log_rate: jax.Array,
    before: jax.Array,
    now: jax.Array,
    arrived: jax.Array,
    previous_log_rate: jax.Array | None = None,
) -> jax.Array:
    """What an impression's DFM likelihood gains between two looks, as a function of its
    probit score: ``log L(now) - log L(before)`` with ``p = Phi(u)`` and exponential delays.

    The DFM likelihood (Chapelle 2014) of an impression with no conversion seen after ``e``
    hours is ``1 - p F(e)``; of one converted after delay ``D`` it is ``p f(D)``. Looking at
    an impression at ages ``0 = e_0 < e_1 < e_2 < ...`` and multiplying, at each look, by

    * ``(1 - p F(now)) / (1 - p F(before))`` if still nothing is seen (``arrived`` False),
    * ``p / (1 - p F(before))`` if the conversion arrived in ``(before, now]`` (``f(D)`` does
      not involve ``p`` and is dropped),

    telescopes to the DFM likelihood of everything seen by the last look: an ADF model can
    then fold an impression in at several ages (re-processing it when its label changes)
    without counting anything twice. When the delay rate is re-estimated between looks, pass
    the rate of the previous look as ``previous_log_rate`` (default ``log_rate``): the
    denominator is then the factor that look left, and the product still telescopes. Used
    with :func:`prime_science.bandits.probit.adf_factor_update` (``u = s / beta``).
    Broadcasts; ``before <= now``. Raises ``InvalidArgumentError`` (concrete inputs) for a NaN
    or infinite ``u``, ``before`` or ``now``, and log rates as in :func:`dfm_log_likelihood`.
    """
    dtype = jnp.result_type(float, u, log_rate, before, now)
    rates = {"log_rate": log_rate}
    if previous_log_rate is not None:
        rates["previous_log_rate"] = previous_log_rate
    _check_dfm_params(dtype, u=u, before=before, now=now, **rates)
    if _concrete(before, now):
        earlier, later = np.asarray(before, np.float64), np.asarray(now, np.float64)
        if not np.all((earlier >= 0) & (later >= earlier)):
            errors.fail("now", "ages with 0 <= before <= now", f"before={before}, now={now}")
    if previous_log_rate is None:
        previous_log_rate = log_rate
    log_then = _log_one_minus_p_cdf(u, previous_log_rate, before)
    log_now = jnp.where(arrived, log_ndtr(u), _log_one_minus_p_cdf(u, log_rate, now))
    return log_now - log_then


class DfmParams(NamedTuple):
    """Fitted DFM parameters per group: ``logit_p: float[num_groups]``, ``log_rate:
    float[num_groups]`` (all equal with a shared rate)."""

    logit_p: jax.Array
    log_rate: jax.Array


@partial(jax.jit, static_argnames=("num_groups", "shared_rate", "max_iters"))
def _fit_dfm(
    labels, times, groups, weights, l2, tol, prior_mean, prior_precision, *, num_groups,
    shared_rate, max_iters,
):  # fmt: skip
    converted = labels > 0.5
    group_weight = jnp.zeros(num_groups, times.dtype).at[groups].add(weights)
    group_positive = jnp.zeros(num_groups, times.dtype).at[groups].add(weights * converted)
    logit_init = jax.scipy.special.logit((group_positive + 0.5) / (group_weight + 1.0))
    positive_weight = jnp.sum(weights * converted)
    mean_delay = jnp.where(
        positive_weight > 0,
        jnp.sum(weights * converted * times) / jnp.maximum(positive_weight, 1e-30),
        jnp.sum(weights * times) / jnp.maximum(jnp.sum(weights), 1e-30),
    )
    rate_init = -jnp.log(jnp.maximum(mean_delay, 1e-6))
    log_rate_init = jnp.full((1 if shared_rate else num_groups,), rate_init)
    total = jnp.maximum(jnp.sum(weights), 1e-30)

    def objective(params):
        logit_p, log_rate = params
        rate_of = log_rate[jnp.zeros_like(groups) if shared_rate else groups]
        ll = dfm_log_likelihood(logit_p[groups], rate_of, labels, times)
        penalty = jnp.sum(logit_p**2) + jnp.sum((log_rate - log_rate_init) ** 2)
        prior = jnp.sum(prior_precision * (log_rate - prior_mean) ** 2) / total
        return -jnp.sum(weights * ll) / total + 0.5 * l2 * penalty + 0.5 * prior

    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry):
        params, opt_state = carry
        value, grad = value_and_grad(params, state=opt_state)
        updates, opt_state = solver.update(
            grad, opt_state, params, value=value, grad=grad, value_fn=objective
        )
        return optax.apply_updates(params, updates), opt_state

    def keep_going(carry):
        _, opt_state = carry
        count = otu.tree_get(opt_state, "count")
        residual = otu.tree_norm(otu.tree_get(opt_state, "grad"))
        return (count == 0) | ((count < max_iters) & (residual >= tol))

    params0 = (logit_init, log_rate_init)
    params, opt_state = jax.lax.while_loop(keep_going, step, (params0, solver.init(params0)))
    residual = otu.tree_norm(jax.grad(objective)(params))
    logit_p, log_rate = params
    fit = DfmParams(logit_p, jnp.broadcast_to(log_rate, (num_groups,)))
    info = SolverInfo(otu.tree_get(opt_state, "count"), residual, residual < tol)
    return fit, info


def fit_dfm(
    labels: jax.Array,
    times: jax.Array,
    groups: jax.Array,
    num_groups: int,
    weights: jax.Array | None = None,
    *,
    shared_rate: bool = True,
    l2: float = 1e-4,
    log_rate_prior: tuple[float, float] | None = None,
    max_iters: int = 200,
    tol: float = 1e-5,
) -> tuple[DfmParams, SolverInfo]:
    """Fit the DFM jointly: a conversion logit per group and one (shared) or one-per-group
    log delay rate, by L-BFGS (optax) on the weighted mean negative log-likelihood.

    Objective: ``-sum_i w_i ll_i / sum_i w_i + (l2 / 2)(|logit_p|^2 + |log_rate - r0|^2)``
    with ``ll`` from :func:`dfm_log_likelihood` and ``r0 = -log(mean observed delay)``, the
    starting rate: a weak Gaussian prior that keeps groups without conversions finite.
    With ``log_rate_prior = (m, s)`` the objective also gets ``(log_rate - m)^2 / (2 s^2
    sum_i w_i)``: a ``N(m, s^2)`` prior on each log rate, i.e. the MAP of the rate. Early on,
    when the oldest impressions are younger than the mean delay, the likelihood is nearly
    flat in the rate (a long delay and a high conversion probability explain the data as
    well as the truth), and the plain MLE can land far off (a 509 h mean delay for a true
    72 h after one day of data in ``experiments/delays.py``). Stops when the gradient norm
    falls below ``tol`` or after ``max_iters`` iterations.

    Args:
      labels, times: ``[n]`` 0/1 labels and delays / censoring times (e.g. a
        :func:`censored` batch's ``label`` and ``time``).
      groups: ``int[n]`` group of each row, in ``[0, num_groups)`` (e.g. the item).
      weights: ``[n]`` non-negative row weights (default 1; a batch's ``weight``).

    Returns:
      ``(DfmParams, SolverInfo)``; float32 unless the inputs are float64 under x64.

    Raises ``InvalidArgumentError`` for bad shapes or values (above), and for no data: no
    rows (named ``labels``) or, with concrete weights, a total weight of 0 (named
    ``weights``); there is nothing to fit, and the optimiser would report convergence at its
    starting point.
    """
    if not isinstance(num_groups, int | np.integer) or num_groups < 1:
        errors.fail("num_groups", "a positive integer", repr(num_groups))
    if not isinstance(max_iters, int | np.integer) or max_iters < 1:
        errors.fail("max_iters", "a positive integer", repr(max_iters))
    errors.check_rank("labels", labels, 1)
    _check_times("times", times)
    errors.check_rank("groups", groups, 1)
    errors.check_dtype_kind("groups", groups, "iu", "integer group ids")
    errors.check_same_length(("labels", "times"), labels, times)
    errors.check_same_length(("labels", "groups"), labels, groups)
    if np.shape(labels)[0] == 0:
        errors.fail("labels", "at least one observation to fit", "no rows")
    _check_dfm_data(labels, times)
    _check_scalar("l2", l2)
    if _concrete(l2) and float(l2) < 0:
        errors.fail("l2", "a penalty >= 0", repr(float(l2)))
    _check_scalar("tol", tol, positive=True)
    if _concrete(groups):
        g = np.asarray(groups)
        bad = (g < 0) | (g >= num_groups)
        if bad.any():
            errors.fail("groups", f"group ids in [0, {num_groups})", f"{g[bad][:5].tolist()}")
    dtype = jnp.result_type(float, times)
    if weights is None:
        weights = jnp.ones(np.shape(labels), dtype)
    else:
        errors.check_rank("weights", weights, 1)
        errors.check_same_length(("labels", "weights"), labels, weights)
        if _concrete(weights):
            w = np.asarray(weights, np.float64)
            good = np.isfinite(w) & (w >= 0) & (w <= _FLOAT32_MAX)
            if not np.all(good):
                errors.fail("weights", "finite values >= 0", f"{w[~good][:5].tolist()}")
            if not w.sum() > 0:
                errors.fail("weights", "a positive total weight (some data to fit)", "all 0")
    prior_mean, prior_precision = 0.0, 0.0
    if log_rate_prior is not None:
        if len(log_rate_prior) != 2 or not float(log_rate_prior[1]) > 0:
            errors.fail("log_rate_prior", "(mean, s.d. > 0)", repr(log_rate_prior))
        prior_mean, prior_precision = log_rate_prior[0], 1.0 / float(log_rate_prior[1]) ** 2
    return _fit_dfm(
        jnp.asarray(labels, dtype),
        jnp.asarray(times, dtype),
        jnp.asarray(groups, jnp.int32),
        jnp.asarray(weights, dtype),
        jnp.asarray(l2, dtype),
        jnp.asarray(tol, dtype),
        jnp.asarray(prior_mean, dtype),
        jnp.asarray(prior_precision, dtype),
        num_groups=int(num_groups),
        shared_rate=bool(shared_rate),
        max_iters=int(max_iters),
    )


# ------------------------------------------------------------------------------- OTF


def otf_statistics(
    features: jax.Array, labels: jax.Array, weights: jax.Array, regularization: Any = 1.0
) -> tuple[jax.Array, jax.Array]:
    """The windowed statistics of OTFLinUCB (Vernade et al. 2020, ICML)::

        V = lambda I + sum_s w_s A_s A_s^T,      b = sum_s w_s Y_{s,t} A_s

    over every impression ``s`` shown before ``t`` (``w_s = 1``; 0 drops a row), with the
    windowed label ``Y_{s,t} = X_s 1{D_s <= min(m, t - s)}`` = ``naive(ledger, t, m).label``
    and ``A_s`` the caller's feature row of ``(item, context)``. ``V^-1 b`` estimates
    ``tau_m theta``, ``tau_m = P(D <= m)``. ``(V, b)`` are sums: add the statistics of
    expired rows once and those of the live snapshot at each ``t`` (that one with
    ``regularization = 0``, so ``lambda I`` is counted once).

    Args:
      features: ``[n, d]`` rows ``A_s``; labels, weights: ``[n]``.
      regularization: ``lambda >= 0``.

    Returns:
      ``(V: [d, d], b: [d])``.
    """
    errors.check_rank("features", features, 2)
    errors.check_rank("labels", labels, 1)
    errors.check_rank("weights", weights, 1)
    errors.check_same_length(("features", "labels"), features, labels)
    errors.check_same_length(("features", "weights"), features, weights)
    _check_scalar("regularization", regularization)
    if _concrete(regularization) and float(regularization) < 0:
        errors.fail("regularization", "lambda >= 0", repr(float(regularization)))
    features = jnp.asarray(features)
    dtype = jnp.result_type(float, features)
    features = features.astype(dtype)
    weighted = features * jnp.asarray(weights, dtype)[:, None]
    gram = weighted.T @ features + regularization * jnp.eye(features.shape[1], dtype=dtype)
    return gram, weighted.T @ jnp.asarray(labels, dtype)


def otf_estimate(gram: jax.Array, moment: jax.Array) -> jax.Array:
    """``theta_hat = V^-1 b`` by Cholesky when ``V`` (symmetric, read from its lower triangle)
    is positive definite, as it is with ``regularization > 0``.

    Singular fallback: when the Cholesky factorisation fails (``V`` only positive
    semi-definite, e.g. ``regularization = 0`` with fewer independent rows than features, or
    not positive definite at all), the result is ``V^+ b`` (``jnp.linalg.pinv``: singular
    values below ``10 d eps`` of the largest count as 0), the minimum-norm least-squares
    solution of ``V theta = b``; for a consistent singular system it solves it exactly, with
    no component in the null space of ``V``. Raises ``InvalidArgumentError`` for a ``gram``
    that is not ``[d, d]``, a ``moment`` that is not ``[d]``, and (concrete inputs) NaN or
    infinite entries.
    """
    errors.check_rank("gram", gram, 2)
    errors.check_rank("moment", moment, 1)
    rows, columns = np.shape(gram)
    if rows != columns:
        errors.fail("gram", "a square [d, d] matrix", f"shape {np.shape(gram)}")
    if np.shape(moment)[0] != rows:
        errors.fail("moment", f"a vector of length {rows} like gram", f"shape {np.shape(moment)}")
    _check_finite("gram", gram)
    _check_finite("moment", moment)
    return _otf_solve(gram, moment)


@jax.jit
def _otf_solve(gram, moment):
    dtype = jnp.result_type(float, gram, moment)
    gram, moment = jnp.asarray(gram, dtype), jnp.asarray(moment, dtype)
    factor, lower = jax.scipy.linalg.cho_factor(gram, lower=True)
    solution = jax.scipy.linalg.cho_solve((factor, lower), moment)
    positive_definite = jnp.all(jnp.diagonal(factor) > 0) & jnp.all(jnp.isfinite(solution))
    return jax.lax.cond(
        positive_definite,
        lambda: solution,
        lambda: jnp.linalg.pinv(gram, hermitian=True) @ moment,
    )


# -------------------------------------------------------------------- delay distributions


class DelayDistribution(NamedTuple):
    """Delays (hours) from ``w Exp(mean) + (1 - w) LogNormal(mu, sigma)`` conditioned on
    ``D <= window`` (conversions after the attribution window are never seen).

    Attributes (float32 scalars): ``exp_weight`` (``w``, before truncation), ``exp_mean``,
    ``lognormal_mu``, ``lognormal_sigma`` (of ``log D``), ``window`` (``inf``: none).
    """

    exp_weight: jax.Array
    exp_mean: jax.Array
    lognormal_mu: jax.Array
    lognormal_sigma: jax.Array
    window: jax.Array


def _distribution(*values: float) -> DelayDistribution:
    return DelayDistribution(*(jnp.asarray(v, jnp.float32) for v in values))


def exponential_delays(mean: float, window: float = np.inf) -> DelayDistribution:
    """Exponential delays with ``mean`` hours, truncated at ``window`` (default: none)."""
    _check_scalar("mean", mean, positive=True)
    _check_scalar("window", window, positive=True, allow_inf=True)
    return _distribution(1.0, mean, 0.0, 1.0, window)


def _untruncated_cdf_np(t, weight, exp_mean, mu, sigma):
    t = np.asarray(t, np.float64)
    return weight * -np.expm1(-t / exp_mean) + (1 - weight) * special.ndtr((np.log(t) - mu) / sigma)


def calibrated_delay_mixture(
    one_hour_share: float = 0.35,
    one_day_share: float = 0.50,
    window: float = 720.0,
    fast_mean: float = 0.25,
    fast_weight: float = 0.33,
) -> DelayDistribution:
    """This project's delay mixture, calibrated to Chapelle (2014)'s statistics.

    The fast component is fixed (``fast_weight = 0.33`` of ``Exp(mean 15 min)``, this
    project's choice, not the paper's). The log-normal's ``(mu, log sigma)`` are then solved
    numerically (``scipy.optimize.root``, float64, from ``(log 24, log 2)``) from the two
    equations::

        F(1 h) = G(1) / G(W) = one_hour_share,    F(24 h) = G(24) / G(W) = one_day_share

    with ``G`` the untruncated mixture CDF and ``W = window`` (30 days = 720 h): the shares
    are shares of the conversions seen within the window. ``one_hour_share`` must exceed
    what the fast component alone gives by 1 h (0.3237 with the defaults). The defaults give
    ``mu ~ 4.53`` (median about 93 h) and ``sigma ~ 1.62``; about 10% of the log-normal mass
    lies beyond 30 days.
    """
    checks = (
        ("one_hour_share", one_hour_share, 0.0, 1.0),
        ("one_day_share", one_day_share, one_hour_share, 1.0),
        ("fast_weight", fast_weight, 0.0, 1.0),
    )
    for name, value, low, high in checks:
        if not (np.isscalar(value) and low < float(value) < high):
            errors.fail(name, f"a number in ({low}, {high})", repr(value))
    _check_scalar("fast_mean", fast_mean, positive=True)
    _check_scalar("window", window, positive=True, allow_inf=True)
    if not float(window) > 24.0:
        errors.fail("window", "an attribution window longer than 24 h", repr(window))
    # the fast component alone, with all log-normal mass in (1 h, W], is the least F(1 h)
    fast_by_one_hour = fast_weight * -np.expm1(-1.0 / fast_mean)
    fast_in_window = fast_weight * -np.expm1(-float(window) / fast_mean)
    lowest = fast_by_one_hour / (fast_in_window + 1.0 - fast_weight)
    if not one_hour_share > lowest:
        errors.fail(
            "one_hour_share",
            f"a share above {lowest:.4f}, what the fast component alone gives by 1 h",
            repr(one_hour_share),
        )

    def residual(x):
        mu, sigma = x[0], np.exp(x[1])
        total = _untruncated_cdf_np(window, fast_weight, fast_mean, mu, sigma)
        return [
            _untruncated_cdf_np(1.0, fast_weight, fast_mean, mu, sigma) / total - one_hour_share,
            _untruncated_cdf_np(24.0, fast_weight, fast_mean, mu, sigma) / total - one_day_share,
        ]

    with np.errstate(all="ignore"):  # trial steps may overflow; the residual check decides
        solution = optimize.root(residual, [np.log(24.0), np.log(2.0)])
    if not solution.success or np.max(np.abs(residual(solution.x))) > 1e-8:
        errors.fail(
            "one_hour_share, one_day_share",
            "shares the log-normal part can reach given the fixed fast component",
            f"({one_hour_share}, {one_day_share}): {solution.message}",
        )
    mu, log_sigma = solution.x
    return _distribution(fast_weight, fast_mean, mu, np.exp(log_sigma), window)


def _untruncated_cdf(params: DelayDistribution, t: jax.Array) -> jax.Array:
    safe = jnp.where(t > 0, t, 1.0)
    finite = jnp.isfinite(safe)
    z = (jnp.log(jnp.where(finite, safe, 1.0)) - params.lognormal_mu) / params.lognormal_sigma
    log_normal = jnp.where(finite, ndtr(z), 1.0)
    exponential = -jnp.expm1(-safe / params.exp_mean)
    mixed = params.exp_weight * exponential + (1.0 - params.exp_weight) * log_normal
    return jnp.where(t > 0, mixed, 0.0)


def delay_cdf(params: DelayDistribution, t: jax.Array) -> jax.Array:
    """``F(t) = P(D <= t)`` of the truncated mixture: ``G(min(t, W)) / G(W)``."""
    t = jnp.asarray(t, jnp.result_type(float, t))
    total = _untruncated_cdf(params, params.window)
    inside = _untruncated_cdf(params, jnp.minimum(t, params.window)) / total
    return jnp.where(t >= params.window, jnp.ones_like(inside), inside)


@partial(jax.jit, static_argnums=2)
def _sample_delays(key, params, num):
    component_key, uniform_key = jax.random.split(key)
    exp_mass = -jnp.expm1(-params.window / params.exp_mean)  # 1 when the window is inf
    log_window = jnp.log(params.window)
    log_normal_mass = jnp.where(
        jnp.isfinite(log_window),
        ndtr((log_window - params.lognormal_mu) / params.lognormal_sigma),
        1.0,
    )
    fast_mass = params.exp_weight * exp_mass
    fast_share = fast_mass / (fast_mass + (1.0 - params.exp_weight) * log_normal_mass)
    fast = jax.random.bernoulli(component_key, fast_share, (num,))
    u = jax.random.uniform(uniform_key, (num,), jnp.float32)
    from_exp = -params.exp_mean * jnp.log1p(-u * exp_mass)
    from_log_normal = jnp.exp(
        params.lognormal_mu + params.lognormal_sigma * ndtri(u * log_normal_mass)
    )
    return jnp.minimum(jnp.where(fast, from_exp, from_log_normal), params.window)


def sample_delays(key: PRNGKey, params: DelayDistribution, n: int) -> jax.Array:
    """``float32[n]`` delays (hours) by inverse CDF of the chosen truncated component.
    ``key``: one PRNG key; ``params``: a :class:`DelayDistribution`."""
    errors.check_key("key", key)
    if not isinstance(params, DelayDistribution):
        errors.fail("params", "a DelayDistribution", type(params).__name__)
    if not isinstance(n, int | np.integer) or n < 1:
        errors.fail("n", "a positive integer", repr(n))
    return _sample_delays(key, params, int(n))
