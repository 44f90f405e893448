"""How long fitting a group meta-prior takes: closed-form moments vs type-II ML by SVI.

:func:`meta_prior_fit_timings` simulates ``num_weights`` estimates in ``num_groups`` groups
(``w^_i ~ N(mu_k, tau_k^2 + s_i^2)``) and times, each as one jitted function compiled apart
from the timed calls (:func:`prime_science.bench.timing.compile_jitted`,
:func:`prime_science.bench.timing.time_calls`, median of ``repeats`` calls after a warm-up):

* ``moments``: :func:`prime_science.priors.moments.method_of_moments` (two segment-sum passes);
* ``svi``: :func:`prime_science.priors.hierarchical.fit_gaussian_type2` with ``svi_steps``
  Adam steps over the full data each step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.bench.timing import compile_jitted, time_calls
from prime_science.core.machine import device_info
from prime_science.priors.moments import method_of_moments

__all__ = ["meta_prior_fit_timings"]


def meta_prior_fit_timings(
    num_weights: int = 1_000_000,
    num_groups: int = 100,
    *,
    svi_steps: int = 1_000,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Compile and steady-state times (seconds) of the two meta-prior fits.

    Returns ``{"num_weights", "num_groups", "svi_steps", "device", "moments": {...},
    "svi": {...}}``; each fit's record has ``compile_seconds``, ``median_seconds``,
    ``min_seconds``, ``repeats`` and ``max_abs_scale_gap`` (the largest ``|tau^_k|`` difference
    between the two fits, a sanity check that both solved the same problem).
    """
    from prime_science.priors.hierarchical import fit_gaussian_type2  # NumPyro only here

    rng = np.random.default_rng(seed)
    groups = rng.integers(0, num_groups, num_weights).astype(np.int32)
    mean, scale = rng.normal(0.0, 1.0, num_groups), rng.uniform(0.05, 0.5, num_groups)
    noise = rng.uniform(0.01, 0.1, num_weights)
    estimates = mean[groups] + rng.normal(size=num_weights) * np.sqrt(scale[groups] ** 2 + noise)
    data = (
        jnp.asarray(estimates, jnp.float32),
        jnp.asarray(noise, jnp.float32),
        jnp.asarray(groups),
    )
    key = jax.random.key(seed)

    def moments_fit(estimates, noise, groups):
        return method_of_moments(estimates, noise, groups, num_groups)

    def svi_fit(key, estimates, noise, groups):
        return fit_gaussian_type2(key, estimates, noise, groups, num_groups, num_steps=svi_steps)

    out: dict[str, Any] = {
        "num_weights": num_weights,
        "num_groups": num_groups,
        "svi_steps": svi_steps,
        "device": device_info(),
    }
    fits = {}
    for name, fn, args in (("moments", moments_fit, data), ("svi", svi_fit, (key, *data))):
        compiled, compile_seconds = compile_jitted(fn, *args)
        timing = time_calls(lambda compiled=compiled, args=args: compiled(*args), repeats)
        fits[name] = compiled(*args)
        out[name] = {
            "compile_seconds": compile_seconds,
            "median_seconds": timing.median_seconds,
            "min_seconds": timing.min_seconds,
            "repeats": timing.repeats,
        }
    svi_scale = np.sqrt(np.asarray(fits["svi"][0].variance))
    moments_scale = np.sqrt(np.asarray(fits["moments"].variance))
    gap = float(np.max(np.abs(svi_scale - moments_scale)))
    for name in ("moments", "svi"):
        out[name]["max_abs_scale_gap"] = gap
    return out
