"""The structural model of Prime membership: monthly choices of none, monthly or annual.

A dynamic discrete choice model (Rust 1987) with an anchor action (Geng et al., Deep PQR): each
month a customer in state ``s`` chooses ``a`` in {none, monthly, annual} to maximise
``u(s, a) + eps_a + beta E[V(s') | s, a]`` with i.i.d. standard Gumbel shocks ``eps``, so

    V(s) = log sum_{a feasible at s} exp Q(s, a),   Q(s, a) = u(s, a) + beta E[V(s') | s, a],
    pi(a | s) = exp(Q(s, a) - V(s)) on feasible actions, exactly 0 elsewhere.

State ``s = (plan, tenure, engagement, content, regime)`` for a customer of observed
``segment`` (a fixed characteristic that shifts engagement; the model is solved per segment):

* ``plan``: 0 = none, 1 = a member free to choose (on the monthly plan, or at the end of an
  annual term), ``2 .. 1 + L`` = locked in an annual term with ``L, L - 1, .., 1`` months left
  (``L = lock_months = 11``). Buying annual at a free state pays the annual price and moves to
  the first locked plan; locked states have one feasible action (``annual``, the term running
  on, at no payment) and the last one returns to plan 1.
* ``tenure``: consecutive months as a member in buckets ``0, 1-2, 3-5, 6-11, 12-23, 24+``
  (:data:`TENURE_WIDTHS`); a member moves up one bucket with probability ``1 / width`` a month
  (the bucket's mean duration), ``none`` resets it to 0.
* ``engagement``: shipping ``e_ship`` and video ``e_video`` in ``0 .. E - 1`` (order and viewing
  buckets), one joint index ``e = e_ship E + e_video``. Each moves by ``-1, 0, +1`` a month
  towards a target that depends on membership after this month's action (benefit use is
  endogenous), on the segment and, for video, on the content state::

      P(up | x) = nu sigmoid(mu - x),  P(down | x) = nu sigmoid(x - mu),  P(stay) = 1 - nu,

  clipped at the ends (a blocked move stays). With probability ``rho`` both move together by
  one draw from shipping's distribution (a common shock), else independently: the joint
  transition is ``rho C + (1 - rho) (Q_ship (x) Q_video)``, which sets corr(e_ship, e_video).
* ``content``: an exogenous video-content shock (0 = usual, 1 = a new season the member likes),
  a two-state Markov chain ``P(0 -> 1) = content_arrival``, ``P(1 -> 1) = content_persistence``;
  it raises the video target of members by ``content_lift`` and moves nothing else, so it
  separates ``theta_video`` from ``theta_ship`` (``content_arrival = 0`` switches it off).
* ``regime``: the price offer the customer faces, 0 = regular, 1 = a promotion month (monthly
  and annual prices cut by ``promo_discount``), 2 = a higher annual price (times
  ``higher_annual_factor``); a Markov chain with matrix ``regime_transition``.

Flow utility (``none`` is the anchor, utility 0; ``g(e) = e / (E - 1)``, ``tau(t) = t / 5``)::

    u(s, a) = intercept + benefit_shift + theta_ship g(e_ship) + theta_video g(e_video)
              + theta_tenure tau(tenure) - theta_price price(plan, regime, a)
              - kappa 1[plan = none],                          for a in {monthly, annual}

with ``price`` the monthly price for ``monthly``, the annual price for ``annual`` bought at a free
state, and 0 in a locked month (the annual plan pays once; its benefits flow every month).

Solution: relative value iteration (:func:`solve`) on all ``13 x 6 x E^2 x 2 x 3`` states, the
expectation factorised over the state's components (:func:`expected_next_values`), so a step
costs ``O(S (E^2 + 6 + 2 + 3))`` instead of ``O(S^2)``. The loop is a ``lax.while_loop``, so
forward-mode derivatives (``jax.jvp``, ``jax.jacfwd``) flow through it to every parameter.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.core import errors

__all__ = [
    "ACTIONS",
    "ANNUAL",
    "MONTHLY",
    "NONE",
    "PLAN_FREE",
    "PLAN_NONE",
    "REGIMES",
    "STRUCTURAL",
    "TENURE_WIDTHS",
    "MembershipParams",
    "Solution",
    "check_params",
    "engagement_transition",
    "expected_next_values",
    "feasible_actions",
    "flow_utilities",
    "next_plan",
    "num_plans",
    "regime_prices",
    "solve",
    "state_shape",
    "tenure_transition",
    "true_params",
    "utility_features",
]

NONE, MONTHLY, ANNUAL = 0, 1, 2
ACTIONS = ("none", "monthly", "annual")
"""The actions, by index; ``none`` (0) is the anchor with flow utility 0."""
PLAN_NONE, PLAN_FREE = 0, 1
"""Plan 0: not a member; plan 1: a member free to choose; plans ``2 ..``: locked annual months."""
REGIMES = ("regular", "promotion", "higher annual price")
TENURE_WIDTHS = (1, 2, 3, 6, 12, 0)
"""Months per tenure bucket ``0, 1-2, 3-5, 6-11, 12-23, 24+`` (0: the last bucket absorbs)."""
STRUCTURAL = ("intercept", "theta_ship", "theta_video", "theta_tenure", "theta_price", "kappa")
"""The utility parameters the estimators recover, in this order."""


class MembershipParams(NamedTuple):
    """Every number of the model, by name (scalars, or arrays where noted).

    Utility (the structural parameters, :data:`STRUCTURAL`): ``intercept`` (a member's utility
    at zero engagement and tenure), ``theta_ship`` and ``theta_video`` (utility of the top
    engagement bucket of each benefit), ``theta_tenure`` (of the top tenure bucket),
    ``theta_price`` (per dollar), ``kappa`` (the one-off cost of joining from none).

    Offering (the levers of a counterfactual): ``monthly_price`` and ``annual_price`` (dollars),
    ``promo_discount`` (share of both prices cut in a promotion month), ``higher_annual_factor``
    (annual price multiplier of regime 2), ``benefit_shift`` (utils a month of a new benefit).

    Dynamics: ``discount`` (beta, fixed: not identified), engagement targets ``ship_target`` and
    ``video_target`` (``float[2 segments, 2]``: [segment, member?]), ``engagement_move`` (nu),
    ``engagement_correlation`` (rho), ``content_lift``, ``content_arrival``,
    ``content_persistence``, ``regime_transition`` (``float[3, 3]``, rows sum to 1).
    """

    intercept: jax.Array
    theta_ship: jax.Array
    theta_video: jax.Array
    theta_tenure: jax.Array
    theta_price: jax.Array
    kappa: jax.Array
    monthly_price: jax.Array
    annual_price: jax.Array
    promo_discount: jax.Array
    higher_annual_factor: jax.Array
    benefit_shift: jax.Array
    discount: jax.Array
    ship_target: jax.Array
    video_target: jax.Array
    engagement_move: jax.Array
    engagement_correlation: jax.Array
    content_lift: jax.Array
    content_arrival: jax.Array
    content_persistence: jax.Array
    regime_transition: jax.Array


def true_params(dtype=jnp.float32, **overrides) -> MembershipParams:
    """The simulator's truth (a plausible calibration, not estimates from real data): prices of
    Amazon Prime in the US (14.99 a month, 139 a year), about 60 % of customers members."""
    values = dict(
        intercept=-1.1,
        theta_ship=2.0,
        theta_video=1.2,
        theta_tenure=0.6,
        theta_price=0.1,
        kappa=1.5,
        monthly_price=14.99,
        annual_price=139.0,
        promo_discount=0.3,
        higher_annual_factor=1.15,
        benefit_shift=0.0,
        discount=0.99,
        ship_target=[[0.8, 2.8], [0.4, 2.0]],
        video_target=[[0.2, 1.8], [0.2, 1.4]],
        engagement_move=0.6,
        engagement_correlation=0.3,
        content_lift=1.5,
        content_arrival=0.15,
        content_persistence=0.6,
        regime_transition=[[0.9, 0.05, 0.05], [0.95, 0.0, 0.05], [0.05, 0.05, 0.9]],
    )
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        errors.fail("true_params overrides", "fields of MembershipParams", unknown)
    values.update(overrides)
    return MembershipParams(**{k: jnp.asarray(v, dtype) for k, v in values.items()})


def num_plans(lock_months: int = 11) -> int:
    """``2 + lock_months``: none, free member, and one plan per locked month."""
    return 2 + lock_months


def state_shape(engagement_levels: int = 5, lock_months: int = 11) -> tuple[int, ...]:
    """``(plans, tenure buckets, E^2, content, regimes)``: the axes of a value table."""
    return (num_plans(lock_months), len(TENURE_WIDTHS), engagement_levels**2, 2, len(REGIMES))


def _finite_scalar(name: str, value, *, low=None, high=None, open_low=False, open_high=False):
    x = np.asarray(value, np.float64)
    if x.shape != ():
        errors.fail(f"params.{name}", "a scalar", f"shape {x.shape}")
    if not np.isfinite(x):
        errors.fail(f"params.{name}", "a finite number", float(x))
    if low is not None and (x <= low if open_low else x < low):
        errors.fail(f"params.{name}", f"{'>' if open_low else '>='} {low}", float(x))
    if high is not None and (x >= high if open_high else x > high):
        errors.fail(f"params.{name}", f"{'<' if open_high else '<='} {high}", float(x))


def check_params(params: MembershipParams, engagement_levels: int = 5) -> None:
    """Named errors for a record no model can have (concrete values only; traced ones pass):
    a non-finite number, a negative price, ``discount`` outside ``(0, 1)``, probabilities
    outside ``[0, 1]``, engagement targets outside ``[0, E - 1]``, a regime matrix whose rows
    do not sum to 1."""
    if not isinstance(params, MembershipParams):
        errors.fail("params", "a MembershipParams record", type(params).__name__)
    if not all(errors.is_concrete(leaf) for leaf in params):
        return
    for name in STRUCTURAL + ("benefit_shift", "content_lift"):
        _finite_scalar(name, getattr(params, name))
    for name in ("monthly_price", "annual_price"):
        _finite_scalar(name, getattr(params, name), low=0.0)
    _finite_scalar("higher_annual_factor", params.higher_annual_factor, low=0.0)
    _finite_scalar("discount", params.discount, low=0.0, high=1.0, open_low=True, open_high=True)
    for name in (
        "promo_discount",
        "engagement_move",
        "engagement_correlation",
        "content_arrival",
        "content_persistence",
    ):
        _finite_scalar(name, getattr(params, name), low=0.0, high=1.0)
    for name in ("ship_target", "video_target"):
        target = np.asarray(getattr(params, name), np.float64)
        if target.shape != (2, 2):
            errors.fail(f"params.{name}", "shape (2 segments, 2 membership states)", target.shape)
        if (
            not np.all(np.isfinite(target))
            or target.min() < 0
            or target.max() > engagement_levels - 1
        ):
            errors.fail(
                f"params.{name}",
                f"engagement targets in [0, {engagement_levels - 1}]",
                target.tolist(),
            )
    regime = np.asarray(params.regime_transition, np.float64)
    if regime.shape != (3, 3) or not np.all(np.isfinite(regime)) or regime.min() < 0:
        errors.fail("params.regime_transition", "a 3 x 3 matrix of probabilities", regime.tolist())
    if not np.allclose(regime.sum(axis=1), 1.0, atol=1e-6):
        errors.fail("params.regime_transition", "rows summing to 1", regime.sum(axis=1).tolist())


def feasible_actions(lock_months: int = 11) -> np.ndarray:
    """``bool[plans, 3]``: every action at plans 0 and 1, only ``annual`` while locked."""
    feasible = np.zeros((num_plans(lock_months), len(ACTIONS)), bool)
    feasible[:2] = True
    feasible[2:, ANNUAL] = True
    return feasible


def next_plan(lock_months: int = 11) -> np.ndarray:
    """``int32[plans, 3]``: the plan after taking an action (infeasible entries point at 0)."""
    plans = num_plans(lock_months)
    table = np.zeros((plans, len(ACTIONS)), np.int32)
    table[:2, NONE] = PLAN_NONE
    table[:2, MONTHLY] = PLAN_FREE
    table[:2, ANNUAL] = 2 if lock_months else PLAN_FREE
    for plan in range(2, plans):
        table[plan, ANNUAL] = plan + 1 if plan + 1 < plans else PLAN_FREE
    return table


def tenure_transition(dtype=jnp.float32) -> jax.Array:
    """``float[2, 6, 6]``: tenure bucket moves for [not a member, a member] after this month.

    A member in a bucket of width ``w`` moves up with probability ``1 / w`` (the last bucket
    keeps them); a month without membership resets tenure to bucket 0."""
    buckets = len(TENURE_WIDTHS)
    member = np.zeros((buckets, buckets))
    for t, width in enumerate(TENURE_WIDTHS):
        up = 1.0 / width if width else 0.0
        member[t, t] = 1.0 - up
        if up:
            member[t, t + 1] = up
    lapsed = np.zeros((buckets, buckets))
    lapsed[:, 0] = 1.0
    return jnp.asarray(np.stack([lapsed, member]), dtype)


def _moves(target: jax.Array, move: jax.Array, levels: int) -> jax.Array:
    """``float[levels, levels]``: one engagement dimension's chain towards ``target``."""
    x = jnp.arange(levels, dtype=target.dtype)
    up = move * jax.nn.sigmoid(target - x)
    down = move * jax.nn.sigmoid(x - target)
    up = up.at[-1].set(0.0)
    down = down.at[0].set(0.0)
    eye = jnp.eye(levels, dtype=target.dtype)
    return (
        eye * (1.0 - up - down)[:, None]
        + jnp.eye(levels, k=1, dtype=target.dtype) * up[:, None]
        + jnp.eye(levels, k=-1, dtype=target.dtype) * down[:, None]
    )


