"""The panel simulator draws from the model's own tables.

One month of 200,000 customers spread uniformly over every state of a small model (``E = 2``,
a 2-month lock, both segments): the frequencies of each draw (the choice given the whole state,
tenure given membership and tenure, engagement given segment, membership, content and
engagement, content, regime) are compared with the tables by a Pearson chi-square test per
component, over the (condition, outcome) cells expecting at least 5 draws, at level 1e-6 with
one degree of freedom per cell kept (conservative): the failure budget is about 1e-5 for the
six statistics of the file, and the test that feeds the checker a wrong policy shows it can
fail. Plans and payments are deterministic and compared exactly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from prime_science.membership import model, simulate

LEVELS, LOCK = 2, 2
NUM_MEMBERS = 200_000
SMALL = dict(
    ship_target=[[0.3, 0.8], [0.1, 0.6]],
    video_target=[[0.2, 0.7], [0.1, 0.4]],
    content_lift=0.5,
    annual_price=40.0,
)


@pytest.fixture(scope="module")
def tables():
    params = model.true_params(**SMALL)
    return jax.jit(lambda p: simulate.tables(p, levels=LEVELS, lock_months=LOCK))(params)


def _uniform_states(seed):
    rng = np.random.default_rng(seed)
    draw = lambda high: jnp.asarray(rng.integers(0, high, NUM_MEMBERS), jnp.int32)  # noqa: E731
    return simulate.MemberStates(
        plan=draw(model.num_plans(LOCK)),
        tenure=draw(len(model.TENURE_WIDTHS)),
        engagement=draw(LEVELS**2),
        content=draw(2),
        regime=draw(len(model.REGIMES)),
        segment=draw(2),
    )


@pytest.fixture(scope="module", params=[None, 1], ids=["own_regime", "promotion_override"])
def month(request, tables):
    states = _uniform_states(0)
    step = jax.jit(lambda key, tables, states: simulate.step(key, tables, states, request.param))
    new, action, payment = jax.device_get(step(jax.random.key(1), tables, states))
    before = jax.tree.map(np.asarray, states)
    regime = before.regime if request.param is None else np.full(NUM_MEMBERS, request.param)
    return before, regime, new, action, payment


def _host(tables):
    return jax.tree.map(np.asarray, tables)


def _pearson(conditions, outcomes, probs, min_expected=5.0):
    """``(statistic, cells kept)``: Pearson's statistic of observed vs expected counts of each
    outcome within each condition, over the cells expecting at least ``min_expected`` draws;
    its degrees of freedom are at most the cells kept."""
    num_conditions, num_outcomes = int(conditions.max()) + 1, probs.shape[1]
    observed = np.zeros((num_conditions, num_outcomes))
    np.add.at(observed, (conditions, outcomes), 1.0)
    expected = np.zeros_like(observed)
    np.add.at(expected, conditions, probs.astype(np.float64))
    # a draw of an outcome the table gives probability 0 is never allowed
    assert not np.any((observed > 0) & (expected == 0)), "drew an impossible outcome"
    kept = expected >= min_expected
    statistic = np.sum((observed[kept] - expected[kept]) ** 2 / expected[kept])
    return statistic, int(kept.sum())


def _assert_fits(conditions, outcomes, probs, min_cells):
    statistic, kept = _pearson(conditions, outcomes, probs)
    assert kept >= min_cells, f"only {kept} cells expect 5 draws"
    assert statistic < stats.chi2.ppf(1 - 1e-6, kept), (statistic, kept)


def _state_cell(before, regime):
    shape = (2,) + model.state_shape(LEVELS, LOCK)
    return np.ravel_multi_index(
        (before.segment, before.plan, before.tenure, before.engagement, before.content, regime),
        shape,
    )


def test_choice_frequencies_match_policy(tables, month):
    tables = _host(tables)
    before, regime, _, action, _ = month
    policy = np.exp(
        tables.log_policy[
            before.segment, before.plan, before.tenure, before.engagement, before.content, regime
        ]
    )
    _assert_fits(_state_cell(before, regime), action, policy, min_cells=700)


def test_checker_rejects_a_wrong_policy(tables, month):
    tables = _host(tables)
    before, regime, _, action, _ = month
    wrong = np.exp(
        tables.log_policy[
            1 - before.segment, before.plan, before.tenure, before.engagement, before.content, 0
        ]
    )
    statistic, kept = _pearson(_state_cell(before, regime), action, wrong)
    assert statistic > stats.chi2.ppf(1 - 1e-6, kept)


def test_state_transition_frequencies_match_tables(tables, month):
    tables = _host(tables)
    before, regime, new, action, _ = month
    member = (action != model.NONE).astype(int)
    _assert_fits(
        member * 6 + before.tenure, new.tenure, tables.tenure[member, before.tenure], min_cells=15
    )
    engagement_cell = np.ravel_multi_index(
        (before.segment, member, before.content, before.engagement), (2, 2, 2, LEVELS**2)
    )
    _assert_fits(
        engagement_cell,
        new.engagement,
        tables.engagement[before.segment, member, before.content, before.engagement],
        min_cells=40,
    )
    _assert_fits(before.content, new.content, tables.content[before.content], min_cells=4)
    _assert_fits(regime, new.regime, tables.regime[regime], min_cells=2)
    np.testing.assert_array_equal(new.segment, before.segment)


def test_plans_and_payments_are_exact(tables, month):
    tables = _host(tables)
    before, regime, new, action, payment = month
    np.testing.assert_array_equal(new.plan, tables.next_plan[before.plan, action])
    free = before.plan < 2
    np.testing.assert_array_equal(payment, np.where(free, tables.prices[regime, action], 0.0))
    locked = ~free
    assert locked.sum() > 10_000 and np.all(action[locked] == model.ANNUAL)


@pytest.fixture(scope="module")
def panel_of(tables):
    params = model.true_params(**SMALL)
    return jax.jit(
        lambda key: simulate.simulate_panel(
            key, params, 500, 12, burn_in=12, levels=LEVELS, lock_months=LOCK, tables_=tables
        )[0]
    )


def test_same_key_same_panel_other_key_differs(panel_of):
    first, again = panel_of(jax.random.key(7)), panel_of(jax.random.key(7))
    other = panel_of(jax.random.key(8))
    for name, a, b in zip(simulate.Panel._fields, first, again, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert not np.array_equal(first.choice, other.choice)
    assert not np.array_equal(first.ship, other.ship)
    plan, choice = np.asarray(first.plan), np.asarray(first.choice)
    assert np.any(plan >= 2) and np.all(choice[plan >= 2] == model.ANNUAL)
    follows = model.next_plan(LOCK)[plan[:, :-1], choice[:, :-1]]
    np.testing.assert_array_equal(plan[:, 1:], follows)
