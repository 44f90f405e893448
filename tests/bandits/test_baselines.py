"""Greedy and uniform baselines over a Beta–Bernoulli state: eligible arms only, fair ties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.bandits.baselines import greedy_sample, uniform_sample
from prime_science.bandits.beta_bernoulli import beta_bernoulli
from prime_science.core.errors import InvalidArgumentError


def test_baselines_pick_active_arms_and_fill_empty_slots():
    policy = beta_bernoulli(prior_alpha=1.0, prior_beta=1.0)
    state = policy.init(10, num_active=6)
    state = policy.update(state, jnp.array([4, 4, 2]), jnp.array([1.0, 1.0, 1.0]))
    greedy = greedy_sample(jax.random.key(0), state, 2)
    np.testing.assert_array_equal(greedy.arms, [4, 2])
    np.testing.assert_allclose(greedy.scores, [3 / 4, 2 / 3], rtol=1e-6)
    uniform = uniform_sample(jax.random.key(0), state, 8)
    np.testing.assert_array_equal(np.sort(uniform.arms), [-1, -1, 0, 1, 2, 3, 4, 5])
    assert np.all(np.isneginf(np.asarray(uniform.scores)[np.asarray(uniform.arms) < 0]))


def test_availability_mask_restricts_both_baselines():
    policy = beta_bernoulli(prior_alpha=1.0, prior_beta=1.0)
    state = policy.update(policy.init(10), jnp.array([4, 4, 2]), jnp.ones(3))
    available = jnp.arange(10) % 2 == 1  # arms 4 and 2 (the best) are not available
    for seed in range(20):
        key = jax.random.key(seed)
        for sample in (greedy_sample, uniform_sample):
            arms = np.asarray(sample(key, state, 3, available).arms)
            assert np.all(arms % 2 == 1) and len(set(arms)) == 3


@pytest.mark.slow
def test_greedy_ties_are_uniform_and_uniform_slates_are_uniform():
    """Five tied arms: each leads greedy with probability 1/5; each arm is in a uniform slate
    of 2 with probability 2/5. 2,000 keys: s.e. <= 0.011, tolerance 0.05 (> 4.5 s.e.)."""
    state = beta_bernoulli(prior_alpha=1.0, prior_beta=1.0).init(5)
    keys = jax.random.split(jax.random.key(1), 2_000)
    leaders = jax.vmap(lambda key: greedy_sample(key, state, 1).arms[0])(keys)
    np.testing.assert_allclose(
        np.bincount(np.asarray(leaders), minlength=5) / 2_000, 0.2, atol=0.05
    )
    slates = jax.vmap(lambda key: uniform_sample(key, state, 2).arms)(keys)
    counts = np.bincount(np.asarray(slates).ravel(), minlength=5) / 2_000
    np.testing.assert_allclose(counts, 0.4, atol=0.05)


@pytest.mark.parametrize("sample", [greedy_sample, uniform_sample])
@pytest.mark.parametrize(
    "arguments, name",
    [
        ((jnp.zeros(3), 1, None), "key"),
        ((jax.random.key(0), 0, None), "k"),
        ((jax.random.key(0), 11, None), "k"),
        ((jax.random.key(0), 2, jnp.arange(10) < 1), "available"),
        ((jax.random.key(0), 1, jnp.ones(9, bool)), "available"),
    ],
)
def test_bad_arguments_raise_named_errors(sample, arguments, name):
    state = beta_bernoulli().init(10)
    key, k, available = arguments
    with pytest.raises(InvalidArgumentError, match=f"^{name}: expected"):
        sample(key, state, k, available)
