"""The membership model against an independent float64 oracle.

The oracle enumerates every state of a small model (``E = 2`` engagement levels, a 2-month lock:
4 plans x 6 tenure x 4 engagement x 2 content x 3 regimes = 576 states), builds the three dense
``576 x 576`` transition matrices and the flow utilities by loops from the rules in the model's
docstring (nothing from :mod:`prime_science.membership.model` but the parameter record), and
solves ``V = log sum_a exp(u + beta P_a V)`` by soft policy iteration until the Bellman residual
is below 1e-12.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.membership import model

LEVELS, LOCK = 2, 2
SMALL = dict(
    ship_target=[[0.3, 0.8], [0.1, 0.6]],
    video_target=[[0.2, 0.7], [0.1, 0.4]],
    content_lift=0.5,
    benefit_shift=0.2,
    annual_price=40.0,
)


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def _one_dimension(x, target, move, levels):
    """``{next level: probability}`` of one engagement dimension at ``x``; a blocked move stays."""
    up, down = move * _sigmoid(target - x), move * _sigmoid(x - target)
    out = {x: 1.0 - move}
    for step, p in ((1, up), (-1, down)):
        to = x + step if 0 <= x + step < levels else x
        out[to] = out.get(to, 0.0) + p
    return out


def _oracle(p, segment):
    """``(states, u float[S, 3], P float[3, S, S], feasible bool[S, 3])`` by enumeration."""
    f = {name: np.asarray(value, np.float64) for name, value in p._asdict().items()}
    num_plans, widths = 2 + LOCK, (1, 2, 3, 6, 12, 0)
    states = list(
        itertools.product(
            range(num_plans), range(6), range(LEVELS), range(LEVELS), (0, 1), (0, 1, 2)
        )
    )
    index = {s: i for i, s in enumerate(states)}
    size = len(states)
    u = np.zeros((size, 3))
    transition = np.zeros((3, size, size))
    feasible = np.zeros((size, 3), bool)
    cut = 1.0 - f["promo_discount"]
    prices = {
        0: (0.0, f["monthly_price"], f["annual_price"]),
        1: (0.0, f["monthly_price"] * cut, f["annual_price"] * cut),
        2: (0.0, f["monthly_price"], f["annual_price"] * f["higher_annual_factor"]),
    }
    for i, (plan, tenure, ship, video, content, regime) in enumerate(states):
        for action in range(3):
            locked = plan >= 2
            if locked and action != 2:
                continue
            feasible[i, action] = True
            member = action != 0
            if member:
                price = 0.0 if locked else prices[regime][action]
                u[i, action] = (
                    f["intercept"]
                    + f["benefit_shift"]
                    + f["theta_ship"] * ship / (LEVELS - 1)
                    + f["theta_video"] * video / (LEVELS - 1)
                    + f["theta_tenure"] * tenure / 5
                    - f["theta_price"] * price
                    - f["kappa"] * (plan == 0)
                )
            if action == 0:
                plan_next = 0
            elif action == 1:
                plan_next = 1
            elif not locked:
                plan_next = 2
            else:
                plan_next = plan + 1 if plan + 1 < num_plans else 1
            if member:
                width = widths[tenure]
                tenure_next = {tenure: 1.0} if width == 0 else {tenure: 1 - 1 / width}
                if width:
                    tenure_next[tenure + 1] = 1 / width
            else:
                tenure_next = {0: 1.0}
            ship_target = f["ship_target"][segment, int(member)]
            video_target = f["video_target"][segment, int(member)]
            video_target = min(
                max(video_target + member * content * f["content_lift"], 0.0), LEVELS - 1
            )
            nu, rho = f["engagement_move"], f["engagement_correlation"]
            engagement = {}
            for s2, ps in _one_dimension(ship, ship_target, nu, LEVELS).items():
                for v2, pv in _one_dimension(video, video_target, nu, LEVELS).items():
                    engagement[s2, v2] = engagement.get((s2, v2), 0.0) + (1 - rho) * ps * pv
            common = {
                -1: nu * _sigmoid(ship - ship_target),
                0: 1 - nu,
                1: nu * _sigmoid(ship_target - ship),
            }
            for step, pm in common.items():
                key = (min(max(ship + step, 0), LEVELS - 1), min(max(video + step, 0), LEVELS - 1))
                engagement[key] = engagement.get(key, 0.0) + rho * pm
            arrive = f["content_arrival"] if content == 0 else f["content_persistence"]
            for t2, pt in tenure_next.items():
                for (s2, v2), pe in engagement.items():
                    for c2, pc in ((0, 1 - arrive), (1, arrive)):
                        for r2 in range(3):
                            pr = f["regime_transition"][regime, r2]
                            j = index[plan_next, t2, s2, v2, c2, r2]
                            transition[action, i, j] += pt * pe * pc * pr
    return states, u, transition, feasible


def _soft_policy_iteration(u, transition, feasible, discount, tol=1e-12):
    """``(V, log pi)`` with ``max |T V - V| < tol``: evaluate the soft policy exactly, improve."""
    size = u.shape[0]
    log_pi = np.where(feasible, -np.log(feasible.sum(1, keepdims=True)), -np.inf)
    for _ in range(100):
        pi = np.exp(log_pi)
        reward = np.sum(np.where(feasible, pi * (u - np.where(feasible, log_pi, 0.0)), 0.0), 1)
        p_pi = np.einsum("sa,ast->st", pi, transition)
        value = np.linalg.solve(np.eye(size) - discount * p_pi, reward)
        q = np.where(feasible, u + discount * np.einsum("ast,t->sa", transition, value), -np.inf)
        top = q.max(1, keepdims=True)
        bellman = top[:, 0] + np.log(np.exp(q - top).sum(1))
        log_pi = q - bellman[:, None]
        if np.max(np.abs(bellman - value)) < tol:
            return value, np.where(feasible, log_pi, -np.inf)
    raise AssertionError("the oracle did not converge")


@pytest.fixture(scope="module", params=[0, 1], ids=["segment0", "segment1"])
def solved(request):
    segment = request.param
    with jax.enable_x64(True):
        params = model.true_params(jnp.float64, **SMALL)
        solve = jax.jit(
            lambda p: (
                model.solve(p, segment, levels=LEVELS, lock_months=LOCK, tol=1e-13),
                model.flow_utilities(p, LEVELS, LOCK),
            )
        )
        solution, flow = jax.device_get(solve(params))
    states, u, transition, feasible = _oracle(params, segment)
    value, log_pi = _soft_policy_iteration(u, transition, feasible, float(params.discount))
    return dict(solution=solution, flow=flow, u=u, value=value, log_pi=log_pi, feasible=feasible)


def _flat(table):
    """``[plans, 6, E^2, 2, 3, ...] -> [S, ...]`` in the oracle's order (plan, tenure, ship,
    video, content, regime), which is C order with ``e = ship E + video``."""
    return np.asarray(table).reshape(-1, *np.shape(table)[5:])


def test_transition_rows_sum_to_one():
    with jax.enable_x64(True):
        params = model.true_params(jnp.float64, **SMALL)
    _, _, transition, feasible = _oracle(params, 0)
    sums = transition.sum(-1)
    np.testing.assert_allclose(sums[feasible.T], 1.0, atol=1e-14)
    assert np.all(sums[~feasible.T] == 0)


def test_flow_utilities_match_oracle(solved):
    flow = _flat(solved["flow"])
    feasible = solved["feasible"]
    np.testing.assert_allclose(flow[feasible], solved["u"][feasible], atol=1e-12)


def test_values_and_policies_match_dense_value_iteration(solved):
    solution = solved["solution"]
    assert float(solution.residual) <= 1e-13
    np.testing.assert_allclose(_flat(solution.value), solved["value"], rtol=0, atol=1e-9)
    log_policy = _flat(solution.log_policy)
    feasible = solved["feasible"]
    assert np.array_equal(np.isfinite(log_policy), feasible)
    np.testing.assert_allclose(
        np.exp(log_policy[feasible]), np.exp(solved["log_pi"][feasible]), rtol=0, atol=1e-9
    )


def test_lock_masks(solved):
    policy = np.exp(solved["solution"].log_policy)  # [plans, ..., 3]
    locked, free = policy[2:], policy[:2]
    assert np.all(locked[..., model.NONE] == 0.0) and np.all(locked[..., model.MONTHLY] == 0.0)
    assert np.all(locked[..., model.ANNUAL] == 1.0)
    assert np.all(free > 0.0)
    np.testing.assert_allclose(free.sum(-1), 1.0, atol=1e-12)


def test_features_dot_theta_is_flow_utility():
    params = model.true_params(benefit_shift=0.0)
    features, flow = jax.jit(lambda p: (model.utility_features(p), model.flow_utilities(p)))(params)
    theta = jnp.stack([getattr(params, name) for name in model.STRUCTURAL])
    assert features.shape == model.state_shape() + (3, len(model.STRUCTURAL))
    np.testing.assert_allclose(features @ theta, flow, atol=1e-5)
    shifted = jax.jit(model.flow_utilities)(params._replace(benefit_shift=jnp.asarray(0.7)))
    np.testing.assert_allclose(shifted, features @ theta + 0.7 * features[..., 0], atol=1e-5)
    # none and every infeasible action carry no feature
    assert np.all(features[..., model.NONE, :] == 0)
    assert np.all(features[2:, ..., model.NONE : model.ANNUAL, :] == 0)


@pytest.mark.slow
def test_solve_is_differentiable_in_forward_mode():
    with jax.enable_x64(True):
        params = model.true_params(jnp.float64, **SMALL)
        theta = jnp.stack([getattr(params, name) for name in model.STRUCTURAL])

        def value(theta):
            record = params._replace(**dict(zip(model.STRUCTURAL, theta, strict=True)))
            solution = model.solve(record, 1, levels=LEVELS, lock_months=LOCK, tol=1e-13)
            return solution.value.reshape(-1)[::7]

        jacobian = jax.jit(jax.jacfwd(value))(theta)
        value = jax.jit(value)
        step = 1e-5
        columns = []
        for k in range(theta.size):
            bump = jnp.zeros_like(theta).at[k].set(step)
            columns.append((value(theta + bump) - value(theta - bump)) / (2 * step))
        finite = jnp.stack(columns, axis=1)
    assert np.all(np.isfinite(jacobian))
    np.testing.assert_allclose(jacobian, finite, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (dict(monthly_price=-1.0), "params.monthly_price"),
        (dict(annual_price=-139.0), "params.annual_price"),
        (dict(discount=1.0), "params.discount"),
        (dict(discount=0.0), "params.discount"),
        (dict(discount=-0.5), "params.discount"),
        (dict(ship_target=[[0.3, 1.5], [0.1, 0.6]]), "params.ship_target"),
        (dict(video_target=[[-0.1, 0.7], [0.1, 0.4]]), "params.video_target"),
        (dict(theta_ship=float("nan")), "params.theta_ship"),
        (dict(intercept=float("inf")), "params.intercept"),
        (dict(monthly_price=float("inf")), "params.monthly_price"),
        (dict(engagement_move=1.5), "params.engagement_move"),
        (
            dict(regime_transition=[[0.9, 0.05, 0.05], [0.9, 0.0, 0.05], [0.05, 0.05, 0.9]]),
            "params.regime_transition",
        ),
    ],
)
def test_bad_parameters_are_refused_by_name(overrides, field):
    params = model.true_params(**(SMALL | overrides))
    with pytest.raises(InvalidArgumentError, match=rf"^{field}: expected"):
        model.solve(params, levels=LEVELS, lock_months=LOCK)
