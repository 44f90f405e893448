"""Member panels simulated from the structural model (:mod:`.model`), reproducible by key.

A population of ``N`` customers, each with a fixed segment, is moved month by month: the
customer draws an action from ``pi(a | s)`` (infeasible actions have probability exactly 0, so
a locked member never chooses), pays its price, and the state moves by the model's own
transition tables (:func:`tables`), so a simulated panel has exactly the law the estimators
assume. Every draw is an inverse-CDF lookup of one uniform: five uniforms per member-month
(action, tenure, engagement, content, regime), hashed from the month's key
(``jax.random.split(key, months)``) and the customer's index.

The panel (:class:`Panel`) is the format a user's real logs are read into
(:mod:`.panel`): the state at the start of each month and the action taken in it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from prime_science.core import errors, random
from prime_science.core.types import PRNGKey
from prime_science.membership import model

__all__ = [
    "MemberStates",
    "ModelTables",
    "Panel",
    "initial_states",
    "simulate_panel",
    "step",
    "tables",
]


class ModelTables(NamedTuple):
    """What a simulation needs from a solved model (both segments).

    Attributes:
      log_policy: ``float[2 segments, plans, 6, E^2, 2, 3, 3]`` ``log pi(a | s)``.
      engagement: ``float[2 segments, 2 member?, 2 content, E^2, E^2]``.
      tenure: ``float[2 member?, 6, 6]``.
      content: ``float[2, 2]``.
      regime: ``float[3, 3]``.
      prices: ``float[3 regimes, 3 actions]`` paid when buying at a free plan.
      next_plan: ``int32[plans, 3]``.
    """

    log_policy: jax.Array
    engagement: jax.Array
    tenure: jax.Array
    content: jax.Array
    regime: jax.Array
    prices: jax.Array
    next_plan: jax.Array


class MemberStates(NamedTuple):
    """One month's state of ``N`` customers (``int32[N]`` each); ``engagement = ship E +
    video``."""

    plan: jax.Array
    tenure: jax.Array
    engagement: jax.Array
    content: jax.Array
    regime: jax.Array
    segment: jax.Array


class Panel(NamedTuple):
    """A member panel: ``int32[N, T]`` states at the start of each month and the action taken.

    Attributes:
      plan: 0 none, 1 a member free to choose, ``2 ..`` locked annual months
        (:mod:`.model`).
      tenure: tenure bucket ``0 .. 5``.
      ship, video: engagement buckets ``0 .. E - 1``.
      content: the video-content shock, 0 or 1.
      regime: price regime ``0 .. 2``.
      segment: ``int32[N]`` observed segment, 0 or 1.
      choice: action taken, 0 none, 1 monthly, 2 annual (a locked month records 2).
    """

    plan: jax.Array
    tenure: jax.Array
    ship: jax.Array
    video: jax.Array
    content: jax.Array
    regime: jax.Array
    segment: jax.Array
    choice: jax.Array


def tables(
    params: model.MembershipParams, *, levels: int = 5, lock_months: int = 11, solution=None
) -> ModelTables:
    """Solve the model for both segments (unless ``solution``, a :class:`~.model.Solution`
    with a leading segment axis, is given) and gather the transition tables."""
    if solution is None:
        solution = jax.vmap(
            lambda s: model.solve(params, s, levels=levels, lock_months=lock_months)
        )(jnp.arange(2))
    engagement = jax.vmap(lambda s: model.engagement_transition(params, s, levels))(jnp.arange(2))
    return ModelTables(
        log_policy=solution.log_policy,
        engagement=engagement,
        tenure=model.tenure_transition(params.theta_ship.dtype),
        content=model.content_transition(params),
        regime=params.regime_transition,
        prices=model.regime_prices(params),
        next_plan=jnp.asarray(model.next_plan(lock_months)),
    )


def _cdf(probs: jax.Array) -> jax.Array:
    """Row-wise cumulative sums normalised so that the last entry is exactly 1."""
    cdf = jnp.cumsum(probs, axis=-1)
    return cdf / cdf[..., -1:]


def _draw(cdf: jax.Array, uniform: jax.Array) -> jax.Array:
    """Inverse CDF: the index ``i`` with ``cdf[i-1] < u <= cdf[i]`` of each row (``u`` in
    ``(0, 1)``; a zero-probability entry adds no width, so it is never drawn)."""
    return jnp.sum(cdf < uniform[..., None], axis=-1).astype(jnp.int32)


def _uniforms(key: PRNGKey, num_members: int, dtype) -> list[jax.Array]:
    """Five uniforms on ``(0, 1)`` per customer: stream ``j`` of the key hashed with the
    customer's index (:func:`prime_science.core.random.random_bits`), so a customer's draws do
    not depend on how the population is split over devices."""
    words = random.key_words(key)
    counters = jnp.arange(num_members, dtype=jnp.uint32)
    return [
        random.uniform_open(random.random_bits(words, j, counters)).astype(dtype) for j in range(5)
    ]


def step(
    key: PRNGKey, tables_: ModelTables, states: MemberStates, regime_override=None
) -> tuple[MemberStates, jax.Array, jax.Array]:
    """One month: ``(next states, action int32[N], payment float[N])``.

    ``regime_override`` (an int, or ``None``) sets every customer's regime this month before
    the choice (a one-month promotion is ``regime_override = 1``). The cumulative tables are
    built once per call (they are small next to a population), each draw is one comparison of
    a uniform with a gathered row of them."""
    u_action, u_tenure, u_engagement, u_content, u_regime = _uniforms(
        key, states.plan.shape[0], tables_.prices.dtype
    )
    regime = (
        states.regime if regime_override is None else jnp.full_like(states.regime, regime_override)
    )
    policy_cdf = _cdf(jnp.exp(tables_.log_policy))
    action = _draw(
        policy_cdf[
            states.segment, states.plan, states.tenure, states.engagement, states.content, regime
        ],
        u_action,
    )
    free = states.plan < 2
    payment = jnp.where(free, tables_.prices[regime, action], 0.0)
    member = (action != model.NONE).astype(jnp.int32)
    tenure = _draw(_cdf(tables_.tenure)[member, states.tenure], u_tenure)
    engagement = _draw(
        _cdf(tables_.engagement)[states.segment, member, states.content, states.engagement],
        u_engagement,
    )
    content = _draw(_cdf(tables_.content)[states.content], u_content)
    next_regime = _draw(_cdf(tables_.regime)[regime], u_regime)
    plan = tables_.next_plan[states.plan, action]
    return (
        MemberStates(plan, tenure, engagement, content, next_regime, states.segment),
        action,
        payment,
    )


def initial_states(
    key: PRNGKey, num_members: int, *, levels: int = 5, rural_share: float = 0.4
) -> MemberStates:
    """``num_members`` customers who are not members yet: tenure 0, usual content, regular
    prices, engagement buckets uniform on ``0 .. 2`` (shipping) and ``0 .. 1`` (video), segment
    1 (rural) with probability ``rural_share``."""
    if int(num_members) < 1:
        errors.fail("num_members", "a positive count", num_members)
    if not 0.0 <= float(rural_share) <= 1.0:
        errors.fail("rural_share", "a share in [0, 1]", rural_share)
    k_ship, k_video, k_segment = jax.random.split(key, 3)
    ship = jax.random.randint(k_ship, (num_members,), 0, min(3, levels), jnp.int32)
    video = jax.random.randint(k_video, (num_members,), 0, min(2, levels), jnp.int32)
    zeros = jnp.zeros(num_members, jnp.int32)
    segment = jax.random.bernoulli(k_segment, rural_share, (num_members,)).astype(jnp.int32)
    return MemberStates(zeros, zeros, ship * levels + video, zeros, zeros, segment)


def simulate_panel(
    key: PRNGKey,
    params: model.MembershipParams,
    num_members: int,
    months: int,
    *,
    burn_in: int = 36,
    levels: int = 5,
    lock_months: int = 11,
    rural_share: float = 0.4,
    tables_: ModelTables | None = None,
) -> tuple[Panel, MemberStates]:
    """A panel of ``num_members x months`` after ``burn_in`` unrecorded months from
    :func:`initial_states` (so the panel starts near the population's steady state), and the
    states after its last month."""
    for name, value, low in (("months", months, 1), ("burn_in", burn_in, 0)):
        if int(value) < low:
            errors.fail(name, f"an integer >= {low}", value)
    if tables_ is None:
        tables_ = tables(params, levels=levels, lock_months=lock_months)
    k_init, k_burn, k_panel = jax.random.split(key, 3)
    states = initial_states(k_init, num_members, levels=levels, rural_share=rural_share)

    def advance(states, month_key):
        new, action, _ = step(month_key, tables_, states)
        return new, (states, action)

    if burn_in:
        states, _ = jax.lax.scan(advance, states, jax.random.split(k_burn, burn_in))
    final, (history, choice) = jax.lax.scan(advance, states, jax.random.split(k_panel, months))
    by_member = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
    panel = Panel(
        plan=by_member(history.plan),
        tenure=by_member(history.tenure),
        ship=by_member(history.engagement // levels),
        video=by_member(history.engagement % levels),
        content=by_member(history.content),
        regime=by_member(history.regime),
        segment=history.segment[0],
        choice=by_member(choice),
    )
    return panel, final
