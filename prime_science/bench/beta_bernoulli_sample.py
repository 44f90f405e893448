"""The ``beta_bernoulli_sample`` suite: Thompson sampling over ``N`` Beta–Bernoulli arms.

One request draws once from every arm's Beta posterior and returns the best arm (``k = 1``);
a call serves ``B`` independent requests. The posterior is what a production sampler holds
(:func:`realistic_posterior`). Kernels, per ``(N, B)``:

* ``ours``: ``beta_bernoulli(...).sample`` (``B = 1``) or ``.sample_batch`` (``B > 1``), jitted.
* ``ours_approximate``: the same with ``approximate=True``, when the factory accepts it.
* ``normal_argmax``: ``argmax(jax.random.normal(key, (N,)))``, jitted; for ``B > 1``
  ``lax.map`` over ``B`` keys in vmapped chunks of at most ``2**24`` draws. One normal per arm
  is less than any exact Beta sampler draws (at least two gamma variates, i.e. two normals and
  two uniforms with Marsaglia–Tsang): the floor of an exact sampler on JAX's default generator
  (a kernel with a cheaper bit generator can come close to it).
* ``jax_beta``: ``argmax(jax.random.beta(key, alpha, beta))``, jitted; ``N <= 1e6``, ``B = 1``.
* ``numpy``: ``argmax(np.random.Generator.beta(alpha, beta))``, ``B`` draws in a Python loop.

Timing, budgets and files: :mod:`prime_science.bench.driver`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.bench.driver import Suite, SuiteConfig
from prime_science.core.errors import fail

__all__ = [
    "ACCELERATOR_SIZES",
    "CPU_SIZES",
    "NAME",
    "beta_bernoulli_suite",
    "realistic_posterior",
]

NAME = "beta_bernoulli_sample"
CPU_SIZES = (100_000, 1_000_000, 10_000_000)
ACCELERATOR_SIZES = (*CPU_SIZES, 100_000_000)
JAX_BETA_MAX_ARMS = 1_000_000
NORMAL_CHUNK_DRAWS = 2**24
STATE_BYTES_PER_ARM = 9
POSTERIOR_HOST_BYTES_PER_ARM = 40
JAX_KERNELS = ("normal_argmax", "ours", "ours_approximate", "jax_beta")


def realistic_posterior(num_arms: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A Beta–Bernoulli posterior as a production Thompson sampler holds it.

    Each arm ``i`` has been shown ``n_i = floor(LogNormal(mean=3, sigma=2))`` times (median 20,
    mean about 150, a long tail of arms with hundreds of thousands of impressions and about 7%
    never shown) and has a click rate ``p_i ~ Beta(1, 30)`` (mean 1/31, about 3%); its clicks
    are ``c_i ~ Binomial(n_i, p_i)``. Under a uniform ``Beta(1, 1)`` prior the posterior is
    ``alpha_i = 1 + c_i`` and ``beta_i = 1 + n_i - c_i``. Most arms therefore sit in the
    skewed regime ``alpha`` small, ``beta`` tens to thousands, which is where Beta samplers
    differ in speed and accuracy.

    Args:
      num_arms: the number of arms ``N`` (a positive integer).
      seed: seed of the numpy generator; the same seed gives the same posterior.

    Returns:
      ``(alpha, beta)``, two float32 numpy arrays of shape ``(num_arms,)``, both ``>= 1``.
    """
    if isinstance(num_arms, bool) or not isinstance(num_arms, int | np.integer) or num_arms < 1:
        fail("num_arms", "a positive integer", repr(num_arms))
    rng = np.random.default_rng(seed)
    impressions = np.floor(rng.lognormal(mean=3.0, sigma=2.0, size=num_arms)).astype(np.int64)
    click_rates = rng.beta(1.0, 30.0, size=num_arms)
    clicks = rng.binomial(impressions, click_rates)
    alpha = (1 + clicks).astype(np.float32)
    beta = (1 + impressions - clicks).astype(np.float32)
    return alpha, beta


def _approximate_policy(factory: Callable[..., Any]) -> Any | None:
    try:
        return factory(prior_alpha=1.0, prior_beta=1.0, approximate=True)
    except TypeError:
        return None


def _plan(config: SuiteConfig, with_approximate: bool) -> list[tuple[str, int, int]]:
    kernels = [name for name in JAX_KERNELS if with_approximate or name != "ours_approximate"]
    plan = [
        (kernel, num_arms, batch)
        for num_arms in config.sizes
        for batch in config.batches
        for kernel in kernels
        if kernel != "jax_beta" or (num_arms <= JAX_BETA_MAX_ARMS and batch == 1)
    ]
    plan += [("numpy", num_arms, batch) for num_arms in config.sizes for batch in config.batches]
    return plan


