"""Membership timings: a counterfactual-style forward simulation and a batch of Bellman solves,
each beside a numpy baseline doing the same work in the same process.

(a) :func:`forward_simulation_timings`: ``num_members`` customers (default 1e6) from
:func:`~prime_science.membership.simulate.initial_states` moved ``months`` months (default 36)
by :func:`~prime_science.membership.simulate.step` inside one ``lax.scan``, keeping per month
only the plan shares (none, free member, locked annual) at the start of the month and the
revenue per customer ``mean_i payment_i``; the panel is never stored. The model is solved once
beforehand (float32, not timed). The numpy baseline (:func:`numpy_forward_simulation`) runs the
same month in vectorised numpy over all customers (``Generator.random`` for the five uniforms,
the same gathers and inverse-CDF draws), in a Python loop over months; it may be timed on the
first ``numpy_members`` customers and scaled linearly (the work is linear in the customers).
Both sides' final shares are reported (they differ by Monte Carlo error only).

(b) :func:`batched_solve_timings`: ``num_solves`` parameter draws (each structural parameter of
:data:`~prime_science.membership.model.STRUCTURAL` times ``U(0.8, 1.2)``, numpy, fixed seed) of
the model with ``levels`` engagement levels (default 3: 13 x 6 x 9 x 2 x 3 = 4,212 states), each
solved in float64 by :func:`~prime_science.membership.model.solve` (relative value iteration to
``max |G(W) - W| <= tol``), all in one jitted call: ``vmap`` over the draws, or ``lax.map`` over
vmapped chunks of ``batch_size``. The numpy baseline (:func:`numpy_relative_value_iteration`)
runs the same iteration with the same factorised expectation (``np.einsum`` one component at a
time) draw by draw; it gets each draw's flow utilities and transition tables ready-made (built by
the model's functions before the clock starts: a small advantage to numpy) and may be timed on
the first ``numpy_limit`` draws and scaled to all of them by iterations (its time times the
draws' total iterations over the timed draws' iterations, JAX's counts; ``same_iterations``
says whether numpy took the same number on the timed draws), reported as extrapolated. Both
sides' values are compared (``max_abs_difference``).

Compile time is measured apart (:func:`prime_science.bench.timing.compile_jitted`); run times
are medians of ``repeats`` calls after a warm-up (:func:`prime_science.bench.timing.time_calls`).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.bench.timing import compile_jitted, time_calls
from prime_science.core.machine import device_info
from prime_science.membership import model, simulate

__all__ = [
    "PLAN_GROUPS",
    "batched_solve_timings",
    "forward_simulation",
    "forward_simulation_timings",
    "numpy_forward_simulation",
    "numpy_relative_value_iteration",
    "small_engagement_params",
]

PLAN_GROUPS = ("none", "free member", "locked annual")
"""The plan shares reported per month: plan 0, plan 1, plans ``2 ..``."""


def forward_simulation(
    key: jax.Array, tables: simulate.ModelTables, states: simulate.MemberStates, months: int
) -> tuple[jax.Array, jax.Array]:
    """``(shares float[months, 3], revenue float[months])``: the plan shares (:data:`PLAN_GROUPS`)
    at the start of each month and the mean payment per customer in it, ``months`` steps of
    :func:`~prime_science.membership.simulate.step` in a ``lax.scan`` (``months`` static)."""

    def month(states, month_key):
        group = jnp.minimum(states.plan, 2)
        shares = jnp.stack([jnp.mean(group == g) for g in range(len(PLAN_GROUPS))])
        states, _, payment = simulate.step(month_key, tables, states)
        return states, (shares, jnp.mean(payment))

    _, (shares, revenue) = jax.lax.scan(month, states, jax.random.split(key, months))
    return shares, revenue


def _numpy_draw(probs: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(probs, axis=-1)
    index = np.sum(cdf < uniform[:, None] * cdf[:, -1:], axis=-1)
    return np.minimum(index, probs.shape[-1] - 1)


def numpy_forward_simulation(
    rng: np.random.Generator,
    tables: simulate.ModelTables,
    states: simulate.MemberStates,
    months: int,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`forward_simulation` in numpy (``tables`` and ``states`` as numpy arrays): per month
    five ``float32`` uniforms per customer, then the action, tenure, engagement, content and
    regime draws by inverse CDF of the gathered table rows."""
    plan, tenure, engagement, content, regime, segment = states
    shares, revenue = np.empty((months, len(PLAN_GROUPS))), np.empty(months)
    for month in range(months):
        group = np.minimum(plan, 2)
        shares[month] = [np.mean(group == g) for g in range(len(PLAN_GROUPS))]
        u = rng.random((plan.shape[0], 5), dtype=np.float32)
        policy = np.exp(tables.log_policy[segment, plan, tenure, engagement, content, regime])
        action = _numpy_draw(policy, u[:, 0])
        payment = np.where(plan < 2, tables.prices[regime, action], 0.0)
        revenue[month] = payment.mean()
        member = (action != model.NONE).astype(np.int32)
        tenure_next = _numpy_draw(tables.tenure[member, tenure], u[:, 1])
        engagement = _numpy_draw(tables.engagement[segment, member, content, engagement], u[:, 2])
        content_next = _numpy_draw(tables.content[content], u[:, 3])
        regime = _numpy_draw(tables.regime[regime], u[:, 4])
        plan, tenure, content = tables.next_plan[plan, action], tenure_next, content_next
    return shares, revenue


