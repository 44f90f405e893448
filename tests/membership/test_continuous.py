"""The continuous membership variant: package rewards against brute force, rows against a
numpy loop, per-row discounts in Deep PQR, Deep PQR's reward error falling with n, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.choice.deep_pqr import DeepPQRConfig, deep_pqr
from prime_science.core.errors import InvalidArgumentError
from prime_science.membership import continuous, model, simulate

LEVELS, LOCK = 2, 2  # 4 plans x 6 x 4 x 2 x 3 = 576 states: dense matrices are cheap


def small_params(dtype=jnp.float32):
    """The truth with engagement targets scaled into the two levels ``[0, 1]``."""
    return model.true_params(
        dtype,
        ship_target=[[0.3, 0.9], [0.2, 0.7]],
        video_target=[[0.1, 0.6], [0.1, 0.5]],
        content_lift=0.3,
    )


def dense_transition(params, segment, action):
    """``float[S, S]`` by brute force from the model's component tables (C order)."""
    member = int(action != model.NONE)
    plans = model.num_plans(LOCK)
    plan_moves = np.zeros((plans, plans))
    plan_moves[np.arange(plans), model.next_plan(LOCK)[:, action]] = 1.0
    tenure = np.asarray(model.tenure_transition(jnp.float64))[member]
    engagement = np.asarray(model.engagement_transition(params, segment, LEVELS))[member]
    content = np.asarray(model.content_transition(params))
    regime = np.asarray(params.regime_transition)
    full = np.einsum("pq,tu,cef,cd,rs->ptecrqufds", plan_moves, tenure, engagement, content, regime)
    size = int(np.prod(model.state_shape(LEVELS, LOCK)))
    return full.reshape(size, size)


@pytest.mark.slow
@pytest.mark.parametrize("segment", [0, 1])
def test_package_reward_matches_brute_force_and_the_choice_values(segment):
    """``R(s, annual) = u(s, annual) + sum_{j=1..L} beta^j (P_annual^j u_annual)(s)`` with
    dense matrices, and ``Q(s, annual) = R(s, annual) + beta^(L+1) (P_annual^(L+1) V)(s)`` with
    the model's own solution (float64, a small model)."""
    with jax.enable_x64(True):
        params = small_params(jnp.float64)
        got = np.asarray(
            continuous.package_rewards(params, segment, levels=LEVELS, lock_months=LOCK)
        )
        flows = np.asarray(model.flow_utilities(params, LEVELS, LOCK))[..., model.ANNUAL]
        flows = flows.reshape(-1)
        moves = dense_transition(params, segment, model.ANNUAL)
        beta = float(params.discount)
        expected, ahead = flows.copy(), flows.copy()
        for j in range(1, LOCK + 1):
            ahead = moves @ ahead
            expected += beta**j * ahead
        free = int(np.prod(got.shape))
        np.testing.assert_allclose(got.reshape(-1), expected[:free], rtol=1e-12, atol=1e-10)
        solution = model.solve(params, segment, levels=LEVELS, lock_months=LOCK)
        value = np.asarray(solution.value).reshape(-1)
        later = np.linalg.matrix_power(moves, LOCK + 1) @ value
        q_annual = np.asarray(solution.choice_values)[:2, ..., model.ANNUAL].reshape(-1)
        np.testing.assert_allclose(
            q_annual, expected[:free] + beta ** (LOCK + 1) * later[:free], rtol=1e-9
        )


@pytest.mark.slow
def test_true_rewards_are_zero_monthly_utility_and_package():
    params = small_params()
    table = np.asarray(continuous.true_rewards(params, levels=LEVELS, lock_months=LOCK))
    assert table.shape == (2, 2, 6, LEVELS**2, 2, 3, 3)
    np.testing.assert_array_equal(table[..., model.NONE], 0.0)
    monthly = np.asarray(model.flow_utilities(params, LEVELS, LOCK))[:2, ..., model.MONTHLY]
    np.testing.assert_allclose(table[0, ..., model.MONTHLY], monthly)
    package = continuous.package_rewards(params, 1, levels=LEVELS, lock_months=LOCK)
    np.testing.assert_allclose(table[1, ..., model.ANNUAL], package, rtol=1e-6)


