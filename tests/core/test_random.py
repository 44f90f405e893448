"""The counter-based Beta sampler against exact distributions and brute-force oracles.

Goodness of fit. Each shape pair is checked with a Kolmogorov–Smirnov test of the sampled
logits ``log X - log Y`` against the exact CDF ``P(logit <= t) = I_{sigmoid(t)}(alpha, beta)``
(scipy, float64). The logit scale is where the sampler is exact; the float32 probability
``sigmoid(logit)`` rounds to exactly 0 or 1 for tiny shapes (tested separately below).
Failure budget: each check rejects at p < 1e-3, so for a correct sampler and a random key the
whole grid of 16 pairs fails with probability <= 1.6%; keys are fixed, so the outcome is
deterministic. ``test_ks_has_power`` shows the same test rejects a sampler that is off by 2%.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as st

from prime_science.core import random as pr

NUM_DRAWS = 40_000
SHAPES = [
    (0.1, 0.1),
    (0.1, 5.0),
    (0.5, 0.5),
    (1.0, 1.0),
    (1.0, 30.0),
    (2.0, 100.0),
    (2.999, 3.0),
    (3.0, 7.5),
    (10.0, 10.0),
    (37.0, 1200.0),
    (1e3, 1e5),
    (1e4, 1e4),
    (1e5, 1.0),
    (1e6, 1e6),
    (1e6, 0.3),
    (0.25, 1e6),
]

_logits = jax.jit(pr.beta_logits, static_argnames="exact")


def logit_cdf(alpha, beta):
    """Exact CDF of log X - log Y for X ~ G(alpha), Y ~ G(beta), stable in both tails."""

    def cdf(t):
        return np.where(
            t < 0, sp.betainc(alpha, beta, sp.expit(t)), 1 - sp.betainc(beta, alpha, sp.expit(-t))
        )

    return cdf


def draw(alpha, beta, seed, n=NUM_DRAWS, exact=True):
    a = jnp.full(n, alpha, jnp.float32)
    b = jnp.full(n, beta, jnp.float32)
    return np.asarray(_logits(jax.random.key(seed), a, b, exact=exact), np.float64)


@pytest.mark.slow
@pytest.mark.parametrize("alpha,beta", SHAPES)
def test_exact_sampler_matches_beta(alpha, beta):
    logits = draw(alpha, beta, seed=11)
    assert np.all(np.isfinite(logits))
    assert st.kstest(logits, logit_cdf(alpha, beta)).pvalue > 1e-3


def test_ks_has_power():
    """The GOF test is not vacuous: shapes 2% off are rejected decisively."""
    logits = draw(50.0, 50.0, seed=11, n=200_000)
    assert st.kstest(logits, logit_cdf(50.0, 51.0)).pvalue < 1e-6


def test_mixed_shapes_in_one_call():
    """Per-arm shapes in one array (boosted and not, exact retries mixed in)."""
    rng = np.random.default_rng(0)
    pairs = [(0.3, 2.0), (1.0, 1.0), (4.0, 90.0), (2e3, 5e4)]
    alpha = np.repeat([p[0] for p in pairs], 20_000).astype(np.float32)
    beta = np.repeat([p[1] for p in pairs], 20_000).astype(np.float32)
    perm = rng.permutation(alpha.size)
    logits = np.asarray(
        _logits(jax.random.key(5), jnp.asarray(alpha[perm]), jnp.asarray(beta[perm]))
    )
    for a, b in pairs:
        chosen = logits[(alpha[perm] == np.float32(a)) & (beta[perm] == np.float32(b))]
        assert st.kstest(chosen.astype(np.float64), logit_cdf(a, b)).pvalue > 1e-3


@pytest.mark.parametrize(
    "alpha,beta", [(0.5, 0.5), (1.0, 30.0), (3.0, 7.5), (30.0, 1000.0), (1e4, 1e6)]
)
def test_approximate_sampler_accuracy(alpha, beta):
    """Wilson–Hilferty mode: Kolmogorov distance to the exact law below 0.012 at every shape
    (measured 0.003-0.009 with 1e5 draws; at both shapes >= 10 it is within sampling noise)."""
    logits = draw(alpha, beta, seed=3, n=100_000, exact=False)
    assert st.kstest(logits, logit_cdf(alpha, beta)).statistic < 0.012


@pytest.mark.slow
def test_rejections_are_retried_not_dropped():
    """Arms whose attempt 0 rejects get the value of their first accepted attempt."""
    n = 50_000
    alpha = jnp.full(n, 1.0)
    beta = jnp.full(n, 1.0)
    key = jax.random.key(2)
    words = pr.key_words(key)
    counters = jnp.arange(n, dtype=jnp.uint32)
    shapes = pr._shapes(alpha, beta)
    logits = _logits(key, alpha, beta)
    first_alpha, first_beta = pr._attempt(words, 0, counters, shapes, True)
    both = np.asarray(first_alpha.accepted & first_beta.accepted)
    assert 0.005 < 1 - both.mean() < 0.06  # some arms did need a retry
    # Arms accepted at attempt 0 equal the fast-pass formula (to float32 rounding: the
    # oracle runs op by op, the sampler as one fused XLA kernel).
    direct = pr._finish_logits(
        words, counters, alpha, beta, shapes, first_alpha.log_v, first_beta.log_v
    )
    np.testing.assert_allclose(np.asarray(logits)[both], np.asarray(direct)[both], atol=1e-5)
    # Oracle for the rest: walk each gamma's attempts sequentially in numpy.
    attempts = [pr._attempt(words, t, counters, shapes, True) for t in range(12)]
    log_v = {}
    for which in (0, 1):
        accepted = np.stack([np.asarray(a[which].accepted) for a in attempts])
        values = np.stack([np.asarray(a[which].log_v) for a in attempts])
        first = np.argmax(accepted, axis=0)
        log_v[which] = values[first, np.arange(n)]
    oracle = pr._finish_logits(
        words, counters, alpha, beta, shapes, jnp.asarray(log_v[0]), jnp.asarray(log_v[1])
    )
    np.testing.assert_allclose(np.asarray(logits), np.asarray(oracle), atol=1e-5)


@pytest.mark.slow
def test_overflowing_retry_buffer_is_handled():
    """More rejected arms than the retry buffer holds: processed in further chunks, exactly."""
    n = 4096
    alpha = jnp.full(n, 3.0)
    beta = jnp.full(n, 3.0)
    key = jax.random.key(9)
    full = np.asarray(_logits(key, alpha, beta))
    small = pr._retry_capacity
    try:
        pr._retry_capacity = lambda num_arms: 8
        chunked = np.asarray(jax.jit(lambda k, a, b: pr.beta_logits(k, a, b))(key, alpha, beta))
    finally:
        pr._retry_capacity = small
    first_alpha, first_beta = pr._attempt(
        pr.key_words(key), 0, jnp.arange(n, dtype=jnp.uint32), pr._shapes(alpha, beta), True
    )
    assert int(jnp.sum(~(first_alpha.accepted & first_beta.accepted))) > 3 * 8
    np.testing.assert_allclose(full, chunked, atol=1e-5)


@pytest.mark.slow
def test_compact_indices_matches_nonzero():
    rng = np.random.default_rng(1)
    for size, rate, capacity in [(1000, 0.1, 50), (1000, 0.1, 400), (77, 0.5, 77), (64, 0.0, 8)]:
        mask = rng.uniform(size=size) < rate
        index, count = pr.compact_indices(jnp.asarray(mask), capacity)
        expected = np.nonzero(mask)[0]
        assert int(count) == expected.size
        used = min(capacity, expected.size)
        np.testing.assert_array_equal(np.asarray(index)[:used], expected[:used])
        assert np.all(np.asarray(index)[used:] == size)


@pytest.mark.slow
@pytest.mark.parametrize(
    "k,block_size", [(1, 1 << 16), (3, 1 << 16), (17, 1 << 16), (1, 512), (5, 700)]
)
def test_top_k_equals_sorting_the_same_draws(k, block_size):
    """Blocked top-k (scan over blocks + a tail block) equals sorting all draws."""
    rng = np.random.default_rng(4)
    n = 5000
    alpha = jnp.asarray(rng.uniform(0.2, 50, n), jnp.float32)
    beta = jnp.asarray(rng.uniform(0.2, 500, n), jnp.float32)
    active = jnp.asarray(rng.uniform(size=n) < 0.7)
    key = jax.random.key(8)
    logits = np.asarray(jax.jit(pr.beta_logits)(key, alpha, beta))
    logits = np.where(np.asarray(active), logits, -np.inf)
    order = np.argsort(-logits, kind="stable")[:k]
    top = jax.jit(pr.beta_top_k, static_argnames=("k", "block_size"))
    values, ids = top(key, alpha, beta, active, k=k, block_size=block_size)
    np.testing.assert_array_equal(np.asarray(ids), order)
    np.testing.assert_allclose(np.asarray(values), logits[order], atol=1e-5)


@pytest.mark.slow
def test_arm_offset_selects_the_global_counter():
    """A block with offset o draws exactly what positions [o, o + m) of the full array draw."""
    n, offset, m = 1000, 600, 200
    alpha = jnp.linspace(0.5, 40.0, n)
    beta = jnp.linspace(80.0, 1.0, n)
    key = jax.random.key(1)
    full = pr.beta_logits(key, alpha, beta)
    block = pr.beta_logits(
        key, alpha[offset : offset + m], beta[offset : offset + m], arm_offset=offset
    )
    np.testing.assert_array_equal(np.asarray(full[offset : offset + m]), np.asarray(block))


def test_bits_are_uniform_and_streams_independent():
    """Chi-square on the top byte of two streams and of their pairs (fixed key, p > 1e-3)."""
    counters = jnp.arange(1 << 18, dtype=jnp.uint32)
    words = pr.key_words(jax.random.key(0))
    a = np.asarray(pr.random_bits(words, 0, counters) >> 24)
    b = np.asarray(pr.random_bits(words, 1, counters) >> 24)
    for x in (a, b):
        assert st.chisquare(np.bincount(x, minlength=256)).pvalue > 1e-3
    pairs = (a >> 4) * 16 + (b >> 4)
    assert st.chisquare(np.bincount(pairs, minlength=256)).pvalue > 1e-3
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01


def test_box_muller_sincos_accuracy():
    u = jnp.linspace(0.0, 1.0, 100_001, endpoint=False, dtype=jnp.float32)
    sin, cos = pr._sincos_2pi(u)
    ref = 2 * np.pi * np.asarray(u, np.float64)
    assert np.max(np.abs(np.asarray(sin) - np.sin(ref))) < 3e-7
    assert np.max(np.abs(np.asarray(cos) - np.cos(ref))) < 3e-7


def test_gamma_acceptance_test_is_stable_for_huge_shapes():
    """The series form of the log-acceptance test keeps float32 draws of G(1e7) exact."""
    logits = draw(1e7, 1e7, seed=4, n=20_000)
    assert st.kstest(logits, logit_cdf(1e7, 1e7)).pvalue > 1e-3


@pytest.mark.slow
def test_ties_at_one_do_not_favour_low_ids():
    """Beta(1, 0.02) rounds to 1.0 in float32 in most draws; the logit keeps a fair order."""
    n = 64
    alpha = jnp.full(n, 1.0)
    beta = jnp.full(n, 0.02)
    probs = jax.nn.sigmoid(pr.beta_logits(jax.random.key(0), alpha, beta))
    assert np.mean(np.asarray(probs) == 1.0) > 0.5  # the float32 rounding is real
    pick = jax.jit(lambda key: pr.beta_top_k(key, alpha, beta, jnp.ones(n, bool), 1)[1][0])
    winners = np.asarray(jax.vmap(pick)(jax.random.split(jax.random.key(1), 4000)))
    counts = np.bincount(winners, minlength=n)
    assert st.chisquare(counts).pvalue > 1e-3


@pytest.mark.slow
def test_compact_words_from_any_rank_matches_nonzero():
    """The scatter + running-max compaction, from rank ``first`` on, against ``np.nonzero``."""
    rng = np.random.default_rng(2)
    for size, rate, capacity in [(1000, 0.1, 50), (4096, 0.3, 100), (77, 0.5, 77), (64, 0.0, 8)]:
        mask = rng.uniform(size=size) < rate
        expected = np.nonzero(mask)[0]
        words = pr._pack_bits(jnp.asarray(mask))
        for first in sorted({0, 1, 7, capacity, max(expected.size - 1, 0), expected.size + 3}):
            index, count = pr._compact_words(words, capacity, first)
            index = np.asarray(index)
            want = expected[first : first + capacity]
            assert int(count) == expected.size
            np.testing.assert_array_equal(index[: want.size], want)
            assert np.all(index[want.size :] == 32 * words.shape[0])


def test_drop_first_bits_clears_exactly_the_first_set_bits():
    rng = np.random.default_rng(3)
    for rate in (0.05, 0.3, 0.9):
        mask = rng.uniform(size=4096) < rate
        words = pr._pack_bits(jnp.asarray(mask))
        for count in (0, 1, 5, 31, 32, 33, 100, int(mask.sum()), 5000):
            expected = mask.copy()
            expected[np.nonzero(mask)[0][:count]] = False
            np.testing.assert_array_equal(
                np.asarray(pr._drop_first_bits(words, count)),
                np.asarray(pr._pack_bits(jnp.asarray(expected))),
            )


@pytest.mark.slow
@pytest.mark.parametrize(
    "capacity,attempts,group",
    [
        (lambda n: 8, (2, 6), 1 << 20),
        (lambda n: 3, (1,), 8192),
        (lambda n: n // 32 + 64, (1, 1), 12288),
    ],
    ids=["tiny-buffer", "one-level", "partial-group"],
)
def test_retry_paths_equal_sorting_the_same_draws(monkeypatch, capacity, attempts, group):
    """Every retry path of the blocked top-k (block lanes that overflow into the bit-packed
    fallback, one or several unrolled levels, groups of blocks drawn together, a last partial
    group) gives exactly the draws of ``beta_logits``: shapes near 0.3 reject often."""
    monkeypatch.setattr(pr, "_retry_capacity", capacity)
    monkeypatch.setattr(pr, "_RETRY_ATTEMPTS", attempts)
    monkeypatch.setattr(pr, "_RETRY_GROUP_ARMS", group)
    rng = np.random.default_rng(6)
    n, k = 30_000, 200
    alpha = jnp.asarray(rng.uniform(0.2, 0.5, n), jnp.float32)
    beta = jnp.asarray(rng.uniform(0.2, 3.0, n), jnp.float32)
    active = jnp.asarray(rng.uniform(size=n) < 0.9)
    key = jax.random.key(12)
    logits = np.where(np.asarray(active), np.asarray(pr.beta_logits(key, alpha, beta)), -np.inf)
    order = np.argsort(-logits, kind="stable")[:k]
    values, ids = pr._beta_top_k.__wrapped__(key, alpha, beta, active, 0, k, True, 4096)
    np.testing.assert_array_equal(np.asarray(ids), order)
    np.testing.assert_allclose(np.asarray(values), logits[order], atol=1e-5)