def engagement_transition(params: MembershipParams, segment, levels: int = 5) -> jax.Array:
    """``float[2 member?, 2 content, E^2, E^2]``: the joint (shipping, video) chain.

    ``rho C + (1 - rho) Q_ship (x) Q_video``, where the common-shock part ``C`` moves both
    dimensions by one draw ``m`` from shipping's move distribution (each clipped to
    ``[0, E - 1]``); row ``e = e_ship E + e_video``."""
    dtype = params.theta_ship.dtype
    rho, nu = params.engagement_correlation, params.engagement_move
    x = jnp.arange(levels)
    step_to = [
        jax.nn.one_hot(jnp.clip(x + m, 0, levels - 1), levels, dtype=dtype) for m in (-1, 0, 1)
    ]
    rows = []
    for member in (0, 1):
        per_content = []
        for content in (0, 1):
            ship_target = params.ship_target[segment, member]
            video_target = (
                params.video_target[segment, member] + member * content * params.content_lift
            )
            video_target = jnp.clip(video_target, 0.0, levels - 1.0)
            ship = _moves(ship_target, nu, levels)
            video = _moves(video_target, nu, levels)
            independent = jnp.einsum("ab,cd->acbd", ship, video).reshape(levels**2, levels**2)
            up = nu * jax.nn.sigmoid(ship_target - x.astype(dtype))
            down = nu * jax.nn.sigmoid(x.astype(dtype) - ship_target)
            move_probs = (down, 1.0 - up - down, up)  # of m = -1, 0, +1, per e_ship
            common = sum(
                jnp.einsum("a,ab,cd->acbd", p, step_to[m], step_to[m])
                for m, p in enumerate(move_probs)
            ).reshape(levels**2, levels**2)
            per_content.append(rho * common + (1.0 - rho) * independent)
        rows.append(jnp.stack(per_content))
    return jnp.stack(rows)


