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
:func:`solve_batch` runs many solves that share their transitions (a bootstrap of ``theta``, a
price grid) in one call, each the same iteration as :func:`solve` (the same iteration count in
float64), several times faster per solve on a CPU than ``jax.vmap(solve)``.
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
    "UTILITY_FIELDS",
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
    "solve_batch",
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
    return jnp.asarray(_tenure_moves(), dtype)


def _tenure_moves() -> np.ndarray:
    """:func:`tenure_transition` in numpy float64."""
    buckets = len(TENURE_WIDTHS)
    member = np.zeros((buckets, buckets))
    for t, width in enumerate(TENURE_WIDTHS):
        up = 1.0 / width if width else 0.0
        member[t, t] = 1.0 - up
        if up:
            member[t, t + 1] = up
    lapsed = np.zeros((buckets, buckets))
    lapsed[:, 0] = 1.0
    return np.stack([lapsed, member])


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


# --- Many solves at once ---------------------------------------------------------------------
#
# Lane layout: a value table of ``B`` solves as ``float[2 E^2, 3, plans, 6, B]`` with axes
# ``((engagement, content), regime, plan, tenure, solve)``: the solve axis is the last (the
# vector lanes), the engagement-content chain (the largest factor) is one matrix product over
# the first axis with no transpose, and the regime and tenure factors are short sums of scaled
# (shifted) slices that XLA fuses with the choice values. On the 2-core Xeon, E = 3, this runs
# a solve-step in about 25-40 us against about 90 us for the same step in numpy and 500 us for
# the full operator in numpy (benchmarks/membership.py).

UTILITY_FIELDS = STRUCTURAL + (
    "monthly_price",
    "annual_price",
    "promo_discount",
    "higher_annual_factor",
    "benefit_shift",
)
"""The fields :func:`solve_batch` accepts per solve (a leading batch axis): they move the flow
utilities only; every other field (the transitions and ``discount``) is shared by the batch."""


class _LaneTables(NamedTuple):
    """What one lane-layout Bellman step reads (shared by every solve of the batch)."""

    chain: jax.Array  # [member?, 2 E^2, 2 E^2]: engagement-content moves, row (e, c)
    regime: jax.Array  # [r, r']
    discount: jax.Array


def _lane_tables(params: MembershipParams, segment, levels: int) -> _LaneTables:
    engagement = engagement_transition(params, segment, levels)  # [m, c, e, e']
    content = content_transition(params)  # [c, c']
    chain = jnp.einsum("mcxy,cd->mxcyd", engagement, content)
    cells = 2 * levels**2
    return _LaneTables(chain.reshape(2, cells, cells), params.regime_transition, params.discount)


def _to_lanes(table: jax.Array) -> jax.Array:
    """``[plans, 6, E^2, 2, 3, ...] -> [2 E^2, 3, plans, 6, ...]``."""
    moved = jnp.moveaxis(table, (2, 3, 4), (0, 1, 2))
    return moved.reshape(moved.shape[0] * moved.shape[1], *moved.shape[2:])


def _from_lanes(table: jax.Array, levels: int) -> jax.Array:
    """``[..., 2 E^2, 3, plans, 6] -> [..., plans, 6, E^2, 2, 3]``."""
    lead = table.ndim - 4
    split = table.reshape(*table.shape[:lead], levels**2, 2, *table.shape[lead + 1 :])
    return jnp.moveaxis(split, (lead + 3, lead + 4), (lead, lead + 1))


def _mix(matrix, x: jax.Array, axis: int) -> jax.Array:
    """``out[.., i, ..] = sum_j matrix[i, j] x[.., j, ..]`` along a short ``axis``, as scaled
    slices (``matrix`` a numpy constant: its zeros are skipped; or a small traced array)."""
    parts = [jax.lax.index_in_dim(x, j, axis, keepdims=False) for j in range(x.shape[axis])]
    rows = []
    for i in range(matrix.shape[0]):
        terms = [
            (float(matrix[i, j]) if isinstance(matrix, np.ndarray) else matrix[i, j]) * part
            for j, part in enumerate(parts)
            if not (isinstance(matrix, np.ndarray) and matrix[i, j] == 0.0)
        ]
        rows.append(sum(terms[1:], terms[0]))
    return jnp.stack(rows, axis)