@pytest.fixture(scope="module")
def small_panel():
    params = small_params()
    panel, _ = simulate.simulate_panel(
        jax.random.key(0), params, 30, 16, burn_in=12, levels=LEVELS, lock_months=LOCK
    )
    return params, panel


@pytest.mark.slow
def test_rows_match_a_numpy_loop_over_the_panel(small_panel):
    """Every free member-month ``t < T - 1 - L`` is a row; its next state is month ``t + 1``
    (``t + L + 1`` after annual), its discount ``beta`` (``beta^(L+1)``); locked months and
    the last ``L + 1`` months are never rows; true rewards are read from the table."""
    params, panel = small_panel
    options = dict(num_noise=2, jitter=0.5, levels=LEVELS, lock_months=LOCK)
    key = jax.random.key(4)
    rows = continuous.panel_transitions(key, panel, params, **options)
    features = np.asarray(
        continuous.member_month_features(
            key, panel, num_noise=2, jitter=0.5, levels=LEVELS, dtype=jnp.float32
        )
    )
    table = np.asarray(continuous.true_rewards(params, levels=LEVELS, lock_months=LOCK))
    p = jax.tree.map(np.asarray, panel)
    beta = float(params.discount)
    expected = []
    for i in range(p.plan.shape[0]):
        for t in range(p.plan.shape[1] - 1 - LOCK):
            if p.plan[i, t] > model.PLAN_FREE:
                continue
            annual = p.choice[i, t] == model.ANNUAL
            later = t + (LOCK + 1 if annual else 1)
            assert not annual or p.plan[i, later] == model.PLAN_FREE
            e = p.ship[i, t] * LEVELS + p.video[i, t]
            reward = table[p.segment[i], p.plan[i, t], p.tenure[i, t], e, p.content[i, t]]
            expected.append(
                (i, t, later, beta ** (LOCK + 1) if annual else beta, reward[p.regime[i, t]])
            )
    assert len(expected) == len(rows.actions) > 0
    members, months, later, discounts, rewards = map(np.array, zip(*expected, strict=True))
    np.testing.assert_array_equal(rows.member, members)
    np.testing.assert_array_equal(rows.states, features[members, months])
    np.testing.assert_array_equal(rows.next_states, features[members, later])
    np.testing.assert_array_equal(rows.actions, p.choice[members, months])
    np.testing.assert_allclose(rows.discounts, discounts, rtol=1e-6)
    np.testing.assert_allclose(rows.true_rewards, rewards, rtol=1e-6)
    # the features: levels within half a jitter of the bucket, indicators, noise N(0, 1)
    names = continuous.feature_names(2)
    column = {name: features[..., j] for j, name in enumerate(names)}
    offset = column["shipping"] * (LEVELS - 1) - p.ship
    assert np.all(np.abs(offset) <= 0.25 + 1e-6) and offset.std() > 0.05
    np.testing.assert_array_equal(column["member"], p.plan == model.PLAN_FREE)
    np.testing.assert_array_equal(column["higher_annual_price"], p.regime == 2)
    np.testing.assert_allclose(column["tenure"], p.tenure / 5)
    noise = features[..., -2:].ravel()
    assert abs(noise.mean()) < 4 / np.sqrt(noise.size) and abs(noise.std() - 1) < 0.05


@pytest.mark.slow
def test_first_rows_take_whole_members_in_order(small_panel):
    params, panel = small_panel
    options = dict(num_noise=1, jitter=0.0, levels=LEVELS, lock_months=LOCK)
    all_rows = continuous.panel_transitions(jax.random.key(1), panel, params, **options)
    first, shortfall = jax.jit(
        lambda key: continuous.first_transitions(key, panel, params, 50, **options)
    )(jax.random.key(1))
    assert int(shortfall) == 0
    for name in ("states", "actions", "next_states", "discounts", "member"):
        np.testing.assert_array_equal(getattr(first, name), getattr(all_rows, name)[:50])
    np.testing.assert_allclose(first.true_rewards, all_rows.true_rewards[:50], rtol=1e-6)
    size = panel.plan.shape[0] * (panel.plan.shape[1] - 1 - LOCK)
    _, shortfall = continuous.first_transitions(jax.random.key(1), panel, params, size, **options)
    assert int(shortfall) == size - len(all_rows.actions)


