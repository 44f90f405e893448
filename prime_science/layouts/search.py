"""Finding the best layout under one weight vector: exact enumeration and hill climbing.

Exhaustive search (the oracle, small spaces only): score all ``prod_i N_i`` layouts with one
gather-and-sum over their feature ids and take the argmax (ties: the first layout in
row-major order).

Hill climbing (Hill et al. 2017, KDD)::

    for s in 1..S (restarts, vmapped):
        A <- a uniformly random layout
        for k in 1..K (steps, a lax.scan):
            c <- a uniformly random component      (order="random")
                 or k mod D                         (order="round_robin")
            A_c <- argmax_v delta_c(v)              (incremental score, design.py)
    return the A^s with the largest score

A step reads ``O(D N_max)`` table entries (the incremental scores of
:func:`~prime_science.layouts.design.component_deltas`, kept up to date in :func:`climb`),
so the climbs cost ``O(S K D N_max)``; on top come ``O(S D^2 N_max)`` for the restarts'
starting sums, ``O(S D^2)`` for their final scores and the ``O(D^2 N_max^2)`` copy that builds
the tables from the ``M ~ D^2 N_max^2 / 2`` weights (reading the input); ``prod_i N_i`` never
appears. The traced graph has the same size for every ``D`` (no Python loop over components
or pairs), and :func:`hill_climb` is compiled once per ``(space, S, K, order)``. ``K`` counts
single-component steps (a random component per step in the gap targets of
``experiments/layout_search.py``); ``K = D`` round-robin steps is one full coordinate pass. A
step keeps the current variant when nothing beats it (the argmax includes it, and ties go to
the lowest variant, which scores the same), so the score never decreases along a climb. The
result is a coordinate-wise optimum only if the last ``D`` steps visited every component;
otherwise it is simply the best layout found.

Every layout returned is in range, ``0 <= A_i < N_i``, whatever the weights: the padding
variants score ``-inf`` and :func:`argmax_first` counts a NaN as ``-inf``, so a step picks a
real variant (variant 0 when every delta is NaN or ``-inf``). :func:`hill_climb` rejects
non-finite weights by name; inside someone's ``jit`` (no value checks) they give a layout in
range and a NaN or infinite score.

Everything is written for one weight vector; batch over requests (independent posterior
draws) with ``jax.vmap`` over ``(key, weights)``.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.bandits.scoring import linear_scores
from prime_science.core import errors
from prime_science.core.random import key_words, random_bits, uniform_open
from prime_science.core.types import PRNGKey
from prime_science.layouts.design import (
    LayoutSpace,
    ScoreTables,
    all_layouts,
    check_context,
    check_space,
    check_tables,
    check_weights,
    feature_ids,
    interaction_sums,
    score_tables,
    table_score,
)

__all__ = [
    "ORDERS",
    "SearchResult",
    "argmax_first",
    "exhaustive_search",
    "check_search",
    "climb",
    "hill_climb",
    "hill_climb_tables",
    "random_layouts",
    "step_components",
]

ORDERS = ("random", "round_robin")
"""How hill climbing picks the component of each step."""


class SearchResult(NamedTuple):
    """A layout and its score.

    Attributes:
      layout: ``int32[D]``.
      score: ``float[]``, ``s(layout)`` under the weights searched.
    """

    layout: jax.Array
    score: jax.Array


def argmax_first(values: jax.Array) -> jax.Array:
    """Index of the largest entry of the last axis, ties to the lowest index (a max and a
    min-index pass: XLA:CPU's variadic argmax reduction is not vectorised). A NaN counts as
    ``-inf``, so the index is one of a largest non-NaN entry, or 0 when every entry is NaN or
    ``-inf``; it is always in ``[0, size)``. Raises naming ``values`` unless it has a last
    axis of length ``>= 1``."""
    if np.ndim(values) < 1 or np.shape(values)[-1] < 1:
        errors.fail("values", "an array with a non-empty last axis", f"shape {np.shape(values)}")
    values = jnp.asarray(values)
    size = values.shape[-1]
    if jnp.issubdtype(values.dtype, jnp.floating):
        values = jnp.where(jnp.isnan(values), -jnp.inf, values)
    best = jnp.max(values, axis=-1, keepdims=True)
    index = jnp.min(jnp.where(values == best, jnp.arange(size), size), axis=-1)
    return jnp.minimum(index, size - 1).astype(jnp.int32)


def exhaustive_search(
    space: LayoutSpace, weights: jax.Array, context: Any = None, *, max_layouts: int = 1 << 16
) -> SearchResult:
    """The exact argmax over all layouts (ties: first in row-major order).

    Args:
      space: at most ``max_layouts`` layouts (else ``InvalidArgumentError`` naming ``space``).
      weights: ``float[M]``, finite when concrete.
      context: ``{0, 1}[C]`` when the space has a context.
    """
    space = check_space(space)
    if isinstance(max_layouts, bool) or not isinstance(max_layouts, int | np.integer):
        errors.fail("max_layouts", "a positive integer", repr(max_layouts))
    check_weights(space, weights)
    layouts = all_layouts(space, max_layouts)
    ids = feature_ids(space, layouts, context)
    scores = linear_scores(jnp.asarray(weights), ids)
    best = argmax_first(scores)
    return SearchResult(jnp.asarray(layouts)[best], scores[best])


def _uniforms(key: PRNGKey, shape: tuple[int, ...]) -> jax.Array:
    """Float32 uniforms on (0, 1) from the counter-based generator of
    :mod:`prime_science.core.random` (cheaper than threefry for the few hundred numbers a
    search needs: one key derivation, then two integer hashes per number)."""
    counters = jnp.arange(math.prod(shape), dtype=jnp.uint32)
    return uniform_open(random_bits(key_words(key), 0, counters)).reshape(shape)


def _check_shape(shape: Any) -> tuple[int, ...]:
    ok = isinstance(shape, tuple) and all(
        not isinstance(n, bool) and isinstance(n, int | np.integer) and n >= 0 for n in shape
    )
    if not ok:
        errors.fail("shape", "a tuple of integers >= 0", repr(shape))
    return tuple(int(n) for n in shape)


def random_layouts(key: PRNGKey, space: LayoutSpace, shape: tuple[int, ...] = ()) -> jax.Array:
    """Uniformly random layouts ``int32[*shape, D]`` (component ``i`` uniform on ``N_i``)."""
    errors.check_key("key", key)
    space = check_space(space)
    shape = _check_shape(shape)
    sizes = jnp.asarray(space.num_variants, jnp.float32)
    uniforms = _uniforms(key, (*shape, space.num_components))
    return jnp.minimum(jnp.floor(uniforms * sizes), sizes - 1).astype(jnp.int32)


def step_components(
    key: PRNGKey, num_components: int, shape: tuple[int, ...], order: str = "random"
) -> jax.Array:
    """The component of every step, ``int32[*shape]`` (last axis = steps): uniform on
    ``[0, D)`` for ``"random"``, ``k mod D`` for ``"round_robin"`` (``key`` unused, may be
    ``None``)."""
    if (
        isinstance(num_components, bool)
        or not isinstance(num_components, int | np.integer)
        or num_components < 1
    ):
        errors.fail("num_components", "a positive integer", repr(num_components))
    shape = _check_shape(shape)
    if not shape:
        errors.fail("shape", "at least one axis (the steps)", repr(shape))
    if order not in ORDERS:
        errors.fail("order", f"one of {ORDERS}", repr(order))
    if order == "random":
        errors.check_key("key", key)
        scaled = jnp.floor(_uniforms(key, shape) * num_components)
        return jnp.minimum(scaled, num_components - 1).astype(jnp.int32)
    steps = jnp.arange(shape[-1], dtype=jnp.int32) % num_components
    return jnp.broadcast_to(steps, shape)


def climb(tables: ScoreTables, layout: jax.Array, components: jax.Array) -> jax.Array:
    """Coordinate ascent from ``layout: int32[D]``: for each ``c`` of ``components: int[K]``
    in turn, ``A_c <- argmax_v delta_c(v)``. Returns the final layout (score never lower).

    The pairwise sums ``G = interaction_sums(tables, A)`` are carried along: a step reads
    ``delta_c = first[c] + G[c]`` and, when ``A_c`` changes from ``a`` to ``b``, adds
    ``pair[c, b] - pair[c, a]`` (two contiguous rows of ``D N_max``) to ``G``. Every step costs
    ``O(D N_max)`` in contiguous reads instead of ``D`` scattered rows. The new variant is
    :func:`argmax_first` of ``delta_c``, so it is always a real variant (module docstring).

    Raises ``InvalidArgumentError`` naming ``tables`` or ``layout`` (see
    :func:`~prime_science.layouts.design.check_tables`) or ``components`` (not ``int[K]``, or
    when concrete outside ``[0, D)``).
    """
    d, _ = check_tables(tables, layout)
    errors.check_rank("components", components, 1)
    errors.check_dtype_kind("components", components, "iu", "integer component indices")
    if errors.is_concrete(components):
        values = np.asarray(components)
        if ((values < 0) | (values >= d)).any():
            errors.fail(
                "components",
                f"indices in [0, {d})",
                values[(values < 0) | (values >= d)][:5].tolist(),
            )
    components_axis = jnp.arange(d)

    def step(carry, component):
        layout, sums = carry
        deltas = tables.first[component] + sums[component]
        old, new = layout[component], argmax_first(deltas)
        sums = sums + tables.pair[component, new] - tables.pair[component, old]
        return (jnp.where(components_axis == component, new, layout), sums), None

    carry = (layout, interaction_sums(tables, layout))
    (layout, _), _ = jax.lax.scan(step, carry, components)
    return layout


def hill_climb_tables(
    key: PRNGKey,
    space: LayoutSpace,
    tables: ScoreTables,
    restarts: int,
    steps: int,
    order: str = "random",
) -> SearchResult:
    """Hill climbing on prebuilt tables (see the module docstring); ``restarts`` and ``steps``
    are static. Raises ``InvalidArgumentError`` naming ``key``, ``space``, ``tables`` (not the
    space's shapes), ``restarts``, ``steps`` or ``order``."""
    errors.check_key("key", key)
    space = check_space(space)
    check_tables(tables, space=space)
    check_search(restarts, steps, order)
    key_start, key_order = jax.random.split(key)
    starts = random_layouts(key_start, space, (int(restarts),))
    components = step_components(
        key_order, space.num_components, (int(restarts), int(steps)), order
    )
    finals = jax.vmap(climb, in_axes=(None, 0, 0))(tables, starts, components)
    scores = jax.vmap(table_score, in_axes=(None, 0))(tables, finals)
    best = argmax_first(scores)
    return SearchResult(finals[best], scores[best])


def check_search(restarts: Any, steps: Any, order: Any) -> None:
    """Boundary check of hill climbing's ``restarts``, ``steps`` (positive ints) and ``order``."""
    for name, value in (("restarts", restarts), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            errors.fail(name, "a positive integer", repr(value))
    if order not in ORDERS:
        errors.fail("order", f"one of {ORDERS}", repr(order))


def hill_climb(
    key: PRNGKey,
    space: LayoutSpace,
    weights: jax.Array,
    context: Any = None,
    *,
    restarts: int = 10,
    steps: int = 5,
    order: str = "random",
) -> SearchResult:
    """Approximate ``argmax_A s(A, x)`` under ``weights: float[M]`` by hill climbing.

    Args:
      key: drives the random starts (and the random component order).
      space: the layout space.
      weights: ``float[M]``, e.g. one posterior draw; finite (checked when concrete).
      context: ``{0, 1}[C]`` when the space has a context.
      restarts: ``S >= 1`` random starts, climbed in parallel (vmapped).
      steps: ``K >= 1`` single-component steps per restart.
      order: one of :data:`ORDERS`.

    Returns:
      The best :class:`SearchResult` over the restarts, its layout always in range. Cost
      ``O(S K D N_max + S D^2 N_max + D^2 N_max^2)`` (module docstring); the tables and the
      climb run as one compiled function, cached per ``(space, S, K, order)``.

    Raises ``InvalidArgumentError`` naming ``key``, ``space``, ``weights`` (shape, dtype, a NaN
    or infinite value), ``context``, ``restarts``, ``steps`` or ``order``; nothing is computed
    then.
    """
    errors.check_key("key", key)
    space = check_space(space)
    check_search(restarts, steps, order)
    check_weights(space, weights)
    check_context(space, context)
    return _hill_climb(key, space, weights, context, int(restarts), int(steps), order)


@partial(jax.jit, static_argnums=(1, 4, 5, 6))
def _hill_climb(key, space, weights, context, restarts, steps, order):
    tables = score_tables(space, weights, context)
    return hill_climb_tables(key, space, tables, restarts, steps, order)
