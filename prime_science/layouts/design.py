"""The layout space and its feature map (Hill et al. 2017, KDD).

A message has ``D`` components (headline, image, button ...); component ``i`` has ``N_i``
variants, so a layout is ``A = (A_1, ..., A_D)`` with ``A_i in {0 .. N_i - 1}`` and there are
``prod_i N_i`` layouts. An optional context is ``x in {0, 1}^C`` (``C`` binary indicators).
The model scores a layout linearly in a weight table ``W``::

    s(A, x) = W0 + sum_i W1_i(A_i) + sum_{j<k} W2_jk(A_j, A_k)
              + sum_l x_l Wc_l + sum_{m, l} x_l W1c_ml(A_m).

``model="mvt2"`` keeps every term; ``model="mvt1"`` drops the pairwise ``W2`` block (first
order only). With ``C > 0`` the context terms make it "MVT2c" (or MVT1 with context).

Feature ids. The table is laid out block after block, and a layout activates exactly one id
per term::

    block           ids                                              count
    intercept       0                                                1
    first order     1 + sum_{j<i} N_j + v         (component i, variant v)     sum_i N_i
    pairwise        offset_jk + a * N_k + b      (j < k, A_j = a, A_k = b)   sum_{j<k} N_j N_k
    context         offset_c + l                                      C
    context x var.  offset_cv + l * sum_i N_i + (first-order id - 1)  C sum_i N_i

so ``M = 1 + sum_i N_i [+ sum_{j<k} N_j N_k] [+ C + C sum_i N_i]`` and a layout's id list has
``K = 1 + D [+ D (D - 1) / 2] [+ C + C D]`` slots; a context slot holds ``-1`` (padding, the
convention of :mod:`prime_science.bandits.probit`) where ``x_l = 0``. The ids feed
``probit_adf(M).update`` directly, and :func:`score` is its ``linear_scores``.

Incremental scores. Changing component ``c`` to ``v`` (others fixed) changes only the terms
that involve ``c``::

    delta_c(v) = W1_c(v) + sum_{j != c} W2_cj(v, A_j) + sum_l x_l W1c_cl(v),
    s(A with A_c = v) - s(A) = delta_c(v) - delta_c(A_c).

:func:`score_tables` copies ``W`` once per weight draw into dense tables (a constant, a
``[D, N_max]`` first-order table with the context folded in, and the pairwise weights as a
symmetric ``(D N_max) x (D N_max)`` block matrix with zero diagonal blocks); then
:func:`component_deltas` costs ``O(D N_max)`` per component and :func:`table_score` ``O(D^2)``
per layout. Variants beyond ``N_i`` (padding up to ``N_max``) get ``-inf`` in the first-order
table, so an argmax over ``delta_c`` never picks them.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.bandits.scoring import linear_scores
from prime_science.core import errors

__all__ = [
    "MODELS",
    "LayoutSpace",
    "ScoreTables",
    "layout_space",
    "check_space",
    "check_layouts",
    "check_weights",
    "check_tables",
    "check_context",
    "check_contexts",
    "feature_ids",
    "score",
    "score_tables",
    "table_score",
    "component_deltas",
    "interaction_sums",
    "all_layouts",
]

MODELS = ("mvt1", "mvt2")
"""``"mvt1"``: intercept + first-order terms; ``"mvt2"``: plus pairwise component terms."""


class LayoutSpace(NamedTuple):
    """A validated layout space (static and hashable: ``jit`` may close over it).

    Attributes:
      num_variants: ``(N_1, ..., N_D)``, each ``>= 1``.
      num_context: ``C >= 0``, the width of the binary context.
      model: one of :data:`MODELS`.
    """

    num_variants: tuple[int, ...]
    num_context: int = 0
    model: str = "mvt2"

    @property
    def num_components(self) -> int:
        """``D``."""
        return len(self.num_variants)

    @property
    def max_variants(self) -> int:
        """``N_max = max_i N_i``, the padded width of the search tables."""
        return max(self.num_variants)

    @property
    def num_layouts(self) -> int:
        """``prod_i N_i`` (a Python int: exact even for ``1e10``)."""
        return math.prod(self.num_variants)

    @property
    def num_pairs(self) -> int:
        """Pairwise terms per layout: ``D (D - 1) / 2`` for ``mvt2``, 0 for ``mvt1``."""
        d = self.num_components
        return d * (d - 1) // 2 if self.model == "mvt2" else 0

    @property
    def num_active(self) -> int:
        """``K``: id slots per layout (context slots included, padded with -1 when off)."""
        d, c = self.num_components, self.num_context
        return 1 + d + self.num_pairs + c + c * d

    @property
    def num_features(self) -> int:
        """``M``: the length of the weight table."""
        return int(_offsets(self)["num_features"])


def layout_space(num_variants: Any, num_context: int = 0, model: str = "mvt2") -> LayoutSpace:
    """Check the arguments and build a :class:`LayoutSpace`.

    Raises ``InvalidArgumentError`` naming the argument for: ``num_variants`` not a non-empty
    sequence of positive integers (zero variants included), ``num_context`` not an integer
    ``>= 0``, ``model`` not in :data:`MODELS`.
    """
    values = tuple(num_variants) if isinstance(num_variants, list | tuple) else None
    ok = values is not None and len(values) > 0
    ok = ok and all(
        not isinstance(n, bool) and isinstance(n, int | np.integer) and n >= 1 for n in values
    )
    if not ok:
        errors.fail("num_variants", "a non-empty sequence of integers >= 1", repr(num_variants))
    if (
        isinstance(num_context, bool)
        or not isinstance(num_context, int | np.integer)
        or num_context < 0
    ):
        errors.fail("num_context", "an integer >= 0", repr(num_context))
    if model not in MODELS:
        errors.fail("model", f"one of {MODELS}", repr(model))
    return LayoutSpace(tuple(int(n) for n in values), int(num_context), model)


@functools.lru_cache(maxsize=64)
def _offsets(space: LayoutSpace) -> dict[str, Any]:
    """Block offsets (numpy, static), without a Python loop over components or pairs.

    ``first[i] = 1 + P_i`` with ``P_i = sum_{j<i} N_j``. Pair ``(j, k)``, ``j < k``, in
    row-major order starts at ``row[j] + N_j (P_k - P_{j+1})`` where
    ``row[j] = 1 + T + sum_{j'<j} N_j' (T - P_{j'+1})`` (``T = sum_i N_i``) is the start of
    row ``j``'s pairs; ``pair_j``, ``pair_k``, ``pair_start`` list them in that order.
    """
    sizes = np.asarray(space.num_variants, np.int64)
    total = int(sizes.sum())
    prefix = np.concatenate([[0], np.cumsum(sizes)])  # P_0 .. P_D
    first = 1 + prefix[:-1]
    position = 1 + total
    if space.model == "mvt2":
        row = position + np.concatenate([[0], np.cumsum(sizes * (total - prefix[1:]))])
        pair_j, pair_k = np.triu_indices(sizes.shape[0], 1)
        pair_start = row[pair_j] + sizes[pair_j] * (prefix[pair_k] - prefix[pair_j + 1])
        position = int(row[-1])
    else:
        row = np.full(sizes.shape[0] + 1, position)
        pair_j = pair_k = pair_start = np.zeros(0, np.int64)
    context = position
    position += space.num_context
    context_variant = position
    position += space.num_context * total
    return {
        "first": first,
        "prefix": prefix,
        "row": row[:-1],
        "pair_j": pair_j,
        "pair_k": pair_k,
        "pair_start": pair_start,
        "context": context,
        "context_variant": context_variant,
        "num_features": position,
    }


def check_space(space: Any) -> LayoutSpace:
    """``space`` must be a :class:`LayoutSpace` (built by :func:`layout_space`); raises naming
    ``space``."""
    if not isinstance(space, LayoutSpace):
        errors.fail("space", "a LayoutSpace (design.layout_space)", type(space).__name__)
    return space


def check_layouts(name: str, space: LayoutSpace, layouts: Any) -> None:
    """Integer ``[..., D]``; when concrete, ``0 <= A_i < N_i``. Raises naming ``name``."""
    d = space.num_components
    if np.ndim(layouts) < 1 or np.shape(layouts)[-1] != d:
        errors.fail(name, f"an integer array of shape [..., {d}]", f"shape {np.shape(layouts)}")
    errors.check_dtype_kind(name, layouts, "iu", "integer variant indices")
    if errors.is_concrete(layouts):
        values = np.asarray(layouts)
        bad = (values < 0) | (values >= np.asarray(space.num_variants))
        if bad.any():
            where = np.argwhere(bad)[0]
            errors.fail(
                name,
                f"variant indices in [0, N_i) with N = {space.num_variants}",
                f"{int(values[tuple(where)])} for component {int(where[-1])}",
            )


def check_contexts(name: str, space: LayoutSpace, contexts: Any) -> None:
    """``[..., C]`` of 0/1 values (bool, integer or real). Raises naming ``name``."""
    c = space.num_context
    if np.ndim(contexts) < 1 or np.shape(contexts)[-1] != c:
        errors.fail(name, f"an array of shape [..., {c}] (the context width)", np.shape(contexts))
    errors.check_dtype_kind(name, contexts, "biuf", "0/1 context indicators")
    if errors.is_concrete(contexts):
        values = np.asarray(contexts, np.float64)
        bad = (values != 0) & (values != 1)
        if bad.any():
            errors.fail(name, "values in {0, 1}", f"{values[bad][:5].tolist()}")


def _context_or_zeros(space: LayoutSpace, contexts: Any, name: str = "context") -> jax.Array:
    if contexts is None:
        if space.num_context:
            errors.fail(name, f"a 0/1 array of width {space.num_context}", None)
        return jnp.zeros((0,), jnp.float32)
    check_contexts(name, space, contexts)
    return jnp.asarray(contexts)


def check_context(space: LayoutSpace, context: Any) -> jax.Array:
    """One context: ``{0, 1}[C]``, or ``None`` when ``C = 0``; returned as an array (``[0]``
    for ``None``). Raises naming ``context``."""
    x = _context_or_zeros(space, context)
    if x.ndim != 1:
        errors.fail("context", f"one context of shape [{space.num_context}]", np.shape(x))
    return x


def feature_ids(space: LayoutSpace, layouts: Any, contexts: Any = None) -> jax.Array:
    """Active ids ``int32[..., K]`` of ``layouts: int[..., D]`` (see the module docstring).

    Each block is one vectorised expression over the static offsets (no Python loop over
    components or pairs, so tracing does not grow with ``D^2``).

    Args:
      space: the layout space.
      layouts: ``int[..., D]`` variant indices.
      contexts: ``{0, 1}[..., C]`` (broadcast against the layouts' leading axes); required
        when ``C > 0``, ignored (must be ``None``) when ``C = 0``.
    """
    space = check_space(space)
    check_layouts("layouts", space, layouts)
    x = _context_or_zeros(space, contexts, "contexts")
    layouts = jnp.asarray(layouts, jnp.int32)
    offsets = _offsets(space)
    sizes = np.asarray(space.num_variants, np.int32)
    batch = layouts.shape[:-1]
    blocks = [jnp.zeros((*batch, 1), jnp.int32), offsets["first"].astype(np.int32) + layouts]
    if space.model == "mvt2":
        pair_j, pair_k = offsets["pair_j"], offsets["pair_k"]
        starts = offsets["pair_start"].astype(np.int32)
        blocks.append(starts + layouts[..., pair_j] * sizes[pair_k] + layouts[..., pair_k])
    if space.num_context:
        batch = jnp.broadcast_shapes(batch, x.shape[:-1])
        on = jnp.broadcast_to(x, (*batch, space.num_context)) != 0  # [..., C]
        bits = np.arange(space.num_context, dtype=np.int32)
        blocks.append(jnp.where(on, offsets["context"] + bits, -1))
        first = offsets["first"].astype(np.int32) - 1 + layouts  # [..., D]
        rows = offsets["context_variant"] + bits[:, None] * int(sizes.sum())  # [C, 1]
        ids = jnp.where(on[..., :, None], rows + first[..., None, :], -1)  # [..., C, D]
        blocks.append(ids.reshape(*ids.shape[:-2], -1))
    blocks = [jnp.broadcast_to(block, (*batch, block.shape[-1])) for block in blocks]
    return jnp.concatenate(blocks, axis=-1).astype(jnp.int32)


def score(space: LayoutSpace, weights: jax.Array, layouts: Any, contexts: Any = None) -> jax.Array:
    """``s(A, x) = x_A^T W`` for every layout of ``layouts: int[..., D]`` (full re-scoring).

    ``weights: float[M]``. This is ``probit.linear_scores`` over :func:`feature_ids`.
    """
    space = check_space(space)
    check_weights(space, weights)
    return linear_scores(jnp.asarray(weights), feature_ids(space, layouts, contexts))


def check_weights(space: LayoutSpace, weights: Any) -> None:
    """``weights``: a real ``float[M]`` and, when concrete, finite (a NaN or infinite weight
    has no argmax: the search would be free to return any index). Raises naming ``weights``."""
    if np.shape(weights) != (space.num_features,):
        errors.fail("weights", f"float[{space.num_features}]", f"shape {np.shape(weights)}")
    errors.check_dtype_kind("weights", weights, "f", "floating-point weights")
    if errors.is_concrete(weights):
        values = np.asarray(weights, np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            errors.fail(
                "weights",
                "finite values",
                f"{values[bad][:5].tolist()} at ids {np.flatnonzero(bad)[:5].tolist()}",
            )


class ScoreTables(NamedTuple):
    """Dense tables of one weight vector (and one context) for incremental scoring.

    Attributes:
      constant: ``float[]``, ``W0 + sum_l x_l Wc_l``.
      first: ``float[D, N_max]``, ``W1_i(v) + sum_l x_l W1c_il(v)``; ``-inf`` for ``v >= N_i``.
      pair: ``float[D, N_max, D, N_max]``, the pairwise weights as one symmetric block matrix
        over (component, variant): ``pair[j, a, k, b] = W2_jk(a, b)`` for ``j < k`` and
        ``pair[k, b, j, a]`` the same value; zero on the diagonal blocks, in the padding and
        for ``mvt1``. Row ``pair[j, a]`` is everything that ``A_j = a`` adds to the other
        components' variants.
    """

    constant: jax.Array
    first: jax.Array
    pair: jax.Array


def score_tables(space: LayoutSpace, weights: jax.Array, context: Any = None) -> ScoreTables:
    """The :class:`ScoreTables` of ``weights: float[M]`` and one ``context: {0, 1}[C]``.

    Gathers from ``weights`` whose indices are computed in the graph from ``D``-long static
    vectors (:func:`_offsets`): ``first[i, v] = W[1 + P_i + v]`` and, for ``j < k``,

        pair[j, a, k, b] = pair[k, b, j, a] = W[row[j] + N_j (P_k - P_{j+1}) + a N_k + b]

    (zero on the diagonal blocks and in the padding; :func:`_pair_table`). About
    ``D^2 N_max^2`` floats written per weight vector, in a graph whose size does not depend on
    ``D`` (the former loop over the ``D (D - 1) / 2`` pairs traced one slice per pair and
    compiled for minutes at ``D = 100``). Everything after it (:func:`component_deltas`,
    :func:`interaction_sums`, :func:`table_score`) reads only these tables.
    """
    space = check_space(space)
    check_weights(space, weights)
    x = check_context(space, context)
    weights = jnp.asarray(weights)
    offsets = _offsets(space)
    n_max, d = space.max_variants, space.num_components
    sizes = np.asarray(space.num_variants, np.int32)
    variants = np.arange(n_max, dtype=np.int32)
    valid = variants[None, :] < sizes[:, None]  # [D, N_max]
    first_ids = offsets["first"].astype(np.int32)[:, None] + variants[None, :]
    first = weights[np.where(valid, first_ids, 0)]
    constant = weights[0]
    if space.num_context:
        on = x.astype(weights.dtype)
        c0, total = offsets["context"], int(sizes.sum())
        constant = constant + jnp.sum(on * weights[c0 : c0 + space.num_context])
        block = weights[offsets["context_variant"] :].reshape(space.num_context, total)
        shift = on @ block  # [sum N_i]: sum_l x_l W1c_l
        first = first + shift[np.where(valid, first_ids - 1, 0)]
    first = jnp.where(valid, first, -jnp.inf)
    if space.model == "mvt1":
        return ScoreTables(constant, first, jnp.zeros((d, n_max, d, n_max), weights.dtype))
    return ScoreTables(constant, first, _pair_table(space, weights))


def _pair_table(space: LayoutSpace, weights: jax.Array) -> jax.Array:
    """``pair: [D, N_max, D, N_max]`` (the :class:`ScoreTables` docstring) by one row gather.

    For ``j < k`` the row ``W2_jk(a, .)`` is the contiguous run of ``N_k`` weights from
    ``row[j] + N_j (P_k - P_{j+1}) + a N_k``: ``D^2 N_max`` slices of length ``N_max`` are read
    (one gather, over-reading into the next block or the zero padding appended to the weights,
    then masked). The lower blocks are the transposed upper ones. On the ``hill_climb`` suite's
    ``D = N = 10`` batch this is faster than gathering every entry or than one slice per pair.
    """
    offsets = _offsets(space)
    n_max, d = space.max_variants, space.num_components
    j = jnp.arange(d, dtype=jnp.int32)[:, None, None]
    a = jnp.arange(n_max, dtype=jnp.int32)[None, :, None]
    k = jnp.arange(d, dtype=jnp.int32)[None, None, :]
    sizes = jnp.asarray(space.num_variants, jnp.int32)
    prefix = jnp.asarray(offsets["prefix"].astype(np.int32))
    row = jnp.asarray(offsets["row"].astype(np.int32))
    upper = (j < k) & (a < sizes[j])  # [D, N_max, D]
    starts = row[j] + sizes[j] * (prefix[k] - prefix[j + 1]) + a * sizes[k]
    padded = jnp.concatenate([weights, jnp.zeros(n_max, weights.dtype)])
    rows = jax.vmap(lambda start: jax.lax.dynamic_slice(padded, (start,), (n_max,)))(
        jnp.where(upper, starts, 0).reshape(-1)
    ).reshape(d, n_max, d, n_max)
    b = jnp.arange(n_max, dtype=jnp.int32)
    inside = upper[..., None] & (b < sizes[None, None, :, None])
    upper_blocks = jnp.where(inside, rows, 0)
    lower_blocks = upper_blocks.transpose(2, 3, 0, 1)
    return jnp.where(
        (j < k)[..., None], upper_blocks, jnp.where((j > k)[..., None], lower_blocks, 0)
    )


def check_tables(tables: Any, layout: Any = None, space: LayoutSpace | None = None) -> tuple:
    """Boundary check of a :class:`ScoreTables` (``first: [D, N_max]``, ``pair: [D, N_max, D,
    N_max]``, the shapes of ``space`` when given; raises naming ``tables``) and, when given,
    of one ``layout: int[D]`` (raises naming ``layout``; when concrete, no index outside
    ``[0, N_max)`` and no padding variant ``A_i >= N_i``, whose first-order entry is ``-inf``).
    Returns ``(D, N_max)``. Static checks only under ``jit``."""
    if not isinstance(tables, ScoreTables):
        errors.fail("tables", "a ScoreTables (design.score_tables)", type(tables).__name__)
    shape = np.shape(tables.first)
    if space is not None and shape != (space.num_components, space.max_variants):
        expected = f"first of shape {(space.num_components, space.max_variants)} (the space's)"
        errors.fail("tables", expected, f"shape {shape}")
    if len(shape) != 2 or np.shape(tables.pair) != (*shape, *shape) or np.ndim(tables.constant):
        got = [np.shape(field) for field in tables]
        errors.fail("tables", "constant [], first [D, N_max], pair [D, N_max, D, N_max]", got)
    if layout is None:
        return shape
    if np.shape(layout) != shape[:1]:
        errors.fail("layout", f"int[{shape[0]}] (one variant per component)", np.shape(layout))
    errors.check_dtype_kind("layout", layout, "iu", "integer variant indices")
    if errors.is_concrete(layout) and errors.is_concrete(tables.first):
        values = np.asarray(layout)
        inside = (values >= 0) & (values < shape[1])
        first = np.asarray(tables.first)[np.arange(shape[0]), np.where(inside, values, 0)]
        bad = ~inside | np.isneginf(first)
        if bad.any():
            errors.fail(
                "layout",
                "a real variant of every component (not padding)",
                f"{values[bad][:5].tolist()} at components {np.flatnonzero(bad)[:5].tolist()}",
            )
    return shape


def interaction_sums(tables: ScoreTables, layout: jax.Array) -> jax.Array:
    """``G[i, v] = sum_{j != i} W2_ij(v, A_j)``, ``float[D, N_max]``: the pairwise part of
    every component's incremental score; a sum of the ``D`` rows ``pair[j, A_j]``. Checks
    as :func:`check_tables`."""
    d, _ = check_tables(tables, layout)
    return jnp.sum(tables.pair[jnp.arange(d), layout], axis=0)


def table_score(tables: ScoreTables, layout: jax.Array) -> jax.Array:
    """``s(A, x)`` of one layout ``int[D]`` from the tables (equals :func:`score`). Checks as
    :func:`check_tables`."""
    d, _ = check_tables(tables, layout)
    components = jnp.arange(d)
    first = tables.first[components, layout]
    pair = tables.pair[components[:, None], layout[:, None], components[None, :], layout[None, :]]
    upper = components[:, None] < components[None, :]
    return tables.constant + jnp.sum(first) + jnp.sum(jnp.where(upper, pair, 0))


def component_deltas(tables: ScoreTables, layout: jax.Array, component: jax.Array) -> jax.Array:
    """``delta_c(v)`` for every ``v < N_max`` (``-inf`` beyond ``N_c``): the terms of
    ``s(A with A_c = v)`` that involve component ``c`` (``component`` may be traced).

    ``s(A with A_c = v) = s(A) + delta_c(v) - delta_c(A_c)``. Cost ``O(D N_max)``: the
    ``c`` block of each row ``pair[j, A_j]``. Hill climbing keeps
    :func:`interaction_sums` up to date instead (``first[c] + G[c]`` is the same vector).
    Checks as :func:`check_tables`, and ``component``: an integer scalar, in ``[0, D)`` when
    concrete.
    """
    d, _ = check_tables(tables, layout)
    if np.ndim(component) != 0:
        errors.fail("component", "an integer scalar", f"shape {np.shape(component)}")
    errors.check_dtype_kind("component", component, "iu", "an integer component index")
    if errors.is_concrete(component) and not 0 <= int(component) < d:
        errors.fail("component", f"an index in [0, {d})", int(component))
    interactions = tables.pair[jnp.arange(d), layout, component]  # [D, N_max]
    return tables.first[component] + jnp.sum(interactions, axis=0)


def all_layouts(space: LayoutSpace, max_layouts: int = 1 << 20) -> np.ndarray:
    """Every layout, ``int32[prod N_i, D]`` in row-major (last component fastest) order.

    Raises ``InvalidArgumentError`` (``space``) when there are more than ``max_layouts``.
    """
    space = check_space(space)
    if space.num_layouts > max_layouts:
        errors.fail("space", f"at most {max_layouts} layouts to enumerate", space.num_layouts)
    grids = np.meshgrid(*[np.arange(n) for n in space.num_variants], indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=-1).astype(np.int32)
