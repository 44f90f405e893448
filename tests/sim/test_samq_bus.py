"""The SAmQ bus environment: rules, the soft-optimal policy vs independent checks, simulation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.sim import samq_bus as sb

pytestmark = pytest.mark.slow  # runs a whole experiment (or its fixture does)

CONFIG = sb.SamqBusConfig()


@pytest.fixture(scope="module")
def table():
    return jax.jit(sb.soft_q_table, static_argnums=0)(CONFIG)


def test_reset_zeroes_relevant_and_draws_noise():
    states = jax.vmap(lambda k: sb.reset(k, CONFIG))(jax.random.split(jax.random.key(0), 2000))
    np.testing.assert_array_equal(states[:, 0], 0.0)
    noise = np.asarray(states[:, 1:])
    assert noise.min() >= -5.0 and noise.max() <= 5.0
    assert abs(noise.mean()) < 0.2 and abs(noise.std() - 10 / np.sqrt(12)) < 0.1


def test_step_rules_rewards_increments_and_noise_redraw():
    keys = jax.random.split(jax.random.key(1), 4000)
    state = jnp.array([2.5, 4.0, -3.0])
    keep_next, keep_reward = jax.vmap(lambda k: sb.step(k, state, 1, CONFIG))(keys)
    replace_next, replace_reward = jax.vmap(lambda k: sb.step(k, state, 0, CONFIG))(keys)
    increments = np.asarray(keep_next[:, 0] - state[0])
    assert increments.min() >= 1.0 and increments.max() <= 2.0
    assert abs(increments.mean() - 1.5) < 0.02
    np.testing.assert_array_equal(replace_next[:, 0], 0.0)
    np.testing.assert_allclose(keep_reward, 5.0 - 2.5)  # b - theta . s, noise coords ignored
    np.testing.assert_array_equal(replace_reward, 0.0)
    for nxt in (keep_next, replace_next):  # noise redrawn U(-5, 5) whatever the action
        noise = np.asarray(nxt[:, 1:])
        assert noise.min() >= -5.0 and noise.max() <= 5.0
        assert abs(noise.mean()) < 0.2 and np.all(noise != np.asarray(state[1:]))
    np.testing.assert_allclose(
        sb.rewards(jnp.array([[1.0, 9.0, -9.0]]), CONFIG), [[0.0, 4.0]], atol=1e-6
    )


def test_soft_q_is_a_fixed_point_and_grid_converged(table):
    """Bellman residual at the nodes ~ 0; a 4x finer grid with twice the nodes agrees."""
    with jax.enable_x64(True):
        coarse = sb.soft_q_table(CONFIG)
        fine = sb.soft_q_table(CONFIG._replace(grid_step=0.0025, quadrature_nodes=64))
        np.testing.assert_allclose(
            coarse.value, jnp.logaddexp(coarse.q_replace, coarse.q_keep), atol=1e-10
        )
        x = jnp.linspace(0.0, 12.0, 97)
        states = jnp.stack([x, jnp.zeros_like(x), jnp.zeros_like(x)], 1)
        gap = sb.log_policy(coarse, states, CONFIG) - sb.log_policy(fine, states, CONFIG)
        assert float(jnp.max(jnp.abs(gap))) < 2e-5  # measured 7e-6
        assert abs(float(coarse.q_replace - fine.q_replace)) < 5e-5  # measured 1.8e-5
    # the float32 table used by experiments is within float32 rounding of the float64 one
    assert abs(float(table.q_replace) - float(coarse.q_replace)) < 1e-4
    # sanity: replace is preferred once keeping costs more than b
    assert float(jnp.interp(7.0, table.grid, table.q_keep)) < float(table.q_replace)
    assert float(table.q_keep[0]) > float(table.q_replace)


def test_soft_value_matches_monte_carlo_rollouts(table):
    """Independent check: V(0) = E sum_t beta^t (r_t - log pi(a_t|s_t)) along the policy."""
    horizon, agents, beta = 150, 8_000, CONFIG.discount

    def rollout(key):
        def body(carry, key):
            state, discount = carry
            key_action, key_step = jax.random.split(key)
            log_probs = sb.log_policy(table, state, CONFIG)
            action = jax.random.categorical(key_action, log_probs)
            nxt, reward = sb.step(key_step, state, action, CONFIG)
            return (nxt, discount * beta), discount * (reward - log_probs[action])

        key_reset, key_run = jax.random.split(key)
        start = sb.reset(key_reset, CONFIG)
        _, terms = jax.lax.scan(body, (start, 1.0), jax.random.split(key_run, horizon))
        return terms.sum()

    returns = np.asarray(
        jax.jit(jax.vmap(rollout))(jax.random.split(jax.random.key(3), agents)), np.float64
    )
    se = returns.std() / np.sqrt(agents)
    assert abs(returns.mean() - float(table.value[0])) < 4 * se + 1e-3, (returns.mean(), se)


def test_simulate_shapes_consistency_and_policy(table):
    agents, steps = 100, 8
    sim = jax.jit(sb.simulate, static_argnums=(2, 3, 4, 5))
    data = sim(jax.random.key(4), table, CONFIG, agents, steps, 5)
    n = agents * steps
    assert data.states.shape == (n, 3) and data.next_states.shape == (n, 3)
    assert data.actions.shape == (n,) and data.actions.dtype == jnp.int32
    np.testing.assert_allclose(data.log_probs, sb.log_policy(table, data.states, CONFIG))
    # rows of one agent chain: s'_t = s_{t+1}
    chained = np.asarray(data.next_states).reshape(agents, steps, 3)[:, :-1]
    following = np.asarray(data.states).reshape(agents, steps, 3)[:, 1:]
    np.testing.assert_array_equal(chained, following)
    # actions follow the policy: keep count vs expected (sum of probabilities), within 4 s.e.
    p_keep = np.exp(np.asarray(data.log_probs[:, 1], np.float64))
    keeps = float(np.sum(np.asarray(data.actions)))
    assert abs(keeps - p_keep.sum()) < 4 * np.sqrt(np.sum(p_keep * (1 - p_keep)))
    # transitions follow the rules
    keep = np.asarray(data.actions) == 1
    step = np.asarray(data.next_states[:, 0] - data.states[:, 0])
    assert np.all((step[keep] >= 1.0) & (step[keep] <= 2.0))
    np.testing.assert_array_equal(np.asarray(data.next_states[~keep, 0]), 0.0)
    # jit = no jit; vmappable over keys
    eager = sb.simulate(jax.random.key(4), table, CONFIG, agents, steps, 5)
    np.testing.assert_allclose(eager.states, data.states, atol=1e-5)
    np.testing.assert_array_equal(eager.actions, data.actions)
    batched = jax.vmap(lambda k: sb.simulate(k, table, CONFIG, agents, steps, 5))(
        jax.random.split(jax.random.key(5), 2)
    )
    assert batched.states.shape == (2, n, 3)
    assert not np.array_equal(batched.actions[0], batched.actions[1])


def test_bad_inputs_raise_named_errors(table):
    with pytest.raises(InvalidArgumentError, match="config.theta"):
        sb.soft_q_table(CONFIG._replace(theta=(1.0, 1.0, 0.0)))
    with pytest.raises(InvalidArgumentError, match="config.theta"):
        sb.soft_q_table(CONFIG._replace(theta=(-1.0, 0.0, 0.0)))
    with pytest.raises(InvalidArgumentError, match="num_agents"):
        sb.simulate(jax.random.key(0), table, CONFIG, 0, 5)
    with pytest.raises(InvalidArgumentError, match="burn_in"):
        sb.simulate(jax.random.key(0), table, CONFIG, 2, 5, -1)
