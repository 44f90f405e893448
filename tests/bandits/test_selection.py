"""Selection rules against brute force: masked top-k, fair ties, epsilon-greedy, UCB, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

from prime_science.bandits import selection
from prime_science.core.errors import InvalidArgumentError


def brute_top_k(scores, k, available):
    """Rows sorted by (-score, row) among the available ones, padded with -1."""
    rows = [r for r in np.lexsort((np.arange(scores.size), -scores)) if available[r]]
    return (rows + [-1] * k)[:k]


@pytest.mark.parametrize("k", [1, 3, 7])
def test_top_k_is_the_brute_force_ranking_of_available_rows(k):
    rng = np.random.default_rng(k)
    for _ in range(20):
        scores = rng.integers(0, 4, 12).astype(np.float32)  # many ties: they go to the lower row
        available = rng.random(12) < 0.5
        got = selection.top_k(jnp.asarray(scores), k, jnp.asarray(available))
        expected = brute_top_k(scores, k, available)
        np.testing.assert_array_equal(got.arms, expected)
        filled = np.asarray(expected) >= 0
        np.testing.assert_array_equal(np.asarray(got.scores)[filled], scores[expected][filled])
        assert np.all(np.isneginf(np.asarray(got.scores)[~filled]))


@pytest.mark.slow
def test_greedy_takes_every_strictly_better_row_and_breaks_ties_uniformly():
    """Scores [3, 1, 2, 2, 2, 0] with row 0 unavailable, k = 2: both slots go to two distinct
    rows of the tie {2, 3, 4}; over 3,000 keys each tied row leads with frequency 1/3
    (chi-square, p > 1e-3)."""
    scores = jnp.asarray([3.0, 1.0, 2.0, 2.0, 2.0, 0.0])
    available = jnp.asarray([False, True, True, True, True, True])
    keys = jax.random.split(jax.random.key(0), 3000)
    picks = jax.vmap(lambda key: selection.greedy(key, scores, 2, available).arms)(keys)
    picks = np.asarray(picks)
    assert set(picks.ravel()) <= {2, 3, 4} and np.all(picks[:, 0] != picks[:, 1])
    assert st.chisquare(np.bincount(picks[:, 0], minlength=5)[2:]).pvalue > 1e-3
    # strictly better rows always win, best first
    one = selection.greedy(jax.random.key(1), jnp.asarray([0.0, 5.0, 1.0, 4.0]), 3)
    np.testing.assert_array_equal(one.arms, [1, 3, 2])
    np.testing.assert_array_equal(one.scores, [5.0, 4.0, 1.0])


def test_uniform_is_uniform_over_available_rows():
    """k = 2 of the 4 available rows of 8: each available row in a slate with probability 1/2
    (3,000 keys, s.e. 0.009, tolerance 0.04), the others never."""
    available = jnp.asarray([True, False, True, False, True, False, True, False])
    keys = jax.random.split(jax.random.key(2), 3000)
    picks = np.asarray(jax.vmap(lambda key: selection.uniform(key, 8, 2, available).arms)(keys))
    share = np.bincount(picks.ravel(), minlength=8) / 3000
    np.testing.assert_allclose(share[::2], 0.5, atol=0.04)
    np.testing.assert_array_equal(share[1::2], 0.0)


@pytest.mark.slow
def test_epsilon_greedy_extremes_and_explore_rate():
    scores = jnp.asarray([0.0, 1.0, 5.0, 2.0])
    available = jnp.asarray([True, True, False, True])
    keys = jax.random.split(jax.random.key(3), 2000)
    greedy = jax.vmap(lambda key: selection.epsilon_greedy(key, scores, 1, 0.0, available))(keys)
    assert np.all(np.asarray(greedy.arms) == 3)
    explore = jax.vmap(lambda key: selection.epsilon_greedy(key, scores, 1, 1.0, available))(keys)
    counts = np.bincount(np.asarray(explore.arms).ravel(), minlength=4)
    assert counts[2] == 0 and st.chisquare(counts[[0, 1, 3]]).pvalue > 1e-3
    np.testing.assert_array_equal(explore.scores[:, 0], scores[explore.arms[:, 0]])
    # epsilon = 0.3: row 3 is chosen with probability 0.7 + 0.3 / 3 = 0.8 (s.e. 0.009)
    mixed = jax.vmap(lambda key: selection.epsilon_greedy(key, scores, 1, 0.3, available))(keys)
    assert abs(np.mean(np.asarray(mixed.arms) == 3) - 0.8) < 0.04


def test_select_dispatches_and_ucb_is_greedy_on_upper_bounds():
    mean, variance = jnp.asarray([1.0, 0.5, 0.9]), jnp.asarray([0.0, 1.0, 0.01])
    bounds = selection.upper_bounds(mean, variance, 2.0)
    np.testing.assert_allclose(bounds, [1.0, 2.5, 1.1], rtol=1e-6)
    rule = selection.selection_rule("ucb", ucb_scale=2.0)
    chosen = selection.select(rule, jax.random.key(0), bounds, 2)
    np.testing.assert_array_equal(chosen.arms, [1, 2])
    draws = jnp.asarray([0.3, 0.1, 0.7])
    chosen = selection.select(selection.selection_rule("thompson"), jax.random.key(0), draws, 1)
    np.testing.assert_array_equal(chosen.arms, [2])


def test_fewer_available_rows_than_k_fill_empty_slots_under_jit():
    scores = jnp.asarray([1.0, 2.0, 3.0])
    available = jnp.asarray([True, False, True])
    for rule in selection.RULES:
        chosen = jax.jit(selection.select, static_argnums=(0, 3))(
            selection.selection_rule(rule, epsilon=0.5), jax.random.key(0), scores, 3, available
        )
        assert sorted(np.asarray(chosen.arms).tolist()) == [-1, 0, 2]
        assert np.isneginf(np.asarray(chosen.scores)[np.asarray(chosen.arms) == -1]).all()


@pytest.mark.parametrize(
    "available, name, message",
    [
        (np.ones((2, 3), bool), "available", "rank"),
        (np.ones(3, np.int32), "available", "bool"),
        (np.ones(4, bool), "available", "one entry per candidate"),
        (np.asarray([True, False, False]), "available", "at least k = 2"),
    ],
)
def test_bad_masks_raise_named_errors(available, name, message):
    with pytest.raises(InvalidArgumentError, match=f"^{name}: expected.*{message}"):
        selection.check_available(available, 3, 2)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"exploration": "softmax"}, "exploration"),
        ({"epsilon": 1.5}, "epsilon"),
        ({"ucb_scale": -1.0}, "ucb_scale"),
    ],
)
def test_bad_rules_raise_named_errors(kwargs, name):
    with pytest.raises(InvalidArgumentError, match=f"^{name}: expected"):
        selection.selection_rule(**kwargs)