def random_rows(n=300, d=3):
    rng = np.random.default_rng(0)
    states = rng.normal(size=(n, d)).astype(np.float32)
    next_states = rng.normal(size=(n, d)).astype(np.float32)
    actions = rng.integers(0, 3, n).astype(np.int32)
    return states, actions, next_states


SMALL_PQR = DeepPQRConfig(batch_size=60, max_epochs=2, max_q_epochs=2, discount=0.9)


@pytest.mark.slow
def test_per_row_discounts_equal_to_beta_change_nothing():
    """Deep PQR with ``discounts = beta`` on every row matches the default path (the Q-step's
    warm start is computed in another order, so to rounding); halving them moves the targets."""
    states, actions, next_states = random_rows()
    n = len(actions)
    estimator = deep_pqr(SMALL_PQR, states.shape[1], 3)
    key = jax.random.key(0)
    default = estimator.fit(key, states, actions, next_states)
    same = estimator.fit(key, states, actions, next_states, np.full(n, 0.9, np.float32))
    np.testing.assert_allclose(same.reward.targets, default.reward.targets, rtol=1e-4, atol=1e-4)
    halved = estimator.fit(key, states, actions, next_states, np.full(n, 0.45, np.float32))
    assert not np.allclose(halved.reward.targets, default.reward.targets, atol=1e-2)


def test_bad_per_row_discounts_are_refused():
    states, actions, next_states = random_rows()
    n = len(actions)
    estimator = deep_pqr(SMALL_PQR, states.shape[1], 3)
    key = jax.random.key(0)
    for bad in (
        np.full(n - 1, 0.9, np.float32),
        np.full(n, 1.0, np.float32),
        np.full(n, 1, np.int32),
        np.full((n, 1), 0.9, np.float32),
    ):
        with pytest.raises(InvalidArgumentError, match="discounts"):
            estimator.fit(key, states, actions, next_states, bad)


def test_bad_inputs_raise_named_errors(small_panel):
    params, panel = small_panel
    key = jax.random.key(0)
    options = dict(levels=LEVELS, lock_months=LOCK)
    for overrides, name in (
        (dict(num_noise=-1, jitter=0.0), "num_noise"),
        (dict(num_noise=1, jitter=1.0), "jitter"),
        (dict(num_noise=1, jitter=0.0, levels=LEVELS, lock_months=15), "panel months"),
    ):
        with pytest.raises(InvalidArgumentError, match=name):
            continuous.candidate_transitions(key, panel, params, **{**options, **overrides})
    with pytest.raises(InvalidArgumentError, match="num_rows"):
        continuous.first_transitions(key, panel, params, 10**6, num_noise=1, jitter=0.0, **options)
    config = continuous.ContinuousConfig()
    cases = (
        (config._replace(model=config.model._replace(discount=0.9)), 1000, "discount"),
        (config._replace(test_rows=0), 1000, "config.test_rows"),
        (config, 0, "num_member_months"),
        ("fast", 1000, "config"),
    )
    for bad_config, rows, name in cases:
        with pytest.raises(InvalidArgumentError, match=name):
            continuous.deep_pqr_reward_error(key, params, rows, bad_config)


@pytest.mark.slow
def test_reward_error_falls_with_the_sample_size():
    """Deep PQR on 400 and then 4,000 free-state rows (small networks, few epochs, fixed key):
    the reward RMSE of monthly and annual on the same held-out rows falls, and the policy's
    held-out likelihood rises."""
    model_config = continuous.ContinuousConfig().model._replace(
        hidden=16, max_epochs=30, max_q_epochs=60
    )
    config = continuous.ContinuousConfig(num_noise=2, test_rows=2_000, model=model_config)
    error = jax.jit(continuous.deep_pqr_reward_error, static_argnums=(2, 3))
    small, large = (
        jax.device_get(error(jax.random.key(1), model.true_params(), n, config))
        for n in (400, 4_000)
    )
    assert int(small.shortfall) == int(large.shortfall) == 0
    np.testing.assert_allclose(small.spread, large.spread)  # the same held-out rows
    assert np.all(large.rmse[1:] < small.rmse[1:]), (small.rmse, large.rmse)
    assert large.holdout_loglik > small.holdout_loglik
    assert large.rmse[model.MONTHLY] < large.spread[model.MONTHLY]
