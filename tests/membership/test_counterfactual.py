"""Counterfactuals: equal to a direct simulation of the changed model, directions of the
classic changes, common random numbers, price search, named errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.membership import model, simulate
from prime_science.membership.counterfactual import (
    TENURE_START_MONTHS,
    Change,
    apply_change,
    counterfactual,
    price_search,
    simulate_outcome,
)

NUM_MEMBERS, MONTHS = 4_000, 14


@pytest.fixture(scope="module")
def params():
    return model.true_params(jnp.float32)


@pytest.fixture(scope="module")
def population(params):
    """Today's population: the states after a 48-month burn-in of the true model."""
    _, final = jax.jit(lambda k: simulate.simulate_panel(k, params, NUM_MEMBERS, 1, burn_in=48))(
        jax.random.key(0)
    )
    return final


@pytest.fixture(scope="module")
def run_change(params, population):
    compiled = jax.jit(
        lambda change: counterfactual(jax.random.key(7), params, change, population, MONTHS)
    )
    return lambda change: jax.device_get(compiled(change))


def direct_panel(params, states, months, key, promotion_month=-1):
    """The oracle: the changed model stepped month by month in Python, the whole panel kept."""
    tables = jax.jit(simulate.tables)(params)
    keys = jax.random.split(key, months)
    step = jax.jit(simulate.step)
    plans, actions, payments = [], [], []
    for t in range(months):
        if t == promotion_month:
            states = states._replace(regime=jnp.ones_like(states.regime))
        plans.append(np.asarray(states.plan))
        states, action, payment = step(keys[t], tables, states)
        actions.append(np.asarray(action))
        payments.append(np.asarray(payment, np.float64))
    return np.stack(plans), np.stack(actions), np.stack(payments)


def numpy_outcome(plans, actions, payments, initial_tenure, discount, last_lock):
    """Every aggregate of an Outcome from the stored panel, in numpy."""
    months = actions.shape[0]
    counts = np.stack([(actions == a).sum(1) for a in range(3)], axis=1)
    revenue = payments.mean(1)
    member = actions != model.NONE
    streak = np.where(plans[0] == 0, 0, TENURE_START_MONTHS[initial_tenure])
    tenure, monthly, annual = [], [], []
    for t in range(months):
        streak = np.where(member[t], streak + 1, 0)
        tenure.append(streak[member[t]].mean())
        off_lock = plans[t - 1] == last_lock if t else np.zeros_like(member[t])
        free = plans[t] == model.PLAN_FREE
        monthly.append((member[t] & free & ~off_lock).sum() / (free & ~off_lock).sum())
        ends = free & off_lock
        annual.append((member[t] & ends).sum() / ends.sum() if ends.sum() else np.nan)
    discounted = np.sum(discount ** np.arange(months) * revenue)
    return counts, revenue, discounted, np.asarray(tenure), np.asarray(monthly), np.asarray(annual)


@pytest.mark.slow
def test_equals_direct_simulation_of_changed_model(params, population, run_change):
    change = Change(annual_price_factor=1.1, benefit_shift=0.4, promotion_month=2)
    outcome = run_change(change)
    changed = params._replace(
        annual_price=params.annual_price * change.annual_price_factor,
        benefit_shift=params.benefit_shift + change.benefit_shift,
    )
    plans, actions, payments = direct_panel(
        changed, population, MONTHS, jax.random.key(7), change.promotion_month
    )
    counts, revenue, discounted, tenure, monthly, annual = numpy_outcome(
        plans, actions, payments, np.asarray(population.tenure), 0.99, model.num_plans() - 1
    )
    np.testing.assert_array_equal(np.rint(outcome.shares * NUM_MEMBERS), counts)  # same draws
    np.testing.assert_allclose(outcome.revenue, revenue, rtol=1e-5)
    np.testing.assert_allclose(outcome.total_revenue, revenue.sum(), rtol=1e-5)
    np.testing.assert_allclose(outcome.discounted_revenue, discounted, rtol=1e-5)
    np.testing.assert_allclose(outcome.mean_tenure, tenure, rtol=1e-5)
    np.testing.assert_allclose(outcome.monthly_renewal, monthly, rtol=1e-5)
    np.testing.assert_allclose(outcome.annual_renewal, annual, rtol=1e-5)


def test_promotion_raises_revenue_that_month_from_new_buyers(run_change):
    base, promo = run_change(Change()), run_change(Change(promotion_month=3))
    np.testing.assert_array_equal(base.shares[:3], promo.shares[:3])  # same draws before it
    assert promo.shares[3, model.ANNUAL] > base.shares[3, model.ANNUAL]


def test_annual_price_up_lowers_annual_share(run_change):
    base, up, down = (run_change(Change(annual_price_factor=f)) for f in (1.0, 1.1, 0.9))
    assert up.shares[12, model.ANNUAL] < base.shares[12, model.ANNUAL] - 0.02
    assert down.shares[12, model.ANNUAL] > base.shares[12, model.ANNUAL] + 0.02


