"""Batched soft-Bellman solves of the bus engine model: one jitted vmapped call vs a numpy loop
and vs QuantEcon's ``DiscreteDP``.

Problem: Su and Judd's bus model (175 states, ``theta3 = (0.0937, 0.4475, 0.4459, 0.0127,
0.0002)``, ``beta = 0.975`` by default), ``num_params`` parameter vectors
``RC ~ U(5, 20)``, ``theta11 ~ U(0.5, 5)`` (numpy, fixed seed), each solved in float64 until
``max_s |G(W) - W| < tol`` (relative-value form, :mod:`prime_science.choice.solvers`; this
equals ``max_s |T(V) - V|``).

* JAX: one jitted call over all vectors, ``method`` = ``"newton"`` (Rust's polyalgorithm) or
  ``"successive"``, on the banded model (:class:`~prime_science.choice.mdp.BandedMDP`,
  ``banded=True``) or the dense one: ``lax.map(solve_relative, batch_size=batch_size)``
  (``vmap`` over chunks of ``batch_size`` vectors, the chunks in sequence; on XLA:CPU chunks of
  ~500 keep the working set in cache and run ~1.7x faster than one ``vmap`` over all 10,000),
  or plain ``vmap(solve_relative)`` with ``batch_size=None``. Compilation is timed separately;
  the run time is the median of ``repeats`` calls.
* Baseline: a plain numpy/scipy loop over the same vectors running the same polyalgorithm
  (contraction steps until the residual is below ``switch_tol``, at most
  ``contraction_steps``, then Newton steps with ``scipy.linalg.solve`` on the dense
  ``175 x 175`` matrix). ``numpy_limit`` times only the first vectors and scales the time
  linearly to ``num_params`` (reported as ``numpy_extrapolated``).
* QuantEcon: ``quantecon.markov.DiscreteDP(R, Q, beta).value_iteration`` on the same ``S``,
  ``A``, ``beta`` and transitions with the hard max (its rewards are ours, so it is a different
  problem of the same size: ``max`` instead of ``logsumexp``), ``epsilon`` set so that its stop
  rule ``max |T v - v| < epsilon (1 - beta) / (2 beta)`` is ``max |T v - v| < tol``; timed on the
  first ``quantecon_limit`` vectors and scaled linearly. Skipped, with a note, when quantecon is
  not installed.

Both solvers' relative values are compared (``max_abs_difference``).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from prime_science.choice.mdp import banded_transition, bus_engine_mdp
from prime_science.choice.solvers import solve_relative
from prime_science.core.machine import device_info

__all__ = [
    "SU_JUDD_INCREMENTS",
    "numpy_newton_kantorovich",
    "quantecon_value_iteration",
    "benchmark_bus_solves",
]

SU_JUDD_INCREMENTS = (0.0937, 0.4475, 0.4459, 0.0127, 0.0002)


def numpy_newton_kantorovich(
    rewards: np.ndarray,
    transitions: np.ndarray,
    discount: float,
    tol: float,
    switch_tol: float = 1e-3,
    contraction_steps: int = 50,
    max_newton: int = 50,
) -> tuple[np.ndarray, int]:
    """The polyalgorithm of :mod:`prime_science.choice.solvers` in numpy/scipy:
    ``(W*, iterations)``."""

    def relative_bellman(w):
        q = rewards + discount * (transitions @ w).T
        top = q.max(1)
        t = top + np.log(np.exp(q - top[:, None]).sum(1))
        return t - t[0], q - t[:, None]

    w = np.zeros(rewards.shape[0])
    gw, log_pi = relative_bellman(w)
    steps = 0
    while np.max(np.abs(gw - w)) >= switch_tol and steps < contraction_steps:
        w = gw
        gw, log_pi = relative_bellman(w)
        steps += 1
    newton = 0
    while np.max(np.abs(gw - w)) >= tol and newton < max_newton:
        p_pi = np.sum(np.exp(log_pi).T[:, :, None] * transitions, axis=0)
        matrix = np.eye(w.size) - discount * (p_pi - p_pi[:1])
        w = w - scipy.linalg.solve(matrix, w - gw)
        w = w - w[0]
        gw, log_pi = relative_bellman(w)
        newton += 1
    return w, steps + newton


def quantecon_value_iteration(
    rewards: np.ndarray, transitions: np.ndarray, discount: float, tol: float
) -> tuple[np.ndarray, int] | None:
    """QuantEcon's hard-max value iteration to ``max |T v - v| < tol``: ``(v, iterations)``, or
    ``None`` when quantecon is not installed."""
    try:
        from quantecon.markov import DiscreteDP
    except ImportError:
        return None
    problem = DiscreteDP(rewards, np.moveaxis(transitions, 0, 1), discount)
    # quantecon stops when max |T v - v| < epsilon (1 - beta) / (2 beta)
    epsilon = tol * 2 * discount / (1 - discount)
    result = problem.value_iteration(epsilon=epsilon, max_iter=1_000_000)
    return result.v, int(result.num_iter)


def benchmark_bus_solves(
    num_params: int = 10_000,
    *,
    num_states: int = 175,
    discount: float = 0.975,
    tol: float = 1e-10,
    method: str = "newton",
    banded: bool = True,
    contraction_steps: int = 50,
    switch_tol: float = 1e-3,
    repeats: int = 3,
    numpy_limit: int | None = None,
    quantecon_limit: int | None = 100,
    batch_size: int | None = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """Time all sides (module docstring); returns a JSON-ready dict of timings and checks."""
    rng = np.random.default_rng(seed)
    params = np.stack([rng.uniform(5, 20, num_params), rng.uniform(0.5, 5, num_params)], -1)
    options = dict(method=method, tol=tol)
    if method == "newton":
        options |= dict(contraction_steps=contraction_steps, switch_tol=switch_tol)
    with jax.enable_x64(True):
        increments = jnp.asarray(SU_JUDD_INCREMENTS, jnp.float64)

        def solve(theta):
            model = bus_engine_mdp(
                theta[0], theta[1], increments, num_states, discount, banded=banded
            )
            return solve_relative(model, **options)

        if batch_size is None or batch_size >= num_params:
            batched = jax.jit(jax.vmap(solve))
        else:
            batched = jax.jit(lambda p: jax.lax.map(solve, p, batch_size=batch_size))
        inputs = jnp.asarray(params)
        tic = time.perf_counter()
        compiled = batched.lower(inputs).compile()
        compile_s = time.perf_counter() - tic
        run_times = []
        for _ in range(repeats):
            tic = time.perf_counter()
            values, info = jax.block_until_ready(compiled(inputs))
            run_times.append(time.perf_counter() - tic)
        values, info = jax.device_get((values, info))

    with jax.enable_x64(True):
        keep = np.asarray(banded_transition(np.asarray(SU_JUDD_INCREMENTS), num_states))
    transitions = np.stack([keep, np.broadcast_to(keep[0], keep.shape)])
    states = np.arange(num_states)

    def rewards(row):
        rc, theta11 = params[row]
        return np.stack([-0.001 * theta11 * states, np.full(num_states, -rc)], -1)

    count = num_params if numpy_limit is None else min(numpy_limit, num_params)
    max_difference = 0.0
    numpy_iters = []
    tic = time.perf_counter()
    for row in range(count):
        w, iters = numpy_newton_kantorovich(
            rewards(row), transitions, discount, tol, switch_tol, contraction_steps
        )
        numpy_iters.append(iters)
        max_difference = max(max_difference, float(np.max(np.abs(w - values[row]))))
    numpy_s = (time.perf_counter() - tic) * num_params / count

    qe_count = num_params if quantecon_limit is None else min(quantecon_limit, num_params)
    # None: not timed (quantecon_limit = 0); False: quantecon is not installed
    quantecon = {"quantecon_available": None if qe_count == 0 else False}
    if qe_count and quantecon_value_iteration(rewards(0), transitions, discount, 1e-3) is not None:
        qe_iters = []
        tic = time.perf_counter()
        for row in range(qe_count):
            _, iters = quantecon_value_iteration(rewards(row), transitions, discount, tol)
            qe_iters.append(iters)
        quantecon = {
            "quantecon_available": True,
            "quantecon_s": (time.perf_counter() - tic) * num_params / qe_count,
            "quantecon_timed_params": qe_count,
            "quantecon_extrapolated": qe_count < num_params,
            "quantecon_median_iters": float(np.median(qe_iters)),
        }
    jax_s = statistics.median(run_times)
    record = {
        "num_params": num_params,
        "num_states": num_states,
        "discount": discount,
        "tol": tol,
        "method": method,
        "banded": banded,
        "batch_size": batch_size,
        "contraction_steps": contraction_steps,
        "switch_tol": switch_tol,
        "jax_compile_s": compile_s,
        "jax_run_s": jax_s,
        "jax_run_times_s": run_times,
        "numpy_s": numpy_s,
        "numpy_timed_params": count,
        "numpy_extrapolated": count < num_params,
        "numpy_median_iters": float(np.median(numpy_iters)),
        "speedup": numpy_s / jax_s,
        "all_converged": bool(np.all(info.converged)),
        "max_residual": float(np.max(info.residual)),
        "max_iters": int(np.max(info.num_iters)),
        "median_iters": float(np.median(info.num_iters)),
        "max_abs_difference": max_difference,
        "device": device_info(),
    }
    if quantecon["quantecon_available"]:
        quantecon["speedup_vs_quantecon"] = quantecon["quantecon_s"] / jax_s
    return record | quantecon
