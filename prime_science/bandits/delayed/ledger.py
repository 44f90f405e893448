"""The pending-feedback ledger: impressions awaiting their label, keyed by impression id, and
the training strategies that read it.

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
:func:`prime_science.bandits.delayed.dfm.look_step` (the ratios of
:func:`~prime_science.bandits.delayed.dfm.dfm_probit_log_ratio` telescope to the DFM
likelihood; ``experiments/delays.py``).

* :func:`wait_for_matured` — rows with elapsed ``>= m``; label = converted within ``m``.
* :func:`naive` — every shown impression, label = converted by ``now`` (pending = 0). For an
  impression with elapsed ``e`` its expectation is ``p F(e)`` (it follows from the delay model).
  With ``window = m`` its label is OTF's windowed label (:mod:`prime_science.bandits.delayed.otf`).
* :func:`censored` — the same rows read as censored observations: ``time`` is the delay of a
  positive and the censoring time ``min(elapsed, window)`` of the rest; fit them with
  :func:`~prime_science.bandits.delayed.dfm.dfm_log_likelihood` /
  :func:`~prime_science.bandits.delayed.dfm.fit_dfm` (Chapelle 2014, KDD), or give a
  Bernoulli model the fractional labels of
  :func:`~prime_science.bandits.delayed.dfm.dfm_conversion_probability` (the E-step).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.bandits.delayed._checks import all_concrete, check_scalar, check_times
from prime_science.core import errors

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
]

_MAX_ID = np.iinfo(np.int32).max


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


def _check_ids(name: str, values: Any) -> None:
    errors.check_rank(name, values, 1)
    errors.check_dtype_kind(name, values, "iu", "integer ids")
    if all_concrete(values):
        array = np.asarray(values).astype(np.int64)
        bad = (array < 0) | (array > _MAX_ID)
        if bad.any():
            errors.fail(name, f"ids in [0, {_MAX_ID}]", f"{array[bad][:5].tolist()}")


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
    return np.asarray(values, dtype) if all_concrete(values) else jnp.asarray(values, dtype)


def _padded(num: int, *arrays: Any) -> tuple[jax.Array, ...]:
    """Pad a batch to the next power of two (at least 8) plus a validity mask, so a stream
    of batches of varying sizes compiles a handful of programs, not one per size."""
    size = max(8, 1 << max(num - 1, 0).bit_length())
    pad = np.pad if all_concrete(arrays) else jnp.pad  # host padding compiles nothing
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
    check_times("times", times)
    for name, values in (("items", items), ("contexts", contexts), ("times", times)):
        errors.check_same_length(("impression_ids", name), impression_ids, values)
    if all_concrete(impression_ids, state.occupied, state.impression_id):
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
    check_times("times", times)
    errors.check_same_length(("impression_ids", "times"), impression_ids, times)
    if all_concrete(impression_ids, times, state.occupied, state.impression_id, state.shown_at):
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
    check_scalar("now", now)
    check_scalar("window", window, positive=True, allow_inf=True)
    return _expire(state, jnp.asarray(now, jnp.float32), jnp.asarray(window, jnp.float32))


def ledger_view(
    state: LedgerState, now: Any, window: Any = jnp.inf, matured_after: Any = None
) -> LedgerView:
    """The ledger at time ``now`` with attribution ``window`` (``matured_after``: default
    ``window``). See :class:`LedgerView`; labels with ``label_at > now`` are not yet seen."""
    _check_ledger(state)
    check_scalar("now", now)
    check_scalar("window", window, positive=True, allow_inf=True)
    matured_after = window if matured_after is None else matured_after
    check_scalar("matured_after", matured_after, allow_inf=True)
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
    check_scalar("now", now)
    check_scalar("matured_after", matured_after, positive=True)
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
    check_scalar("now", now)
    check_scalar("window", window, positive=True, allow_inf=True)
    return _observed_rows(state, jnp.asarray(now, jnp.float32), jnp.asarray(window, jnp.float32))


def censored(state: LedgerState, now: Any, window: Any = jnp.inf) -> TrainingBatch:
    """The rows of :func:`naive`, read as censored observations (Chapelle 2014).

    ``label = 1``: converted with delay ``time``; ``label = 0``: no conversion during
    ``time = min(elapsed, window)``. Consume them with :func:`dfm_log_likelihood` /
    :func:`fit_dfm` (``labels=batch.label, times=batch.time, weights=batch.weight``), or
    give a Bernoulli model the fractional labels of :func:`dfm_conversion_probability`.
    """
    return naive(state, now, window)