def test_removing_video_lowers_membership_and_benefit_raises_it(run_change):
    base = run_change(Change())
    no_video = run_change(Change(remove_video=True))
    benefit = run_change(Change(benefit_shift=0.3))
    members = lambda o: 1.0 - o.shares[:, model.NONE]  # noqa: E731
    assert np.all(members(no_video)[1:] < members(base)[1:])
    assert members(benefit)[-1] > members(base)[-1] + 0.05
    assert no_video.total_revenue < base.total_revenue


def test_baseline_stays_near_steady_state(run_change):
    """No change: shares stay at the model's steady state (36 % none, about 43 % + 21 %
    members), within a few points (4,000 customers)."""
    shares = run_change(Change()).shares
    np.testing.assert_allclose(shares.sum(1), 1.0, rtol=1e-6)
    assert abs(shares[:, model.NONE].mean() - 0.36) < 0.04


def test_apply_change_rules(params):
    changed = apply_change(
        params,
        Change(
            annual_price_factor=1.1, monthly_price_factor=0.5, benefit_shift=0.2, remove_video=True
        ),
    )
    np.testing.assert_allclose(changed.annual_price, 139.0 * 1.1, rtol=1e-6)
    np.testing.assert_allclose(changed.monthly_price, 14.99 * 0.5, rtol=1e-6)
    assert float(changed.benefit_shift) == pytest.approx(0.2)
    assert float(changed.theta_video) == 0.0
    assert float(changed.theta_ship) == float(params.theta_ship)


@pytest.mark.slow
def test_float64_follows_params():
    with jax.enable_x64(True):
        params = model.true_params(jnp.float64)
        states = simulate.MemberStates(*(jnp.zeros(50, jnp.int32) for _ in range(6)))
        outcome = counterfactual(jax.random.key(0), params, Change(), states, 3)
        assert outcome.shares.dtype == jnp.float64 and outcome.revenue.dtype == jnp.float64


@pytest.mark.slow
def test_price_search_matches_counterfactuals(params, population):
    grid = jnp.asarray([100.0, 139.0, 180.0])
    search = jax.device_get(
        jax.jit(lambda: price_search(jax.random.key(3), params, grid, population, 6))()
    )
    one_price = jax.jit(  # one compile for the three prices
        lambda factor: counterfactual(
            jax.random.key(3), params, Change(annual_price_factor=factor), population, 6
        )
    )
    for g, price in enumerate(np.asarray(grid)):
        one = one_price(price / 139.0)
        np.testing.assert_allclose(search.revenue[g], one.discounted_revenue, rtol=1e-4)
        np.testing.assert_allclose(
            search.annual_share[g], one.shares[-1, model.ANNUAL], rtol=1e-4, atol=1e-6
        )
    assert search.annual_share[0] > search.annual_share[2]
    assert search.best_revenue == search.revenue.max()
    assert search.best_price == grid[np.argmax(search.revenue)]


def test_simulate_outcome_is_exactly_reproducible(params, population):
    tables = jax.jit(simulate.tables)(params)
    outcome = jax.jit(lambda key: simulate_outcome(key, tables, population, 4))
    a, b, c = (outcome(jax.random.key(seed)) for seed in (5, 5, 6))
    np.testing.assert_array_equal(a.revenue, b.revenue)
    assert not np.array_equal(a.revenue, c.revenue)


@pytest.mark.parametrize(
    "change, field",
    [
        (Change(annual_price_factor=-0.1), "change.annual_price_factor"),
        (Change(monthly_price_factor=float("nan")), "change.monthly_price_factor"),
        (Change(benefit_shift=float("inf")), "change.benefit_shift"),
        (Change(remove_video=1), "change.remove_video"),
        (Change(promotion_month=-2), "change.promotion_month"),
        (Change(promotion_month=MONTHS), "change.promotion_month"),
        (Change(promotion_month=1.5), "change.promotion_month"),
    ],
)
def test_bad_changes_are_named(params, population, change, field):
    with pytest.raises(InvalidArgumentError, match=field):
        counterfactual(jax.random.key(0), params, change, population, MONTHS)


def test_bad_inputs_are_named(params, population):
    key = jax.random.key(0)
    with pytest.raises(InvalidArgumentError, match="months"):
        counterfactual(key, params, Change(), population, 0)
    with pytest.raises(InvalidArgumentError, match="initial_states.plan"):
        counterfactual(key, params, Change(), population._replace(plan=population.plan + 13))
    with pytest.raises(InvalidArgumentError, match="initial_states.segment"):
        counterfactual(key, params, Change(), population._replace(segment=population.segment[:5]))
    with pytest.raises(InvalidArgumentError, match="change"):
        counterfactual(key, params, {"annual_price_factor": 1.1}, population)
    with pytest.raises(InvalidArgumentError, match="annual_prices"):
        price_search(key, params, jnp.asarray([100.0, -5.0]), population)
    with pytest.raises(InvalidArgumentError, match="params.annual_price"):
        counterfactual(key, params._replace(annual_price=jnp.float32(-1.0)), Change(), population)
