"""Regret of a slate policy against the top-``k`` oracle.

A round shows a slate ``S_t`` of ``k`` arms; arm ``i`` pays ``Bernoulli(p_i)``. The oracle shows
the ``k`` active arms with the largest ``p_i``, so the expected per-round regret is

    r_t = sum_{i in top_k(p, active_t)} p_i  -  sum_{i in S_t} p_i   >= 0,

and the cumulative regret is ``R_T = sum_{t < T} r_t`` (the usual bandit regret, with a slate in
place of a single action). Empty slate slots (arm id ``-1``) pay nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["topk_oracle_value", "slate_value", "cumulative_regret"]


def topk_oracle_value(p: jax.Array, active: jax.Array, k: int) -> jax.Array:
    """``sum`` of the ``k`` largest ``p_i`` over active arms (all of them if fewer than ``k``).

    Args:
      p: ``float32[arms]`` true success probabilities.
      active: ``bool[arms]`` which arms may be shown.
      k: slate size (static).

    Returns:
      The oracle's expected reward per round, a float32 scalar.
    """
    top, _ = jax.lax.top_k(jnp.where(active, p, -jnp.inf), k)
    return jnp.sum(jnp.where(jnp.isfinite(top), top, 0.0))


def slate_value(p: jax.Array, arms: jax.Array) -> jax.Array:
    """Expected reward ``sum_{i in S} p_i`` of a slate; slots holding ``-1`` count as 0."""
    return jnp.sum(jnp.where(arms >= 0, p[jnp.maximum(arms, 0)], 0.0))


def cumulative_regret(per_round: jax.Array) -> jax.Array:
    """``R_t = sum_{s <= t} r_s`` along the last (round) axis."""
    return jnp.cumsum(per_round, axis=-1)
