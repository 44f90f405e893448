"""Batched soft-Bellman solves of the bus engine model: one jitted vmapped call vs a numpy loop.

Problem: Su and Judd's bus model (175 states, ``theta3 = (0.0937, 0.4475, 0.4459, 0.0127,
0.0002)``, ``beta = 0.975`` by default), ``num_params`` parameter vectors
``RC ~ U(5, 20)``, ``theta11 ~ U(0.5, 5)`` (numpy, fixed seed), each solved in float64 until
``max_s |G(W) - W| < tol`` (relative-value form, :mod:`.solvers`).

* JAX: ``jit(vmap(solve_relative))`` over all vectors in one call, ``method`` =
  ``"newton"`` (Rust's polyalgorithm) or ``"successive"``. Compilation is timed separately;
  the run time is the best of ``repeats`` calls.
* Baseline: a plain numpy/scipy loop over the same vectors running the same polyalgorithm
  (contraction steps until the residual is below ``switch_tol``, at most 50, then Newton steps
  with ``scipy.linalg.solve``). ``numpy_limit`` times only the first vectors and scales the
  time linearly to ``num_params`` (reported as ``numpy_extrapolated``).

Both sides' relative values are compared (``max_abs_difference``).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from prime_science.benchmarking import device_info
from prime_science.choice.mdp import banded_transition, bus_engine_mdp
from prime_science.choice.solvers import solve_relative

__all__ = ["SU_JUDD_INCREMENTS", "numpy_newton_kantorovich", "benchmark_bus_solves"]

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
    """The polyalgorithm of :mod:`.solvers` in numpy/scipy: ``(W*, iterations)``."""

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


def benchmark_bus_solves(
    num_params: int = 10_000,
    *,
    num_states: int = 175,
    discount: float = 0.975,
    tol: float = 1e-10,
    method: str = "newton",
    repeats: int = 3,
    numpy_limit: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time both sides (module docstring); returns a JSON-ready dict of timings and checks."""
    rng = np.random.default_rng(seed)
    params = np.stack([rng.uniform(5, 20, num_params), rng.uniform(0.5, 5, num_params)], -1)
    with jax.enable_x64(True):
        increments = jnp.asarray(SU_JUDD_INCREMENTS, jnp.float64)

        def solve(theta):
            model = bus_engine_mdp(theta[0], theta[1], increments, num_states, discount)
            return solve_relative(model, method=method, tol=tol)

        batched = jax.jit(jax.vmap(solve))
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
    count = num_params if numpy_limit is None else min(numpy_limit, num_params)
    max_difference = 0.0
    tic = time.perf_counter()
    for row in range(count):
        rc, theta11 = params[row]
        rewards = np.stack([-0.001 * theta11 * states, np.full(num_states, -rc)], -1)
        w, _ = numpy_newton_kantorovich(rewards, transitions, discount, tol)
        max_difference = max(max_difference, float(np.max(np.abs(w - values[row]))))
    numpy_s = (time.perf_counter() - tic) * num_params / count
    jax_s = min(run_times)
    return {
        "num_params": num_params,
        "num_states": num_states,
        "discount": discount,
        "tol": tol,
        "method": method,
        "jax_compile_s": compile_s,
        "jax_run_s": jax_s,
        "jax_run_times_s": run_times,
        "numpy_s": numpy_s,
        "numpy_timed_params": count,
        "numpy_extrapolated": count < num_params,
        "speedup": numpy_s / jax_s,
        "all_converged": bool(np.all(info.converged)),
        "max_residual": float(np.max(info.residual)),
        "max_iters": int(np.max(info.num_iters)),
        "max_abs_difference": max_difference,
        "device": device_info(),
    }
