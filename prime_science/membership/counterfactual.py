"""Counterfactual simulation of the membership programme: change the offering, re-solve, simulate.

A counterfactual takes a parameter record (the truth or an estimate, :mod:`.model`), applies a
:class:`Change` to it (:func:`apply_change`), re-solves the model for both segments
(:func:`.simulate.tables`) and moves today's population forward month by month with
:func:`.simulate.step` inside one ``lax.scan``. Only aggregates leave the scan (a few numbers a
month), never the ``[N, T]`` panel, so ``N = 10^6`` customers over 36 months fit on one device.

The change, applied to ``params`` (all other fields kept)::

    annual_price  <- annual_price_factor  x annual_price,
    monthly_price <- monthly_price_factor x monthly_price,
    benefit_shift <- benefit_shift + delta        (delta utils a month for members: a new benefit),
    theta_video   <- 0                             if remove_video (the video benefit is gone),

and, if ``promotion_month = m >= 0``, every customer faces the promotion regime (regime 1: both
prices cut by ``promo_discount``) in month ``m`` only. Customers solve the changed model with the
regime chain they always expected, so the promotion is a surprise for them.

Common random numbers: month ``t`` uses the ``t``-th key of ``jax.random.split(key, months)``
whatever the change, so the baseline (``Change()``) and a change share every uniform and their
difference is free of most simulation noise.

:class:`Outcome` (``T = months``, the float dtype of ``params``), for month ``t = 0 .. T - 1``:

* ``shares[t] = (none, monthly, annual)``: share of customers whose action in month ``t`` is
  none, the monthly plan, or annual (bought this month or held under the lock);
* ``revenue[t] = (1 / N) sum_i payment_i(t)`` (dollars per customer; an annual price is paid in
  the month it is bought); ``total_revenue = sum_t revenue[t]`` (undiscounted) and
  ``discounted_revenue = sum_t beta^t revenue[t]`` (``beta = params.discount``);
* ``mean_tenure[t]``: mean consecutive months of membership among this month's members; a
  customer's count starts at the lower edge (0, 1, 3, 6, 12, 24 months) of their tenure bucket in
  ``initial_states``, so for customers already members it is a lower bound;
* ``monthly_renewal[t]``: share of monthly members (plan 1 not at the end of an annual term) who
  stay members in month ``t``; ``annual_renewal[t]``: the same for members whose annual term
  ended last month (NaN in a month without any); month 0 counts every member of plan 1 as a
  monthly member (the plan before ``initial_states`` is unknown);
  ``monthly_renewal_pooled`` / ``annual_renewal_pooled``: stays over decisions, pooled over the
  months.

:func:`price_search` evaluates a grid of annual prices at once (``vmap`` over re-solves and
simulations) and returns the revenue-maximising price under a parameter record.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.core import errors
from prime_science.core.types import PRNGKey
from prime_science.membership import model, simulate

__all__ = [
    "Change",
    "Outcome",
    "PriceSearch",
    "apply_change",
    "check_change",
    "counterfactual",
    "price_search",
    "simulate_outcome",
]

TENURE_START_MONTHS = np.concatenate([[0], np.cumsum(model.TENURE_WIDTHS[:-1])]).astype(np.int32)
"""Lower edge, in months, of each tenure bucket ``0, 1-2, 3-5, 6-11, 12-23, 24+``."""


class Change(NamedTuple):
    """A change to the offering; the default is no change (the baseline).

    Attributes:
      annual_price_factor: multiplies the annual price (``1.1``: +10 %); ``>= 0``.
      monthly_price_factor: multiplies the monthly price; ``>= 0``.
      benefit_shift: utils a month added to every member action (a new benefit); finite.
      remove_video: ``True`` sets ``theta_video`` to 0 (the video benefit is withdrawn).
      promotion_month: the month ``m`` in ``0 .. months - 1`` in which every customer faces the
        promotion regime, or ``-1`` for none.
    """

    annual_price_factor: float = 1.0
    monthly_price_factor: float = 1.0
    benefit_shift: float = 0.0
    remove_video: bool = False
    promotion_month: int = -1


class Outcome(NamedTuple):
    """A simulated population's aggregates (module docstring: definitions).

    Attributes:
      shares: ``float[T, 3]`` none / monthly / annual shares of customers per month.
      revenue: ``float[T]`` dollars per customer per month.
      total_revenue: ``float[]`` undiscounted sum of ``revenue``.
      discounted_revenue: ``float[]`` ``sum_t beta^t revenue[t]``.
      mean_tenure: ``float[T]`` mean consecutive member months of this month's members.
      monthly_renewal: ``float[T]`` share of monthly members who stay.
      annual_renewal: ``float[T]`` share of members at the end of an annual term who stay.
      monthly_renewal_pooled: ``float[]`` the monthly members' stays over decisions, all months.
      annual_renewal_pooled: ``float[]`` the same at the ends of annual terms.
    """

    shares: jax.Array
    revenue: jax.Array
    total_revenue: jax.Array
    discounted_revenue: jax.Array
    mean_tenure: jax.Array
    monthly_renewal: jax.Array
    annual_renewal: jax.Array
    monthly_renewal_pooled: jax.Array
    annual_renewal_pooled: jax.Array


class PriceSearch(NamedTuple):
    """Revenue over a grid of annual prices.

    Attributes:
      prices: ``float[G]`` the annual prices tried (dollars).
      revenue: ``float[G]`` discounted revenue per customer over the horizon at each price.
      annual_share: ``float[G]`` the annual share in the last simulated month.
      best_price: ``float[]`` the grid price with the highest ``revenue``.
      best_revenue: ``float[]`` that revenue.
    """

    prices: jax.Array
    revenue: jax.Array
    annual_share: jax.Array
    best_price: jax.Array
    best_revenue: jax.Array


def check_change(change: Change, months: int | None = None) -> None:
    """Named errors for a change no offering can have (concrete values only): a negative or
    non-finite price factor, a non-finite benefit shift, ``remove_video`` not a bool, a
    promotion month outside ``-1 .. months - 1``."""
    if not isinstance(change, Change):
        errors.fail("change", "a Change record", type(change).__name__)
    for name in ("annual_price_factor", "monthly_price_factor", "benefit_shift"):
        value = getattr(change, name)
        if not errors.is_concrete(value):
            continue
        value = np.asarray(value, np.float64)
        if value.shape != ():
            errors.fail(f"change.{name}", "a scalar", f"shape {value.shape}")
        if not np.isfinite(value):
            errors.fail(f"change.{name}", "a finite number", float(value))
        if name != "benefit_shift" and value < 0:
            errors.fail(f"change.{name}", "a price factor >= 0", float(value))
    if errors.is_concrete(change.remove_video) and np.asarray(change.remove_video).dtype != bool:
        errors.fail("change.remove_video", "a bool", change.remove_video)
    month = change.promotion_month
    if errors.is_concrete(month):
        month = np.asarray(month)
        if month.shape != () or month.dtype.kind not in "iu":
            errors.fail("change.promotion_month", "an integer month (or -1 for none)", month)
        if month < -1 or (months is not None and month >= months):
            upper = "months - 1" if months is None else str(months - 1)
            errors.fail("change.promotion_month", f"-1 (none) or a month in 0 .. {upper}", month)


def apply_change(params: model.MembershipParams, change: Change) -> model.MembershipParams:
    """The record of the changed offering (module docstring: the rules); jittable and vmappable
    over the change's numbers."""
    model.check_params(params)
    check_change(change)
    dtype = params.annual_price.dtype
    return params._replace(
        annual_price=params.annual_price * jnp.asarray(change.annual_price_factor, dtype),
        monthly_price=params.monthly_price * jnp.asarray(change.monthly_price_factor, dtype),
        benefit_shift=params.benefit_shift + jnp.asarray(change.benefit_shift, dtype),
        theta_video=jnp.where(
            change.remove_video, jnp.zeros_like(params.theta_video), params.theta_video
        ),
    )


