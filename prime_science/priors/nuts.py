"""One NUTS chain on a potential function, as a pure jittable function (NumPyro's kernel).

The library's Bayesian fits of small parametric models (the retention models of
:mod:`prime_science.membership.retention`) need posterior draws inside a jitted, vmapped
experiment. NumPyro's ``MCMC`` driver runs its own Python loop; here its NUTS kernel
(Hoffman & Gelman 2014; step size by dual averaging and a diagonal mass matrix adapted during
warm-up) is driven by ``lax.scan`` instead, so a chain is one traced computation of
``(key, potential, start)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from numpyro.infer.hmc import hmc

from prime_science.core import errors
from prime_science.core.types import PRNGKey

__all__ = ["NutsChain", "nuts_chain"]


class NutsChain(NamedTuple):
    """Draws of one chain after warm-up.

    Attributes:
      draws: ``float[num_samples, d]`` positions.
      accept_prob: mean acceptance probability of the kept transitions.
      num_divergent: ``int32`` divergent kept transitions.
    """

    draws: jax.Array
    accept_prob: jax.Array
    num_divergent: jax.Array


def nuts_chain(
    key: PRNGKey,
    potential_fn: Callable[[jax.Array], jax.Array],
    initial: jax.Array,
    *,
    num_warmup: int,
    num_samples: int,
) -> NutsChain:
    """``num_samples`` NUTS draws from ``p(z) ∝ exp(-potential_fn(z))`` after ``num_warmup``
    adaptation steps, started at ``initial`` (``float[d]``)."""
    errors.check_key("key", key)
    if int(num_warmup) < 0:
        errors.fail("num_warmup", "an integer >= 0", num_warmup)
    if int(num_samples) < 1:
        errors.fail("num_samples", "an integer >= 1", num_samples)
    init_kernel, sample_kernel = hmc(potential_fn=potential_fn, algo="NUTS")
    state = init_kernel(initial, num_warmup, rng_key=key)

    def step(state, _):
        state = sample_kernel(state)
        return state, (state.z, state.accept_prob, state.diverging)

    _, (draws, accept_prob, diverging) = jax.lax.scan(
        step, state, None, length=num_warmup + num_samples
    )
    return NutsChain(
        draws=draws[num_warmup:],
        accept_prob=jnp.mean(accept_prob[num_warmup:]),
        num_divergent=jnp.sum(diverging[num_warmup:]).astype(jnp.int32),
    )
