"""Membership PQR on the free states: the semi-Markov form against the model's own operators,
exact reward recovery from the true policy (Geng et al. 2020), the projection, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.membership import model, pqr
from prime_science.membership.estimate import structural_vector

LOCK = 11


def package_reward_oracle(params, segment):
    """``R(s, annual)`` at the free states by backward induction over the locked plans with
    the model's own ``expected_next_values``: ``X(p) = u(p, annual) + beta E[X(p + 1)]`` for
    ``p >= 2``, ``X = 0`` at free plans, then ``R = u(s, annual) + beta E[X(2) | s, annual]``."""
    flows = model.flow_utilities(params)[..., model.ANNUAL]
    locked = (np.arange(model.num_plans(LOCK)) >= 2)[:, None, None, None, None]
    table = jnp.zeros(model.state_shape(), flows.dtype)
    for _ in range(LOCK):
        ahead = model.expected_next_values(params, table, segment)[..., model.ANNUAL]
        table = jnp.where(locked, flows + params.discount * ahead, 0.0)
    ahead = model.expected_next_values(params, table, segment)[:2, ..., model.ANNUAL]
    return flows[:2] + params.discount * ahead


def true_rewards(params, segment):
    """``float[2, 6, 25, 2, 3, 3]``: 0, ``u(s, monthly)``, the package reward."""
    flows = model.flow_utilities(params)[:2]
    return jnp.stack(
        [jnp.zeros_like(flows[..., 0]), flows[..., 1], package_reward_oracle(params, segment)],
        axis=-1,
    )


@pytest.fixture(scope="module")
def solved():
    """Float64 truth for both segments: ``(params, [(chain, solution)])``."""
    with jax.enable_x64(True):
        params = model.true_params(jnp.float64)
        per_segment = [
            (pqr.semi_markov(params, s), model.solve(params, s, tol=1e-12)) for s in (0, 1)
        ]
        yield params, per_segment


@pytest.mark.parametrize("segment", [0, 1])
def test_exact_recovery_from_true_policy(solved, segment):
    params, per_segment = solved
    chain, solution = per_segment[segment]
    with jax.enable_x64(True):
        recovered = pqr.membership_pqr(chain, solution.log_policy[:2])
        truth = true_rewards(params, segment)
        assert recovered.reward.dtype == jnp.float64
        assert float(jnp.max(jnp.abs(recovered.reward - truth))) <= 1e-8
        assert float(jnp.max(jnp.abs(recovered.q - solution.choice_values[:2]))) <= 1e-8
        assert float(jnp.max(jnp.abs(recovered.value - solution.value[:2]))) <= 1e-8
        assert float(recovered.residual) < 1e-10


def test_package_features_give_the_package_reward(solved):
    params, per_segment = solved
    with jax.enable_x64(True):
        theta = structural_vector(params)
        for segment, (chain, _) in enumerate(per_segment):
            implied = chain.features @ theta + chain.offset
            np.testing.assert_allclose(implied, true_rewards(params, segment), atol=1e-11)


def test_benefit_shift_enters_the_offset_not_theta():
    with jax.enable_x64(True):
        params = model.true_params(jnp.float64, benefit_shift=0.4)
        chain = pqr.semi_markov(params, 1)
        solution = model.solve(params, 1, tol=1e-12)
        recovered = pqr.membership_pqr(chain, solution.log_policy[:2])
        np.testing.assert_allclose(recovered.reward, true_rewards(params, 1), atol=1e-8)
        fit = pqr.project(chain.features, chain.offset, recovered.reward)
        np.testing.assert_allclose(fit.theta, structural_vector(params), atol=1e-9)


def test_continuation_matches_model_operators(solved):
    """``none`` and ``monthly``: one month of the model's ``expected_next_values`` on a random
    table; ``annual``: ``L`` locked months of it with zero flows, then the free table."""
    params, per_segment = solved
    chain, _ = per_segment[0]
    with jax.enable_x64(True):
        free = jax.random.normal(jax.random.key(3), pqr.free_shape(), jnp.float64)
        ours = pqr.continuation(chain, free)
        full = jnp.zeros(model.state_shape(), jnp.float64).at[:2].set(free)
        locked = (np.arange(model.num_plans(LOCK)) >= 2)[:, None, None, None, None]
        beta = params.discount
        one_month = beta * model.expected_next_values(params, full, 0)[:2]
        np.testing.assert_allclose(ours[..., :2], one_month[..., :2], atol=1e-12)
        table = full
        for _ in range(LOCK):
            ahead = model.expected_next_values(params, table, 0)[..., model.ANNUAL]
            table = jnp.where(locked, beta * ahead, full)
        ahead = model.expected_next_values(params, table, 0)[:2, ..., model.ANNUAL]
        np.testing.assert_allclose(ours[..., model.ANNUAL], beta * ahead, atol=1e-12)


def test_policy_operator_is_the_policy_weighted_continuation(solved):
    _, per_segment = solved
    chain, solution = per_segment[1]
    with jax.enable_x64(True):
        policy = jnp.exp(solution.log_policy[:2])
        free = jax.random.normal(jax.random.key(4), pqr.free_shape(), jnp.float64)
        dense = pqr.policy_operator(chain, policy) @ free.reshape(-1)
        factored = jnp.sum(policy * pqr.continuation(chain, free), axis=-1).reshape(-1)
        np.testing.assert_allclose(dense, factored, atol=1e-12)
        row_sums = pqr.policy_operator(chain, policy).sum(axis=1)
        beta = float(chain.discounts[0])
        expected = policy[..., :2].sum(-1) * beta + policy[..., 2] * beta ** (LOCK + 1)
        np.testing.assert_allclose(row_sums, expected.reshape(-1), atol=1e-12)


def test_projection_recovers_theta_exactly(solved):
    params, per_segment = solved
    with jax.enable_x64(True):
        features = jnp.stack([chain.features for chain, _ in per_segment])
        offset = jnp.stack([chain.offset for chain, _ in per_segment])
        reward = jnp.stack([pqr.membership_pqr(c, s.log_policy[:2]).reward for c, s in per_segment])
        weights = jax.random.uniform(jax.random.key(5), reward.shape, jnp.float64)
        for w in (None, weights):
            fit = pqr.project(features, offset, reward, w)
            np.testing.assert_allclose(fit.theta, structural_vector(params), atol=1e-9)
            assert float(fit.r_squared) > 1 - 1e-12
            assert float(fit.rmse) < 1e-8


def test_projection_reports_misfit():
    """A reward that is not in the features' span: R^2 and RMSE against numpy's lstsq."""
    with jax.enable_x64(True):
        params = model.true_params(jnp.float64)
        chain = pqr.semi_markov(params, 0)
        noise = jax.random.normal(jax.random.key(6), chain.offset.shape, jnp.float64)
        reward = chain.features @ structural_vector(params) + chain.offset + 0.3 * noise
        fit = pqr.project(chain.features, chain.offset, reward)
        x = np.asarray(chain.features[..., 1:, :]).reshape(-1, 6)
        y = np.asarray((reward - chain.offset)[..., 1:]).reshape(-1)
        theta, *_ = np.linalg.lstsq(x, y, rcond=None)
        residual = y - x @ theta
        np.testing.assert_allclose(fit.theta, theta, rtol=1e-9)
        np.testing.assert_allclose(fit.rmse, np.sqrt(np.mean(residual**2)), rtol=1e-9)
        r2 = 1 - residual @ residual / np.sum((y - y.mean()) ** 2)
        np.testing.assert_allclose(fit.r_squared, r2, rtol=1e-9)
        assert 0.0 < float(fit.r_squared) < 1.0


@pytest.mark.slow
def test_float32_follows_inputs():
    """Slow: compiling the float32 solve."""
    params = model.true_params(jnp.float32)
    chain = pqr.semi_markov(params, 0)
    solution = model.solve(params, 0)
    recovered = pqr.membership_pqr(chain, solution.log_policy[:2])
    assert recovered.reward.dtype == jnp.float32
    truth = chain.features @ structural_vector(params) + chain.offset
    assert float(jnp.max(jnp.abs(recovered.reward - truth))) < 1e-3


def test_jit_equals_eager(solved):
    _, per_segment = solved
    chain, solution = per_segment[0]
    with jax.enable_x64(True):
        eager = pqr.membership_pqr(chain, solution.log_policy[:2]).reward
        jitted = jax.jit(pqr.membership_pqr)(chain, solution.log_policy[:2]).reward
        np.testing.assert_allclose(eager, jitted, atol=1e-12)


def test_bad_inputs():
    params = model.true_params(jnp.float32)
    chain = pqr.semi_markov(params, 0)
    uniform = jnp.full((*pqr.free_shape(), 3), jnp.log(1 / 3), jnp.float32)
    with pytest.raises(InvalidArgumentError, match="log_policy: expected shape"):
        pqr.membership_pqr(chain, uniform[0])
    with pytest.raises(InvalidArgumentError, match="log_policy: expected finite"):
        pqr.membership_pqr(chain, uniform.at[0, 0, 0, 0, 0, 1].set(-jnp.inf))
    with pytest.raises(InvalidArgumentError, match="log_policy: expected rows summing"):
        pqr.membership_pqr(chain, uniform.at[1, 2, 3, 0, 1, 0].set(0.0))
    reward = jnp.zeros(uniform.shape, jnp.float32)
    with pytest.raises(InvalidArgumentError, match="weights: expected non-negative"):
        pqr.project(chain.features, chain.offset, reward, -jnp.ones_like(reward))
    with pytest.raises(InvalidArgumentError, match="reward: expected shape"):
        pqr.project(chain.features, chain.offset, reward[0])