def content_transition(params: MembershipParams) -> jax.Array:
    """``float[2, 2]``: the content shock's chain (row: this month, column: next month)."""
    arrive, stay = params.content_arrival, params.content_persistence
    return jnp.stack([jnp.stack([1.0 - arrive, arrive]), jnp.stack([1.0 - stay, stay])])


def regime_prices(params: MembershipParams) -> jax.Array:
    """``float[3 regimes, 3 actions]``: the price of buying each action in each regime."""
    cut = 1.0 - params.promo_discount
    monthly, annual = params.monthly_price, params.annual_price
    zero = jnp.zeros_like(monthly)
    return jnp.stack(
        [
            jnp.stack([zero, monthly, annual]),
            jnp.stack([zero, monthly * cut, annual * cut]),
            jnp.stack([zero, monthly, annual * params.higher_annual_factor]),
        ]
    )


def utility_features(params: MembershipParams, levels: int = 5, lock_months: int = 11) -> jax.Array:
    """``float[plans, 6, E^2, 2, 3, 3, 6]``: ``d u(s, a) / d theta`` for :data:`STRUCTURAL`.

    ``u(s, a) = features(s, a) . (intercept, theta_ship, theta_video, theta_tenure,
    theta_price, kappa) + benefit_shift 1[a member action]``; every feature of ``none`` and of
    infeasible actions is 0. The features do not depend on the utility parameters, only on the
    offering (prices), so estimators that are linear in ``theta`` (CCP, static logit, PQR's
    projection) use them directly."""
    dtype = params.theta_ship.dtype
    plans, buckets, regimes = num_plans(lock_months), len(TENURE_WIDTHS), len(REGIMES)
    grade = jnp.arange(levels, dtype=dtype) / max(levels - 1, 1)
    ship = jnp.repeat(grade, levels)  # e // E
    video = jnp.tile(grade, levels)  # e % E
    tenure = jnp.arange(buckets, dtype=dtype) / (buckets - 1)
    member = jnp.asarray(np.arange(len(ACTIONS)) != NONE, dtype)
    feasible = jnp.asarray(feasible_actions(lock_months), dtype)
    free = jnp.asarray(np.arange(plans) < 2, dtype)
    shape = (plans, buckets, levels**2, 2, regimes, len(ACTIONS))

    def grid(values, axis):
        expand = [1] * len(shape)
        expand[axis] = values.shape[0]
        return jnp.broadcast_to(values.reshape(expand), shape)

    on = grid(member, 5) * jnp.broadcast_to(feasible[:, None, None, None, None, :], shape)
    price = jnp.broadcast_to(regime_prices(params)[None, None, None, None], shape) * grid(free, 0)
    joining = grid(jnp.asarray(np.arange(plans) == PLAN_NONE, dtype), 0)
    columns = [
        on,
        on * grid(ship, 2),
        on * grid(video, 2),
        on * grid(tenure, 1),
        -on * price,
        -on * joining,
    ]
    return jnp.stack(columns, axis=-1)