def _take_plans(x: jax.Array, plans: np.ndarray, axis: int = 2) -> jax.Array:
    """``x`` at the static ``plans`` along ``axis``, as slices of consecutive runs."""
    runs, start = [], 0
    for k in range(1, len(plans) + 1):
        if k == len(plans) or plans[k] != plans[k - 1] + 1:
            first = int(plans[start])
            runs.append(jax.lax.slice_in_dim(x, first, first + k - start, axis=axis))
            start = k
    return runs[0] if len(runs) == 1 else jnp.concatenate(runs, axis)


def _split_utilities(flow: jax.Array, lock_months: int) -> tuple[jax.Array, jax.Array]:
    """``flow[plans, 6, E^2, 2, 3, 3]`` -> ``(free [3 actions, 2 E^2, 3, 2, 6],
    locked [2 E^2, 3, plans - 2, 6])`` in the lane layout (locked plans: ``annual`` only)."""
    lanes = _to_lanes(flow)  # [2E^2, 3, plans, 6, 3 actions]
    free = jnp.moveaxis(lanes[:, :, :2], -1, 0)
    return free, lanes[:, :, 2:, :, ANNUAL]


def _check_lane_structure(lock_months: int) -> None:
    feasible = feasible_actions(lock_months)
    if not (feasible[:2].all() and (feasible[2:] == [False, False, True]).all()):
        errors.fail("feasible_actions", "free plans 0, 1 and annual-only locked plans", feasible)


def _shift(x: jax.Array, offset: int, axis: int) -> jax.Array:
    """``x[.., i + offset, ..]`` along ``axis`` (zeros past the end)."""
    if offset == 0:
        return x
    kept = jax.lax.slice_in_dim(x, offset, x.shape[axis], axis=axis)
    return jax.lax.pad(
        kept,
        jnp.zeros((), x.dtype),
        [(0, 0, 0)] * axis + [(0, offset, 0)] + [(0, 0, 0)] * (x.ndim - axis - 1),
    )


def _member_moves(g: jax.Array, regime: jax.Array) -> jax.Array:
    """The regime and tenure factors of the member chain on ``g[2 E^2, 3, plans, 6, ...]``
    (the engagement-content product already applied), as one elementwise expression: the
    tenure chain is banded (a member stays or moves up one bucket), its bands numpy constants."""
    tenure = _tenure_moves()[1]
    expand = (1, 1, 1, -1) + (1,) * (g.ndim - 4)
    moved = None
    for offset in range(tenure.shape[0]):
        band = np.diagonal(tenure, offset)
        if not band.any():
            continue
        band = np.concatenate([band, np.zeros(offset)])
        term = jnp.asarray(band.reshape(expand), g.dtype) * _shift(g, offset, 3)
        moved = term if moved is None else moved + term
    out = None
    for j in range(regime.shape[1]):
        weight = regime[:, j].reshape((1, -1) + (1,) * (g.ndim - 2))
        term = weight * jax.lax.slice_in_dim(moved, j, j + 1, axis=1)
        out = term if out is None else out + term
    return out


_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_ATANH_TERMS = tuple(1.0 / (2 * k + 1) for k in range(11))


