"""Soft Bellman solvers: float64 numpy value iteration as the oracle, Newton vs successive
approximation, implicit derivatives vs finite differences, vmap, bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.choice import mdp as mdp_lib
from prime_science.choice import solvers
from prime_science.core.errors import InvalidArgumentError

SU_JUDD_PROBS = (0.0937, 0.4475, 0.4459, 0.0127, 0.0002)


def random_mdp(seed, num_states=50, num_actions=3, discount=0.9, scale=1.0):
    """A random tabular MDP (this project's test design): r ~ N(0, 1), rows ~ Dirichlet(0.5)."""
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(num_states, num_actions))
    transitions = rng.dirichlet(0.5 * np.ones(num_states), size=(num_actions, num_states))
    return rewards, transitions, discount, scale


def numpy_value_iteration(rewards, transitions, discount, scale, iters):
    value = np.zeros(rewards.shape[0])
    for _ in range(iters):
        q = (rewards + discount * np.einsum("ast,t->sa", transitions, value)) / scale
        top = q.max(1)
        value = scale * (top + np.log(np.exp(q - top[:, None]).sum(1)))
    return value


@pytest.mark.slow
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_fixed_point_equals_float64_numpy_value_iteration(scale):
    args = random_mdp(0, scale=scale)
    oracle = numpy_value_iteration(*args, iters=500)  # 0.9^500 ~ 1e-23
    with jax.enable_x64(True):
        model = mdp_lib.make_mdp(*args)
        for solve in (solvers.newton_kantorovich, solvers.successive_approximation):
            value, info = jax.jit(lambda m, solve=solve: solve(m, tol=1e-12))(model)
            assert bool(info.converged)
            np.testing.assert_allclose(np.asarray(value), oracle, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_value_iteration_converges_geometrically_at_rate_beta():
    """The library's soft Bellman operator is a beta-contraction (Rust 1987): iterated from 0,
    its sup-norm error to the Newton-Kantorovich fixed point shrinks at least like beta^k, and
    not much faster (the rate is beta, not better, on a random MDP)."""
    with jax.enable_x64(True):
        model = mdp_lib.make_mdp(*random_mdp(1, discount=0.8))
        exact, info = solvers.newton_kantorovich(model, tol=1e-13)
        assert bool(info.converged)
        value, errors = jnp.zeros_like(exact), []
        for _ in range(20):
            value = mdp_lib.soft_bellman(model, value)
            errors.append(float(jnp.max(jnp.abs(value - exact))))
    errors = np.asarray(errors)
    ratios = errors[1:] / errors[:-1]
    assert np.all(ratios <= 0.8 * (1 + 1e-9))
    assert ratios[-1] > 0.79  # the rate is beta itself (a constant shift contracts at exactly beta)


@pytest.mark.slow
@pytest.mark.parametrize("discount", [0.975, 0.9999])
def test_newton_equals_successive_approximation_on_the_bus_model(discount):
    @jax.jit
    def solve_all(theta):
        model = mdp_lib.bus_engine_mdp(theta[0], theta[1], jnp.array(SU_JUDD_PROBS), 175, discount)
        newton = solvers.newton_kantorovich(model, tol=1e-12)
        successive = solvers.successive_approximation(model, tol=1e-12)
        relative = (
            solvers.solve_relative(model, tol=1e-12)[0],
            solvers.solve_relative(model, method="successive", tol=1e-12)[0],
        )
        residual = mdp_lib.soft_bellman(model, newton[0]) - newton[0]
        return newton, successive, relative, jnp.max(jnp.abs(residual))

    with jax.enable_x64(True):
        (newton, newton_info), (successive, successive_info), relative, residual = solve_all(
            jnp.array([11.7257, 2.4569])
        )
    assert bool(newton_info.converged) and bool(successive_info.converged)
    assert int(newton_info.num_iters) < int(successive_info.num_iters)
    np.testing.assert_allclose(relative[0], relative[1], atol=1e-9)
    # the absolute value carries g / (1 - beta), which scales the error by up to 1e4
    np.testing.assert_allclose(newton, successive, rtol=1e-10)
    assert float(residual) < 1e-9


@pytest.mark.slow
def test_relative_form_is_accurate_in_float32_at_beta_9999():
    """The choice probabilities from float32 (relative value) match float64's."""

    @jax.jit
    def probabilities(theta):
        model = mdp_lib.bus_engine_mdp(theta[0], theta[1], theta[2:], 90, 0.9999)
        relative_value, info = solvers.solve_relative(model)
        return mdp_lib.choice_probabilities(model, relative_value), info

    theta = np.array([10.075, 2.293, 0.39, 0.6, 0.01])
    with jax.enable_x64(True):
        probs64, _ = probabilities(jnp.asarray(theta, jnp.float64))
    probs32, info = probabilities(jnp.asarray(theta, jnp.float32))
    assert probs32.dtype == jnp.float32 and bool(info.converged)
    np.testing.assert_allclose(probs32, probs64, atol=2e-5)


@pytest.mark.slow
def test_implicit_gradient_equals_finite_differences():
    @jax.jit
    def loss(theta):
        model = mdp_lib.bus_engine_mdp(theta[0], theta[1], theta[2:], 90, 0.99)
        value, _ = solvers.newton_kantorovich(model, tol=1e-12)
        probs = mdp_lib.choice_probabilities(model, value)
        return jnp.sum(jnp.log(probs[::7, 1])) + 1e-4 * value[30]

    with jax.enable_x64(True):
        theta = jnp.array([9.0, 2.5, 0.35, 0.6, 0.05])
        eps = 1e-6
        finite = np.array(
            [(loss(theta + eps * e) - loss(theta - eps * e)) / (2 * eps) for e in np.eye(5)]
        )
        reverse = jax.jit(jax.grad(loss))(theta)
        forward = jax.jit(jax.jacfwd(loss))(theta)
    np.testing.assert_allclose(reverse, finite, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(forward, reverse, rtol=1e-10)


@pytest.mark.slow
def test_gradient_in_discount_and_scale_and_random_mdp():
    rewards, transitions, _, _ = random_mdp(2, num_states=12, num_actions=2)

    @jax.jit
    def loss(discount, scale, rewards):
        model = mdp_lib.TabularMDP(rewards, jnp.asarray(transitions), discount, scale)
        value, _ = solvers.newton_kantorovich(model, tol=1e-13)
        return jnp.sum(jnp.sin(value))

    with jax.enable_x64(True):
        rewards = jnp.asarray(rewards)
        grads = jax.grad(loss, argnums=(0, 1, 2))(0.9, 0.7, rewards)
        eps = 1e-6
        np.testing.assert_allclose(
            grads[0],
            (loss(0.9 + eps, 0.7, rewards) - loss(0.9 - eps, 0.7, rewards)) / 2e-6,
            rtol=1e-6,
        )
        np.testing.assert_allclose(
            grads[1],
            (loss(0.9, 0.7 + eps, rewards) - loss(0.9, 0.7 - eps, rewards)) / 2e-6,
            rtol=1e-6,
        )
        bump = jnp.zeros_like(rewards).at[3, 1].set(eps)
        np.testing.assert_allclose(
            grads[2][3, 1],
            (loss(0.9, 0.7, rewards + bump) - loss(0.9, 0.7, rewards - bump)) / 2e-6,
            rtol=1e-6,
        )


@pytest.mark.slow
def test_vmap_over_parameter_vectors_equals_loop_and_jit_traces_once():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def solve(theta):
        model = mdp_lib.bus_engine_mdp(theta[0], theta[1], jnp.array(SU_JUDD_PROBS), 175, 0.975)
        return solvers.newton_kantorovich(model, tol=1e-10)

    with jax.enable_x64(True):
        params = jnp.array([[8.0, 1.0], [11.7257, 2.4569], [15.0, 4.0]])
        batched, info = jax.jit(jax.vmap(solve))(params)
        assert bool(jnp.all(info.converged))
        for row, theta in enumerate(params):
            single, _ = solve(theta)
            np.testing.assert_allclose(batched[row], single, rtol=1e-12)


def test_bad_input_raises_named_errors():
    rewards, transitions, discount, scale = random_mdp(3, num_states=4, num_actions=2)
    bad_rows = transitions.copy()
    bad_rows[1, 2, 0] += 0.1
    with pytest.raises(InvalidArgumentError, match=r"transitions: expected rows summing to one"):
        mdp_lib.make_mdp(rewards, bad_rows, discount)
    for bad_discount in (1.0, -0.1, 1.5):
        with pytest.raises(InvalidArgumentError, match=r"discount: expected a number in \[0, 1\)"):
            mdp_lib.make_mdp(rewards, transitions, bad_discount)
    with pytest.raises(InvalidArgumentError, match="scale"):
        mdp_lib.make_mdp(rewards, transitions, discount, 0.0)
    with pytest.raises(InvalidArgumentError, match=r"transitions: expected shape"):
        mdp_lib.make_mdp(rewards, transitions[:, :3, :3], discount)
    negative = transitions.copy()
    negative[0, 0, :2] = [-0.5, 1.5 - negative[0, 0, 2:].sum()]
    with pytest.raises(InvalidArgumentError, match="transitions: expected finite non-negative"):
        mdp_lib.make_mdp(rewards, negative, discount)
    with pytest.raises(InvalidArgumentError, match="method"):
        solvers.solve_relative(mdp_lib.make_mdp(rewards, transitions, discount), method="nk")


def test_banded_transition_lumps_the_tail_in_the_last_state():
    probs = np.array([0.2, 0.5, 0.3])
    matrix = np.asarray(mdp_lib.banded_transition(jnp.asarray(probs), 4))
    expected = np.array(
        [[0.2, 0.5, 0.3, 0.0], [0.0, 0.2, 0.5, 0.3], [0.0, 0.0, 0.2, 0.8], [0.0, 0.0, 0.0, 1.0]]
    )
    np.testing.assert_allclose(matrix, expected, atol=1e-7)