def small_engagement_params(levels: int, dtype=jnp.float32, **overrides) -> model.MembershipParams:
    """:func:`~prime_science.membership.model.true_params` with the engagement targets scaled
    from 5 levels to ``levels`` (``target (E - 1) / 4``), so that they stay in range."""
    truth = model.true_params()
    scale = (levels - 1) / 4.0
    targets = dict(
        ship_target=np.asarray(truth.ship_target) * scale,
        video_target=np.asarray(truth.video_target) * scale,
        content_lift=float(truth.content_lift) * scale,
    )
    return model.true_params(dtype, **(targets | overrides))


def forward_simulation_timings(
    num_members: int = 1_000_000,
    months: int = 36,
    *,
    levels: int = 5,
    lock_months: int = 11,
    repeats: int = 3,
    numpy_members: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time (a) (module docstring); returns a JSON-ready dict."""
    params = model.true_params() if levels == 5 else small_engagement_params(levels)
    tic = time.perf_counter()
    tables = jax.block_until_ready(
        jax.jit(lambda p: simulate.tables(p, levels=levels, lock_months=lock_months))(params)
    )
    solve_seconds = time.perf_counter() - tic
    key_states, key_run = jax.random.split(jax.random.key(seed))
    states = simulate.initial_states(key_states, num_members, levels=levels)

    def run(key, tables, states):
        return forward_simulation(key, tables, states, months)

    compiled, compile_seconds = compile_jitted(run, key_run, tables, states)
    timing = time_calls(lambda: compiled(key_run, tables, states), repeats)
    shares, revenue = jax.device_get(compiled(key_run, tables, states))

    host_tables = jax.tree.map(np.asarray, tables)
    count = num_members if numpy_members is None else min(numpy_members, num_members)
    host_states = simulate.MemberStates(*(np.asarray(x)[:count] for x in states))
    rng = np.random.default_rng(seed)
    tic = time.perf_counter()
    numpy_shares, numpy_revenue = numpy_forward_simulation(rng, host_tables, host_states, months)
    numpy_seconds = (time.perf_counter() - tic) * num_members / count
    return {
        "num_members": num_members,
        "months": months,
        "levels": levels,
        "lock_months": lock_months,
        "num_states": int(np.prod(model.state_shape(levels, lock_months))) * 2,
        "solve_seconds": solve_seconds,
        "jax_compile_seconds": compile_seconds,
        "jax_median_seconds": timing.median_seconds,
        "jax_min_seconds": timing.min_seconds,
        "jax_iqr_seconds": timing.iqr_seconds,
        "jax_repeats": timing.repeats,
        "numpy_seconds": numpy_seconds,
        "numpy_timed_members": count,
        "numpy_extrapolated": count < num_members,
        "speedup": numpy_seconds / timing.median_seconds,
        "member_months_per_second": num_members * months / timing.median_seconds,
        "final_shares": dict(zip(PLAN_GROUPS, shares[-1].tolist(), strict=True)),
        "numpy_final_shares": dict(zip(PLAN_GROUPS, numpy_shares[-1].tolist(), strict=True)),
        "final_revenue_per_customer": float(revenue[-1]),
        "numpy_final_revenue_per_customer": float(numpy_revenue[-1]),
        "mean_revenue_per_customer_month": float(np.mean(revenue)),
        "numpy_mean_revenue_per_customer_month": float(np.mean(numpy_revenue)),
        "device": device_info(),
    }


def numpy_relative_value_iteration(
    flow: np.ndarray,
    feasible: np.ndarray,
    engagement: np.ndarray,
    tenure: np.ndarray,
    content: np.ndarray,
    regime: np.ndarray,
    next_plan: np.ndarray,
    discount: float,
    tol: float,
    max_iters: int = 20_000,
) -> tuple[np.ndarray, int, float]:
    """:func:`~prime_science.membership.model.solve`'s relative value iteration in numpy:
    ``(V float[plans, 6, E^2, 2, 3], iterations, residual)``.

    ``W <- T(W) - T(W)[0]`` until ``max |G(W) - W| <= tol``, then ``V = W + T(W)[0] / (1 -
    beta)``; ``E[V(s') | s, a]`` contracts the regime, content, engagement and tenure axes one at
    a time, each as one (batched) matrix product (``flow`` ``float[plans, 6, E^2, 2, 3, 3]``,
    ``feasible`` ``bool[plans, 3]``, the tables as
    :func:`~prime_science.membership.model.expected_next_values` uses them)."""
    member_after = (np.arange(len(model.ACTIONS)) != model.NONE).astype(np.int32)
    mask = feasible[:, None, None, None, None, :]
    plans, buckets, cells, shocks, regimes = flow.shape[:-1]

    def bellman(w):
        exogenous = content @ (w @ regime.T)  # [p, t, e, c, r]
        by_content = exogenous.transpose(3, 2, 0, 1, 4).reshape(shocks, cells, -1)
        moved = engagement @ by_content[None]  # [m, c, e', (p, t, r)]
        moved = moved.reshape(2, shocks, cells, plans, buckets, regimes)
        by_tenure = moved.transpose(0, 4, 1, 2, 3, 5).reshape(2, buckets, -1)
        aged = (tenure @ by_tenure).reshape(2, buckets, shocks, cells, plans, regimes)
        by_member = aged.transpose(0, 4, 1, 3, 2, 5)  # [m, plan', t, e, c, r]
        after = np.moveaxis(by_member[member_after[None, :], next_plan], 1, -1)
        q = np.where(mask, flow + discount * after, -np.inf)
        top = q.max(-1, keepdims=True)
        return (top + np.log(np.exp(q - top).sum(-1, keepdims=True)))[..., 0]

    w = np.zeros(flow.shape[:-1])
    residual, iterations = np.inf, 0
    while residual > tol and iterations < max_iters:
        t = bellman(w)
        new = t - t.reshape(-1)[0]
        residual = float(np.max(np.abs(new - w)))
        w, iterations = new, iterations + 1
    gain = bellman(w).reshape(-1)[0]
    return w + gain / (1.0 - discount), iterations, residual


def batched_solve_timings(
    num_solves: int = 200,
    *,
    levels: int = 3,
    lock_months: int = 11,
    segment: int = 0,
    tol: float = 1e-10,
    batch_size: int | None = None,
    repeats: int = 3,
    numpy_limit: int | None = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Time (b) (module docstring); returns a JSON-ready dict."""
    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        base = small_engagement_params(levels, jnp.float64)
        truth = np.array([float(getattr(base, name)) for name in model.STRUCTURAL])
        draws = truth * rng.uniform(0.8, 1.2, (num_solves, truth.size))

        def solve_one(theta):
            params = base._replace(**dict(zip(model.STRUCTURAL, theta, strict=True)))
            solution = model.solve(params, segment, levels=levels, lock_months=lock_months, tol=tol)
            return solution.value, solution.iterations, solution.residual

        if batch_size is None or batch_size >= num_solves:
            batched = jax.vmap(solve_one)
        else:
            batched = lambda thetas: jax.lax.map(solve_one, thetas, batch_size=batch_size)  # noqa: E731
        inputs = jnp.asarray(draws)
        compiled, compile_seconds = compile_jitted(batched, inputs)
        timing = time_calls(lambda: compiled(inputs), repeats)
        values, iterations, residuals = jax.device_get(compiled(inputs))

        count = num_solves if numpy_limit is None else min(numpy_limit, num_solves)
        tables = []
        for theta in draws[:count]:
            params = base._replace(**dict(zip(model.STRUCTURAL, jnp.asarray(theta), strict=True)))
            tables.append(
                (
                    np.asarray(model.flow_utilities(params, levels, lock_months)),
                    model.feasible_actions(lock_months),
                    np.asarray(model.engagement_transition(params, segment, levels)),
                    np.asarray(model.tenure_transition(jnp.float64)),
                    np.asarray(model.content_transition(params)),
                    np.asarray(params.regime_transition),
                    model.next_plan(lock_months),
                    float(params.discount),
                )
            )
    numpy_iterations, max_difference = [], 0.0
    tic = time.perf_counter()
    for row, table in enumerate(tables):
        value, steps, _ = numpy_relative_value_iteration(*table, tol=tol)
        numpy_iterations.append(steps)
        max_difference = max(max_difference, float(np.max(np.abs(value - values[row]))))
    numpy_seconds = (time.perf_counter() - tic) * np.sum(iterations) / np.sum(iterations[:count])
    return {
        "num_solves": num_solves,
        "levels": levels,
        "lock_months": lock_months,
        "num_states": int(np.prod(model.state_shape(levels, lock_months))),
        "segment": segment,
        "tol": tol,
        "batch_size": batch_size,
        "jax_compile_seconds": compile_seconds,
        "jax_median_seconds": timing.median_seconds,
        "jax_min_seconds": timing.min_seconds,
        "jax_iqr_seconds": timing.iqr_seconds,
        "jax_repeats": timing.repeats,
        "numpy_seconds": numpy_seconds,
        "numpy_timed_solves": count,
        "numpy_extrapolated": count < num_solves,
        "speedup": numpy_seconds / timing.median_seconds,
        "solves_per_second": num_solves / timing.median_seconds,
        "median_iterations": float(np.median(iterations)),
        "max_iterations": int(np.max(iterations)),
        "numpy_median_iterations": float(np.median(numpy_iterations)),
        "same_iterations": bool(np.array_equal(numpy_iterations, iterations[:count])),
        "all_converged": bool(np.all(residuals <= tol)),
        "max_residual": float(np.max(residuals)),
        "max_abs_difference": max_difference,
        "device": device_info(),
    }
