"""Deep PQR (Flax NNX + Optax) on small SAmQ bus problems: recovery, invariance, purity, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.choice.deep_pqr import DeepPQRConfig, LinearReward, deep_pqr
from prime_science.core.errors import InvalidArgumentError
from prime_science.sim import samq_bus as sb

pytestmark = pytest.mark.slow  # runs a whole experiment (or its fixture does)

ENV = sb.SamqBusConfig()
SMALL = DeepPQRConfig(batch_size=50, max_epochs=8, max_q_epochs=8)


@pytest.fixture(scope="module")
def table():
    return jax.jit(sb.soft_q_table, static_argnums=0)(ENV)


@pytest.fixture(scope="module")
def data(table):
    """4,000 rows: 400 independent agents x 10 steps after 20 burn-in steps."""
    return jax.jit(sb.simulate, static_argnums=(2, 3, 4, 5))(
        jax.random.key(0), table, ENV, 400, 10, 20
    )


@pytest.fixture(scope="module")
def tiny(table):
    return sb.simulate(jax.random.key(1), table, ENV, 60, 10, 20)


@pytest.fixture(scope="module")
def small_fit(tiny):
    """The SMALL config fitted eagerly (no jit) on the tiny rows with key 4."""
    return deep_pqr(SMALL, 3, 2).fit(jax.random.key(4), tiny.states, tiny.actions, tiny.next_states)


@pytest.fixture(scope="module")
def fitted(data):
    model = deep_pqr(DeepPQRConfig(), 3, 2)
    fit = jax.jit(model.fit)(jax.random.key(2), data.states, data.actions, data.next_states)
    return model, fit


def test_recovers_the_keep_reward_on_a_small_problem(fitted, data, table):
    """Known truth r(s, keep) = 5 - s_1, r(s, replace) = 0 (fixed key; 4,000 rows). With this
    key: slope -0.92, intercept 4.87. Tolerances (slope 0.15, noise coefficients 0.05, intercept
    0.35, anchor intercept 0.05) are ~1.5-2.5 s.d. of the spread over seeds at 5,000 rows in the
    experiment (slope s.d. ~0.06, intercept s.d. ~0.2)."""
    model, fit = fitted
    weights, intercept = fit.reward.params
    assert abs(float(weights[1, 0]) + 1.0) < 0.15, weights
    np.testing.assert_allclose(weights[1, 1:], 0.0, atol=0.05)
    assert abs(float(intercept[1]) - 5.0) < 0.35, intercept
    np.testing.assert_allclose(weights[0], 0.0, atol=0.05)
    assert abs(float(intercept[0])) < 0.05
    # the policy is close to the generating one in held-out likelihood (nats per row)
    held = np.asarray(fit.is_holdout)
    true_loglik = jnp.take_along_axis(data.log_probs, data.actions[:, None], 1)[:, 0]
    assert abs(float(fit.policy.holdout_loglik) - float(true_loglik[held].mean())) < 0.02
    # Q_A is constant in this environment (replace resets the relevant coordinate)
    q_anchor = model.anchor_q(fit, data.states)
    assert float(q_anchor.std()) < 0.3
    assert abs(float(q_anchor.mean()) - float(table.q_replace)) < 3.0
    assert 1 <= int(fit.policy.epochs) <= 100 and 1 <= int(fit.anchor_q.epochs) <= 200
    # Q_hat(s, a) - Q_hat(s, anchor) are the logit differences = log-probability differences
    q = model.q_values(fit, data.states[:5])
    lp = model.log_policy(fit, data.states[:5])
    np.testing.assert_allclose(q[:, 1] - q[:, 0], lp[:, 1] - lp[:, 0], atol=1e-4)
    np.testing.assert_allclose(q[:, 0], q_anchor[:5], atol=1e-5)


def test_linear_head_is_least_squares_of_the_targets(fitted, data):
    """Oracle: numpy lstsq of z on [s, 1] per action."""
    model, fit = fitted
    z = np.asarray(fit.reward.targets, np.float64)
    design = np.column_stack([np.asarray(data.states, np.float64), np.ones(z.size)])
    for action in (0, 1):
        rows = np.asarray(data.actions) == action
        coef = np.linalg.lstsq(design[rows], z[rows], rcond=None)[0]
        np.testing.assert_allclose(fit.reward.params.weights[action], coef[:3], atol=2e-3)
        np.testing.assert_allclose(fit.reward.params.intercept[action], coef[3], atol=2e-3)
    expected = np.asarray(data.states[:4]) @ np.asarray(fit.reward.params.weights).T
    np.testing.assert_allclose(
        model.reward(fit, data.states[:4]), expected + fit.reward.params.intercept, atol=1e-4
    )


def test_anchor_reward_shift_moves_every_reward_by_delta(tiny, small_fit):
    """It follows from the PQR equations (Geng et al. 2020): r_A -> r_A + delta shifts every
    recovered reward by delta; the policy step is untouched."""
    delta = 2.0
    shifted = deep_pqr(SMALL._replace(anchor_reward=delta), 3, 2).fit(
        jax.random.key(4), tiny.states, tiny.actions, tiny.next_states
    )
    np.testing.assert_allclose(shifted.reward.targets - small_fit.reward.targets, delta, atol=2e-3)
    np.testing.assert_allclose(
        shifted.reward.params.intercept - small_fit.reward.params.intercept, delta, atol=2e-3
    )
    np.testing.assert_array_equal(shifted.policy.train_loglik, small_fit.policy.train_loglik)


def test_jit_equals_eager_and_vmaps_over_keys(tiny, small_fit):
    model = deep_pqr(SMALL, 3, 2)
    args = (tiny.states, tiny.actions, tiny.next_states)
    key = jax.random.key(4)
    keys = jnp.stack([key, jax.random.key(5)])
    batched = jax.jit(jax.vmap(model.fit, in_axes=(0, None, None, None)))(keys, *args)
    jitted = jax.tree.map(lambda x: x[0], batched)
    for a, b in zip(jax.tree.leaves(small_fit), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    assert batched.reward.params.weights.shape == (2, 2, 3)
    assert not np.allclose(batched.reward.targets[0], batched.reward.targets[1])


def test_mlp_head_and_author_variant_run(tiny, small_fit):
    args = (tiny.states, tiny.actions, tiny.next_states)
    mlp = deep_pqr(SMALL._replace(reward_head="mlp"), 3, 2)
    fit = jax.jit(mlp.fit)(jax.random.key(4), *args)
    assert not isinstance(fit.reward.params, LinearReward)
    assert mlp.reward(fit, tiny.states[:7]).shape == (7, 2)
    assert 1 <= int(fit.reward.epochs) <= SMALL.max_epochs
    assert np.isfinite(float(fit.reward.holdout_loss))
    # same P-step (same key), different Q-step: the author's non-detached target
    np.testing.assert_allclose(fit.policy.train_loglik, small_fit.policy.train_loglik, atol=1e-5)
    author = deep_pqr(SMALL._replace(detach_target=False), 3, 2)
    author_fit = jax.jit(author.fit)(jax.random.key(4), *args)
    np.testing.assert_allclose(
        author_fit.policy.train_loglik, small_fit.policy.train_loglik, atol=1e-5
    )
    assert not np.allclose(author_fit.reward.targets, small_fit.reward.targets)


def test_bad_inputs_raise_named_errors(tiny):
    model = deep_pqr(SMALL, 3, 2)
    key = jax.random.key(0)
    s, a, s2 = tiny.states, tiny.actions, tiny.next_states
    cases = [
        ("states", (s[:, :2], a, s2[:, :2])),
        ("states", (s[0], a, s2)),
        ("next_states", (s, a, s2[:-1])),
        ("actions", (s, a[:-1], s2)),
        ("actions", (s, a.at[3].set(2), s2)),
        ("actions", (s, a.astype(jnp.float32), s2)),
        ("actions", (s, jnp.ones_like(a), s2)),  # no anchor transition
        ("states", (s.at[2, 1].set(jnp.nan), a, s2)),
        ("next_states", (s, a, s2.at[0, 0].set(jnp.inf))),
        ("states", (s[:40], a[:40], s2[:40])),  # fewer rows than one training batch
    ]
    for name, args in cases:
        with pytest.raises(InvalidArgumentError, match=name):
            model.fit(key, *args)
    for config, name in (
        (SMALL._replace(anchor=2), "config.anchor"),
        (SMALL._replace(reward_head="cubic"), "config.reward_head"),
        (SMALL._replace(holdout=1.0), "config.holdout"),
        (SMALL._replace(discount=1.0), "config.discount"),
        (SMALL._replace(patience=0), "config.patience"),
    ):
        with pytest.raises(InvalidArgumentError, match=name):
            deep_pqr(config, 3, 2)
    with pytest.raises(InvalidArgumentError, match="num_actions"):
        deep_pqr(SMALL, 3, 1)
