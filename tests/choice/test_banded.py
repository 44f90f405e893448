"""Banded (increment) transitions: the operator, the solves, the fixed point and the implicit
derivatives equal those of the equivalent dense model (float64, 1e-12)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.choice import mdp as mdp_lib
from prime_science.choice import solvers
from prime_science.core.errors import InvalidArgumentError

SU_JUDD_PROBS = (0.0937, 0.4475, 0.4459, 0.0127, 0.0002)


def random_banded(seed, num_states=40, num_actions=3, num_increments=4, discount=0.95):
    """Random rewards, per-(a, s) increment rows ~ Dirichlet(1), random resets."""
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(num_states, num_actions))
    probs = rng.dirichlet(np.ones(num_increments), size=(num_actions, num_states))
    resets = rng.uniform(size=(num_actions, num_states)) < 0.3
    return mdp_lib.make_banded_mdp(rewards, probs, resets, discount, 0.8)


def test_to_dense_rows_sum_to_one_and_match_banded_transition():
    with jax.enable_x64(True):
        banded = mdp_lib.bus_engine_mdp(9.0, 2.0, jnp.array(SU_JUDD_PROBS), 30, 0.9, banded=True)
        dense = mdp_lib.bus_engine_mdp(9.0, 2.0, jnp.array(SU_JUDD_PROBS), 30, 0.9)
        np.testing.assert_allclose(mdp_lib.to_dense(banded).transitions, dense.transitions, atol=0)
        model = random_banded(0)
        transitions = np.asarray(mdp_lib.to_dense(model).transitions)
    np.testing.assert_allclose(transitions.sum(-1), 1.0, atol=1e-12)
    # brute force: each (a, s) row from its definition
    probs, resets = np.asarray(model.increment_probs), np.asarray(model.resets)
    for a in range(3):
        for s in range(40):
            row = np.zeros(40)
            for j in range(4):
                origin, p = (0, probs[a, 0, j]) if resets[a, s] else (s, probs[a, s, j])
                row[min(origin + j, 39)] += p
            np.testing.assert_allclose(transitions[a, s], row, atol=1e-15)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_operator_and_solves_equal_dense(seed):
    with jax.enable_x64(True):
        model = random_banded(seed)
        dense = mdp_lib.to_dense(model)
        value = jnp.asarray(np.random.default_rng(seed).normal(size=40) * 3)
        np.testing.assert_allclose(
            mdp_lib.soft_bellman(model, value), mdp_lib.soft_bellman(dense, value), atol=1e-12
        )
        np.testing.assert_allclose(
            mdp_lib.choice_probabilities(model, value),
            mdp_lib.choice_probabilities(dense, value),
            atol=1e-12,
        )
        probs = mdp_lib.choice_probabilities(model, value)
        rhs = jnp.asarray(np.random.default_rng(seed + 10).normal(size=(40, 3)))
        for deflate in (False, True):
            banded_solution = solvers.policy_solve(model, probs, rhs, deflate=deflate)
            dense_solution = solvers.policy_solve(dense, probs, rhs, deflate=deflate)
            np.testing.assert_allclose(banded_solution, dense_solution, atol=1e-12)
            # the oracle: numpy's dense solve of the same matrix
            p_pi = np.einsum("sa,ast->st", probs, dense.transitions)
            if deflate:
                p_pi = p_pi - p_pi[:1]
            matrix = np.eye(40) - 0.95 * p_pi
            np.testing.assert_allclose(banded_solution, np.linalg.solve(matrix, rhs), atol=1e-12)
        np.testing.assert_allclose(
            solvers.newton_solve(model, value, rhs[:, 0]),
            np.linalg.solve(np.asarray(solvers.newton_matrix(dense, value)), rhs[:, 0]),
            atol=1e-12,
        )


@pytest.mark.slow
@pytest.mark.parametrize(("num_states", "num_increments"), [(12, 1), (3, 5)])
def test_edge_shapes_one_increment_and_more_increments_than_states(num_states, num_increments):
    with jax.enable_x64(True):
        model = random_banded(4, num_states=num_states, num_increments=num_increments)
        dense = mdp_lib.to_dense(model)
        value = jnp.linspace(-1.0, 2.0, num_states)
        np.testing.assert_allclose(
            mdp_lib.soft_bellman(model, value), mdp_lib.soft_bellman(dense, value), atol=1e-12
        )
        rhs = jnp.cos(jnp.arange(num_states, dtype=jnp.float64))
        np.testing.assert_allclose(
            solvers.newton_solve(model, value, rhs),
            np.linalg.solve(np.asarray(solvers.newton_matrix(dense, value)), rhs),
            atol=1e-12,
        )
        banded_w, _ = solvers.solve_relative(model, tol=1e-12)
        dense_w, _ = solvers.solve_relative(dense, tol=1e-12)
    np.testing.assert_allclose(banded_w, dense_w, atol=1e-11)


@pytest.mark.slow
@pytest.mark.parametrize("discount", [0.975, 0.9999])
def test_bus_fixed_point_banded_equals_dense(discount):
    @jax.jit
    def solve_both(theta):
        kwargs = dict(tol=1e-12)
        out = []
        for banded in (False, True):
            model = mdp_lib.bus_engine_mdp(
                theta[0], theta[1], jnp.array(SU_JUDD_PROBS), 175, discount, banded=banded
            )
            newton, info = solvers.newton_kantorovich(model, **kwargs)
            relative, _ = solvers.solve_relative(model, method="successive", **kwargs)
            out.append((newton, relative, info))
        return out

    with jax.enable_x64(True):
        (dense_v, dense_w, dense_info), (band_v, band_w, band_info) = solve_both(
            jnp.array([11.7257, 2.4569])
        )
    assert bool(dense_info.converged) and bool(band_info.converged)
    np.testing.assert_allclose(band_w, dense_w, atol=1e-11)
    # V carries g / (1 - beta) ~ 1e2 .. 1e5: compare relatively
    np.testing.assert_allclose(band_v, dense_v, rtol=1e-12)


@pytest.mark.slow
def test_implicit_gradients_banded_equal_dense():
    def loss(theta, banded):
        model = mdp_lib.bus_engine_mdp(theta[0], theta[1], theta[2:], 90, 0.99, banded=banded)
        value, _ = solvers.newton_kantorovich(model, tol=1e-12)
        probs = mdp_lib.choice_probabilities(model, value)
        return jnp.sum(jnp.log(probs[::7, 1])) + 1e-4 * value[30]

    with jax.enable_x64(True):
        theta = jnp.array([9.0, 2.5, 0.35, 0.6, 0.05])
        dense = jax.jit(jax.grad(lambda t: loss(t, False)))(theta)
        banded = jax.jit(jax.grad(lambda t: loss(t, True)))(theta)
        forward = jax.jit(jax.jacfwd(lambda t: loss(t, True)))(theta)
        # off the simplex (theta3 summing to 1 +- eps): under jit, where nothing is checked
        banded_loss = jax.jit(lambda t: loss(t, True))
        eps = 1e-6
        finite = np.array(
            [
                (banded_loss(theta + eps * e) - banded_loss(theta - eps * e)) / (2 * eps)
                for e in np.eye(5)
            ]
        )
    np.testing.assert_allclose(banded, dense, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(forward, banded, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(banded, finite, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_gradient_in_rewards_discount_scale_random_banded():
    def loss(rewards, discount, scale, banded):
        model = base._replace(rewards=rewards, discount=discount, scale=scale)
        model = model if banded else mdp_lib.to_dense(model)
        value, _ = solvers.newton_kantorovich(model, tol=1e-13)
        return jnp.sum(jnp.sin(value))

    with jax.enable_x64(True):
        base = random_banded(3, num_states=15)
        args = (base.rewards, jnp.float64(0.9), jnp.float64(0.7))
        dense = jax.jit(jax.grad(lambda *a: loss(*a, False), argnums=(0, 1, 2)))(*args)
        banded = jax.jit(jax.grad(lambda *a: loss(*a, True), argnums=(0, 1, 2)))(*args)
    for d, b in zip(dense, banded, strict=True):
        np.testing.assert_allclose(b, d, rtol=1e-10, atol=1e-12)


def test_make_banded_mdp_rejects_bad_input():
    rewards = np.zeros((6, 2))
    with pytest.raises(InvalidArgumentError, match="increment_probs: expected rows summing"):
        mdp_lib.make_banded_mdp(rewards, [0.5, 0.6], [False, True], 0.9)
    with pytest.raises(InvalidArgumentError, match="increment_probs: expected finite non-neg"):
        mdp_lib.make_banded_mdp(rewards, [1.5, -0.5], [False, True], 0.9)
    with pytest.raises(InvalidArgumentError, match="resets: expected shape"):
        mdp_lib.make_banded_mdp(rewards, [0.5, 0.5], [False, True, True], 0.9)
    with pytest.raises(InvalidArgumentError, match="increment_probs: expected shape"):
        mdp_lib.make_banded_mdp(rewards, np.full((2, 5, 2), 0.5), [False, True], 0.9)
    with pytest.raises(InvalidArgumentError, match=r"discount: expected a number in \[0, 1\)"):
        mdp_lib.make_banded_mdp(rewards, [0.5, 0.5], [False, True], 1.0)
    model = mdp_lib.make_banded_mdp(rewards, [0.5, 0.5], [False, True], 0.9)
    assert model.increment_probs.shape == (2, 6, 2) and model.resets.shape == (2, 6)
