"""Counter-based random numbers and exact Beta draws for very many arms.

``jax.random.beta`` draws about 2 M variates/s on a 2-core CPU, far below what Thompson
sampling over millions of arms needs. This module draws Beta variates an order of magnitude
faster while staying exact (up to float32 rounding), by making every arm's draw a pure
function of ``(key, arm id)``:

**Counter-based bits.** Stream ``s`` of a key is a pair of 32-bit seeds ``(s0, s1)`` derived
from the key; the 32 bits for arm ``i`` are ``h(h(i xor s0) + s1)``, with ``h`` the
``lowbias32`` integer finaliser (xor-shift / multiply, constants ``0x7feb352d`` and
``0x846ca68b``, full avalanche). For fixed seeds the map ``i -> bits`` is a bijection, so two arms
of one stream never share bits; streams are decorrelated by the seeds. It is a statistical
generator, not a cryptographic one; its output is checked by the goodness-of-fit tests in
``tests/core/test_random.py``. Because the draw depends on the *global* arm id and not on the
array layout, a sharded arm axis gives bit-identical draws to a single device.

**Normals.** Box–Muller, ``z = sqrt(-2 log u1) (cos 2 pi u2, sin 2 pi u2)``, with the sine and
cosine evaluated by a Taylor polynomial on one octant (absolute error < 3e-8, below float32
resolution): XLA's CPU sine and cosine cost 10x a logarithm.

**Gamma (Marsaglia & Tsang 2000).** For shape ``a >= 1`` let ``d = a - 1/3`` and
``c = 1 / sqrt(9 d)``. Propose ``v = (1 + c x)^3`` with ``x ~ N(0, 1)`` and accept when
``y = c x > -1`` and ``log u < 0.5 x^2 + d - d v + d log v``. Writing the right-hand side in ``y``,
the terms up to ``y^3`` cancel exactly and it equals ``3 d g(y)`` with
``g(y) = log(1 + y) - y + y^2/2 - y^3/3 = -y^4/4 + y^5/5 - ...``; the series is used for
``|y| < 1/4``, which keeps the test accurate in float32 for shapes up to ``1e7`` where the
textbook form cancels catastrophically. The accepted draw is ``d v``; only its logarithm
``log d + 3 log(1 + y)`` is kept.

**Boosting.** For shape ``a < BOOST_BELOW`` we draw ``G(a + 1)`` and multiply by ``U^(1/a)``,
i.e. add ``log(U) / a`` in log space (exact for every ``a > 0``). This handles ``a < 1`` and also
lifts the common small shapes (``alpha = 1 + clicks``) to where Marsaglia–Tsang rejects rarely.

**Beta.** ``X ~ G(alpha)``, ``Y ~ G(beta)``, ``B = X / (X + Y)``. We return the logit
``log X - log Y``, which is monotone in ``B``, never saturates (a float32 ``B`` rounds to exactly
1.0 once ``1 - B < 6e-8``; comparing logits keeps such arms in a fair random order), and is
what a top-k needs. ``B = sigmoid(logit)`` when a probability is wanted.

**Rejections.** Attempt 0 is evaluated for every arm in one fused pass per block of arms.
The few arms for which either gamma rejected (about 1-2% for typical posteriors, at most about
10%) are compacted with a bit-packed prefix count (32 arms per word, ``population_count``) and
gathered into retry lanes while their block is in cache (at most ``_retry_capacity(block)``
per block; any beyond those are kept as bits and compacted later). The lanes of a group of
blocks (``2**20`` arms) are drawn together: attempts 0 and 1 of every lane in one pass, then
a loop over the lanes still pending (about 2% of them) until every gamma accepts. Each gamma
consumes its own sequence of attempts, as in the sequential algorithm, so the result is
exactly the Marsaglia–Tsang draw; the compaction changes only the cost.

**XLA:CPU.** The top-k is a software pipeline (step ``j`` of a scan draws block ``j`` and
reduces block ``j - 1`` from the carry) and each retry level runs inside a one-trip
``while_loop``, so that every draw compiles to one fused loop with one output: when the draw
fed its consumers (the reduction, the pending mask) directly, XLA split it into about ten
loops that each recompute part of the hashes: 2-3x more CPU time, which had left the exact
sampler only 1.75-1.8x faster than numpy on a 2-core Intel Xeon (see ``benchmarks/README.md``).

**Domain and termination.** The shapes must lie in ``[SHAPE_MIN, SHAPE_MAX] = [1e-36, 1e38]``.
There every logit is finite: the boosting terms ``|log U| / a <= 17.4 / 1e-36`` and
``log(d_alpha / d_beta) <= 88`` cannot overflow float32, and ``3 d`` in the acceptance test stays
below the float32 maximum (above ``1.13e38`` it is ``inf``, the test reads ``inf * 0 = NaN`` and
would reject for ever; so would a NaN, infinite or negative shape). Arms outside the domain are
never drawn: :func:`beta_logits` returns NaN for them and :func:`beta_top_k` never selects
them (as if inactive). The public functions also refuse such shapes eagerly when the arrays are
concrete; under ``jit`` the masking is what holds. Independently, each gamma's retries stop after
``MAX_ATTEMPTS = 64`` attempts (a counter in the loop condition), so the sampler returns on any
input: inside the domain an attempt rejects with probability below 5%, so exhausting 64 attempts
has probability below ``0.05^64 ~ 1e-83``; an arm that does anyway gets a NaN logit and is
treated like an arm outside the domain.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.core import errors

__all__ = [
    "lowbias32",
    "BOOST_BELOW",
    "stream_seeds",
    "random_bits",
    "uniform_open",
    "box_muller",
    "gamma_proposal",
    "compact_indices",
    "beta_logits",
    "beta_top_k",
    "default_block_size",
    "top_k_with_ids",
    "key_words",
    "SHAPE_MIN",
    "SHAPE_MAX",
    "MAX_ATTEMPTS",
]

BOOST_BELOW = 3.0
"""Shapes below this are drawn as ``G(a + 1) U^(1/a)`` (see the module docstring)."""

SHAPE_MIN = 1e-36
"""Smallest Beta shape the sampler draws from (smaller ones could give infinite logits)."""

SHAPE_MAX = 1e38
"""Largest Beta shape the sampler draws from (larger ones overflow the acceptance test)."""

MAX_ATTEMPTS = 64
"""Marsaglia–Tsang attempts per gamma before the retry loop gives up (NaN logit)."""

_GOLDEN = np.uint32(0x9E3779B9)
_MIX = np.uint32(0x85EBCA6B)

# Stream ids of the sampler: attempt t of the Marsaglia–Tsang loop uses streams 4t .. 4t+3,
# the boosting uniforms use two streams of their own far from every attempt.
_BOX_MULLER_RADIUS, _BOX_MULLER_ANGLE, _ACCEPT_ALPHA, _ACCEPT_BETA = 0, 1, 2, 3
_BOOST_ALPHA, _BOOST_BETA = 0x7FFFFFF0, 0x7FFFFFF1


def lowbias32(x: jax.Array) -> jax.Array:
    """The ``lowbias32`` finaliser: a bijection of uint32 with full avalanche."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def key_words(key: jax.Array) -> jax.Array:
    """Two uint32 words that identify ``key`` (typed or legacy ``uint32[2]``)."""
    return jax.random.bits(key, (2,), jnp.uint32)


