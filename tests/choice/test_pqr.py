"""Tabular PQR: exact identification (Geng et al. 2020), anchor shift, estimators, bad input."""

from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.choice import mdp as mdp_lib
from prime_science.choice.pqr import (
    frequency_log_policy,
    frequency_transitions,
    tabular_pqr,
)
from prime_science.choice.solvers import solve_relative
from prime_science.core.errors import InvalidArgumentError
from prime_science.sim.bus_engine import SU_JUDD


def random_model(key, num_states=50, num_actions=3, discount=0.9, dtype=jnp.float64):
    """A random tabular model (this project's test design): r ~ N(0, 1) with anchor column 0
    set to 0, P rows ~ Dirichlet(0.5)."""
    key_reward, key_transitions = jax.random.split(key)
    reward = jax.random.normal(key_reward, (num_states, num_actions), dtype).at[:, 0].set(0.0)
    concentration = jnp.full(num_states, 0.5, dtype)
    transitions = jax.random.dirichlet(
        key_transitions, concentration, (num_actions, num_states), dtype
    )
    return mdp_lib.TabularMDP(
        reward, transitions, jnp.asarray(discount, dtype), jnp.asarray(1.0, dtype)
    )


@jax.jit
def _solve(model):
    relative_value, info = solve_relative(model)
    return mdp_lib.log_choice_probabilities(model, relative_value), info.converged


def exact_log_policy(model):
    log_policy, converged = _solve(model)
    assert bool(converged)
    return log_policy


pqr = jax.jit(tabular_pqr, static_argnames=("method",))
"""Jitted (the value checks run only eagerly: see the bad-input test)."""


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_target_1_recovers_random_mdp_rewards_in_float64(seed):
    with jax.enable_x64(True):
        model = random_model(jax.random.key(seed))
        log_policy = exact_log_policy(model)
        for method in ("solve", "successive"):
            result = pqr(log_policy, model.transitions, model.discount, 0, 0.0, 1.0, method=method)
            assert float(jnp.max(jnp.abs(result.reward - model.rewards))) < 1e-8, method
            assert bool(result.info.converged)
        # Q(s, a) - V(s) = log pi and Q_A is the anchor column of Q
        value = jax.nn.logsumexp(result.q, axis=1)
        np.testing.assert_allclose(result.q - value[:, None], log_policy, atol=1e-9)
        np.testing.assert_allclose(result.anchor_q, result.q[:, 0], atol=0)


@pytest.mark.slow
def test_target_1_float32():
    model = random_model(jax.random.key(0), dtype=jnp.float32)
    log_policy = exact_log_policy(model)  # the model solved in float32 too
    result = jax.jit(tabular_pqr)(log_policy, model.transitions, model.discount)
    assert result.reward.dtype == jnp.float32
    truth = np.asarray(model.rewards, np.float64)
    assert float(np.max(np.abs(np.asarray(result.reward, np.float64) - truth))) < 1e-4


@pytest.mark.slow
def test_target_1_with_scale_and_nonzero_anchor_reward():
    """alpha = 2 and a state-dependent anchor reward: r(s, a_A) = r_A(s) is returned and the
    other columns are exact."""
    with jax.enable_x64(True):
        model = random_model(jax.random.key(5), num_states=20, num_actions=4, discount=0.95)
        anchor_reward = jnp.linspace(-1.0, 2.0, 20)
        rewards = model.rewards.at[:, 2].set(anchor_reward)
        model = model._replace(rewards=rewards, scale=jnp.asarray(2.0))
        result = pqr(exact_log_policy(model), model.transitions, 0.95, 2, anchor_reward, 2.0)
        np.testing.assert_allclose(result.reward, rewards, atol=1e-9)


def test_target_2_anchor_shift_moves_every_reward_by_delta_and_keeps_the_policy():
    with jax.enable_x64(True):
        model = random_model(jax.random.key(3))
        log_policy = exact_log_policy(model)
        base = pqr(log_policy, model.transitions, model.discount)
        for delta in (-2.5, 0.7, 10.0):
            shifted = pqr(log_policy, model.transitions, model.discount, 0, delta)
            assert float(jnp.max(jnp.abs(shifted.reward - base.reward - delta))) < 1e-8
            np.testing.assert_allclose(
                shifted.anchor_q - base.anchor_q, delta / (1 - 0.9), rtol=1e-12
            )
            # the policy implied by the shifted reward is the data's policy
            implied = exact_log_policy(model._replace(rewards=shifted.reward))
            assert float(jnp.max(jnp.abs(implied - log_policy))) < 1e-8