def _structural_vector(params: MembershipParams) -> jax.Array:
    return jnp.stack([getattr(params, name) for name in STRUCTURAL])


def flow_utilities(params: MembershipParams, levels: int = 5, lock_months: int = 11) -> jax.Array:
    """``float[plans, 6, E^2, 2, 3, 3]``: ``u(s, a)`` (0 for ``none`` and infeasible actions;
    :func:`feasible_actions` masks the latter)."""
    features = utility_features(params, levels, lock_months)
    member = features[..., 0]  # 1 on feasible member actions
    return features @ _structural_vector(params) + params.benefit_shift * member


def expected_next_values(
    params: MembershipParams, value: jax.Array, segment, levels: int = 5, lock_months: int = 11
) -> jax.Array:
    """``float[plans, 6, E^2, 2, 3, 3]``: ``E[V(s') | s, a]`` for a value table
    ``float[plans, 6, E^2, 2, 3]`` of customers in ``segment``.

    ``E[V(s') | s, a] = sum_{t', e', c', r'} T_m[t, t'] P_{m, c}[e, e'] C[c, c'] R[r, r']
    V(plan'(plan, a), t', e', c', r')`` with ``m = 1[a != none]``, contracted one component
    at a time."""
    return _expect(_transitions(params, segment, levels, value.dtype), value, lock_months)