def stream_seeds(words: jax.Array, stream: jax.Array | int) -> tuple[jax.Array, jax.Array]:
    """The seed pair ``(s0, s1)`` of stream number ``stream`` of a key's ``words``."""
    stream = jnp.asarray(stream, jnp.uint32)
    s0 = lowbias32(words[0] ^ (stream * _GOLDEN))
    s1 = lowbias32(words[1] + stream * _MIX)
    return s0, s1


def random_bits(words: jax.Array, stream: jax.Array | int, counters: jax.Array) -> jax.Array:
    """32 random bits per counter: ``h(h(counter xor s0) + s1)``."""
    s0, s1 = stream_seeds(words, stream)
    return lowbias32(lowbias32(counters ^ s0) + s1)


def uniform_open(bits: jax.Array) -> jax.Array:
    """Map 32 random bits to a float32 uniform on the open interval (0, 1) (24-bit grid)."""
    return ((bits >> 8).astype(jnp.float32) + 0.5) * jnp.float32(2.0**-24)


def _sincos_2pi(u: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(sin 2 pi u, cos 2 pi u)`` for u in [0, 1) by octant reduction and Taylor series."""
    quadrant = jnp.round(4.0 * u)
    t = (u - 0.25 * quadrant) * jnp.float32(2.0 * np.pi)  # in [-pi/4, pi/4]
    t2 = t * t
    sin_t = t * (1 + t2 * (-1 / 6 + t2 * (1 / 120 + t2 * (-1 / 5040 + t2 * (1 / 362880)))))
    cos_t = 1 + t2 * (
        -1 / 2 + t2 * (1 / 24 + t2 * (-1 / 720 + t2 * (1 / 40320 + t2 * (-1 / 3628800))))
    )
    q = quadrant.astype(jnp.int32) & 3
    sin = jnp.where(q == 0, sin_t, jnp.where(q == 1, cos_t, jnp.where(q == 2, -sin_t, -cos_t)))
    cos = jnp.where(q == 0, cos_t, jnp.where(q == 1, -sin_t, jnp.where(q == 2, -cos_t, sin_t)))
    return sin, cos


def box_muller(u_radius: jax.Array, u_angle: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Two independent standard normals from two independent uniforms on (0, 1)."""
    radius = jnp.sqrt(-2.0 * jnp.log(u_radius))
    sin, cos = _sincos_2pi(u_angle)
    return radius * cos, radius * sin


def _log_excess(y: jax.Array) -> jax.Array:
    """``g(y) = log(1 + y) - y + y^2/2 - y^3/3``, accurate in float32 near ``y = 0``."""
    series = y**4 * (
        -1 / 4
        + y * (1 / 5 + y * (-1 / 6 + y * (1 / 7 + y * (-1 / 8 + y * (1 / 9 + y * (-1 / 10))))))
    )
    safe = jnp.maximum(y, -0.999999)
    direct = jnp.log1p(safe) - safe + safe * safe / 2 - safe * safe * safe / 3
    return jnp.where(jnp.abs(y) < 0.25, series, direct)


class GammaAttempt(NamedTuple):
    """One Marsaglia–Tsang attempt: ``log(v)`` of the proposal and whether it was accepted."""

    log_v: jax.Array
    accepted: jax.Array


def gamma_proposal(
    d: jax.Array, normal: jax.Array, uniform: jax.Array, exact: bool = True
) -> GammaAttempt:
    """Evaluate one Marsaglia–Tsang attempt for ``d = shape - 1/3`` (shape >= 1).

    The draw, if accepted, is ``d v`` with ``v = (1 + c x)^3``, ``c = 1/sqrt(9 d)``. With
    ``exact=False`` every proposal is accepted: ``d v`` is then the Wilson–Hilferty
    approximation of the gamma distribution (no rejection, no retry).
    """
    y = jax.lax.rsqrt(9.0 * d) * normal
    log_v = 3.0 * jnp.log1p(jnp.maximum(y, -0.999999))
    if not exact:
        return GammaAttempt(log_v, jnp.ones_like(y, dtype=bool))
    accepted = (y > -1.0) & (jnp.log(uniform) < 3.0 * d * _log_excess(y))
    return GammaAttempt(log_v, accepted)


class _Shapes(NamedTuple):
    """Per-arm constants of the sampler, derived from the Beta shapes."""

    d_alpha: jax.Array
    d_beta: jax.Array
    boost_alpha: jax.Array
    boost_beta: jax.Array


def _shapes(alpha: jax.Array, beta: jax.Array) -> _Shapes:
    boost_alpha = alpha < BOOST_BELOW
    boost_beta = beta < BOOST_BELOW
    d_alpha = jnp.where(boost_alpha, alpha + 1.0, alpha) - 1.0 / 3.0
    d_beta = jnp.where(boost_beta, beta + 1.0, beta) - 1.0 / 3.0
    return _Shapes(d_alpha, d_beta, boost_alpha, boost_beta)


def _attempt(
    words: jax.Array,
    attempt: jax.Array | int,
    counters: jax.Array,
    shapes: _Shapes,
    exact: bool,
) -> tuple[GammaAttempt, GammaAttempt]:
    """Attempt number ``attempt`` of both gammas of every arm in ``counters``."""
    base = 4 * jnp.asarray(attempt, jnp.uint32)
    draw = lambda stream: uniform_open(random_bits(words, base + stream, counters))
    normal_alpha, normal_beta = box_muller(draw(_BOX_MULLER_RADIUS), draw(_BOX_MULLER_ANGLE))
    gamma_alpha = gamma_proposal(shapes.d_alpha, normal_alpha, draw(_ACCEPT_ALPHA), exact)
    gamma_beta = gamma_proposal(shapes.d_beta, normal_beta, draw(_ACCEPT_BETA), exact)
    return gamma_alpha, gamma_beta


def _finish_logits(
    words: jax.Array,
    counters: jax.Array,
    alpha: jax.Array,
    beta: jax.Array,
    shapes: _Shapes,
    log_v_alpha: jax.Array,
    log_v_beta: jax.Array,
) -> jax.Array:
    """``log X - log Y`` from the accepted proposals, with the boosting factors."""
    log_boost = lambda stream, shape: (
        jnp.log(uniform_open(random_bits(words, stream, counters))) / shape
    )
    boost_alpha = jnp.where(shapes.boost_alpha, log_boost(_BOOST_ALPHA, alpha), 0.0)
    boost_beta = jnp.where(shapes.boost_beta, log_boost(_BOOST_BETA, beta), 0.0)
    return (
        jnp.log(shapes.d_alpha / shapes.d_beta)
        + (log_v_alpha - log_v_beta)
        + (boost_alpha - boost_beta)
    )


def compact_indices(mask: jax.Array, capacity: int) -> tuple[jax.Array, jax.Array]:
    """Indices of the first ``capacity`` true entries of a 1-D ``mask``, in order.

    Returns ``(indices int32[capacity], count)``: empty slots hold ``mask.size`` (an
    out-of-range sentinel for ``mode='drop'`` scatters); ``count`` is the total number of true
    entries, which may exceed ``capacity``. Cost: one pass packing 32 flags per word and a
    prefix sum over ``size / 32`` words, then ``O(log)`` work per output slot — about 5x cheaper
    than ``jnp.nonzero`` on CPU.
    """
    size = mask.shape[0]
    indices, total = _compact_words(_pack_bits(mask), capacity)
    return jnp.where(indices < size, indices, size), total


def _pack_bits(mask: jax.Array) -> jax.Array:
    """``uint32[ceil(size / 32)]``: bit ``j`` of word ``w`` is ``mask[32 w + j]``."""
    size = mask.shape[0]
    padded = jnp.pad(mask, (0, (-size) % 32)).reshape(-1, 32).astype(jnp.uint32)
    return jnp.sum(padded << jnp.arange(32, dtype=jnp.uint32), axis=1, dtype=jnp.uint32)


def _compact_words(
    words: jax.Array, capacity: int, first: jax.Array | int = 0
) -> tuple[jax.Array, jax.Array]:
    """Positions of the set bits of rank ``first, ..., first + capacity - 1`` in the bit-packed
    ``words`` (bit ``j`` of word ``w`` is position ``32 w + j``), in order, and the number of
    set bits. Slots past the last set bit hold ``32 * words.size``."""
    counts = jax.lax.population_count(words).astype(jnp.int32)
    ends = jnp.cumsum(counts)
    starts = ends - counts
    total = ends[-1]
    first = jnp.asarray(first, jnp.int32)
    slots = first + jnp.arange(capacity, dtype=jnp.int32)
    # The word of each slot: word w starts at slot starts[w] - first; scatter w there and
    # carry it forward with a running max (about 2.5x cheaper on CPU than a binary search of
    # every slot). Slots before the first scattered word belong to the word holding rank
    # ``first``.
    word_of_first = jnp.minimum(
        jnp.searchsorted(ends, first, side="right", method="scan_unrolled"), words.shape[0] - 1
    )
    target = jnp.where((counts > 0) & (starts >= first), starts - first, capacity)
    group = jnp.full((capacity,), word_of_first, jnp.int32)
    group = group.at[target].max(jnp.arange(words.shape[0], dtype=jnp.int32), mode="drop")
    group = jax.lax.cummax(group)
    rank = slots - starts[group]
    word = words[group]
    position = jnp.zeros_like(slots)
    for width in (16, 8, 4, 2, 1):  # binary search for the rank-th set bit of the word
        low = jax.lax.population_count(word & jnp.uint32((1 << width) - 1)).astype(jnp.int32)
        high = rank >= low
        rank = jnp.where(high, rank - low, rank)
        word = jnp.where(high, word >> width, word)
        position = jnp.where(high, position + width, position)
    indices = group * 32 + position
    return jnp.where(slots < total, indices, 32 * words.shape[0]), total


def _retry_capacity(num_arms: int) -> int:
    """Static size of the retry buffer: above the usual 1-3% of arms that reject at attempt 0.

    More rejections than this are still handled exactly, in further chunks of this size.
    """
    return min(num_arms, num_arms // 32 + 64)


def _fast_pass(words, counters, alpha, beta, shapes, exact):
    gamma_alpha, gamma_beta = _attempt(words, 0, counters, shapes, exact)
    logits = _finish_logits(
        words, counters, alpha, beta, shapes, gamma_alpha.log_v, gamma_beta.log_v
    )
    return gamma_alpha, gamma_beta, logits


def _retry_chunk(words, counters, alpha, beta, shapes, index):
    """Exact logits of the arms at ``index`` (sentinel ``counters.size`` = padding), running
    each gamma's attempt sequence from attempt 0 until it accepts; NaN for an arm one of whose
    gammas rejected all ``MAX_ATTEMPTS`` attempts."""
    num_arms = counters.shape[0]
    valid = index < num_arms
    take = lambda x, fill: jnp.where(valid, x.at[index].get(mode="fill", fill_value=fill), fill)
    return _retry_lanes(words, take(counters, 0), take(alpha, 1.0), take(beta, 1.0), valid)


def _retry_lanes(words, counters, alpha, beta, valid):
    """Exact logits of the lanes ``(counters, alpha, beta)`` where ``valid``: every gamma's
    attempts ``0, 1, ...`` until it accepts (NaN after ``MAX_ATTEMPTS``); ``-inf`` elsewhere."""
    shapes = _shapes(alpha, beta)

    def not_done(state):
        attempt, a, b = state
        return ~jnp.all(a.accepted & b.accepted) & (attempt < MAX_ATTEMPTS)

    def next_attempt(state):
        attempt, a, b = state
        new_a, new_b = _attempt(words, attempt, counters, shapes, True)
        take_a = ~a.accepted & new_a.accepted
        take_b = ~b.accepted & new_b.accepted
        a = GammaAttempt(jnp.where(take_a, new_a.log_v, a.log_v), a.accepted | take_a)
        b = GammaAttempt(jnp.where(take_b, new_b.log_v, b.log_v), b.accepted | take_b)
        return attempt + 1, a, b

    nothing = GammaAttempt(jnp.zeros_like(alpha), ~valid)
    _, gamma_alpha, gamma_beta = jax.lax.while_loop(
        not_done, next_attempt, (jnp.uint32(0), nothing, nothing)
    )
    logits = _finish_logits(
        words, counters, alpha, beta, shapes, gamma_alpha.log_v, gamma_beta.log_v
    )
    logits = jnp.where(gamma_alpha.accepted & gamma_beta.accepted, logits, jnp.nan)
    return jnp.where(valid, logits, -jnp.inf)


def _in_domain(alpha: jax.Array, beta: jax.Array) -> jax.Array:
    """Arms whose shapes lie in ``[SHAPE_MIN, SHAPE_MAX]`` (False for NaN: XLA's min and max
    propagate it, and every comparison with NaN is false)."""
    return (jnp.minimum(alpha, beta) >= SHAPE_MIN) & (jnp.maximum(alpha, beta) <= SHAPE_MAX)


def _sample_then_fold(key, alpha, beta, arm_offset, exact, mask, fill, carry, fold):
    """Draw every arm's logit and fold them into ``carry``: first the arms whose attempt 0
    accepted (all arms when ``exact=False``), then the pending ones chunk by chunk.

    Arms outside ``mask`` or the shape domain get ``fill`` in the fast pass and no retry.
    ``fold(carry, index, logits)`` receives ``index = None`` for the full fast pass.
    """
    words = key_words(key)
    num_arms = alpha.shape[0]
    counters = jnp.asarray(arm_offset, jnp.uint32) + jnp.arange(num_arms, dtype=jnp.uint32)
    shapes = _shapes(alpha, beta)
    mask = mask & _in_domain(alpha, beta)
    gamma_alpha, gamma_beta, logits = _fast_pass(words, counters, alpha, beta, shapes, exact)
    accepted = gamma_alpha.accepted & gamma_beta.accepted
    rejected = -jnp.inf if fill == -jnp.inf else jnp.where(mask, -jnp.inf, fill)
    carry = fold(carry, None, jnp.where(accepted & mask, logits, rejected))
    if not exact:
        return carry
    capacity = _retry_capacity(num_arms)

    def chunk(state):
        carry, pending = state
        index, _ = compact_indices(pending, capacity)
        chunk_logits = _retry_chunk(words, counters, alpha, beta, shapes, index)
        carry = fold(carry, index, chunk_logits)
        return carry, pending.at[index].set(False, mode="drop")

    carry, _ = jax.lax.while_loop(lambda state: jnp.any(state[1]), chunk, (carry, ~accepted & mask))
    return carry


def _check_shapes(alpha: Any, beta: Any) -> None:
    """Static: two float ``[n]`` arrays, ``n >= 1``; values (when concrete): in the domain,
    compared in float32 as the kernel compares them."""
    for name, shapes in (("alpha", alpha), ("beta", beta)):
        errors.check_rank(name, shapes, 1)
        errors.check_dtype_kind(name, shapes, "f", "float Beta shapes")
    errors.check_same_length(("alpha", "beta"), alpha, beta)
    if np.shape(alpha)[0] == 0:
        errors.fail("alpha", "at least one arm", "an empty array")
    for name, shapes in (("alpha", alpha), ("beta", beta)):
        if errors.is_concrete(shapes):
            with np.errstate(over="ignore"):
                values = np.asarray(shapes).astype(np.float32)
            bad = ~((values >= np.float32(SHAPE_MIN)) & (values <= np.float32(SHAPE_MAX)))
            if bad.any():
                domain = f"shapes in [SHAPE_MIN, SHAPE_MAX] = [{SHAPE_MIN:g}, {SHAPE_MAX:g}]"
                errors.fail(name, domain, f"{values[bad][:5].tolist()}")


def _check_draw_options(arm_offset: Any, exact: Any) -> None:
    errors.check_rank("arm_offset", arm_offset, 0)
    errors.check_dtype_kind("arm_offset", arm_offset, "iu", "an integer arm offset")
    if not isinstance(exact, bool):
        errors.fail("exact", "True or False", repr(exact))


def beta_logits(
    key: jax.Array,
    alpha: jax.Array,
    beta: jax.Array,
    *,
    arm_offset: jax.Array | int = 0,
    exact: bool = True,
) -> jax.Array:
    """One Beta(alpha_i, beta_i) draw per arm, returned as ``logit = log X_i - log Y_i``.

    Args:
      key: a JAX PRNG key.
      alpha, beta: ``float32[n]`` shapes in ``[SHAPE_MIN, SHAPE_MAX]``, ``n >= 1``.
      arm_offset: global id of ``alpha[0]``; arm ``i`` draws from counter ``arm_offset + i``,
        so a shard of the arm axis draws exactly what the full array would.
      exact: ``True`` (default) for the exact Marsaglia–Tsang sampler; ``False`` for the
        Wilson–Hilferty approximation (no rejection step; see ``gamma_proposal``).

    Returns:
      ``float32[n]`` logits; ``sigmoid(logit) ~ Beta(alpha, beta)``. Raises
      ``InvalidArgumentError`` for a bad key, ranks, dtypes or lengths, and (concrete arrays)
      for shapes outside the domain; under ``jit`` such arms get a NaN logit (module
      docstring).
    """
    errors.check_key("key", key)
    _check_shapes(alpha, beta)
    _check_draw_options(arm_offset, exact)
    return _beta_logits(key, alpha, beta, arm_offset, exact)


@partial(jax.jit, static_argnums=4)
def _beta_logits(key, alpha, beta, arm_offset, exact):
    def scatter(logits, index, values):
        if index is None:
            return values
        return logits.at[index].set(values, mode="drop")

    mask = jnp.ones(alpha.shape, dtype=bool)
    initial = jnp.full(alpha.shape, -jnp.inf, dtype=jnp.float32)
    return _sample_then_fold(key, alpha, beta, arm_offset, exact, mask, jnp.nan, initial, scatter)


def top_k_with_ids(values: jax.Array, ids: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """The ``k`` largest ``values`` and their ``ids``, largest first; ties go to the lower
    position. For ``k = 1`` a max followed by a min-index pass (4x faster than ``argmax`` on
    XLA:CPU, whose variadic reduction is not vectorised)."""
    if k == 1:
        best = jnp.max(values)
        position = jnp.min(jnp.where(values == best, jnp.arange(values.shape[0]), values.shape[0]))
        position = jnp.minimum(position, values.shape[0] - 1)
        return best[None], ids[position][None]
    top, position = jax.lax.top_k(values, k)
    return top, ids[position]


def default_block_size() -> int:
    """Arms per block of :func:`beta_top_k` on the default backend.

    CPU: ``2**16``, so that a block's intermediates stay in cache. Accelerators: ``2**24``, so
    that the scan has few steps: on XLA:GPU each step's retry ``while_loop`` costs host round
    trips (with 2**16 on an H200, 1e8 arms took 255 ms in ~1,500 steps of ~170 us each).
    """
    return 1 << 16 if jax.default_backend() == "cpu" else 1 << 24


_BLOCK_QUANTUM = 4096
"""Block lengths are multiples of this: at 1e7 arms on XLA:CPU, blocks of 65,376 arms ran
1.6x slower than blocks of 65,536 in one same-process comparison (not reproduced in another)."""


def beta_top_k(
    key: jax.Array,
    alpha: jax.Array,
    beta: jax.Array,
    active: jax.Array,
    k: int,
    *,
    arm_offset: jax.Array | int = 0,
    exact: bool = True,
    block_size: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Top-``k`` active arms of one Beta posterior draw per arm.

    The arm axis is processed in blocks of ``block_size`` arms (a ``lax.scan`` carrying the
    running top-k), so the ``N`` draws are never materialised: each block's draws are reduced
    to its top-k while still in cache, and the few arms of the block that needed a retry are
    merged in right after. Draws depend only on ``(key, global arm id)``, so the blocking (and
    any sharding) does not change the result.

    Returns ``(logits float32[k], arm_ids int32[k])``, best first, ids global (offset added).
    Inactive arms score ``-inf``; if fewer than ``k`` arms are active the tail holds ``-inf``
    and id ``-1``. Arms whose shapes lie outside ``[SHAPE_MIN, SHAPE_MAX]`` (NaN, infinite,
    zero, negative, or too large) are treated as inactive under ``jit``; with concrete
    arrays they raise ``InvalidArgumentError``, as do a bad key, ranks, dtypes or lengths,
    a non-bool ``active`` and ``k`` outside ``[1, len(alpha)]``. ``block_size`` (a positive
    integer) defaults to :func:`default_block_size`.
    """
    errors.check_key("key", key)
    _check_shapes(alpha, beta)
    errors.check_rank("active", active, 1)
    errors.check_dtype_kind("active", active, "b", "a bool mask")
    errors.check_same_length(("alpha", "active"), alpha, active)
    num_arms = np.shape(alpha)[0]
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= num_arms:
        errors.fail("k", f"an integer in [1, {num_arms}]", repr(k))
    integer = isinstance(block_size, int | np.integer) and not isinstance(block_size, bool)
    if block_size is not None and not (integer and block_size >= 1):
        errors.fail("block_size", "a positive integer or None", repr(block_size))
    _check_draw_options(arm_offset, exact)
    block_size = int(block_size or default_block_size())
    return _beta_top_k(key, alpha, beta, active, arm_offset, int(k), exact, block_size)


@partial(jax.jit, static_argnums=(5, 6, 7))
def _beta_top_k(key, alpha, beta, active, arm_offset, k, exact, block_size):
    num_arms = alpha.shape[0]
    num_blocks = -(-num_arms // block_size)
    # Equal blocks whose length is a multiple of _BLOCK_QUANTUM cover the arms; the last one
    # ends at the last arm and masks out the arms it shares with the previous block.
    block = min(num_arms, -(-num_arms // (_BLOCK_QUANTUM * num_blocks)) * _BLOCK_QUANTUM)
    num_blocks = -(-num_arms // block)
    last_start = num_arms - block
    shared = (num_blocks - 1) * block - last_start  # arms the last block shares
    starts = jnp.minimum(jnp.arange(num_blocks, dtype=jnp.int32) * block, last_start)
    fresh = jnp.where(jnp.arange(num_blocks) == num_blocks - 1, shared, 0).astype(jnp.int32)
    offset = jnp.asarray(arm_offset, jnp.int32)
    words = key_words(key)
    positions = jnp.arange(block, dtype=jnp.int32)

    def draw(j):
        """Attempt-0 values of block ``j``: the logit where both gammas accepted, NaN where one
        rejected (pending), -inf for arms that are inactive, shared or outside the domain."""
        block_alpha, block_beta, block_active = (
            jax.lax.dynamic_slice_in_dim(x, starts[j], block) for x in (alpha, beta, active)
        )
        mask = block_active & (positions >= fresh[j]) & _in_domain(block_alpha, block_beta)
        counters = (offset + starts[j] + positions).astype(jnp.uint32)
        shapes = _shapes(block_alpha, block_beta)
        gamma_alpha, gamma_beta = _attempt(words, 0, counters, shapes, exact)
        logits = _finish_logits(
            words, counters, block_alpha, block_beta, shapes, gamma_alpha.log_v, gamma_beta.log_v
        )
        accepted = gamma_alpha.accepted & gamma_beta.accepted
        return jnp.where(mask, jnp.where(accepted, logits, jnp.nan), -jnp.inf)

    capacity = _retry_capacity(block)

    def reduce(best, values, j):
        """Fold block ``j``'s accepted draws into ``best``. Its pending arms leave as retry
        lanes (the first ``capacity`` of them, gathered while the block is in cache) and, for
        any beyond those, as bits of the blocked layout (almost always all zero)."""
        pending = jnp.isnan(values)
        ids = offset + starts[j] + positions
        found = top_k_with_ids(jnp.where(pending, -jnp.inf, values), ids, k)
        best = _merge_top_k(best, found, k)
        if not exact:
            return best, None
        bits = _pack_bits(pending)
        position, _ = _compact_words(bits, capacity)
        valid = position < block
        position = jnp.where(valid, position, 0)
        block_alpha, block_beta = (
            jax.lax.dynamic_slice_in_dim(x, starts[j], block) for x in (alpha, beta)
        )
        lanes = _Lanes(
            counters=ids[position].astype(jnp.uint32),
            alpha=jnp.where(valid, block_alpha[position], 1.0),
            beta=jnp.where(valid, block_beta[position], 1.0),
            ids=ids[position],
            valid=valid,
        )
        return best, (lanes, _drop_first_bits(bits, capacity))

    # Software pipeline: step j draws block j and reduces block j - 1, which the previous step
    # left in the carry. The carry is a real buffer, so XLA compiles the whole draw into one
    # fused loop with one output (a draw whose values fed the reductions directly was split
    # into ~10 loops that each recompute part of the hashes: 2-3x slower on XLA:CPU). The
    # retry lanes of ``group`` blocks collect in a buffer that is drawn when full, so the
    # retry's loops run once per group instead of once per block and memory stays O(block).
    group = max(1, min(num_blocks, _RETRY_GROUP_ARMS // block))
    empty = _RetryBuffer(
        lanes=_Lanes(
            counters=jnp.zeros((group * capacity,), jnp.uint32),
            alpha=jnp.ones((group * capacity,), jnp.float32),
            beta=jnp.ones((group * capacity,), jnp.float32),
            ids=jnp.full((group * capacity,), -1, jnp.int32),
            valid=jnp.zeros((group * capacity,), bool),
        ),
        overflow=jnp.zeros((group, -(-block // 32)), jnp.uint32),
        starts=jnp.zeros((group,), jnp.int32),
    )

    def collect(best, buffer, values, j):
        """Reduce block ``j`` into ``best`` and ``buffer``; draw the buffer when it is full."""
        best, retry = reduce(best, values, j)
        if not exact:
            return best, buffer
        lanes, overflow = retry
        slot = j % group
        buffer = _RetryBuffer(
            lanes=jax.tree.map(
                lambda xs, x: jax.lax.dynamic_update_slice_in_dim(xs, x, slot * capacity, 0),
                buffer.lanes,
                lanes,
            ),
            overflow=buffer.overflow.at[slot].set(overflow),
            starts=buffer.starts.at[slot].set(starts[j]),
        )
        # Only ``best`` leaves the cond (a buffer returned from it was copied at every step);
        # the drawn slots are overwritten by the next group before its draw.
        best = jax.lax.cond(
            slot == group - 1,
            lambda: _retry_buffer(words, alpha, beta, offset, buffer, best, k),
            lambda: best,
        )
        return best, buffer

    def step(carry, j):
        best, buffer, values = carry
        best, buffer = collect(best, buffer, values, j - 1)
        return (best, buffer, draw(j)), None

    best = (jnp.full((k,), -jnp.inf, jnp.float32), jnp.full((k,), -1, jnp.int32))
    buffer = empty if exact else None
    carry = (best, buffer, draw(0))
    if num_blocks > 1:  # (a zero-length scan fails under jax.disable_jit)
        carry, _ = jax.lax.scan(step, carry, jnp.arange(1, num_blocks, dtype=jnp.int32))
    best, buffer, values = carry
    best, buffer = collect(best, buffer, values, num_blocks - 1)
    filled = num_blocks % group  # slots of the last, partial group (0: already drawn)
    if not exact or filled == 0:
        return best
    stale = jnp.arange(group) >= filled  # drawn with the previous group
    buffer = _RetryBuffer(
        lanes=buffer.lanes._replace(
            valid=buffer.lanes.valid
            & ~jnp.repeat(stale, capacity, total_repeat_length=group * capacity)
        ),
        overflow=jnp.where(stale[:, None], jnp.uint32(0), buffer.overflow),
        starts=buffer.starts,
    )
    return _retry_buffer(words, alpha, beta, offset, buffer, best, k)


_RETRY_GROUP_ARMS = 1 << 20
"""Blocks whose retry lanes are drawn together: as many as hold this many arms."""


class _RetryBuffer(NamedTuple):
    """Retry lanes of a group of blocks, their overflow bits and the blocks' first arms."""

    lanes: Any
    overflow: jax.Array
    starts: jax.Array


def _retry_buffer(words, alpha, beta, offset, buffer, best, k):
    best = _fold_lanes(words, buffer.lanes, best, k, 0)
    return _retry_pending(words, alpha, beta, offset, buffer.overflow, buffer.starts, best, k)


def _drop_first_bits(words: jax.Array, count: int) -> jax.Array:
    """``words`` (bit-packed) with their first ``count`` set bits cleared."""
    counts = jax.lax.population_count(words).astype(jnp.int32)
    before = jnp.cumsum(counts) - counts
    clear = count - before  # set bits to clear in each word (all if >= counts, none if <= 0)
    rank = jnp.clip(clear - 1, 0, 31)  # position of the clear-th set bit, by binary search
    word = words
    position = jnp.zeros_like(counts)
    for width in (16, 8, 4, 2, 1):
        low = jax.lax.population_count(word & jnp.uint32((1 << width) - 1)).astype(jnp.int32)
        high = rank >= low
        rank = jnp.where(high, rank - low, rank)
        word = jnp.where(high, word >> width, word)
        position = jnp.where(high, position + width, position)
    above = words & ~((jnp.uint32(2) << position.astype(jnp.uint32)) - 1)
    return jnp.where(clear <= 0, words, jnp.where(clear >= counts, 0, above).astype(jnp.uint32))


_RETRY_ATTEMPTS = (2,)
"""Attempts drawn, unrolled, at each level of the retry before the still-pending lanes are
compacted into the next level (see ``_fold_lanes``). Each unrolled attempt adds compile time:
on the 2-core Xeon at 1e6 arms, B = 1, ``(2, 6)`` compiles in 9.8 s, ``(2,)`` in 5.4 s and
``()`` in 3.2 s, with run times equal within the noise (9.3-10.4 ms)."""


def _retry_pending(words, alpha, beta, offset, pending, starts, best, k):
    """Merge into ``best`` the exact draws of the pending arms that did not fit their block's
    retry lanes (``pending`` is almost always all zero, and then this costs one reduction).

    ``pending``: ``uint32[blocks, ceil(block / 32)]``, bit ``p`` of row ``b`` is arm
    ``starts[b] + p``. The pending arms are compacted into lanes, ``_retry_capacity`` at a
    time, and drawn by :func:`_fold_lanes`.
    """
    block = pending.shape[1] * 32
    pending = pending.reshape(-1)
    capacity = _retry_capacity(pending.shape[0] * 32)

    def chunk(state):
        best, first = state
        position, total = _compact_words(pending, capacity, first)
        valid = position < pending.shape[0] * 32
        position = jnp.where(valid, position, 0)
        arm = starts[position // block] + position % block
        lanes = _Lanes(
            counters=(offset + arm).astype(jnp.uint32),
            alpha=jnp.where(valid, alpha[arm], 1.0),
            beta=jnp.where(valid, beta[arm], 1.0),
            ids=offset + arm,
            valid=valid,
        )
        return _fold_lanes(words, lanes, best, k, 0), first + capacity

    total = jnp.sum(jax.lax.population_count(pending).astype(jnp.int32))
    best, _ = jax.lax.while_loop(lambda state: state[1] < total, chunk, (best, jnp.int32(0)))
    return best


class _Lanes(NamedTuple):
    """Arms to redraw: their counters, shapes, global ids and which lanes hold an arm."""

    counters: jax.Array
    alpha: jax.Array
    beta: jax.Array
    ids: jax.Array
    valid: jax.Array


def _fold_lanes(words, lanes, best, k, level):
    """Fold the exact draws of ``lanes`` into the top-k ``best``.

    Level ``l < len(_RETRY_ATTEMPTS)`` draws attempts ``0 .. _RETRY_ATTEMPTS[l] - 1`` of every
    lane in one fused pass; the lanes where a gamma rejected all of them are compacted into
    ``size // 16 + 64`` lanes (more chunks if they do not fit) for level ``l + 1``. The last
    level loops over attempts until every gamma accepts (or ``MAX_ATTEMPTS``). Every gamma
    thus takes its first accepted attempt, as the sequential algorithm does; the levels only
    keep the lanes that still work dense (at attempt 0 about 2% of arms reject, and about 2%
    of those again at attempt 1) and each pass a single XLA loop.
    """
    if level == len(_RETRY_ATTEMPTS):
        values = _retry_lanes(words, lanes.counters, lanes.alpha, lanes.beta, lanes.valid)
        drawn = lanes.valid & ~jnp.isnan(values)  # NaN: gave up after MAX_ATTEMPTS
        found = (jnp.where(drawn, values, -jnp.inf), jnp.where(drawn, lanes.ids, -1))
        return _merge_top_k(best, found, k)
    values = _run_once(
        lambda: _draw_lanes(words, lanes, _RETRY_ATTEMPTS[level]),
        jnp.any(lanes.valid).astype(jnp.int32),
        lanes.alpha,
    )
    still = jnp.isnan(values)
    drawn = lanes.valid & ~still
    found = (jnp.where(drawn, values, -jnp.inf), jnp.where(drawn, lanes.ids, -1))
    best = _merge_top_k(best, found, k)
    size = values.shape[0]
    capacity = min(size, size // 16 + 64)
    still_words = _pack_bits(still)

    def chunk(state):
        best, first = state
        lane, _ = _compact_words(still_words, capacity, first)
        valid = lane < size
        lane = jnp.where(valid, lane, 0)
        again = _Lanes(
            lanes.counters[lane], lanes.alpha[lane], lanes.beta[lane], lanes.ids[lane], valid
        )
        return _fold_lanes(words, again, best, k, level + 1), first + capacity

    left = jnp.sum(still.astype(jnp.int32))
    best, _ = jax.lax.while_loop(lambda state: state[1] < left, chunk, (best, jnp.int32(0)))
    return best


def _draw_lanes(words, lanes, attempts):
    """Logits of the lanes whose two gammas both accept within attempts ``0 .. attempts - 1``
    (each gamma takes its first accepted attempt); NaN for the others (still pending), -inf
    where not ``valid``."""
    shapes = _shapes(lanes.alpha, lanes.beta)
    gamma_alpha, gamma_beta = _attempt(words, 0, lanes.counters, shapes, True)
    for attempt in range(1, attempts):
        new_alpha, new_beta = _attempt(words, attempt, lanes.counters, shapes, True)
        gamma_alpha = GammaAttempt(
            jnp.where(gamma_alpha.accepted, gamma_alpha.log_v, new_alpha.log_v),
            gamma_alpha.accepted | new_alpha.accepted,
        )
        gamma_beta = GammaAttempt(
            jnp.where(gamma_beta.accepted, gamma_beta.log_v, new_beta.log_v),
            gamma_beta.accepted | new_beta.accepted,
        )
    logits = _finish_logits(
        words,
        lanes.counters,
        lanes.alpha,
        lanes.beta,
        shapes,
        gamma_alpha.log_v,
        gamma_beta.log_v,
    )
    accepted = gamma_alpha.accepted & gamma_beta.accepted
    return jnp.where(lanes.valid, jnp.where(accepted, logits, jnp.nan), -jnp.inf)


def _run_once(fn, once, like):
    """``fn()`` computed in a ``while_loop`` that runs ``once`` times (a traced 1, so XLA
    cannot inline the loop): the loop boundary makes XLA compile ``fn`` as one fused loop
    with a single output, instead of splitting it between its consumers and recomputing
    shared parts in each (see ``_beta_top_k``). ``like``: an array of ``fn()``'s shape and
    dtype; with ``once = 0`` the result is ``-inf`` everywhere."""
    _, out = jax.lax.while_loop(
        lambda state: state[0] < once,
        lambda state: (state[0] + 1, fn()),
        (jnp.int32(0), jnp.full_like(like, -jnp.inf)),
    )
    return out


def _merge_top_k(best, found, k):
    values = jnp.concatenate([best[0], found[0]])
    ids = jnp.concatenate([best[1], found[1]])
    return top_k_with_ids(values, ids, k)
