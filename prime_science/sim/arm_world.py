"""A many-armed Bernoulli callout world with a fixed capacity and scheduled arrivals.

The world has ``N = num_arms`` slots. Every arm has a true click probability

    p_i ~ Beta(a0, b0)   independently (e.g. Beta(0.5, 15): mean a0 / (a0 + b0) ~ 3%),

drawn once per world. Arms ``[0, N - M)`` are live from round 0; the ``M = num_new_arms`` arms
``[N - M, N)`` arrive one after another, spread evenly over rounds ``1 .. T - 1``:

    arrival_round(N - M + j) = 1 + floor(j (T - 1) / M),   j = 0 .. M - 1,

so at most ``A = ceil(M / (T - 1))`` arms arrive in one round. Arm ``i`` is *active* in round
``t`` when ``arrival_round_i <= t``, and its *age* is ``t - arrival_round_i`` (initial arms are
given an arrival round far in the past, so they are never young).

Showing arm ``i`` once pays ``R ~ Bernoulli(p_i)``. The outcome is drawn from counter-based bits
keyed by ``(key, i)`` (:mod:`prime_science.core.random`), so two policies that use the same round
key see the same outcome for the same arm: common random numbers, which shrink the variance of
regret differences between policies.

The schedule depends only on the static sizes, so it is built with numpy and enters traced code
as a constant; only ``p`` depends on the key.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.core.errors import check_key, fail
from prime_science.core.random import random_bits, uniform_open

__all__ = [
    "LONG_AGO",
    "ArmWorld",
    "arrival_schedule",
    "make_arm_world",
    "active_mask",
    "arm_age",
    "pull",
]

LONG_AGO = -(2**30)
"""Arrival round of the arms that are live from the start: older than any horizon."""


class ArmWorld(NamedTuple):
    """One simulated world.

    Attributes:
      click_prob: ``float32[arms]`` true success probabilities ``p_i``.
      arrival_round: ``int32[arms]`` round from which each arm is active (``LONG_AGO`` for the
        initial arms).
      arrivals: ``int32[rounds, max_arrivals]`` ids of the arms that arrive in each round,
        padded with ``-1``.
    """

    click_prob: jax.Array
    arrival_round: jax.Array
    arrivals: jax.Array


def arrival_schedule(
    num_arms: int, num_new_arms: int, num_rounds: int
) -> tuple[np.ndarray, np.ndarray]:
    """The static arrival schedule: ``(arrival_round int32[arms], arrivals int32[rounds, A])``.

    New arm ``j`` (slot ``num_arms - num_new_arms + j``) arrives in round
    ``1 + floor(j (num_rounds - 1) / num_new_arms)``; see the module docstring.
    """
    if num_rounds < 2:
        fail("num_rounds", "an integer >= 2", num_rounds)
    if not 0 <= num_new_arms < num_arms:
        fail("num_new_arms", f"an integer in [0, num_arms={num_arms})", num_new_arms)
    first_new = num_arms - num_new_arms
    rounds = 1 + (np.arange(num_new_arms, dtype=np.int64) * (num_rounds - 1)) // max(
        num_new_arms, 1
    )
    arrival_round = np.full(num_arms, LONG_AGO, dtype=np.int32)
    arrival_round[first_new:] = rounds
    max_arrivals = max(1, math.ceil(num_new_arms / (num_rounds - 1)))
    arrivals = np.full((num_rounds, max_arrivals), -1, dtype=np.int32)
    counts = np.bincount(rounds, minlength=num_rounds)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(num_new_arms) - starts[rounds]
    arrivals[rounds, slot] = first_new + np.arange(num_new_arms)
    return arrival_round, arrivals


def make_arm_world(
    key: jax.Array,
    num_arms: int,
    num_new_arms: int,
    num_rounds: int,
    prior_alpha: float,
    prior_beta: float,
) -> ArmWorld:
    """Draw ``p_i ~ Beta(prior_alpha, prior_beta)`` and attach the arrival schedule.

    Sizes are static Python integers (checked here, eagerly); the function is jittable with
    them marked static. Raises ``InvalidArgumentError`` naming ``key`` (not one PRNG key),
    ``prior_alpha`` or ``prior_beta`` (not a finite number ``> 0``; a NaN shape used to give a
    world of NaN click rates) or the sizes.
    """
    check_key("key", key)
    for name, shape in (("prior_alpha", prior_alpha), ("prior_beta", prior_beta)):
        if not (np.ndim(shape) == 0 and np.isfinite(shape) and shape > 0):
            fail(name, "a finite Beta shape > 0", repr(shape))
    arrival_round, arrivals = arrival_schedule(num_arms, num_new_arms, num_rounds)
    click_prob = jax.random.beta(key, prior_alpha, prior_beta, (num_arms,), jnp.float32)
    return ArmWorld(click_prob, jnp.asarray(arrival_round), jnp.asarray(arrivals))


def active_mask(world: ArmWorld, t: jax.Array | int) -> jax.Array:
    """Arms live in round ``t``: ``arrival_round_i <= t``."""
    return world.arrival_round <= t


def arm_age(world: ArmWorld, t: jax.Array | int) -> jax.Array:
    """Rounds since each arm arrived, ``t - arrival_round_i`` (negative: not yet arrived)."""
    return t - world.arrival_round


def pull(key: jax.Array, world: ArmWorld, arms: jax.Array) -> jax.Array:
    """One impression of each shown arm: ``float32`` rewards ``1{u(key, i) < p_i}``.

    ``u(key, i)`` is a uniform on (0, 1) that depends only on ``key`` and the arm id ``i``, so
    the same key gives the same outcome for the same arm whatever else is shown. Slots holding
    ``-1`` (empty) pay 0. Raises ``InvalidArgumentError`` naming ``key`` unless it is one PRNG
    key.
    """
    check_key("key", key)
    words = jax.random.bits(key, (2,), jnp.uint32)
    safe = jnp.maximum(arms, 0)
    u = uniform_open(random_bits(words, 0, safe.astype(jnp.uint32)))
    return jnp.where((arms >= 0) & (u < world.click_prob[safe]), 1.0, 0.0).astype(jnp.float32)