def _log_1_to_4(x: jax.Array) -> jax.Array:
    """``log x`` for ``1 <= x < 4`` by mult-adds only (vectorises; XLA's CPU ``log`` on float64
    is a scalar library call, about 4x the cost of ``exp``): ``x = 2^k m`` with ``m`` in
    ``[1 / sqrt 2, sqrt 2]``, ``log m = 2 atanh(s)``, ``s = (m - 1) / (m + 1)``, ``|s| <= 0.172``,
    the odd series to ``s^21`` (truncation below ``1e-17`` relative); within ``3e-16`` of
    ``log``."""
    k = (x > np.sqrt(2.0)).astype(x.dtype) + (x > 2.0 * np.sqrt(2.0)).astype(x.dtype)
    m = x * jnp.where(k == 0, 1.0, jnp.where(k == 1, 0.5, 0.25)).astype(x.dtype)
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    series = _ATANH_TERMS[-1]
    for c in reversed(_ATANH_TERMS[:-1]):
        series = series * z + c
    return k * _LN2_HI + (2.0 * s * series + k * _LN2_LO)


def _logsumexp3(a: jax.Array, b: jax.Array, c: jax.Array) -> jax.Array:
    """``log(e^a + e^b + e^c)`` for finite arguments: ``top + log(1 + e^(mid - top) + e^(low -
    top))`` with the three sorted by min / max (two ``exp``, one :func:`_log_1_to_4`)."""
    low_ab, high_ab = jnp.minimum(a, b), jnp.maximum(a, b)
    top = jnp.maximum(high_ab, c)
    low = jnp.minimum(low_ab, c)
    mid = jnp.maximum(low_ab, jnp.minimum(high_ab, c))
    if a.dtype == jnp.float64:
        return top + _log_1_to_4(1.0 + jnp.exp(mid - top) + jnp.exp(low - top))
    return top + jnp.log(1.0 + jnp.exp(mid - top) + jnp.exp(low - top))


def _lane_step(w, free_u, locked_u, tables: _LaneTables, lock_months: int):
    """``(T(W) - T(W)[ref], T(W)[ref])`` for ``w[2 E^2, 3, plans, 6, B]`` (``ref`` the first
    state), ``T`` the soft Bellman operator on every state.

    Member actions (``monthly``, ``annual``, a locked month) move on the member chain: the
    engagement-content chain as one matrix product, then the regime and tenure factors; ``none``
    resets tenure and plan, so its expectation is the non-member chain applied to ``W(0, 0, .)``
    only. Free plans take ``log sum exp`` over their three actions, locked plans (one feasible
    action) their choice value itself: the same operator as :func:`solve` (which masks
    infeasible actions with ``-inf``) without the work on states no action reaches."""
    cells = w.shape[0]
    member = (tables.chain[1] @ w.reshape(cells, -1)).reshape(w.shape)
    member = _member_moves(member, tables.regime)
    lapsed = tables.chain[0] @ w[:, :, PLAN_NONE, 0].reshape(cells, -1)
    lapsed = _mix(tables.regime, lapsed.reshape(cells, w.shape[1], *w.shape[4:]), 1)
    beta = tables.discount
    after = next_plan(lock_months)
    q_none = free_u[NONE] + beta * lapsed[:, :, None, None]
    q_monthly = free_u[MONTHLY] + beta * _take_plans(member, after[:2, MONTHLY])
    q_annual = free_u[ANNUAL] + beta * _take_plans(member, after[:2, ANNUAL])
    free = _logsumexp3(q_none, q_monthly, q_annual)
    reference = free[0, 0, 0, 0]
    if not lock_months:
        return free - reference, reference
    locked = locked_u + beta * _take_plans(member, after[2:, ANNUAL])
    return jnp.concatenate([free - reference, locked - reference], 2), reference


_MATRIX_FIELDS = ("ship_target", "video_target", "regime_transition")