class _Transitions(NamedTuple):
    """The factors of ``P(s' | s, a)`` for one segment (what a Bellman step reads)."""

    content: jax.Array  # [c, c']
    regime: jax.Array  # [r, r']
    engagement: jax.Array  # [member?, c, e, e']
    tenure: jax.Array  # [member?, t, t']


def _transitions(params: MembershipParams, segment, levels: int, dtype) -> _Transitions:
    return _Transitions(
        content=content_transition(params),
        regime=params.regime_transition,
        engagement=engagement_transition(params, segment, levels),
        tenure=tenure_transition(dtype),
    )


def _expect(transitions: _Transitions, value: jax.Array, lock_months: int) -> jax.Array:
    over_exogenous = jnp.einsum(
        "pteCR,cC,rR->ptecr", value, transitions.content, transitions.regime
    )
    over_engagement = jnp.einsum("mcEe,ptecr->mptEcr", transitions.engagement, over_exogenous)
    by_member = jnp.einsum("mTt,mptecr->mpTecr", transitions.tenure, over_engagement)
    plan_after = next_plan(lock_months)  # [plan, a]
    member_after = (np.arange(len(ACTIONS)) != NONE).astype(np.int32)  # [a]
    gathered = by_member[member_after[None, :], plan_after]  # [plan, a, t, e, c, r]
    return jnp.moveaxis(gathered, 1, -1)


