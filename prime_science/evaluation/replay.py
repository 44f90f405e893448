"""Replay evaluation of a learning policy on uniform-random logs (Li, Chu, Langford & Wang 2011).

Logged rows ``(x_t, a_t, k_t, r_t)``, ``t = 1 .. T``, in logged order, where the logging policy
put item ``a_t`` in slot ``k_t`` uniformly at random (probability ``1 / A`` for each of ``A``
items). The policy under evaluation, with state ``s``, proposes a ranking ``rho_t`` for context
``x_t``; the round *matches* when it would have shown the logged item in the logged slot,
``rho_t[k_t] = a_t``. Only matched rounds count and only they update the policy::

    s <- update(s, x_t, a_t, r_t)   if rho_t[k_t] = a_t,     else s unchanged,
    V_replay = (sum_t 1[match_t] r_t) / (sum_t 1[match_t]).

Li et al. (2011, WSDM, Theorem 1) show that with uniform logging the matched rounds are
distributed as rounds of the policy run online, so ``V_replay`` is unbiased for its per-round
value after ``M = sum_t 1[match_t]`` online rounds; ``E[M] = T / A`` (each round matches with
probability ``1 / A`` whatever the policy chooses). The estimate's standard error is
``sqrt(V (1 - V) / M)`` when clicks are rare and rounds independent.

``replay`` is pure and ``jit``/``vmap``-able: one ``lax.scan`` over the rows, round ``t`` using
``jax.random.fold_in(key, t)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from prime_science.core import errors
from prime_science.core.types import PRNGKey

__all__ = ["ReplayResult", "replay"]


class ReplayResult(NamedTuple):
    """What replay measured.

    Attributes:
      num_matched: ``int32`` scalar ``M``, the rounds whose logged (item, slot) the policy chose.
      clicks: ``float`` scalar, the rewards summed over matched rounds.
      value: ``float`` scalar ``clicks / M`` (NaN when ``M = 0``).
      matched: ``bool[T]`` which rounds matched.
    """

    num_matched: jax.Array
    clicks: jax.Array
    value: jax.Array
    matched: jax.Array


def replay(
    key: PRNGKey,
    rank_fn: Callable[[PRNGKey, Any, Any], jax.Array],
    update_fn: Callable[[Any, Any, jax.Array, jax.Array], Any],
    state: Any,
    contexts: Any,
    items: jax.Array,
    positions: jax.Array,
    rewards: jax.Array,
) -> tuple[ReplayResult, Any]:
    """Replay the logged rounds in order (module docstring).

    Args:
      key: a PRNG key; round ``t`` draws with ``fold_in(key, t)``.
      rank_fn: ``(key, state, context) -> int[K]``: the policy's ranking (items, best first).
      update_fn: ``(state, context, item, reward) -> state``: one observation folded in.
      state: the policy's initial state.
      contexts: a pytree whose leaves have a leading axis ``T`` (row ``t``'s context is the
        ``t``-th slice), or ``None`` for a context-free policy.
      items, positions: ``int[T]`` the logged item and 0-based slot.
      rewards: ``float[T]`` the logged rewards.

    Returns:
      ``(ReplayResult, final state)``.
    """
    for name, value in (("items", items), ("positions", positions), ("rewards", rewards)):
        errors.check_rank(name, value, 1)
    errors.check_dtype_kind("items", items, "iu", "integer item ids")
    errors.check_dtype_kind("positions", positions, "iu", "integer slots")
    errors.check_same_length(("items", "positions"), items, positions)
    errors.check_same_length(("items", "rewards"), items, rewards)
    rewards = jnp.asarray(rewards)
    if not jnp.issubdtype(rewards.dtype, jnp.floating):
        rewards = rewards.astype(jnp.float32)
    num_rounds = items.shape[0]
    context_rows = jnp.zeros(num_rounds) if contexts is None else contexts

    def step(state, round_):
        index, context, item, position, reward = round_
        ranking = rank_fn(
            jax.random.fold_in(key, index), state, None if contexts is None else context
        )
        match = ranking[position] == item
        updated = update_fn(state, None if contexts is None else context, item, reward)
        state = jax.tree.map(lambda new, old: jnp.where(match, new, old), updated, state)
        return state, match

    rounds = (
        jnp.arange(num_rounds),
        context_rows,
        jnp.asarray(items),
        jnp.asarray(positions),
        rewards,
    )
    state, matched = jax.lax.scan(step, state, rounds)
    num_matched = jnp.sum(matched, dtype=jnp.int32)
    clicks = jnp.sum(jnp.where(matched, rewards, 0.0))
    value = jnp.where(num_matched > 0, clicks / jnp.maximum(num_matched, 1), jnp.nan)
    return ReplayResult(num_matched, clicks, value.astype(rewards.dtype), matched), state
