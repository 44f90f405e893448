"""The arm world: arrival schedule, Bernoulli outcomes, and regret against the top-k oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.evaluation.regret import cumulative_regret, slate_value, topk_oracle_value
from prime_science.sim.arm_world import (
    LONG_AGO,
    active_mask,
    arm_age,
    arrival_schedule,
    make_arm_world,
    pull,
)

NUM_ARMS, NUM_NEW, NUM_ROUNDS, K = 200, 30, 12, 8


@pytest.fixture(scope="module")
def world():
    return make_arm_world(jax.random.key(0), NUM_ARMS, NUM_NEW, NUM_ROUNDS, 0.5, 15.0)


def test_arrivals_activate_at_their_scheduled_round(world):
    first_new = NUM_ARMS - NUM_NEW
    expected_round = 1 + (np.arange(NUM_NEW) * (NUM_ROUNDS - 1)) // NUM_NEW
    np.testing.assert_array_equal(world.arrival_round[first_new:], expected_round)
    np.testing.assert_array_equal(world.arrival_round[:first_new], LONG_AGO)
    arrivals = np.asarray(world.arrivals)
    assert arrivals.shape == (NUM_ROUNDS, -(-NUM_NEW // (NUM_ROUNDS - 1)))
    assert (arrivals[0] == -1).all()  # nothing arrives in round 0
    for t in range(NUM_ROUNDS):
        arriving = arrivals[t][arrivals[t] >= 0]
        np.testing.assert_array_equal(arriving, first_new + np.flatnonzero(expected_round == t))
        now, before = np.asarray(active_mask(world, t)), np.asarray(active_mask(world, t - 1))
        np.testing.assert_array_equal(np.flatnonzero(now & ~before), arriving)
        assert now.sum() == first_new + (expected_round <= t).sum()
        np.testing.assert_array_equal(np.asarray(arm_age(world, t))[arriving], 0)
    # every new arm arrives exactly once
    np.testing.assert_array_equal(np.sort(arrivals[arrivals >= 0]), np.arange(first_new, NUM_ARMS))


def test_schedule_with_fewer_arrivals_than_rounds_leaves_gaps():
    arrival_round, arrivals = arrival_schedule(10, 3, 10)
    np.testing.assert_array_equal(arrival_round[7:], [1, 4, 7])
    assert arrivals.shape == (10, 1)
    np.testing.assert_array_equal(np.flatnonzero(arrivals[:, 0] >= 0), [1, 4, 7])


@pytest.mark.parametrize(
    ("args", "name"),
    [((10, 10, 5), "num_new_arms"), ((10, -1, 5), "num_new_arms"), ((10, 2, 1), "num_rounds")],
)
def test_schedule_rejects_bad_sizes(args, name):
    with pytest.raises(InvalidArgumentError, match=name):
        arrival_schedule(*args)


def test_world_rejects_bad_prior():
    with pytest.raises(InvalidArgumentError, match="prior_alpha"):
        make_arm_world(jax.random.key(0), 10, 2, 5, 0.0, 1.0)


def test_click_rates_follow_the_prior():
    # mean of Beta(0.5, 15) is 1/31; the s.e. of the mean of 1e5 draws is about 1.4e-4
    world = make_arm_world(jax.random.key(1), 100_000, 10, 5, 0.5, 15.0)
    p = np.asarray(world.click_prob)
    assert ((p >= 0) & (p <= 1)).all()
    assert abs(p.mean() - 1 / 31) < 5 * p.std() / np.sqrt(p.size)


def test_pull_is_bernoulli_with_common_random_numbers(world):
    arms = jnp.array([3, 7, -1, 150], jnp.int32)
    keys = jax.random.split(jax.random.key(2), 20_000)
    rewards = np.asarray(jax.vmap(lambda key: pull(key, world, arms))(keys))
    assert set(np.unique(rewards)) <= {0.0, 1.0}
    assert (rewards[:, 2] == 0).all()  # empty slot
    p = np.asarray(world.click_prob)[[3, 7, 150]]
    se = np.sqrt(p * (1 - p) / keys.shape[0]) + 1e-4
    np.testing.assert_array_less(np.abs(rewards[:, [0, 1, 3]].mean(0) - p), 5 * se)
    # the outcome of an arm depends on the key and the arm only, not on the rest of the slate
    other_slate = jnp.array([150, 9, 3, 11], jnp.int32)
    again = np.asarray(jax.vmap(lambda key: pull(key, world, other_slate))(keys))
    np.testing.assert_array_equal(again[:, 0], rewards[:, 3])
    np.testing.assert_array_equal(again[:, 2], rewards[:, 0])


def _regret_trace(world, choose):
    """Per-round regret of a slate rule ``choose(key, active) -> arms`` over the horizon."""

    def step(_, inputs):
        t, key = inputs
        active = active_mask(world, t)
        arms = choose(key, active)
        oracle = topk_oracle_value(world.click_prob, active, K)
        return None, oracle - slate_value(world.click_prob, arms)

    keys = jax.random.split(jax.random.key(3), NUM_ROUNDS)
    return jax.lax.scan(step, None, (jnp.arange(NUM_ROUNDS), keys))[1]


def test_oracle_policy_has_zero_regret_and_others_nonnegative(world):
    def oracle(key, active):
        return jax.lax.top_k(jnp.where(active, world.click_prob, -jnp.inf), K)[1]

    def random_slate(key, active):
        return jax.lax.top_k(jnp.where(active, jax.random.uniform(key, active.shape), -1.0), K)[1]

    np.testing.assert_array_equal(_regret_trace(world, oracle), 0.0)
    regret = np.asarray(_regret_trace(world, random_slate))
    assert (regret >= 0).all() and regret.sum() > 0
    np.testing.assert_allclose(cumulative_regret(regret), np.cumsum(regret), rtol=1e-6)


def test_oracle_value_with_fewer_active_arms_than_slots():
    p = jnp.array([0.1, 0.5, 0.2, 0.9])
    active = jnp.array([True, False, True, False])
    assert float(topk_oracle_value(p, active, 3)) == pytest.approx(0.3)
    assert float(slate_value(p, jnp.array([2, 0, -1]))) == pytest.approx(0.3)