def _batch_axes(params: MembershipParams) -> tuple[dict[str, jax.Array], int | None]:
    """``({field: values [n, ...]} for the per-solve fields, n)`` (``n`` None: no batch axis)."""
    fields, sizes = {}, set()
    for name in MembershipParams._fields:
        leaf = jnp.asarray(getattr(params, name))
        base = 2 if name in _MATRIX_FIELDS else 0
        if leaf.ndim == base:
            continue
        if name not in UTILITY_FIELDS or leaf.ndim != base + 1:
            expected = "a scalar or one value per solve" if name in UTILITY_FIELDS else "shared"
            errors.fail(f"params.{name}", expected, f"shape {leaf.shape}")
        fields[name] = leaf
        sizes.add(leaf.shape[0])
    if len(sizes) > 1:
        errors.fail("params", "one batch size over the per-solve fields", sorted(sizes))
    return fields, (sizes.pop() if sizes else None)


def solve_batch(
    params: MembershipParams,
    segment=0,
    *,
    levels: int = 5,
    lock_months: int = 11,
    tol: float | None = None,
    max_iters: int = 20_000,
    lanes: int = 32,
    refill_every: int = 8,
) -> Solution:
    """:func:`solve` for many parameter records that share their transitions, in one call.

    ``params`` carries a leading batch axis ``[n]`` on any of :data:`UTILITY_FIELDS` (the
    utility parameters and the offering: a bootstrap or posterior of ``theta``, a price grid);
    the other fields are shared. Returns :class:`Solution` with a leading ``[n]`` axis, each
    solve the same relative value iteration as :func:`solve` (the same operator, stopping rule,
    ``tol`` and ``max_iters``; its own iteration count), equal to it up to rounding (in float32
    the rounding can move a solve's stopping step by a few iterations).

    How: ``lanes`` solves run side by side in the lane layout (the solve axis last, one matrix
    product per step for the engagement-content chain of all of them); a solve that has
    converged stays frozen, and every ``refill_every`` steps the finished ones leave their lanes
    to the next draws in the queue, so a lane does not idle until the slowest solve of a fixed
    group is done (a plain ``vmap`` runs every solve to the batch's largest iteration count).
    Not differentiable (use :func:`solve` under ``jax.jacfwd``)."""
    batch_fields, n = _batch_axes(params)
    batched = n is not None
    if not batched:
        batch_fields, n = {"intercept": jnp.asarray(params.intercept)[None]}, 1
    first = params._replace(**{name: values[0] for name, values in batch_fields.items()})
    check_params(first, levels)
    _check_lane_structure(lock_months)
    dtype = params.theta_ship.dtype
    if tol is None:
        tol = 1e-10 if dtype == jnp.float64 else 1e-5
    if lanes < 1 or refill_every < 1:
        errors.fail("lanes, refill_every", "positive integers", (lanes, refill_every))
    lanes = min(lanes, n)
    tables = _lane_tables(first, segment, levels)

    shape = (2 * levels**2, len(REGIMES), num_plans(lock_months), len(TENURE_WIDTHS))

    def utilities(fields):
        one = first._replace(**fields)
        free, locked = _split_utilities(flow_utilities(one, levels, lock_months), lock_months)
        return free if not lock_months else (free, locked)

    if lock_months:
        all_free, all_locked = jax.lax.map(utilities, batch_fields, batch_size=lanes)
    else:  # no locked plans: an empty table rides along
        all_free = jax.lax.map(utilities, batch_fields, batch_size=lanes)
        all_locked = jnp.zeros((n, *shape[:2], 0, shape[3]), dtype)
    beta = tables.discount

    def gather(table, draws):
        return jnp.moveaxis(table[draws], 0, -1)

    class Lanes(NamedTuple):
        step: jax.Array
        queued: jax.Array  # the next draw to start
        draw: jax.Array  # [lanes] the draw in each lane
        status: jax.Array  # [lanes] 0 iterating, 1 converged, 2 finished, 3 empty
        w: jax.Array
        free_u: jax.Array
        locked_u: jax.Array
        iterations: jax.Array
        residual: jax.Array
        gain: jax.Array
        value: jax.Array  # [n, *shape] outputs
        iterations_out: jax.Array
        residual_out: jax.Array

    start_draw = jnp.arange(lanes)
    state = Lanes(
        step=jnp.asarray(0),
        queued=jnp.asarray(lanes),
        draw=start_draw,
        status=jnp.zeros(lanes, jnp.int32),
        w=jnp.zeros((*shape, lanes), dtype),
        free_u=gather(all_free, start_draw),
        locked_u=gather(all_locked, start_draw),
        iterations=jnp.zeros(lanes, jnp.int32),
        residual=jnp.full(lanes, jnp.inf, dtype),
        gain=jnp.zeros(lanes, dtype),
        value=jnp.zeros((n, *shape), dtype),
        iterations_out=jnp.zeros(n, jnp.int32),
        residual_out=jnp.zeros(n, dtype),
    )

    def refill(s: Lanes) -> Lanes:
        finished = s.status == 2
        target = jnp.where(finished, s.draw, n)
        value = s.w + s.gain / (1.0 - beta)
        rank = jnp.cumsum(finished) - 1
        candidate = s.queued + rank
        starts = finished & (candidate < n)
        draw = jnp.where(starts, candidate, s.draw)
        safe = jnp.minimum(draw, n - 1)
        return s._replace(
            queued=s.queued + jnp.sum(finished),
            draw=draw,
            status=jnp.where(starts, 0, jnp.where(finished, 3, s.status)),
            w=jnp.where(starts, 0.0, s.w),
            free_u=jnp.where(starts, gather(all_free, safe), s.free_u),
            locked_u=jnp.where(starts, gather(all_locked, safe), s.locked_u),
            iterations=jnp.where(starts, 0, s.iterations),
            residual=jnp.where(starts, jnp.inf, s.residual),
            value=s.value.at[target].set(jnp.moveaxis(value, -1, 0), mode="drop"),
            iterations_out=s.iterations_out.at[target].set(s.iterations, mode="drop"),
            residual_out=s.residual_out.at[target].set(s.residual, mode="drop"),
        )

    def body(s: Lanes) -> Lanes:
        new, reference = _lane_step(s.w, s.free_u, s.locked_u, tables, lock_months)
        change = jnp.max(jnp.abs(new - s.w).reshape(-1, lanes), axis=0)
        iterating = s.status == 0
        iterations = s.iterations + iterating
        done = iterating & ((change <= tol) | (iterations >= max_iters))
        status = jnp.where(s.status == 1, 2, jnp.where(done, 1, s.status))
        s = s._replace(
            step=s.step + 1,
            status=status,
            w=jnp.where(iterating, new, s.w),
            iterations=iterations,
            residual=jnp.where(iterating, change, s.residual),
            gain=jnp.where(s.status == 1, reference, s.gain),
        )
        due = (s.step % refill_every == 0) | jnp.all(s.status >= 2)
        return jax.lax.cond(due & jnp.any(s.status == 2), refill, lambda x: x, s)

    final = jax.lax.while_loop(lambda s: jnp.any(s.status != 3), body, state)
    value = _from_lanes(final.value, levels)
    flow = jax.lax.map(
        lambda fields: flow_utilities(first._replace(**fields), levels, lock_months),
        batch_fields,
        batch_size=lanes,
    )
    transitions = _transitions(first, segment, levels, dtype)

    def policy(args):
        flow_i, value_i = args
        q = _choice_values(flow_i, transitions, beta, value_i, lock_months)
        log_policy = q - jax.nn.logsumexp(q, axis=-1, keepdims=True)
        return q, jnp.where(jnp.isfinite(q), log_policy, -jnp.inf)

    q, log_policy = jax.lax.map(policy, (flow, value), batch_size=lanes)
    solution = Solution(value, q, log_policy, final.iterations_out, final.residual_out)
    return solution if batched else jax.tree.map(lambda x: x[0], solution)