def _check_states(states: simulate.MemberStates, levels: int, lock_months: int) -> None:
    if not isinstance(states, simulate.MemberStates):
        errors.fail("initial_states", "a MemberStates record", type(states).__name__)
    num_members = np.shape(states.plan)
    if len(num_members) != 1 or num_members[0] < 1:
        errors.fail("initial_states.plan", "an int array of shape [N], N >= 1", num_members)
    upper = dict(
        plan=model.num_plans(lock_months),
        tenure=len(model.TENURE_WIDTHS),
        engagement=levels**2,
        content=2,
        regime=len(model.REGIMES),
        segment=2,
    )
    for name, high in upper.items():
        value = getattr(states, name)
        if np.shape(value) != num_members:
            errors.fail(f"initial_states.{name}", f"shape {num_members}", np.shape(value))
        errors.check_dtype_kind(f"initial_states.{name}", value, "iu", "an integer array")
        if errors.is_concrete(value):
            value = np.asarray(value)
            if value.min() < 0 or value.max() >= high:
                errors.fail(
                    f"initial_states.{name}",
                    f"values in 0 .. {high - 1}",
                    f"range {value.min()} .. {value.max()}",
                )


def _check_months(months) -> None:
    if not isinstance(months, (int, np.integer)) or months < 1:
        errors.fail("months", "a positive integer (static)", months)


