"""Replay (Li et al. 2011): matched rounds ~ n / num_items on uniform logs, updates only on
matches, value = clicks / matches; jit and vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.bandits.beta_bernoulli import beta_bernoulli
from prime_science.core.errors import InvalidArgumentError
from prime_science.evaluation.replay import replay

NUM_ITEMS, NUM_ROUNDS = 10, 4_000


def uniform_log(seed=0):
    rng = np.random.default_rng(seed)
    items = rng.integers(0, NUM_ITEMS, NUM_ROUNDS).astype(np.int32)
    positions = rng.integers(0, 3, NUM_ROUNDS).astype(np.int32)
    rewards = (rng.random(NUM_ROUNDS) < 0.05 + 0.05 * (items == 3)).astype(np.float32)
    return jnp.asarray(items), jnp.asarray(positions), jnp.asarray(rewards)


@pytest.mark.slow  # 4,000 Thompson draws in a scan (about 9 s on a busy machine)
def test_matched_rounds_are_about_n_over_items_for_thompson_sampling():
    policy = beta_bernoulli(1.0, 1.0)
    result, state = replay(
        jax.random.key(0),
        lambda key, state, _: policy.sample(key, state, 3).arms,
        lambda state, _, item, reward: policy.update(state, item[None], reward[None]),
        policy.init(NUM_ITEMS),
        None,
        *uniform_log(),
    )
    expected = NUM_ROUNDS / NUM_ITEMS
    sd = np.sqrt(NUM_ROUNDS * (1 / NUM_ITEMS) * (1 - 1 / NUM_ITEMS))
    assert abs(int(result.num_matched) - expected) < 4 * sd
    # only matched rounds update: the posterior counts equal the matched rounds
    total = float(jnp.sum(state.alpha + state.beta)) - 2 * NUM_ITEMS
    assert total == pytest.approx(int(result.num_matched))
    assert float(result.value) == pytest.approx(float(result.clicks) / int(result.num_matched))


def test_fixed_ranking_matches_exactly_the_logged_rounds_it_names():
    items, positions, rewards = uniform_log(1)
    ranking = jnp.array([3, 1, 7], jnp.int32)
    result, count = replay(
        jax.random.key(0),
        lambda key, state, _: ranking,
        lambda state, _, item, reward: state + 1,
        jnp.int32(0),
        None,
        items,
        positions,
        rewards,
    )
    oracle = np.asarray(ranking)[np.asarray(positions)] == np.asarray(items)
    np.testing.assert_array_equal(np.asarray(result.matched), oracle)
    assert int(count) == oracle.sum() == int(result.num_matched)
    assert float(result.value) == pytest.approx(np.asarray(rewards)[oracle].mean(), rel=1e-6)


def test_contexts_reach_the_policy_and_jit_vmap_work():
    items, positions, rewards = uniform_log(2)
    contexts = items  # a policy that sees the logged item always matches

    def run(key):
        return replay(
            key,
            lambda key, state, context: jnp.stack([context, context, context]),
            lambda state, context, item, reward: state,
            jnp.float32(0),
            contexts,
            items,
            positions,
            rewards,
        )[0]

    result = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), 2))
    assert result.num_matched.tolist() == [NUM_ROUNDS, NUM_ROUNDS]


def test_named_errors():
    items, positions, rewards = uniform_log()
    rank = lambda key, state, _: jnp.zeros(3, jnp.int32)
    keep = lambda state, _, item, reward: state
    with pytest.raises(InvalidArgumentError, match="positions"):
        replay(jax.random.key(0), rank, keep, 0, None, items, positions[:-1], rewards)
    with pytest.raises(InvalidArgumentError, match="items"):
        replay(
            jax.random.key(0), rank, keep, 0, None, items.astype(jnp.float32), positions, rewards
        )
