"""Item attributes and request context -> a fixed-width list of active feature ids.

Model (Teo et al. 2016; Graepel et al. 2010). A candidate ``c`` shown in a request with
context ``X`` is described by a sparse binary vector ``x(c, X) in {0, 1}^M``, a concatenation
of one-hot blocks, and a linear click model scores it with ``x^T w``. The model stores a
dense weight table ``w[M]`` and never builds ``x``: :func:`encode` returns, for every
candidate, the ``K`` ids where ``x`` is 1, padded with ``-1``, and the score is the gather

    x^T w = sum_{s : ids[s] >= 0} w[ids[s]].

Within a row the non-padding ids are distinct (blocks own disjoint ranges, and the hashed
block drops repeats, see below), so ``x`` is exactly binary, as ADF (:mod:`.probit`) assumes.

Layout. A spec is a sequence of blocks ``b = 0 .. B-1``. Block ``b`` owns ``size_b`` ids and
fills ``num_slots_b`` output columns::

    offset_b = sum_{b' < b} size_{b'},     ids of b = [offset_b, offset_b + size_b),
    M = num_features = sum_b size_b,       K = num_active = sum_b num_slots_b,

and the columns of block ``b`` in the output are ``[sum_{b'<b} num_slots_{b'}, ... +
num_slots_b)`` (``spec.block_slices`` and ``spec.slot_slices`` give both ranges by name). A
block computes a *local* id ``l`` in ``[0, size_b)`` (or ``-1``, padding); the output holds
``offset_b + l``. The kinds:

* ``intercept()``: size 1, one slot, ``l = 0`` for every candidate (the bias).
* ``categorical(name, V)``: size ``V + 1``, one slot. An integer code ``c in [0, V)`` gives
  ``l = c``; any other code (:data:`UNSEEN` ``= -1``, ``c >= V``, ``c < 0``) gives the block's
  *unseen* id ``l = V``, so a new brand is scored by its other attributes plus the (shared,
  learned) weight of "a brand the model has never seen". Pandas categoricals: pass
  ``series.cat.codes`` (missing values are already ``-1``).
* ``bucketized(name, (b_0 < ... < b_{B-2}))``: size ``B``, one slot,
  ``l = #{i : b_i <= v} = searchsorted(b, v, side="right")``; bucket ``j`` is
  ``[b_{j-1}, b_j)`` with ``b_{-1} = -inf`` and ``b_{B-1} = +inf``, so a value equal to a
  boundary goes to the bucket above it, ``-inf`` to bucket 0 and ``+inf`` to bucket ``B-1``.
  The comparison is made in ``promote_types(dtype(v), float32)``: with float64 prices and x64
  off, prices and boundaries are both rounded to float32 first. NaN is rejected at the
  boundary; under ``jit`` (no checks) a NaN becomes padding.
* ``hashed_tokens(name, H, T)``: size ``H``, ``T`` slots, one per token position. Tokens are
  int32 ids ``t >= 0`` with ``-1`` padding (any negative id is padding under ``jit``)::

      h(t) = lowbias32(uint32(t)),     l = h(t) mod H,

  with ``lowbias32(z)``: ``z ^= z >> 16; z *= 0x7feb352d; z ^= z >> 15; z *= 0x846ca68b;
  z ^= z >> 16`` in uint32 arithmetic (the finaliser of :mod:`prime_science.core.random`). It
  is a bijection of uint32, so collisions come only from the ``mod H``: ``V`` distinct tokens
  give on average ``C(V, 2) / H ~ V^2 / (2 H)`` colliding pairs, and a token shares its bucket
  with at least one other with probability ``1 - (1 - 1/H)^(V-1) ~ 1 - exp(-V/H)`` (for
  ``V = 10^4``, ``H = 2^12``: about 12,200 pairs and 91% of tokens). Colliding tokens share a
  weight silently. When two positions of one row hit the same bucket (a
  repeated token or a collision), the later position is padded with ``-1``, keeping ``x``
  binary.
* ``cross(name, a, b)``: an interaction of two single-slot blocks declared earlier
  (categorical, bucketized or cross). With ``n_a``, ``n_b`` their numbers of *seen* values
  (``V`` for a categorical, ``B`` for a bucketized, ``n_a n_b`` for a cross), the cross has
  ``n_a n_b`` seen values plus an unseen id when a parent has one::

      l = l_a * n_b + l_b      if both parents are seen,
      l = n_a * n_b            (unseen) if either parent is unseen,
      l = -1                   if either parent is padding.

Context. A block reads the column of its own name. Passed in ``columns`` the column holds
one value per candidate (``[n]``, or ``[n, T]`` for tokens); passed in ``context`` it holds
one value per request (a scalar, or ``[T]`` for tokens) that is broadcast to every candidate.
The same block can be per-request when serving (segment of the visitor) and per-row in an
update batch whose rows come from different requests.

Contract. :func:`encode` is pure ``jnp`` after the boundary checks and jit-able
(``jax.jit(functools.partial(encode, spec))``, or ``static_argnums=0``: a spec is hashable).
The static checks (names, ranks, lengths, dtypes) always run; the value checks (NaN prices,
token ranges) run when the inputs are concrete. Every bad input raises
:class:`~prime_science.core.errors.InvalidArgumentError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.core.errors import fail, is_concrete
from prime_science.core.random import lowbias32

__all__ = [
    "UNSEEN",
    "Block",
    "FeatureSpec",
    "intercept",
    "categorical",
    "bucketized",
    "hashed_tokens",
    "cross",
    "feature_spec",
    "encode",
    "dense_features",
]

UNSEEN = -1
"""The explicit code for a categorical value outside the vocabulary (any code outside
``[0, vocabulary_size)`` maps to the block's unseen id as well)."""

_INTERCEPT, _CATEGORICAL, _BUCKETIZED, _HASHED_TOKENS, _CROSS = (
    "intercept",
    "categorical",
    "bucketized",
    "hashed_tokens",
    "cross",
)
_READS_COLUMN = (_CATEGORICAL, _BUCKETIZED, _HASHED_TOKENS)
_MAX_ID = 2**31 - 1


class Block(NamedTuple):
    """One block of the layout (static configuration; build it with the functions below).

    Attributes:
      name: the block's name, and the name of the column it reads (if it reads one).
      kind: ``"intercept"``, ``"categorical"``, ``"bucketized"``, ``"hashed_tokens"`` or
        ``"cross"``.
      num_values: seen values: ``1``, ``V``, ``B``, ``H`` or ``n_a n_b``.
      has_unseen: whether the block owns an unseen id (local id ``num_values``).
      num_slots: output columns the block fills (``T`` for tokens, else 1).
      boundaries: the bucket boundaries of a bucketized block.
      parents: the two blocks of a cross.
    """

    name: str
    kind: str
    num_values: int
    has_unseen: bool = False
    num_slots: int = 1
    boundaries: tuple[float, ...] = ()
    parents: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        """Ids the block owns: ``num_values`` plus one if it has an unseen id."""
        return self.num_values + int(self.has_unseen)


class FeatureSpec(NamedTuple):
    """A whole layout: blocks, their offsets and the two widths (build with :func:`feature_spec`).

    Attributes:
      blocks: the blocks in id order.
      offsets: ``offsets[b]`` is the first id of block ``b``.
      num_features: ``M``, the length of the weight table.
      num_active: ``K``, the width of :func:`encode`'s output.
    """

    blocks: tuple[Block, ...]
    offsets: tuple[int, ...]
    num_features: int
    num_active: int

    @property
    def columns(self) -> tuple[str, ...]:
        """Names of the input columns :func:`encode` needs (in ``columns`` or ``context``)."""
        return tuple(block.name for block in self.blocks if block.kind in _READS_COLUMN)

    @property
    def block_slices(self) -> dict[str, slice]:
        """Block name -> its id range ``slice(offset, offset + size)`` in the weight table."""
        return {
            block.name: slice(offset, offset + block.size)
            for block, offset in zip(self.blocks, self.offsets, strict=True)
        }

    @property
    def slot_slices(self) -> dict[str, slice]:
        """Block name -> the columns of :func:`encode`'s output that the block fills."""
        starts = np.cumsum([0] + [block.num_slots for block in self.blocks])
        return {
            block.name: slice(int(start), int(start) + block.num_slots)
            for block, start in zip(self.blocks, starts, strict=False)
        }

    def unseen_id(self, name: str) -> int:
        """The global unseen id of block ``name`` (categorical, or a cross with one)."""
        for block, offset in zip(self.blocks, self.offsets, strict=True):
            if block.name == name:
                if not block.has_unseen:
                    fail("name", "a block with an unseen id", f"{block.kind} block {name!r}")
                return offset + block.num_values
        fail("name", f"one of the spec's blocks {[b.name for b in self.blocks]}", repr(name))


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        fail("name", "a non-empty string", repr(name))
    return name


def _check_count(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        fail(name, f"an integer in [{low}, 2^31)", repr(value))
    if not low <= value <= _MAX_ID:
        fail(name, f"an integer in [{low}, 2^31)", repr(value))
    return int(value)


def intercept(name: str = "intercept") -> Block:
    """The bias: one id, active for every candidate; reads no column."""
    return Block(_check_name(name), _INTERCEPT, num_values=1)


def categorical(name: str, vocabulary_size: int) -> Block:
    """Integer codes in ``[0, vocabulary_size)``; ``vocabulary_size + 1`` ids (last: unseen)."""
    size = _check_count("vocabulary_size", vocabulary_size)
    return Block(_check_name(name), _CATEGORICAL, num_values=size, has_unseen=True)


def bucketized(name: str, boundaries: Sequence[float]) -> Block:
    """A real value bucketed by ``searchsorted(boundaries, v, side="right")``.

    ``boundaries`` are finite in float32 (``|b| <= 3.4e38``: the comparison runs in float32
    unless the values are float64 under x64) and strictly increasing; ``len(boundaries) + 1``
    buckets.
    """
    _check_name(name)
    array = np.asarray(boundaries)
    if array.ndim != 1 or array.size == 0 or array.dtype.kind not in "iuf":
        fail("boundaries", "a non-empty 1-D sequence of real numbers", repr(boundaries))
    array = array.astype(np.float64)
    if not np.all(np.abs(array) <= np.finfo(np.float32).max) or np.any(np.diff(array) <= 0):
        fail("boundaries", "finite, strictly increasing values (float32 range)", array.tolist())
    return Block(name, _BUCKETIZED, num_values=array.size + 1, boundaries=tuple(array.tolist()))


def hashed_tokens(name: str, num_buckets: int, max_tokens: int) -> Block:
    """``max_tokens`` token ids per row (``-1`` padding) hashed into ``num_buckets`` ids."""
    buckets = _check_count("num_buckets", num_buckets)
    slots = _check_count("max_tokens", max_tokens)
    return Block(_check_name(name), _HASHED_TOKENS, num_values=buckets, num_slots=slots)


def cross(name: str, block_a: str, block_b: str) -> Block:
    """The interaction of two single-slot blocks declared earlier in the spec.

    The sizes are resolved by :func:`feature_spec` (here ``num_values`` is a placeholder).
    """
    for arg, value in (("block_a", block_a), ("block_b", block_b)):
        if not isinstance(value, str) or not value:
            fail(arg, "a block name", repr(value))
    if block_a == block_b:
        fail("block_b", f"a block other than block_a ({block_a!r})", repr(block_b))
    return Block(_check_name(name), _CROSS, num_values=0, parents=(block_a, block_b))


def feature_spec(blocks: Sequence[Block]) -> FeatureSpec:
    """Lay the blocks out in order: contiguous, disjoint id ranges (see the module docstring).

    Raises ``InvalidArgumentError`` for duplicate names, a cross whose parents are unknown,
    declared later or multi-slot, and layouts with ``2^31`` ids or more.
    """
    if isinstance(blocks, Block) or not isinstance(blocks, Sequence) or not blocks:
        fail("blocks", "a non-empty sequence of Block", repr(blocks))
    laid_out: dict[str, Block] = {}
    for index, block in enumerate(blocks):
        where = f"blocks[{index}]"
        if not isinstance(block, Block):
            fail(where, "a Block (from categorical, bucketized, ...)", repr(block))
        if block.name in laid_out:
            fail(where, "a block name not used before", repr(block.name))
        if block.kind == _CROSS:
            parents = [laid_out.get(parent) for parent in block.parents]
            for parent_name, parent in zip(block.parents, parents, strict=True):
                if parent is None:
                    fail(where, f"parents among the blocks before it {list(laid_out)}", parent_name)
                if parent.kind not in (_CATEGORICAL, _BUCKETIZED, _CROSS):
                    fail(where, "single-slot parents (categorical/bucketized/cross)", parent.kind)
            block = block._replace(
                num_values=parents[0].num_values * parents[1].num_values,
                has_unseen=parents[0].has_unseen or parents[1].has_unseen,
            )
        laid_out[block.name] = block
    laid_out_blocks = tuple(laid_out.values())
    sizes = [block.size for block in laid_out_blocks]
    num_features = int(sum(sizes))
    if num_features > _MAX_ID:
        fail("blocks", "fewer than 2^31 feature ids in all", num_features)
    return FeatureSpec(
        blocks=laid_out_blocks,
        offsets=tuple(int(x) for x in np.cumsum([0] + sizes[:-1])),
        num_features=num_features,
        num_active=int(sum(block.num_slots for block in laid_out_blocks)),
    )


def _as_dict(name: str, columns: Any) -> dict[str, Any]:
    if columns is None:
        return {}
    if not hasattr(columns, "keys"):
        fail(name, "a mapping from column name to values", type(columns).__name__)
    return {key: columns[key] for key in columns.keys()}


def _check_column(label: str, block: Block, value: Any, per_request: bool) -> Any:
    """Rank and dtype always; values (and conversion to canonical arrays) when concrete."""
    concrete = is_concrete(value)
    if concrete:
        value = np.asarray(value)
    rank = (0 if per_request else 1) + (block.kind == _HASHED_TOKENS)
    what = "one value per request" if per_request else "one value per candidate"
    if np.ndim(value) != rank:
        fail(label, f"an array of rank {rank} ({what})", f"shape {np.shape(value)}")
    if block.kind == _HASHED_TOKENS and np.shape(value)[-1] != block.num_slots:
        fail(label, f"{block.num_slots} token positions (last axis)", f"shape {np.shape(value)}")
    kind = np.dtype(value.dtype).kind
    if block.kind == _CATEGORICAL and kind not in "biu":
        fail(label, "integer category codes", f"dtype {value.dtype}")
    if block.kind == _BUCKETIZED and kind not in "iuf":
        fail(label, "real numbers", f"dtype {value.dtype}")
    if block.kind == _HASHED_TOKENS and kind not in "iu":
        fail(label, "integer token ids", f"dtype {value.dtype}")
    if not concrete:
        return value
    if block.kind == _CATEGORICAL:
        seen = (value >= 0) & (value < block.num_values)
        return np.where(seen, value, UNSEEN).astype(np.int32)
    if block.kind == _BUCKETIZED and kind == "f" and np.isnan(value).any():
        rows = np.argwhere(np.isnan(value)).ravel()
        fail(label, "no NaN", f"{rows.size} NaN values (first at index {rows[0]})")
    if block.kind == _HASHED_TOKENS:
        bad = (value < -1) | (value > _MAX_ID)
        if bad.any():
            fail(label, "token ids in [0, 2^31) or -1 for padding", f"{value[bad][:5].tolist()}")
        return value.astype(np.int32)
    return value


def _check_inputs(
    spec: FeatureSpec, columns: Any, context: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(spec, FeatureSpec):
        fail("spec", "a FeatureSpec (from feature_spec)", type(spec).__name__)
    items, requests = _as_dict("columns", columns), _as_dict("context", context)
    needed = spec.columns
    for name, given in (("columns", items), ("context", requests)):
        unknown = [key for key in given if key not in needed]
        if unknown:
            fail(name, f"only the spec's columns {list(needed)}", f"unknown {unknown}")
    both = [key for key in items if key in requests]
    if both:
        fail("context", "no column also given in columns", f"{both} in both")
    missing = [key for key in needed if key not in items and key not in requests]
    if missing:
        fail("columns", f"the columns {missing} (or in context)", f"only {list(items)}")
    blocks = {block.name: block for block in spec.blocks}
    items = {k: _check_column(f"columns[{k!r}]", blocks[k], v, False) for k, v in items.items()}
    requests = {
        k: _check_column(f"context[{k!r}]", blocks[k], v, True) for k, v in requests.items()
    }
    if items:
        first, *rest = items
        length = np.shape(items[first])[0]
        for key in rest:
            if np.shape(items[key])[0] != length:
                got = f"length {np.shape(items[key])[0]}"
                fail(f"columns[{key!r}]", f"length {length} like columns[{first!r}]", got)
    return items, requests


def _drop_repeats(local: jax.Array) -> jax.Array:
    """Pad (``-1``) every position whose id already occurs earlier in its row."""
    num_slots = local.shape[-1]
    same = local[..., :, None] == local[..., None, :]
    earlier = np.tri(num_slots, k=-1, dtype=bool)
    return jnp.where(jnp.any(same & earlier, axis=-1), -1, local)


def _local_ids(block: Block, value: jax.Array) -> jax.Array:
    """Local ids in ``[0, size)`` or ``-1`` for one column (any leading shape)."""
    value = jnp.asarray(value)
    if block.kind == _CATEGORICAL:
        if value.dtype == jnp.bool_:
            value = value.astype(jnp.int32)
        seen = (value >= 0) & (value < block.num_values)
        return jnp.where(seen, value, block.num_values).astype(jnp.int32)
    if block.kind == _BUCKETIZED:
        dtype = jnp.promote_types(value.dtype, jnp.float32)
        value = value.astype(dtype)
        boundaries = jnp.asarray(np.asarray(block.boundaries), dtype)
        bucket = jnp.searchsorted(boundaries, value, side="right").astype(jnp.int32)
        return jnp.where(jnp.isnan(value), -1, bucket)
    hashed = lowbias32(value.astype(jnp.uint32)) % jnp.uint32(block.num_values)
    return _drop_repeats(jnp.where(value >= 0, hashed.astype(jnp.int32), -1))


@partial(jax.jit, static_argnums=0)
def _encode_arrays(
    spec: FeatureSpec, items: dict[str, jax.Array], requests: dict[str, jax.Array]
) -> jax.Array:
    num_candidates = np.shape(next(iter(items.values())))[0] if items else 1
    blocks = {block.name: block for block in spec.blocks}
    local: dict[str, jax.Array] = {}
    slots = []
    for block, offset in zip(spec.blocks, spec.offsets, strict=True):
        shape = (num_candidates, block.num_slots)
        if block.kind == _INTERCEPT:
            ids = jnp.zeros(shape, jnp.int32)
        elif block.kind == _CROSS:
            (a, a_block), (b, b_block) = ((local[p], blocks[p]) for p in block.parents)
            unseen = (a == a_block.num_values) | (b == b_block.num_values)
            ids = jnp.where(unseen, block.num_values, a * b_block.num_values + b)
            ids = jnp.where((a < 0) | (b < 0), -1, ids)[:, None]
        else:
            value = items[block.name] if block.name in items else requests[block.name]
            ids = _local_ids(block, value)
            ids = jnp.broadcast_to(ids if block.kind == _HASHED_TOKENS else ids[..., None], shape)
        local[block.name] = ids[:, 0]
        slots.append(jnp.where(ids >= 0, ids + offset, -1))
    return jnp.concatenate(slots, axis=1).astype(jnp.int32)


def encode(
    spec: FeatureSpec,
    columns: Mapping[str, Any],
    context: Mapping[str, Any] | None = None,
) -> jax.Array:
    """Active feature ids of every candidate: ``int32[num_candidates, spec.num_active]``.

    Args:
      spec: the layout, from :func:`feature_spec`.
      columns: per-candidate columns by block name: ``[n]`` codes or values, ``[n, T]`` token
        ids. Numpy or jax arrays, lists, pandas Series or pyarrow arrays (anything
        ``np.asarray`` reads; a pandas DataFrame works as the mapping).
      context: per-request columns by block name: a scalar, or ``[T]`` token ids; each is
        broadcast to every candidate. A block's column goes in exactly one of the two.

    Returns:
      ``ids[i, s]`` in ``[0, spec.num_features)`` or ``-1`` (padding, contributes nothing);
      the columns of block ``name`` are ``spec.slot_slices[name]``. ``n`` is the common length
      of ``columns``; with no per-candidate column there is one row.

    Raises ``InvalidArgumentError`` for: an unknown or missing column, a column in both
    mappings, a wrong rank or number of token positions, unequal lengths, non-integer codes
    or token ids, non-numeric values for a bucketized block and, on concrete inputs, a NaN in
    a bucketized column or a token id outside ``[-1, 2^31)``.
    """
    items, requests = _check_inputs(spec, columns, context)
    return _encode_arrays(spec, items, requests)


def dense_features(spec: FeatureSpec, feature_ids: jax.Array) -> jax.Array:
    """The dense design ``x: float32[n, spec.num_features]``, ``x[i, f] = 1`` iff ``f`` is in
    ``feature_ids[i]`` (padding ignored), for models that need ``x`` itself (LinUCB) and for
    checks. Memory is ``O(n M)``: use the ids for anything large.

    Raises ``InvalidArgumentError`` for a ``spec`` that is not a :class:`FeatureSpec`, and
    ``feature_ids`` that are not an integer ``[n, spec.num_active]`` array or (concrete) hold
    ids outside ``[-1, spec.num_features)``.
    """
    if not isinstance(spec, FeatureSpec):
        fail("spec", "a FeatureSpec (from feature_spec)", type(spec).__name__)
    if np.ndim(feature_ids) != 2 or np.shape(feature_ids)[1] != spec.num_active:
        got = f"shape {np.shape(feature_ids)}"
        fail("feature_ids", f"an array of shape [n, {spec.num_active}] from encode", got)
    dtype = feature_ids.dtype if hasattr(feature_ids, "dtype") else np.asarray(feature_ids).dtype
    if np.dtype(dtype).kind not in "iu":
        fail("feature_ids", "integer feature ids", f"dtype {dtype}")
    if is_concrete(feature_ids):
        ids = np.asarray(feature_ids)
        bad = (ids < -1) | (ids >= spec.num_features)
        if bad.any():
            expected = f"ids in [0, {spec.num_features}) or -1 (padding)"
            fail("feature_ids", expected, f"{ids[bad][:5].tolist()}")
    ids = jnp.asarray(feature_ids)
    rows = jnp.arange(ids.shape[0])[:, None]
    columns = jnp.where(ids >= 0, ids, spec.num_features)
    x = jnp.zeros((ids.shape[0], spec.num_features), jnp.float32)
    return x.at[rows, columns].set(1.0, mode="drop")