def _normal_argmax_fn(num_arms: int, batch: int) -> Callable[[Any], Any]:
    def one(key):
        return jnp.argmax(jax.random.normal(key, (num_arms,)))

    if batch == 1:
        return one
    chunk = max(1, min(batch, NORMAL_CHUNK_DRAWS // num_arms))
    return lambda key: jax.lax.map(one, jax.random.split(key, batch), batch_size=chunk)


def _jax_callable(kernel: str, batch: int, policies: dict[str, Any], state: Any) -> Any:
    """``(fn, args)``: the jitted function of ``(key, *args)`` a JAX row times."""
    if kernel == "normal_argmax":
        return _normal_argmax_fn(state.alpha.shape[0], batch), ()
    if kernel == "jax_beta":
        return (lambda key, a, b: jnp.argmax(jax.random.beta(key, a, b))), (state.alpha, state.beta)
    policy = policies[kernel]
    if batch == 1:
        return (lambda key, s: policy.sample(key, s, 1)), (state,)
    return (lambda key, s: policy.sample_batch(key, s, 1, batch)), (state,)


def _posterior_info(num_arms: int, seed: int) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    start = time.perf_counter()
    alpha, beta = realistic_posterior(num_arms, seed)
    impressions = alpha + beta - 2
    info = {
        "generate_seconds": time.perf_counter() - start,
        "median_impressions": float(np.median(impressions)),
        "mean_impressions": float(impressions.mean(dtype=np.float64)),
        "pooled_ctr": float((alpha - 1).sum(dtype=np.float64) / impressions.sum(dtype=np.float64)),
        "fraction_never_shown": float(np.mean(impressions == 0)),
    }
    return (alpha, beta), info


def beta_bernoulli_suite(factory: Callable[..., Any] | None = None) -> Suite:
    """The ``beta_bernoulli_sample`` suite (module docstring).

    Args:
      factory: the policy factory; ``prime_science.bandits.beta_bernoulli.beta_bernoulli``
        unless given. It is called as ``factory(prior_alpha=1.0, prior_beta=1.0)`` and, for
        the ``ours_approximate`` rows, with ``approximate=True`` too (that policy samples from
        the state of the exact one).
    """
    if factory is None:
        from prime_science.bandits.beta_bernoulli import beta_bernoulli as factory
    policies = {"ours": factory(prior_alpha=1.0, prior_beta=1.0)}
    approximate = _approximate_policy(factory)
    if approximate is not None:
        policies["ours_approximate"] = approximate

    def numpy_request(inputs, rng):
        alpha, beta = inputs
        return lambda: int(np.argmax(rng.beta(alpha, beta)))

    return Suite(
        name=NAME,
        unit="arms",
        floor="normal_argmax",
        plan=lambda config: _plan(config, with_approximate=approximate is not None),
        make_inputs=_posterior_info,
        to_device=lambda posterior: _device_state(policies["ours"], posterior),
        to_numpy=lambda posterior: tuple(x.astype(np.float64) for x in posterior),
        jax_callable=lambda kernel, batch, state: _jax_callable(kernel, batch, policies, state),
        numpy_request=numpy_request,
        numpy_memory=lambda num_arms: (24 * num_arms, "formula: float64 alpha, beta, draw"),
        bytes_per_item=STATE_BYTES_PER_ARM,
        host_bytes_per_item=POSTERIOR_HOST_BYTES_PER_ARM,
        methods={
            "k": 1,
            "posterior": "realistic_posterior(N, seed): n ~ floor(LogNormal(3, 2)), "
            "p ~ Beta(1, 30), clicks ~ Binomial(n, p), alpha = 1 + clicks, beta = 1 + n - clicks",
            "speedup_vs_numpy": "numpy median / row median, same N and B",
            "time_over_normal_argmax": "row median / normal_argmax median, same N and B",
            "state_bytes_per_arm": STATE_BYTES_PER_ARM,
        },
    )


def _device_state(policy: Any, posterior: tuple[np.ndarray, np.ndarray]) -> Any:
    alpha, beta = posterior
    state = policy.init(alpha.shape[0])
    return jax.block_until_ready(state._replace(alpha=jnp.asarray(alpha), beta=jnp.asarray(beta)))