@pytest.mark.slow
def test_target_3_su_judd_keep_reward_with_replace_as_zero_reward_anchor():
    """Anchor = replace with reward 0: r^(x, keep) equals the model's keep-minus-replace
    utility u(x, keep) - u(x, replace) = RC - 0.001 theta11 x (bins x = 0 .. 174, 0-based; with
    Su and Judd's bins x = 1 .. 175 it reads RC - 0.001 theta11 (x - 1))."""
    design = SU_JUDD
    with jax.enable_x64(True):
        model = mdp_lib.bus_engine_mdp(
            design.replacement_cost,
            design.theta11,
            jnp.asarray(design.increment_probs),
            design.num_states,
            design.discount,
        )
        log_policy = exact_log_policy(model)
        result = tabular_pqr(  # eager: the value checks run and pass
            log_policy, model.transitions, design.discount, mdp_lib.REPLACE, 0.0
        )
        utilities = mdp_lib.bus_utilities(
            design.replacement_cost, design.theta11, design.num_states
        )
        keep_minus_replace = utilities[:, mdp_lib.KEEP] - utilities[:, mdp_lib.REPLACE]
        x = np.arange(design.num_states)
        closed_form = design.replacement_cost - 0.001 * design.theta11 * x
        np.testing.assert_allclose(keep_minus_replace, closed_form, atol=1e-12)
        assert float(jnp.max(jnp.abs(result.reward[:, mdp_lib.KEEP] - closed_form))) < 1e-6
        assert float(jnp.max(jnp.abs(result.reward[:, mdp_lib.REPLACE]))) < 1e-6
        # replace probabilities are tiny at low mileage: the inversion still holds
        assert float(jnp.exp(log_policy[0, 1])) < 1e-4


@pytest.mark.slow
def test_jit_vmap_over_anchor_rewards_equals_loop():
    with jax.enable_x64(True):
        model = random_model(jax.random.key(4), num_states=10)
        log_policy = exact_log_policy(model)
        shifts = jnp.array([0.0, 1.0, -3.0])
        batched = jax.jit(
            jax.vmap(lambda d: tabular_pqr(log_policy, model.transitions, 0.9, 0, d).reward)
        )
        looped = [pqr(log_policy, model.transitions, 0.9, 0, d).reward for d in shifts]
        np.testing.assert_allclose(batched(shifts), np.stack(looped), atol=1e-12)
        fn = jax.jit(chex.assert_max_traces(tabular_pqr, n=1))
        fn(log_policy, model.transitions, 0.9)
        fn(log_policy + 0.0, model.transitions, 0.9)


@pytest.mark.slow
def test_frequency_estimators_equal_hand_counts():
    states = jnp.array([0, 0, 0, 1, 1, 2])
    actions = jnp.array([0, 1, 1, 0, 0, 1])
    next_states = jnp.array([1, 2, 2, 0, -1, 2])
    with jax.enable_x64(True):
        log_policy = frequency_log_policy(states, actions, 4, 2, pseudo_count=1.0)
        # n(s, a) = [[1, 2], [2, 0], [0, 1], [0, 0]], +1/2 each, / (n(s) + 1)
        expected = np.array([[1.5, 2.5], [2.5, 0.5], [0.5, 1.5], [0.5, 0.5]])
        expected /= expected.sum(1, keepdims=True)
        np.testing.assert_allclose(np.exp(log_policy), expected, rtol=1e-14)
        transitions = frequency_transitions(states, actions, next_states, 4, 2, pseudo_count=2.0)
        assert transitions.shape == (2, 4, 4)
        # (s=0, a=1): two moves to 2 -> (2 + 2 * 0.25, 0 + 0.5 ...) / (2 + 2)
        np.testing.assert_allclose(transitions[1, 0], [0.125, 0.125, 0.625, 0.125], rtol=1e-14)
        # (s=1, a=0): one observed move to 0 (the -1 is ignored) -> (1.5, .5, .5, .5) / 3
        np.testing.assert_allclose(transitions[0, 1], np.array([1.5, 0.5, 0.5, 0.5]) / 3)
        np.testing.assert_allclose(transitions[0, 3], np.full(4, 0.25))  # unvisited: the prior
        np.testing.assert_allclose(transitions.sum(-1), 1.0, rtol=1e-14)
        # 0/1 weights select a sub-sample at a fixed shape
        mask = jnp.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
        np.testing.assert_allclose(
            frequency_log_policy(states, actions, 4, 2, weights=mask),
            frequency_log_policy(states[:4], actions[:4], 4, 2),
            rtol=1e-14,
        )
        np.testing.assert_allclose(
            frequency_transitions(states, actions, next_states, 4, 2, weights=mask),
            frequency_transitions(states[:4], actions[:4], next_states[:4], 4, 2),
            rtol=1e-14,
        )
        prior = jnp.array([0.0, 0.0, 0.0, 1.0])
        with_prior = frequency_transitions(states, actions, next_states, 4, 2, 1.0, prior)
        np.testing.assert_allclose(with_prior[1, 0], [0.0, 0.0, 2 / 3, 1 / 3], rtol=1e-14)