def simulate_outcome(
    key: PRNGKey,
    tables: simulate.ModelTables,
    initial_states: simulate.MemberStates,
    months: int = 36,
    *,
    discount=0.99,
    promotion_month=-1,
) -> Outcome:
    """Move ``initial_states`` forward ``months`` months under solved ``tables``, aggregating
    each month inside the scan (module docstring: the :class:`Outcome`); month ``t`` draws with
    the ``t``-th key of ``jax.random.split(key, months)``; in ``promotion_month`` every customer
    faces regime 1."""
    _check_months(months)
    errors.check_key("key", key)
    dtype = tables.prices.dtype
    last_lock = tables.next_plan.shape[0] - 1
    start_months = jnp.asarray(TENURE_START_MONTHS)[initial_states.tenure]
    streak = jnp.where(initial_states.plan == model.PLAN_NONE, 0, start_months)
    off_lock = jnp.zeros_like(initial_states.plan, dtype=bool)
    count = jnp.asarray(initial_states.plan.shape[0], dtype)

    def month(carry, inputs):
        states, streak, off_lock = carry
        month_key, t = inputs
        regime = jnp.where(t == promotion_month, 1, states.regime).astype(states.regime.dtype)
        states = states._replace(regime=regime)
        new, action, payment = simulate.step(month_key, tables, states)
        member = action != model.NONE
        streak = jnp.where(member, streak + 1, 0)
        free = states.plan == model.PLAN_FREE
        monthly_member, lock_end = free & ~off_lock, free & off_lock
        members = jnp.sum(member)
        aggregates = (
            jnp.stack([jnp.sum(action == a) for a in range(len(model.ACTIONS))]).astype(dtype)
            / count,
            jnp.sum(payment) / count,
            jnp.sum(jnp.where(member, streak, 0)).astype(dtype) / jnp.maximum(members, 1),
            jnp.stack(
                [
                    jnp.sum(monthly_member & member),
                    jnp.sum(monthly_member),
                    jnp.sum(lock_end & member),
                    jnp.sum(lock_end),
                ]
            ).astype(dtype),
        )
        return (new, streak, states.plan == last_lock), aggregates

    inputs = (jax.random.split(key, months), jnp.arange(months))
    _, (shares, revenue, mean_tenure, renewals) = jax.lax.scan(
        month, (initial_states, streak, off_lock), inputs
    )
    beta = jnp.asarray(discount, dtype)

    def ratio(stays, decisions):
        return jnp.where(decisions > 0, stays / jnp.maximum(decisions, 1), jnp.nan)

    return Outcome(
        shares=shares,
        revenue=revenue,
        total_revenue=jnp.sum(revenue),
        discounted_revenue=jnp.sum(beta ** jnp.arange(months, dtype=dtype) * revenue),
        mean_tenure=mean_tenure,
        monthly_renewal=ratio(renewals[:, 0], renewals[:, 1]),
        annual_renewal=ratio(renewals[:, 2], renewals[:, 3]),
        monthly_renewal_pooled=ratio(renewals[:, 0].sum(), renewals[:, 1].sum()),
        annual_renewal_pooled=ratio(renewals[:, 2].sum(), renewals[:, 3].sum()),
    )


