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
solved in float64 by relative value iteration to ``max |G(W) - W| <= tol``, all in one jitted
call of :func:`~prime_science.membership.model.solve_batch` (``lanes`` solves side by side, a
finished solve's lane refilled from the queue every ``refill_every`` steps); optionally the
first ``vmap_limit`` draws also as one ``jax.vmap`` of
:func:`~prime_science.membership.model.solve` (the earlier form: every solve runs to the
slowest one's iteration count). Two numpy baselines run draw by draw with the same stopping
rule, each solve its own iteration count: :func:`numpy_reduced_value_iteration` (the step of
``solve_batch``: only the expectations some action reads, log-sum-exp on the free plans, the
locked plans' single choice value) and :func:`numpy_relative_value_iteration` (the full
operator: every plan and member state, ``-inf`` on infeasible actions; the baseline before).
They get each draw's flow utilities and transition tables ready-made (built by the model's
functions before the clock starts: a small advantage to numpy) and may be timed on the first
``numpy_limit`` (``full_numpy_limit``) draws and scaled to all of them by iterations (their
time times the draws' total iterations over the timed draws' iterations, JAX's counts;
``same_iterations`` says whether numpy took the same number on the timed draws), reported as
extrapolated. Values are compared (``max_abs_difference``).

(c) :func:`pqr_timings`: tabular PQR with the anchor ``none``
(:func:`~prime_science.membership.pqr.membership_pqr`: the anchor-Q linear solve, the Q-step and
the R-step) on the free states of the model (default ``E = 5``), ``jax.vmap`` over
``replicates`` log-policies (the solved policy's log-probabilities plus ``N(0, noise^2)``,
renormalised) in one jitted call, beside :func:`numpy_membership_pqr` (``np.linalg.solve`` per
replicate, the same steps) timed on the first ``numpy_limit`` replicates and scaled linearly;
rewards compared, the floor's flops and bytes per replicate recorded.

:func:`dram_bandwidth`: a numpy copy and triad (one thread) and a jitted triad over arrays far
larger than the caches, best of several: the bandwidth the roofline uses.

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
from prime_science.membership import model, pqr, simulate

__all__ = [
    "PLAN_GROUPS",
    "batched_solve_timings",
    "dram_bandwidth",
    "forward_simulation",
    "forward_simulation_timings",
    "numpy_forward_simulation",
    "numpy_membership_pqr",
    "numpy_reduced_value_iteration",
    "numpy_relative_value_iteration",
    "pqr_timings",
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


def numpy_reduced_value_iteration(
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
    """:func:`numpy_relative_value_iteration` with the step of
    :func:`~prime_science.membership.model.solve_batch` (the same arguments and result): the
    value table in the lane layout ``[(engagement, content), regime, plan, tenure]``, the
    engagement-content chain as one matrix product, the member chain on every plan and the
    non-member chain on ``W(0, 0, .)`` only, ``log sum exp`` on the free plans (all three
    actions feasible) and the choice value itself on the locked plans (``annual`` only).
    The same operator and stopping rule, about 5x less work than the full operator."""
    if not (feasible[:2].all() and (feasible[2:] == [False, False, True]).all()):
        raise ValueError("expected free plans 0, 1 and annual-only locked plans")
    plans, buckets, cells, shocks, regimes = flow.shape[:-1]
    size = cells * shocks
    chain = np.einsum("mcxy,cd->mxcyd", engagement, content).reshape(2, size, size)
    lanes = np.moveaxis(flow, (2, 3, 4), (0, 1, 2)).reshape(size, regimes, plans, buckets, -1)
    free_u = np.ascontiguousarray(np.moveaxis(lanes[:, :, :2], -1, 0))  # [a, x, r, 2, t]
    locked_u = np.ascontiguousarray(lanes[:, :, 2:, :, model.ANNUAL])
    locked_next = next_plan[2:, model.ANNUAL]
    member_tenure = np.ascontiguousarray(tenure[1].T)

    def bellman(w):  # w [x, r, p, t]
        moved = (chain[1] @ w.reshape(size, -1)).reshape(w.shape)
        moved = np.einsum("rs,xspt->xrpt", regime, moved) @ member_tenure
        lapsed = chain[0] @ w[:, :, model.PLAN_NONE, 0] @ regime.T  # [x, r]
        q_none = free_u[model.NONE] + discount * lapsed[:, :, None, None]
        q_monthly = free_u[model.MONTHLY] + discount * moved[:, :, next_plan[:2, model.MONTHLY]]
        q_annual = free_u[model.ANNUAL] + discount * moved[:, :, next_plan[:2, model.ANNUAL]]
        top = np.maximum(np.maximum(q_none, q_monthly), q_annual)
        total = np.exp(q_none - top) + np.exp(q_monthly - top) + np.exp(q_annual - top)
        out = np.empty_like(w)
        out[:, :, :2] = top + np.log(total)
        out[:, :, 2:] = locked_u + discount * moved[:, :, locked_next]
        return out

    w = np.zeros((size, regimes, plans, buckets))
    residual, iterations = np.inf, 0
    while residual > tol and iterations < max_iters:
        t = bellman(w)
        new = t - t[0, 0, 0, 0]
        residual = float(np.max(np.abs(new - w)))
        w, iterations = new, iterations + 1
    value = w + bellman(w)[0, 0, 0, 0] / (1.0 - discount)
    value = np.moveaxis(value.reshape(cells, shocks, regimes, plans, buckets), (3, 4), (0, 1))
    return value, iterations, residual


def _numpy_tables(base, draws, levels, lock_months, segment):
    tables = []
    for theta in draws:
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
    return tables


def _time_numpy(solver, tables, tol, values):
    iterations, difference = [], 0.0
    tic = time.perf_counter()
    for row, table in enumerate(tables):
        value, steps, _ = solver(*table, tol=tol)
        iterations.append(steps)
        difference = max(difference, float(np.max(np.abs(value - values[row]))))
    return time.perf_counter() - tic, iterations, difference


def batched_solve_timings(
    num_solves: int = 200,
    *,
    levels: int = 3,
    lock_months: int = 11,
    segment: int = 0,
    tol: float = 1e-10,
    lanes: int = 32,
    refill_every: int = 8,
    vmap_limit: int | None = 64,
    repeats: int = 3,
    numpy_limit: int | None = 10,
    full_numpy_limit: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time (b) (module docstring); returns a JSON-ready dict."""
    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        base = small_engagement_params(levels, jnp.float64)
        truth = np.array([float(getattr(base, name)) for name in model.STRUCTURAL])
        draws = truth * rng.uniform(0.8, 1.2, (num_solves, truth.size))

        def solve_all(thetas):
            params = base._replace(**dict(zip(model.STRUCTURAL, thetas.T, strict=True)))
            solution = model.solve_batch(
                params,
                segment,
                levels=levels,
                lock_months=lock_months,
                tol=tol,
                lanes=lanes,
                refill_every=refill_every,
            )
            return solution.value, solution.iterations, solution.residual

        inputs = jnp.asarray(draws)
        compiled, compile_seconds = compile_jitted(solve_all, inputs)
        timing = time_calls(lambda: compiled(inputs), repeats)
        values, iterations, residuals = jax.device_get(compiled(inputs))

        vmapped = None
        if vmap_limit:
            count = min(vmap_limit, num_solves)

            def solve_one(theta):
                params = base._replace(**dict(zip(model.STRUCTURAL, theta, strict=True)))
                solution = model.solve(
                    params, segment, levels=levels, lock_months=lock_months, tol=tol
                )
                return solution.value, solution.iterations

            subset = inputs[:count]
            vmap_compiled, vmap_compile = compile_jitted(jax.vmap(solve_one), subset)
            vmap_timing = time_calls(lambda: vmap_compiled(subset), repeats)
            vmap_values, vmap_iterations = jax.device_get(vmap_compiled(subset))
            if count < num_solves:
                subset_compiled, _ = compile_jitted(solve_all, subset)
                batch_seconds = time_calls(lambda: subset_compiled(subset), repeats).median_seconds
            else:
                batch_seconds = timing.median_seconds
            vmapped = {
                "solves": count,
                "median_seconds": vmap_timing.median_seconds,
                "solve_batch_median_seconds": batch_seconds,
                "compile_seconds": vmap_compile,
                "max_iterations": int(np.max(vmap_iterations)),
                "same_iterations": bool(np.array_equal(vmap_iterations, iterations[:count])),
                "max_abs_difference": float(np.max(np.abs(vmap_values - values[:count]))),
            }

        count = num_solves if numpy_limit is None else min(numpy_limit, num_solves)
        full_count = count if full_numpy_limit is None else min(full_numpy_limit, count)
        tables = _numpy_tables(base, draws[:count], levels, lock_months, segment)
    total = np.sum(iterations)
    reduced_seconds, numpy_iterations, reduced_difference = _time_numpy(
        numpy_reduced_value_iteration, tables, tol, values
    )
    reduced_seconds *= total / np.sum(iterations[:count])
    full_seconds, full_iterations, full_difference = _time_numpy(
        numpy_relative_value_iteration, tables[:full_count], tol, values
    )
    full_seconds *= total / np.sum(iterations[:full_count])
    return {
        "num_solves": num_solves,
        "levels": levels,
        "lock_months": lock_months,
        "num_states": int(np.prod(model.state_shape(levels, lock_months))),
        "segment": segment,
        "tol": tol,
        "lanes": lanes,
        "refill_every": refill_every,
        "jax_compile_seconds": compile_seconds,
        "jax_median_seconds": timing.median_seconds,
        "jax_min_seconds": timing.min_seconds,
        "jax_iqr_seconds": timing.iqr_seconds,
        "jax_repeats": timing.repeats,
        "total_iterations": int(total),
        "microseconds_per_solve_step": timing.median_seconds / total * 1e6,
        "numpy_seconds": reduced_seconds,
        "numpy_timed_solves": count,
        "numpy_extrapolated": count < num_solves,
        "speedup": reduced_seconds / timing.median_seconds,
        "numpy_full_seconds": full_seconds,
        "numpy_full_timed_solves": full_count,
        "numpy_full_extrapolated": full_count < num_solves,
        "speedup_full": full_seconds / timing.median_seconds,
        "numpy_full_max_abs_difference": full_difference,
        "numpy_full_same_iterations": bool(
            np.array_equal(full_iterations, iterations[:full_count])
        ),
        "vmap_solve": vmapped,
        "solves_per_second": num_solves / timing.median_seconds,
        "median_iterations": float(np.median(iterations)),
        "mean_iterations": float(np.mean(iterations)),
        "max_iterations": int(np.max(iterations)),
        "numpy_median_iterations": float(np.median(numpy_iterations)),
        "same_iterations": bool(np.array_equal(numpy_iterations, iterations[:count])),
        "all_converged": bool(np.all(residuals <= tol)),
        "max_residual": float(np.max(residuals)),
        "max_abs_difference": reduced_difference,
        "device": device_info(),
    }


def dram_bandwidth(megabytes: int = 1024, repeats: int = 5) -> dict[str, Any]:
    """Sustained memory bandwidth, best of ``repeats``, over arrays of ``megabytes`` MiB (far
    larger than any cache), counted as the arrays' bytes read and written (STREAM's convention:
    write-allocate reads not counted): a numpy copy ``b[:] = a`` (2 arrays), a numpy triad
    ``c = a + 3 b`` in two in-place passes (5 array transfers; one thread), and the triad jitted
    in one pass (3 arrays; XLA, every core; the output reuses a donated buffer, so no page is
    touched for the first time in the timed calls). Returns GB/s (1e9 bytes) per kernel and
    the best of them."""
    n = megabytes * 2**20 // 8
    a = np.full(n, 1.0)
    b = np.full(n, 2.0)
    c = np.zeros(n)
    copies, triads = [], []
    for _ in range(repeats):
        tic = time.perf_counter()
        np.copyto(b, a)
        copies.append(time.perf_counter() - tic)
        tic = time.perf_counter()
        np.multiply(b, 3.0, out=c)
        np.add(c, a, out=c)
        triads.append(time.perf_counter() - tic)
    del c
    triad = jax.jit(lambda x, y: x + 3.0 * y, donate_argnums=0)
    x, y = jnp.asarray(a), jnp.asarray(b)
    del a, b
    x = jax.block_until_ready(triad(x, y))
    jitted = []
    for _ in range(repeats):
        tic = time.perf_counter()
        x = jax.block_until_ready(triad(x, y))
        jitted.append(time.perf_counter() - tic)
    size = n * 8
    record = {
        "array_mib": megabytes,
        "repeats": repeats,
        "numpy_copy_gbps": 2 * size / min(copies) / 1e9,
        "numpy_triad_gbps": 5 * size / min(triads) / 1e9,
        "jax_triad_gbps": 3 * size / min(jitted) / 1e9,
    }
    record["best_gbps"] = max(record[k] for k in record if k.endswith("_gbps"))
    return record


def numpy_membership_pqr(
    exogenous: np.ndarray,
    tenure: np.ndarray,
    regime: np.ndarray,
    discounts: np.ndarray,
    kernel: np.ndarray,
    log_policy: np.ndarray,
) -> tuple[np.ndarray, float]:
    """:func:`~prime_science.membership.pqr.membership_pqr` in numpy for one log-policy
    ``[2, 6, E^2, 2, 3, 3]`` (the chain's tables as numpy arrays, ``kernel = EC_0 (x)
    P_regime`` ready-made): ``np.linalg.solve`` of the anchor system, then the Q-step and the
    R-step (the continuation contracted one factor at a time). Returns ``(reward, residual)``."""
    log_anchor = log_policy[..., model.NONE]
    beta = discounts[model.NONE]
    system = np.eye(kernel.shape[0]) - beta * kernel
    rhs = -log_anchor[model.PLAN_NONE, 0].reshape(-1)
    restart = np.linalg.solve(system, rhs)
    residual = float(np.max(np.abs(system @ restart - rhs)))
    anchor_q = beta * (kernel @ restart).reshape(log_anchor.shape[2:])
    q = anchor_q[None, None, ..., None] + log_policy - log_anchor[..., None]
    value = anchor_q[None, None] - log_anchor  # [2, 6, E^2, 2, 3]
    buckets, cells = value.shape[1], exogenous.shape[-1]
    per_action = []
    for action, plan in enumerate(pqr.DESTINATION_PLAN):
        grid = value[plan].reshape(buckets, cells, -1)  # [t, (e, c), r]
        moved = np.einsum("tT,TXR->tXR", tenure[action], grid)
        moved = np.einsum("xX,tXR->txR", exogenous[action], moved)
        moved = moved @ regime[action].T
        per_action.append(discounts[action] * moved.reshape(value.shape[1:]))
    continuation = np.stack(per_action, axis=-1)
    return q - continuation[None], residual


def pqr_timings(
    replicates: int = 1_000,
    *,
    levels: int = 5,
    lock_months: int = 11,
    segment: int = 0,
    noise: float = 0.05,
    repeats: int = 3,
    numpy_limit: int | None = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Time (c) (module docstring); returns a JSON-ready dict."""
    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        params = (
            model.true_params(jnp.float64)
            if levels == 5
            else small_engagement_params(levels, jnp.float64)
        )
        solve = jax.jit(lambda p: model.solve(p, segment, levels=levels, lock_months=lock_months))
        log_policy = np.asarray(solve(params).log_policy[:2])  # free states: every action
        chain = jax.jit(
            lambda p: pqr.semi_markov(p, segment, levels=levels, lock_months=lock_months)
        )(params)
        noisy = log_policy + noise * rng.standard_normal((replicates, *log_policy.shape))
        policies = noisy - np.log(np.sum(np.exp(noisy), axis=-1, keepdims=True))

        def run(log_policies):
            rewards = jax.vmap(lambda lp: pqr.membership_pqr(chain, lp))(log_policies)
            return rewards.reward, rewards.residual

        inputs = jnp.asarray(policies)
        compiled, compile_seconds = compile_jitted(run, inputs)
        timing = time_calls(lambda: compiled(inputs), repeats)
        rewards, residuals = jax.device_get(compiled(inputs))
        host = jax.tree.map(np.asarray, chain)
        kernel = np.kron(host.exogenous[model.NONE], host.regime[model.NONE])
    count = replicates if numpy_limit is None else min(numpy_limit, replicates)
    difference, numpy_residual = 0.0, 0.0
    tic = time.perf_counter()
    for row in range(count):
        reward, residual = numpy_membership_pqr(
            host.exogenous, host.tenure, host.regime, host.discounts, kernel, policies[row]
        )
        difference = max(difference, float(np.max(np.abs(reward - rewards[row]))))
        numpy_residual = max(numpy_residual, residual)
    numpy_seconds = (time.perf_counter() - tic) * replicates / count
    unknowns = kernel.shape[0]
    free = int(np.prod(log_policy.shape))
    cells = host.exogenous.shape[-1]
    buckets, regimes = host.tenure.shape[-1], host.regime.shape[-1]
    chain_flops = 2 * (free // 6) * (buckets + cells + regimes) * len(model.ACTIONS)
    return {
        "replicates": replicates,
        "levels": levels,
        "lock_months": lock_months,
        "segment": segment,
        "noise": noise,
        "free_states": free // len(model.ACTIONS),
        "unknowns": unknowns,
        "jax_compile_seconds": compile_seconds,
        "jax_median_seconds": timing.median_seconds,
        "jax_min_seconds": timing.min_seconds,
        "jax_iqr_seconds": timing.iqr_seconds,
        "jax_repeats": timing.repeats,
        "numpy_seconds": numpy_seconds,
        "numpy_timed_replicates": count,
        "numpy_extrapolated": count < replicates,
        "speedup": numpy_seconds / timing.median_seconds,
        "replicates_per_second": replicates / timing.median_seconds,
        "max_abs_difference": difference,
        "max_residual": float(np.max(residuals)),
        "numpy_max_residual": numpy_residual,
        # the floor: flops per replicate of an LU solve (2/3 n^3 + 2 n^2), of the two
        # triangular solves and the kernel product alone when the factorisation is shared
        # (4 n^2), and of the R-step's continuation; bytes: the log-policy read and the
        # reward written, float64
        "lu_flops_per_replicate": 2 * unknowns**3 / 3 + 2 * unknowns**2,
        "shared_factor_flops_per_replicate": 4 * unknowns**2,
        "continuation_flops_per_replicate": chain_flops,
        "bytes_per_replicate": 2 * free * 8,
        "device": device_info(),
    }