@pytest.mark.slow
def test_pqr_on_estimates_converges_to_the_truth_with_sample_size():
    """Consistency: PQR on the smoothed frequencies of i.i.d. samples; the reward error at
    n = 400,000 is well below the error at n = 4,000 (sd of a log-frequency ~ 1 / sqrt(n))."""
    with jax.enable_x64(True):
        model = random_model(jax.random.key(6), num_states=10)
        policy = jnp.exp(exact_log_policy(model))

        @partial(jax.jit, static_argnums=1)
        def error(key, n):
            key_s, key_a, key_next = jax.random.split(key, 3)
            states = jax.random.randint(key_s, (n,), 0, 10)
            actions = jax.random.categorical(key_a, jnp.log(policy[states]))
            next_states = jax.random.categorical(
                key_next, jnp.log(model.transitions[actions, states])
            )
            log_policy = frequency_log_policy(states, actions, 10, 3)
            transitions = frequency_transitions(states, actions, next_states, 10, 3)
            reward = pqr(log_policy, transitions, 0.9).reward
            return jnp.sqrt(jnp.mean((reward - model.rewards) ** 2))

        small, large = (float(error(jax.random.key(7), n)) for n in (4_000, 400_000))
        assert large < small / 4, (small, large)
        assert large < 0.1


@pytest.mark.slow
def test_bad_input_raises_named_errors():
    with jax.enable_x64(True):
        model = random_model(jax.random.key(0), num_states=5)
        log_policy = exact_log_policy(model)
        p = model.transitions
        cases = [
            ("anchor", dict(anchor=3)),
            ("anchor", dict(anchor=-1)),
            ("anchor", dict(anchor=0.5)),
            ("log_policy", dict(log_policy=log_policy.at[1, 1].set(jnp.nan))),
            ("log_policy", dict(log_policy=log_policy.at[1, 1].set(-jnp.inf))),
            ("log_policy", dict(log_policy=log_policy + 0.1)),
            ("log_policy", dict(log_policy=log_policy[0])),
            ("transitions", dict(transitions=p.at[0, 0, 0].add(0.1))),
            ("transitions", dict(transitions=p[:, :4])),
            ("discount", dict(discount=1.0)),
            ("discount", dict(discount=-0.1)),
            ("scale", dict(scale=0.0)),
            ("anchor_reward", dict(anchor_reward=jnp.zeros(4))),
            ("anchor_reward", dict(anchor_reward=jnp.nan)),
            ("method", dict(method="newton")),
        ]
        for name, change in cases:
            kwargs = dict(
                log_policy=log_policy, transitions=p, discount=0.9, anchor=0, anchor_reward=0.0
            )
            kwargs.update(change)
            with pytest.raises(InvalidArgumentError, match=f"^{name}:"):
                tabular_pqr(**kwargs)
        states, actions = jnp.array([0, 4]), jnp.array([0, 1])
        with pytest.raises(InvalidArgumentError, match="^states:"):
            frequency_log_policy(jnp.array([0, 5]), actions, 5, 3)
        with pytest.raises(InvalidArgumentError, match="^actions:"):
            frequency_log_policy(states, jnp.array([0, 3]), 5, 3)
        with pytest.raises(InvalidArgumentError, match="^actions:"):
            frequency_log_policy(states, jnp.array([0, 1, 1]), 5, 3)
        with pytest.raises(InvalidArgumentError, match="^pseudo_count:"):
            frequency_log_policy(states, actions, 5, 3, pseudo_count=0.0)
        with pytest.raises(InvalidArgumentError, match="^next_states:"):
            frequency_transitions(states, actions, jnp.array([0, -2]), 5, 3)
        with pytest.raises(InvalidArgumentError, match="^weights:"):
            frequency_log_policy(states, actions, 5, 3, weights=jnp.array([1.0, -1.0]))
        with pytest.raises(InvalidArgumentError, match="^prior:"):
            frequency_transitions(states, actions, jnp.array([0, 1]), 5, 3, prior=jnp.ones(5))