def counterfactual(
    key: PRNGKey,
    params: model.MembershipParams,
    change: Change,
    initial_states: simulate.MemberStates,
    months: int = 36,
    *,
    levels: int = 5,
    lock_months: int = 11,
) -> Outcome:
    """Apply ``change`` to ``params`` (true or estimated), re-solve both segments and simulate
    ``initial_states`` (the population today, e.g. the final states of a burn-in panel) forward
    ``months`` months: the :class:`Outcome`. The same ``key`` gives the same draws under every
    change (common random numbers). Jittable with ``months``, ``levels`` and ``lock_months``
    static."""
    _check_months(months)
    check_change(change, months)
    _check_states(initial_states, levels, lock_months)
    changed = apply_change(params, change)
    tables = simulate.tables(changed, levels=levels, lock_months=lock_months)
    return simulate_outcome(
        key,
        tables,
        initial_states,
        months,
        discount=changed.discount,
        promotion_month=change.promotion_month,
    )


def price_search(
    key: PRNGKey,
    params: model.MembershipParams,
    annual_prices,
    initial_states: simulate.MemberStates,
    months: int = 36,
    *,
    levels: int = 5,
    lock_months: int = 11,
) -> PriceSearch:
    """The revenue-maximising annual price on a grid ``annual_prices`` (``float[G]``, dollars)
    under ``params``: one :func:`counterfactual` per price (the re-solves batched by
    :func:`~.model.solve_batch`, the simulations vmapped, common random numbers across
    prices), revenue = discounted revenue per customer over ``months`` months;
    ``best_price = argmax`` over the grid."""
    dtype = params.annual_price.dtype
    prices = jnp.asarray(annual_prices, dtype)
    if prices.ndim != 1 or prices.shape[0] < 1:
        errors.fail("annual_prices", "a non-empty 1-D grid of prices", np.shape(annual_prices))
    if errors.is_concrete(prices) and not np.all(np.asarray(prices) >= 0):
        errors.fail("annual_prices", "finite prices >= 0", np.asarray(prices).tolist())
    if errors.is_concrete(params.annual_price) and float(params.annual_price) <= 0:
        errors.fail("params.annual_price", "a positive price to scale", float(params.annual_price))
    _check_months(months)
    _check_states(initial_states, levels, lock_months)

    # The grid's re-solves share every transition: one :func:`~.model.solve_batch` per segment
    # (no solve waits for the grid's slowest, as under a plain vmap of solves).
    grid = params._replace(annual_price=params.annual_price * (prices / params.annual_price))
    solutions = [
        model.solve_batch(grid, segment, levels=levels, lock_months=lock_months)
        for segment in range(2)
    ]
    solutions = jax.tree.map(lambda *per_segment: jnp.stack(per_segment, axis=1), *solutions)

    def at_price(annual_price, solution):
        changed = params._replace(annual_price=annual_price)
        tables = simulate.tables(changed, levels=levels, lock_months=lock_months, solution=solution)
        return simulate_outcome(
            key,
            tables,
            initial_states,
            months,
            discount=changed.discount,
            promotion_month=Change().promotion_month,
        )

    outcomes = jax.vmap(at_price)(grid.annual_price, solutions)
    best = jnp.argmax(outcomes.discounted_revenue)
    return PriceSearch(
        prices=prices,
        revenue=outcomes.discounted_revenue,
        annual_share=outcomes.shares[:, -1, model.ANNUAL],
        best_price=prices[best],
        best_revenue=outcomes.discounted_revenue[best],
    )