class Solution(NamedTuple):
    """The model solved for one segment (axes ``[plans, 6, E^2, 2, 3]`` of the state, then
    ``3`` actions).

    Attributes:
      value: ``V(s)``.
      choice_values: ``Q(s, a)``, ``-inf`` on infeasible actions.
      log_policy: ``log pi(a | s)``, ``-inf`` on infeasible actions (probability exactly 0).
      iterations: relative value iteration steps taken.
      residual: ``max_s |G(W) - W|`` at the end (``G`` the relative Bellman operator).
    """

    value: jax.Array
    choice_values: jax.Array
    log_policy: jax.Array
    iterations: jax.Array
    residual: jax.Array


def _choice_values(utilities, transitions, discount, value, lock_months):
    """``Q(s, a) = u(s, a) + beta E[V(s') | s, a]`` with ``-inf`` on infeasible actions."""
    feasible = jnp.asarray(feasible_actions(lock_months))[:, None, None, None, None, :]
    q = utilities + discount * _expect(transitions, value, lock_months)
    return jnp.where(feasible, q, -jnp.inf)


def solve(
    params: MembershipParams,
    segment=0,
    *,
    levels: int = 5,
    lock_months: int = 11,
    tol: float | None = None,
    max_iters: int = 20_000,
    initial: jax.Array | None = None,
) -> Solution:
    """Solve the soft Bellman equation for customers of ``segment`` by relative value iteration.

    Iterates ``W <- G(W) = T(W) - T(W)[ref]`` (``ref`` = the first state, ``T`` the soft Bellman
    operator ``T(V)(s) = log sum_a exp(u(s, a) + beta E[V(s') | s, a])`` over feasible actions)
    until ``max |G(W) - W| <= tol``; then ``V = W + g / (1 - beta)`` with ``g = T(W)[ref]`` is the
    fixed point (``T(W + c) = T(W) + beta c``). The span of ``G`` contracts at least at rate
    ``beta``, and faster as the chain mixes. ``tol`` defaults to ``1e-10`` in float64 and ``1e-5``
    in float32. Differentiable in forward mode (``jax.jvp`` / ``jax.jacfwd``) through the loop.
    """
    check_params(params, levels)
    dtype = params.theta_ship.dtype
    if tol is None:
        tol = 1e-10 if dtype == jnp.float64 else 1e-5
    shape = state_shape(levels, lock_months)
    start = jnp.zeros(shape, dtype) if initial is None else jnp.asarray(initial, dtype)
    if start.shape != shape:
        errors.fail("initial", f"a value table of shape {shape}", start.shape)

    utilities = flow_utilities(params, levels, lock_months)
    transitions = _transitions(params, segment, levels, dtype)

    def choice_values(v):
        return _choice_values(utilities, transitions, params.discount, v, lock_months)

    def relative(w):
        t = jax.nn.logsumexp(choice_values(w), axis=-1)
        return t - t.reshape(-1)[0], t.reshape(-1)[0]

    def cond(carry):
        _, _, residual, k = carry
        return (residual > tol) & (k < max_iters)

    def body(carry):
        w, _, _, k = carry
        new, _ = relative(w)
        return new, w, jnp.max(jnp.abs(new - w)), k + 1

    start = start - start.reshape(-1)[0]
    w, _, residual, iterations = jax.lax.while_loop(
        cond, body, (start, start, jnp.asarray(jnp.inf, dtype), jnp.asarray(0))
    )
    _, gain = relative(w)
    value = w + gain / (1.0 - params.discount)
    q = choice_values(value)
    log_policy = q - jax.nn.logsumexp(q, axis=-1, keepdims=True)
    log_policy = jnp.where(jnp.isfinite(q), log_policy, -jnp.inf)
    return Solution(value, q, log_policy, iterations, residual)
