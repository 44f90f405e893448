"""Monotone ascent with step halving: the outer loop of the likelihood fits (NFXP's BHHH,
MaxEnt IRL's modified Newton).

Given a log-likelihood ``L(theta)`` that also returns a warm start for the next inner solve, and
a direction rule returning a step ``d`` and the criterion ``c = g^T d`` (``g`` the gradient; for
BHHH and Newton ``g^T H^{-1} g``), each iteration tries ``theta + lambda d`` with ``lambda = 1,
1/2, 1/4, ...`` until ``L`` does not fall (at most ``max_halvings`` halvings). The loop stops
when ``c < tol`` at the current point, after ``max_iters`` iterations, or when no step length is
accepted (stalled). Pure and jittable; under ``vmap`` every member runs until the slowest stops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from prime_science.choice.mdp import check_count, check_scalar
from prime_science.core.types import SolverInfo

__all__ = ["halving_ascent"]


def halving_ascent(
    log_likelihood: Callable[[jax.Array, Any], tuple[jax.Array, Any]],
    direction: Callable[[jax.Array, Any], tuple[jax.Array, jax.Array]],
    start: jax.Array,
    warm: Any,
    *,
    tol: float,
    max_iters: int,
    max_halvings: int,
) -> tuple[jax.Array, jax.Array, Any, SolverInfo]:
    """Maximise ``log_likelihood`` from ``start`` (module docstring).

    Args:
      log_likelihood: ``(theta, warm) -> (L, new_warm)``.
      direction: ``(theta, warm) -> (step, criterion)``.
      start: the first ``theta``.
      warm: the inner solver's start at ``start``.
      tol, max_iters, max_halvings: stopping rules.

    Returns:
      ``(theta, L(theta), warm, SolverInfo(iterations, criterion at theta, criterion < tol))``.

    Raises :class:`~prime_science.core.errors.InvalidArgumentError` for ``tol <= 0``,
    ``max_iters < 1`` or ``max_halvings < 0``.
    """
    check_scalar("tol", tol, "a positive tolerance", positive=True)
    check_count("max_iters", max_iters, 1)
    check_count("max_halvings", max_halvings, 0)
    dtype = start.dtype

    def cond(carry):
        _, _, _, k, criterion, stalled = carry
        return (criterion >= tol) & (k < max_iters) & ~stalled

    def body(carry):
        params, value, warm, k, _, _ = carry
        step, criterion = direction(params, warm)

        def halve_cond(state):
            _, candidate_value, _, halvings = state
            return ~(candidate_value >= value) & (halvings < max_halvings)

        def halve_body(state):
            length, _, _, halvings = state
            length = length / 2
            return (length, *log_likelihood(params + length * step, warm), halvings + 1)

        one = jnp.ones((), dtype)
        length, new_value, new_warm, _ = jax.lax.while_loop(
            halve_cond, halve_body, (one, *log_likelihood(params + step, warm), jnp.int32(0))
        )
        accepted = new_value >= value
        params = jnp.where(accepted, params + length * step, params)
        value = jnp.where(accepted, new_value, value)
        warm = jax.tree.map(lambda new, old: jnp.where(accepted, new, old), new_warm, warm)
        # the criterion at the start of this step; the loop re-checks it at the new point
        return params, value, warm, k + 1, jnp.where(accepted, criterion, 0.0), ~accepted

    value, warm = log_likelihood(start, warm)
    initial = (start, value, warm, jnp.int32(0), jnp.asarray(jnp.inf, dtype), jnp.bool_(False))
    params, value, warm, k, _, _ = jax.lax.while_loop(cond, body, initial)
    _, criterion = direction(params, warm)
    return params, value, warm, SolverInfo(k, criterion, criterion < tol)
