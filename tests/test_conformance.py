"""Registry-driven conformance suite: every policy passes the same functional checks.

jit == no-jit, vmap over replicates == a loop, the state tree is stable through ``update``,
no retrace across calls with new keys and new states, and the same key gives the same output.
Add a policy by adding a ``PolicyCase`` to ``CASES``.
"""

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.bandits.beta_bernoulli import beta_bernoulli
from prime_science.bandits.probit import probit_adf


class PolicyCase(NamedTuple):
    name: str
    make_policy: Callable[[], Any]
    init: Callable[[Any], Any]  # policy -> initial state
    make_batch: Callable[[jax.Array], tuple]  # key -> update arguments after the state
    candidates: Any = None  # extra argument of sample before k (contextual policies)
    draws_scores: bool = True  # scores are random draws (Thompson); False for greedy / UCB

    def sample(self, policy, key, state, k):
        if self.candidates is None:
            return policy.sample(key, state, k)
        return policy.sample(key, state, self.candidates, k)


def _bernoulli_batch(num_arms: int, size: int = 64):
    def make(key):
        arm_key, reward_key = jax.random.split(key)
        arms = jax.random.randint(arm_key, (size,), 0, num_arms)
        rewards = jax.random.bernoulli(reward_key, 0.3, (size,)).astype(jnp.float32)
        return arms, rewards

    return make


def _feature_batch(num_features: int, num_active: int = 4, size: int = 64):
    def make(key):
        id_key, click_key = jax.random.split(key)
        ids = jax.random.randint(id_key, (size, num_active), 0, num_features)
        return ids, jax.random.bernoulli(click_key, 0.3, (size,)).astype(jnp.float32)

    return make


_CANDIDATES = jax.random.randint(jax.random.key(99), (200, 4), 0, 50)

CASES = [
    PolicyCase(
        "beta_bernoulli",
        lambda: beta_bernoulli(1.0, 1.0),
        lambda policy: policy.init(300),
        _bernoulli_batch(300),
    ),
    PolicyCase(
        "beta_bernoulli_approximate",
        lambda: beta_bernoulli(2.0, 20.0, approximate=True),
        lambda policy: policy.init(300),
        _bernoulli_batch(300),
    ),
    *(
        PolicyCase(
            f"probit_{rule}",
            lambda rule=rule: probit_adf(50, exploration=rule, epsilon=0.2),
            lambda policy: policy.init(),
            _feature_batch(50),
            _CANDIDATES,
            draws_scores=rule == "thompson",
        )
        for rule in ("thompson", "greedy", "epsilon_greedy", "ucb")
    ),
]


@pytest.fixture(params=CASES, ids=lambda case: case.name)
def case(request):
    return request.param


def trained_state(case, seed=0, steps=3):
    policy = case.make_policy()
    state = case.init(policy)
    for step in range(steps):
        state = policy.update(state, *case.make_batch(jax.random.key(seed * 100 + step)))
    return policy, state


def assert_selection_close(a, b):
    np.testing.assert_array_equal(np.asarray(a.arms), np.asarray(b.arms))
    np.testing.assert_allclose(np.asarray(a.scores), np.asarray(b.scores), rtol=1e-5)


def test_jit_equals_no_jit(case):
    policy, state = trained_state(case)
    key = jax.random.key(1)
    with jax.disable_jit():
        eager = case.sample(policy, key, state, 4)
        eager_state = policy.update(state, *case.make_batch(key))
    jitted = jax.jit(partial(case.sample, policy), static_argnums=2)(key, state, 4)
    jitted_state = jax.jit(policy.update)(state, *case.make_batch(key))
    assert_selection_close(eager, jitted)
    for a, b in zip(eager_state, jitted_state, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_vmap_over_replicates_equals_loop(case):
    replicas = [trained_state(case, seed=s)[1] for s in range(3)]
    policy = case.make_policy()
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *replicas)
    keys = jax.random.split(jax.random.key(5), 3)
    batched = jax.vmap(lambda key, state: case.sample(policy, key, state, 2))(keys, stacked)
    for i, state in enumerate(replicas):
        one = case.sample(policy, keys[i], state, 2)
        assert_selection_close(one, jax.tree_util.tree_map(lambda x, i=i: x[i], batched))
    updates = [case.make_batch(jax.random.key(40 + i)) for i in range(3)]
    stacked_updates = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *updates)
    new = jax.vmap(policy.update)(stacked, *stacked_updates)
    for i, state in enumerate(replicas):
        one = policy.update(state, *updates[i])
        for a, b in zip(one, new, strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b[i]), rtol=1e-5, atol=1e-6)


def test_state_tree_is_stable(case):
    policy, state = trained_state(case)
    new = policy.update(state, *case.make_batch(jax.random.key(9)))
    assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(state)
    chex.assert_trees_all_equal_shapes_and_dtypes(new, state)


def test_no_retrace_across_calls(case):
    policy, state = trained_state(case)
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, state):
        batch_key, sample_key = jax.random.split(key)
        selection = case.sample(policy, sample_key, state, 3)
        return policy.update(state, *case.make_batch(batch_key)), selection

    for i in range(4):
        state, _ = step(jax.random.key(i), state)


def test_same_key_same_output_and_new_key_new_output(case):
    policy, state = trained_state(case)
    first = case.sample(policy, jax.random.key(3), state, 5)
    again = case.sample(policy, jax.random.key(3), state, 5)
    other = case.sample(policy, jax.random.key(4), state, 5)
    np.testing.assert_array_equal(np.asarray(first.arms), np.asarray(again.arms))
    np.testing.assert_array_equal(np.asarray(first.scores), np.asarray(again.scores))
    if case.draws_scores:
        assert not np.array_equal(np.asarray(first.scores), np.asarray(other.scores))
