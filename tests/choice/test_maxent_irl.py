"""MaxEnt IRL (state-only linear reward): recovery, gradients vs finite differences, its blind
spot (action-dependent rewards) and bad input."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.choice import maxent_irl as me
from prime_science.choice import mdp as mdp_lib
from prime_science.choice.solvers import solve_relative
from prime_science.core.errors import InvalidArgumentError
from prime_science.sim.bus_engine import SU_JUDD

THETA = jnp.array([1.0, -0.5, 2.0])
NUM_STATES, NUM_ACTIONS, DISCOUNT = 30, 3, 0.9

fit = jax.jit(me.maxent_irl, static_argnames=("max_iters", "damping"))


def state_only_model(key):
    """Random features ``N(0, 1)`` and Dirichlet(0.5) transitions; true ``theta = THETA``."""
    key_features, key_transitions = jax.random.split(key)
    features = jax.random.normal(key_features, (NUM_STATES, THETA.shape[0]), jnp.float64)
    transitions = jax.random.dirichlet(
        key_transitions, jnp.full(NUM_STATES, 0.5), (NUM_ACTIONS, NUM_STATES)
    )
    return features, transitions


@jax.jit
def true_log_policy(features, transitions):
    return me.maxent_log_policy(THETA, features, transitions, DISCOUNT)[0]


def test_choice_counts_equal_hand_counts():
    with jax.enable_x64(True):
        counts = me.choice_counts(jnp.array([0, 0, 2, 2, 2]), jnp.array([1, 1, 0, 1, 1]), 3, 2)
        np.testing.assert_array_equal(counts, [[0, 2], [0, 0], [1, 2]])
        assert counts.dtype == jnp.float64


@pytest.mark.slow
def test_exact_recovery_from_expected_counts():
    """Oracle: with counts n(s, a) = N pi_theta(a | s) the likelihood is maximised at theta."""
    with jax.enable_x64(True):
        features, transitions = state_only_model(jax.random.key(1))
        counts = 1_000.0 * jnp.exp(true_log_policy(features, transitions))
        result = fit(features, transitions, DISCOUNT, counts)
        assert bool(result.info.converged) and float(result.inner_residual) < 1e-9
        np.testing.assert_allclose(result.params, THETA, atol=1e-6)
        np.testing.assert_allclose(result.reward, features @ THETA, atol=1e-5)


@pytest.mark.slow
def test_recovers_theta_from_a_large_sample_within_standard_errors():
    """n = 100,000 i.i.d. pairs (s uniform, a ~ pi_theta); |theta^ - theta| < 4 s.e. per
    coordinate, s.e. from the inverse Fisher information at theta^ (fixed key; P(|z| > 4) =
    6e-5 per coordinate)."""
    with jax.enable_x64(True):
        features, transitions = state_only_model(jax.random.key(1))
        log_policy = true_log_policy(features, transitions)
        key_states, key_actions = jax.random.split(jax.random.key(2))
        states = jax.random.randint(key_states, (100_000,), 0, NUM_STATES)
        actions = jax.random.categorical(key_actions, log_policy[states])
        counts = me.choice_counts(states, actions, NUM_STATES, NUM_ACTIONS)
        result = fit(features, transitions, DISCOUNT, counts)
        assert bool(result.info.converged)
        scores, fitted, _ = jax.jit(me.maxent_scores)(result.params, features, transitions, 0.9)
        weights = counts.sum(1)[:, None] * jnp.exp(fitted)
        information = jnp.einsum("sa,sak,sal->kl", weights, scores, scores)
        standard_errors = np.sqrt(np.diag(np.linalg.inv(np.asarray(information))))
        z = (np.asarray(result.params) - np.asarray(THETA)) / standard_errors
        assert np.all(np.abs(z) < 4.0), (result.params, standard_errors)
        assert np.all(standard_errors < 0.2)


@pytest.mark.slow
def test_gradient_closed_form_equals_autodiff_and_finite_differences():
    with jax.enable_x64(True):
        features, transitions = state_only_model(jax.random.key(3))
        counts = jax.random.uniform(jax.random.key(4), (NUM_STATES, NUM_ACTIONS)) * 10.0
        params = jnp.array([0.3, 0.2, -0.7])
        for scale in (1.0, 0.5):
            loglik = jax.jit(
                partial(
                    me.maxent_log_likelihood,
                    features=features,
                    transitions=transitions,
                    discount=DISCOUNT,
                    counts=counts,
                    scale=scale,
                )
            )
            autodiff = jax.jit(jax.grad(loglik))(params)
            scores, _, _ = jax.jit(me.maxent_scores)(params, features, transitions, DISCOUNT, scale)
            closed_form = jnp.einsum("sa,sak->k", counts, scores)
            eps = 1e-6
            finite = np.array(
                [
                    (loglik(params + eps * e) - loglik(params - eps * e)) / (2 * eps)
                    for e in np.eye(3)
                ]
            )
            np.testing.assert_allclose(closed_form, autodiff, rtol=1e-9)
            np.testing.assert_allclose(closed_form, finite, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_cannot_represent_the_bus_replacement_cost():
    """Su-Judd bus, expected counts of the true model, features (1, 0.001 x): the fit's
    keep-minus-replace reward is 0 in every state (true: RC - 0.001 theta11 x), the constant
    feature is not identified (it stays at its start), and its likelihood is below the true
    model's."""
    design = SU_JUDD
    with jax.enable_x64(True):
        model = mdp_lib.bus_engine_mdp(
            design.replacement_cost,
            design.theta11,
            jnp.asarray(design.increment_probs),
            design.num_states,
            design.discount,
        )
        relative_value, _ = jax.jit(solve_relative)(model)
        log_policy = mdp_lib.log_choice_probabilities(model, relative_value)
        counts = 100.0 * jnp.exp(log_policy)
        x = jnp.arange(design.num_states, dtype=jnp.float64)
        features = jnp.stack([jnp.ones_like(x), 0.001 * x], -1)
        result = fit(features, model.transitions, design.discount, counts)
        assert bool(result.info.converged)
        assert abs(float(result.params[0])) < 1e-3, result.params  # rounding only
        assert float(jnp.sum(counts * log_policy)) > float(result.log_likelihood) + 1.0
        # a state-only reward: both actions earn r(x); replace is the better action only if
        # the reward *rises* with mileage, so the best fit has a positive slope
        assert float(result.params[1]) > 0.0, result.params


def test_bad_input_raises_named_errors():
    with jax.enable_x64(True):
        features, transitions = state_only_model(jax.random.key(0))
        counts = jnp.ones((NUM_STATES, NUM_ACTIONS))
        with pytest.raises(InvalidArgumentError, match="^features:"):
            me.maxent_irl(features[0], transitions, DISCOUNT, counts)
        with pytest.raises(InvalidArgumentError, match="^transitions:"):
            me.maxent_irl(features, transitions[:, :5], DISCOUNT, counts)
        with pytest.raises(InvalidArgumentError, match="^counts:"):
            me.maxent_irl(features, transitions, DISCOUNT, counts[:, :2])
        with pytest.raises(InvalidArgumentError, match="^discount:"):
            me.maxent_irl(features, transitions, 1.0, counts)
        with pytest.raises(InvalidArgumentError, match="^states:"):
            me.choice_counts(jnp.array([0, NUM_STATES]), jnp.array([0, 1]), NUM_STATES, 3)
        with pytest.raises(InvalidArgumentError, match="^actions:"):
            me.choice_counts(jnp.array([0, 1]), jnp.array([0.0, 1.0]), NUM_STATES, 3)
