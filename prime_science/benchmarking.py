"""Throughput of Thompson-sampling kernels, with their baselines timed in the same run.

Three suites share one driver (:class:`Suite` names a suite's kernels and inputs;
:func:`run_suite` compiles, times, budgets, computes the ratios and writes ``<suite>.json`` and
``.md``): the two below and ``hill_climb`` (layout search over ``10^N`` layouts for ``B``
requests against numpy; :mod:`prime_science.layouts.benchmark`).

``beta_bernoulli_sample``: draw once from every arm's Beta posterior and return
the best arm (``k = 1``), for ``N`` arms and ``B`` independent requests. Kernels, per
``(N, B)``:

* ``ours``: ``beta_bernoulli(...).sample`` (``B = 1``) or ``.sample_batch`` (``B > 1``), jitted.
* ``ours_approximate``: the same with ``approximate=True``, when the factory accepts it.
* ``normal_argmax``: ``argmax(jax.random.normal(key, (N,)))``, jitted; for ``B > 1``
  ``lax.map`` over ``B`` keys in vmapped chunks of at most ``2**24`` draws. One normal per arm
  is less than any exact Beta sampler draws (at least two gamma variates, i.e. two normals and
  two uniforms with Marsaglia–Tsang): the floor of an exact sampler on JAX's default generator
  (a kernel with a cheaper bit generator can come close to it).
* ``jax_beta``: ``argmax(jax.random.beta(key, alpha, beta))``, jitted; ``N <= 1e6``, ``B = 1``.
* ``numpy``: ``argmax(np.random.Generator.beta(alpha, beta))``, ``B`` draws in a Python loop.

``probit_scoring``: Thompson scoring of ``N`` candidates, each ``K = 8`` active feature ids
out of ``M = 5000``, and the top ``k = 10``, for ``B`` independent requests
(:func:`probit_workload`: random means, variances in ``[0.01, 1]``). Kernels, per ``(N, B)``:

* ``ours``: ``probit_adf(M, exploration="thompson").sample`` (``B = 1``) or ``.sample_batch``
  (``B > 1``), jitted.
* ``ours_greedy``: the same with ``exploration="greedy"`` (posterior-mean scores, computed once
  per call, then a top-``k`` with random tie-breaking per request): context, not a baseline.
* ``numpy``: per request ``w = mu + sigma * Generator.standard_normal(M)``, then
  :func:`numpy_top_k` (``w[ids].sum(axis=1)``, ``np.argpartition``, a sort of the ``k``);
  ``B`` requests in a Python loop.

Methods (also written into every results file):

* **compile**: wall time of ``jax.jit(fn).lower(*args).compile()`` (trace, lower and XLA
  compile); the first execution is not part of it.
* **steady state**: one warm-up call (timed, excluded), then ``repeats`` calls of the compiled
  executable, each timed with ``time.perf_counter`` around the call and
  ``jax.block_until_ready``; each call gets a fresh key. Rows report the median, the minimum
  and the inter-quartile range. A call is a whole request, so small-``N`` rows include dispatch.
* **budgets**: a row may spend about ``max_seconds``; the number of repeats shrinks to fit (never
  below one). A JAX row whose predicted call (``B`` times the ``B = 1`` median of the same
  kernel) exceeds the budget is skipped. A numpy row whose ``B`` draws would exceed it is timed
  on ``min(B, 8)`` draws (fewer if those do not fit either) and scaled to ``B``, marked
  ``extrapolated``. Once ``total_seconds`` have passed, the remaining rows are skipped.
* **memory**: before a JAX row runs, XLA's memory analysis of the compiled executable (new
  buffers: outputs + temporaries) is compared with the free memory of the device (GPU: the
  allocator's limit minus bytes in use; CPU: ``MemAvailable``); rows that would not fit in 90%
  of it are skipped with the numbers. Without an analysis the estimate is ``B * N`` float32.

Rows are ordered JAX kernels first (``N``, then ``B`` ascending), numpy last, so that a spent
budget costs baselines rather than the kernel. ``main`` is the CLI (``prime-science bench``,
``benchmarks/run.py``); it writes ``<suite>.json`` and ``.md`` after every row.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from prime_science.core.errors import fail
from prime_science.core.machine import device_info

__all__ = [
    "BENCHMARK_NAME",
    "PROBIT_BENCHMARK_NAME",
    "SUITES",
    "BenchmarkRow",
    "Suite",
    "SuiteConfig",
    "Timing",
    "compile_jitted",
    "default_sizes",
    "beta_bernoulli_suite",
    "main",
    "numpy_top_k",
    "probit_scoring_suite",
    "probit_workload",
    "realistic_posterior",
    "run_suite",
    "time_calls",
    "to_markdown",
    "write_results",
]

BENCHMARK_NAME = "beta_bernoulli_sample"
CPU_SIZES = (100_000, 1_000_000, 10_000_000)
ACCELERATOR_SIZES = (*CPU_SIZES, 100_000_000)
DEFAULT_BATCHES = (1, 256)
DEFAULT_REPEATS = 7
DEFAULT_MAX_SECONDS = 60.0
QUICK_SIZES = (100_000, 1_000_000)
QUICK_BATCHES = (1, 16)
QUICK_REPEATS = 3
JAX_BETA_MAX_ARMS = 1_000_000
NUMPY_EXTRAPOLATE_FROM = 8
NORMAL_CHUNK_DRAWS = 2**24
MEMORY_HEADROOM = 0.9
STATE_BYTES_PER_ARM = 9
POSTERIOR_HOST_BYTES_PER_ARM = 40
JAX_KERNELS = ("normal_argmax", "ours", "ours_approximate", "jax_beta")
GIB = 2.0**30
PROBIT_BENCHMARK_NAME = "probit_scoring"
PROBIT_CPU_SIZES = (100_000, 1_000_000)
PROBIT_ACCELERATOR_SIZES = (*PROBIT_CPU_SIZES, 10_000_000)
PROBIT_NUM_FEATURES = 5_000
PROBIT_NUM_ACTIVE = 8
PROBIT_TOP_K = 10
PROBIT_HOST_BYTES_PER_CANDIDATE = 8 * PROBIT_NUM_ACTIVE  # int32 ids, numpy's float32 gather
HILL_CLIMB_BENCHMARK_NAME = "hill_climb"

DEFAULT_SIZES = {
    BENCHMARK_NAME: {False: CPU_SIZES, True: ACCELERATOR_SIZES},
    PROBIT_BENCHMARK_NAME: {False: PROBIT_CPU_SIZES, True: PROBIT_ACCELERATOR_SIZES},
    HILL_CLIMB_BENCHMARK_NAME: {False: (10,), True: (10,)},  # N = components, 10 variants each
}
SUITE_BATCHES = {HILL_CLIMB_BENCHMARK_NAME: (1, 1024)}
"""Default request counts ``B`` of a suite, where they differ from :data:`DEFAULT_BATCHES`."""

COMPILE_METHOD = (
    "wall time of jax.jit(fn).lower(*args).compile() (trace + lower + XLA compile); "
    "excludes the first execution"
)
TIMING_METHOD = (
    "one warm-up call (excluded), then `repeats` calls of the compiled executable, each timed "
    "with time.perf_counter around the call and jax.block_until_ready, a fresh key per call; "
    "median, min and inter-quartile range over the calls"
)


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


class Timing(NamedTuple):
    """Steady-state timing of one callable, in seconds.

    Attributes:
      median_seconds: median over the timed calls.
      min_seconds: fastest timed call.
      iqr_seconds: 75th minus 25th percentile of the timed calls.
      repeats: number of timed calls.
      first_call_seconds: the warm-up call (excluded), or ``None`` without one.
    """

    median_seconds: float
    min_seconds: float
    iqr_seconds: float
    repeats: int
    first_call_seconds: float | None


def time_calls(
    fn: Callable[[], Any],
    repeats: int,
    *,
    budget_seconds: float = math.inf,
    warmup: bool = True,
    estimate_seconds: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Time ``repeats`` calls of ``fn()``, each until ``jax.block_until_ready`` of its result.

    With ``warmup`` one call runs first, timed but excluded. Its time (or ``estimate_seconds``)
    predicts a call; the number of timed calls shrinks so that they fit in what is left of
    ``budget_seconds``, but never below one.

    Args:
      fn: the call to time; anything it returns is blocked on.
      repeats: the most timed calls (at least one).
      budget_seconds: wall time available for warm-up plus timed calls.
      warmup: run one excluded call first.
      estimate_seconds: predicted seconds per call when there is no warm-up.
      clock: the clock, ``time.perf_counter`` unless a test fakes it.

    Returns:
      A :class:`Timing`.
    """
    if repeats < 1:
        fail("repeats", "at least 1", repeats)
    start = clock()
    first_call_seconds = None
    if warmup:
        jax.block_until_ready(fn())
        first_call_seconds = clock() - start
        estimate_seconds = first_call_seconds
    if estimate_seconds and math.isfinite(budget_seconds):
        left = budget_seconds - (clock() - start)
        repeats = max(1, min(repeats, int(left // estimate_seconds)))
    times = []
    for _ in range(repeats):
        begin = clock()
        jax.block_until_ready(fn())
        times.append(clock() - begin)
    q25, median, q75 = np.percentile(times, [25, 50, 75])
    return Timing(float(median), float(min(times)), float(q75 - q25), repeats, first_call_seconds)


def compile_jitted(
    fn: Callable[..., Any], *args: Any, clock: Callable[[], float] = time.perf_counter
) -> tuple[Any, float]:
    """``jax.jit(fn).lower(*args).compile()`` and the wall seconds it took.

    Returns:
      ``(compiled, compile_seconds)``; call ``compiled(*args)`` with arguments of the same
      shapes, dtypes and tree structure.
    """
    start = clock()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, clock() - start


class SuiteConfig(NamedTuple):
    """What to run.

    Attributes:
      sizes: numbers of arms ``N``.
      batches: numbers of independent requests ``B`` per call.
      repeats: the most timed calls per row.
      max_seconds: wall-time budget of one row (repeats shrink to fit; see the module doc).
      total_seconds: budget of the whole suite; rows after it are skipped. ``None``: no limit.
      seed: seeds the posteriors, the JAX keys and the numpy generators.
    """

    sizes: tuple[int, ...] = CPU_SIZES
    batches: tuple[int, ...] = DEFAULT_BATCHES
    repeats: int = DEFAULT_REPEATS
    max_seconds: float = DEFAULT_MAX_SECONDS
    total_seconds: float | None = None
    seed: int = 0


class BenchmarkRow(NamedTuple):
    """One (kernel, N, B) measurement; times in seconds, ``None`` where not measured.

    ``status`` is ``"ok"``, ``"extrapolated"`` (numpy timed on ``extrapolated_from_batch``
    draws per repeat and scaled to ``B``) or ``"skipped"`` (``note`` says why).
    ``speedup_vs_numpy`` is the numpy median over this row's median; ``time_over_normal_argmax``
    is this row's median over the ``normal_argmax`` median (same ``N`` and ``B``).
    ``memory_bytes`` is the footprint of a call (arguments + outputs + temporaries) and
    ``memory_source`` where that number comes from.
    """

    kernel: str
    num_arms: int
    batch: int
    status: str
    median_seconds: float | None = None
    min_seconds: float | None = None
    iqr_seconds: float | None = None
    repeats: int = 0
    compile_seconds: float | None = None
    first_call_seconds: float | None = None
    arms_per_second: float | None = None
    memory_bytes: int | None = None
    memory_source: str | None = None
    extrapolated_from_batch: int | None = None
    speedup_vs_numpy: float | None = None
    time_over_normal_argmax: float | None = None
    note: str = ""


def default_sizes(accelerator: bool, suite: str = BENCHMARK_NAME) -> tuple[int, ...]:
    """Default ``N`` of a suite: ``1e5, 1e6, 1e7`` arms (``1e8`` too on an accelerator) for
    ``beta_bernoulli_sample``; ``1e5, 1e6`` candidates (``1e7`` too) for ``probit_scoring``."""
    return DEFAULT_SIZES[suite][accelerator]


def _host_available_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _device_available_bytes(device: Any) -> int | None:
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return _host_available_bytes()


def _memory_estimate(
    compiled: Any, num_arms: int, batch: int, bytes_per_item: int
) -> tuple[int, int, str]:
    """``(footprint, new_bytes, source)`` of one call of ``compiled``."""
    try:
        stats = compiled.memory_analysis()
    except (AttributeError, NotImplementedError, jax.errors.JaxRuntimeError):
        stats = None
    if stats is None:
        new = 4 * num_arms * batch
        return bytes_per_item * num_arms + new, new, "formula: B*N float32 (worst case)"
    new = stats.output_size_in_bytes + stats.temp_size_in_bytes - stats.alias_size_in_bytes
    return stats.argument_size_in_bytes + new, new, "xla memory_analysis"


class Suite(NamedTuple):
    """One benchmark: its kernels and inputs; :func:`run_suite` does the timing and the rows.

    Per size ``N`` the driver makes the host inputs once (``make_inputs``), converts them for
    the JAX rows (``to_device``) or for the numpy rows (``to_numpy``), never holding both, and
    times ``jax_callable`` (JAX rows) or ``numpy_request`` (the ``numpy`` rows, host-side).

    Attributes:
      name: the benchmark's name and the stem of its result files.
      unit: what ``N`` counts (``"arms"``, ``"candidates"``): the rate column is ``unit/s``.
      floor: the kernel the ``time_over_normal_argmax`` column divides by, or ``None``.
      plan: ``config -> [(kernel, N, B), ...]`` in run order, ``numpy`` rows last.
      make_inputs: ``(N, seed) -> (host_inputs, info)``; ``info`` (JSON-ready) is recorded
        under ``posteriors[str(N)]``.
      to_device: ``host_inputs -> device_inputs`` (on the default device, ready).
      to_numpy: ``host_inputs -> numpy_inputs``.
      jax_callable: ``(kernel, B, device_inputs) -> (fn, args)``: the JAX row times
        ``jit(fn)(key, *args)``.
      numpy_request: ``(numpy_inputs, rng) -> request``; ``request()`` serves one request.
      numpy_memory: ``N -> bytes`` of a numpy request (inputs + temporaries), with its formula.
      bytes_per_item: device bytes of the inputs per item, for the fallback memory estimate.
      host_bytes_per_item: host bytes ``make_inputs`` needs per item, checked before it runs.
      methods: suite-specific entries of the results' ``methods``.
    """

    name: str
    unit: str
    floor: str | None
    plan: Callable[[SuiteConfig], list[tuple[str, int, int]]]
    make_inputs: Callable[[int, int], tuple[Any, dict[str, Any]]]
    to_device: Callable[[Any], Any]
    to_numpy: Callable[[Any], Any]
    jax_callable: Callable[[str, int, Any], tuple[Callable[..., Any], tuple[Any, ...]]]
    numpy_request: Callable[[Any, np.random.Generator], Callable[[], Any]]
    numpy_memory: Callable[[int], tuple[int, str]]
    bytes_per_item: int
    host_bytes_per_item: int
    methods: dict[str, Any]


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
        name=BENCHMARK_NAME,
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


def probit_workload(
    num_candidates: int,
    seed: int,
    num_features: int = PROBIT_NUM_FEATURES,
    num_active: int = PROBIT_NUM_ACTIVE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A probit posterior and a candidate set to score against it.

    Means ``mu_i ~ N(0, 1)``, variances ``sigma_i^2 = 10^U``, ``U ~ Uniform(-2, 0)`` (log-uniform
    on ``[0.01, 1]``), and ``candidate_ids[c, j]`` uniform on ``[0, num_features)`` (no padding;
    an id may repeat within a row, which the scorer counts twice, as the policy does).

    Returns:
      ``(mean, variance, candidate_ids)``: float32 ``[num_features]`` twice and int32
      ``[num_candidates, num_active]``.
    """
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, int | np.integer):
        fail("num_candidates", "a positive integer", repr(num_candidates))
    if num_candidates < 1:
        fail("num_candidates", "a positive integer", repr(num_candidates))
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal(num_features, dtype=np.float32)
    variance = (10.0 ** rng.uniform(-2.0, 0.0, num_features)).astype(np.float32)
    ids = rng.integers(0, num_features, (num_candidates, num_active), dtype=np.int32)
    return mean, variance, ids


def numpy_top_k(
    weights: np.ndarray, candidate_ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best rows of ``candidate_ids`` under ``scores = weights[ids].sum(axis=1)``.

    ``np.argpartition`` finds the ``k`` best in linear time and only those ``k`` are sorted
    (best first; equal scores in row order, as ``jax.lax.top_k``).

    Returns:
      ``(rows, scores)``: int ``[k]`` row indices and their scores.
    """
    scores = weights[candidate_ids].sum(axis=1)
    best = np.argpartition(scores, scores.shape[0] - k)[-k:]
    best = best[np.lexsort((best, -scores[best]))]
    return best, scores[best]


def _probit_inputs(num_candidates: int, seed: int) -> tuple[tuple[np.ndarray, ...], dict]:
    start = time.perf_counter()
    mean, variance, ids = probit_workload(num_candidates, seed)
    info = {
        "generate_seconds": time.perf_counter() - start,
        "num_features": PROBIT_NUM_FEATURES,
        "num_active": PROBIT_NUM_ACTIVE,
        "mean_of_means": float(mean.mean(dtype=np.float64)),
        "median_variance": float(np.median(variance)),
    }
    return (mean, variance, ids), info


def probit_scoring_suite(factory: Callable[..., Any] | None = None) -> Suite:
    """The ``probit_scoring`` suite: Thompson scoring + top-``k`` of ``N`` candidates.

    Args:
      factory: ``prime_science.bandits.probit.probit_adf`` unless given; called as
        ``factory(num_features=M, exploration=...)`` with ``"thompson"`` (``ours``) and
        ``"greedy"`` (``ours_greedy``).
    """
    if factory is None:
        from prime_science.bandits.probit import probit_adf as factory
    policies = {
        kernel: factory(num_features=PROBIT_NUM_FEATURES, exploration=exploration)
        for kernel, exploration in (("ours", "thompson"), ("ours_greedy", "greedy"))
    }
    k = PROBIT_TOP_K

    def plan(config):
        rows = [(kernel, n, b) for n in config.sizes for b in config.batches for kernel in policies]
        return rows + [("numpy", n, b) for n in config.sizes for b in config.batches]

    def to_device(inputs):
        mean, variance, ids = inputs
        state = policies["ours"].init()
        state = state._replace(mean=jnp.asarray(mean), variance=jnp.asarray(variance))
        return jax.block_until_ready((state, jnp.asarray(ids)))

    def jax_callable(kernel, batch, device_inputs):
        policy = policies[kernel]
        if batch == 1:
            return (lambda key, s, ids: policy.sample(key, s, ids, k)), device_inputs
        return (lambda key, s, ids: policy.sample_batch(key, s, ids, k, batch)), device_inputs

    def numpy_request(inputs, rng):
        mean, std, ids = inputs

        def request():
            weights = mean + std * rng.standard_normal(mean.shape[0], dtype=np.float32)
            return numpy_top_k(weights, ids, k)

        return request

    return Suite(
        name=PROBIT_BENCHMARK_NAME,
        unit="candidates",
        floor=None,
        plan=plan,
        make_inputs=_probit_inputs,
        to_device=to_device,
        to_numpy=lambda inputs: (inputs[0], np.sqrt(inputs[1]), inputs[2]),
        jax_callable=jax_callable,
        numpy_request=numpy_request,
        numpy_memory=lambda n: (
            (4 + 4 + 1) * PROBIT_NUM_ACTIVE * n + 8 * PROBIT_NUM_FEATURES,
            "formula: int32 ids, float32 gathered [N, K] and scores [N], int64 partition",
        ),
        bytes_per_item=4 * PROBIT_NUM_ACTIVE,
        host_bytes_per_item=PROBIT_HOST_BYTES_PER_CANDIDATE,
        methods={
            "k": k,
            "num_features": PROBIT_NUM_FEATURES,
            "num_active": PROBIT_NUM_ACTIVE,
            "rate_unit": "candidates",
            "workload": "probit_workload(N, seed): mu ~ N(0, 1), sigma^2 log-uniform on "
            "[0.01, 1], candidate ids uniform on [0, M), K per row",
            "ours": "probit_adf(M, exploration='thompson').sample / .sample_batch(key, state, "
            "ids, k, B), jitted",
            "ours_greedy": "the same with exploration='greedy' (posterior-mean scores, once "
            "per call; random tie-breaking per request)",
            "numpy": "per request: w = mu + sigma * Generator.standard_normal(M) (float32), "
            "scores = w[ids].sum(axis=1), top k by np.argpartition + sort of the k; "
            "B requests in a Python loop",
            "speedup_vs_numpy": "numpy median / row median, same N and B",
        },
    )


def hill_climb_suite(factory: Callable[..., Any] | None = None) -> Suite:
    """Layout hill climbing for ``B`` requests in a ``10^N``-layout space
    (:func:`prime_science.layouts.benchmark.hill_climb_suite`; imported on use, since that
    module builds on this one)."""
    from prime_science.layouts.benchmark import hill_climb_suite as build

    return build(factory)


SUITES: dict[str, Callable[..., Suite]] = {
    BENCHMARK_NAME: beta_bernoulli_suite,
    PROBIT_BENCHMARK_NAME: probit_scoring_suite,
    HILL_CLIMB_BENCHMARK_NAME: hill_climb_suite,
}
"""Suite builders by name; each takes an optional policy ``factory``."""


def _row_from_timing(
    kernel: str, num_arms: int, batch: int, timing: Timing, scale: float = 1.0, **fields: Any
) -> BenchmarkRow:
    median = timing.median_seconds * scale
    return BenchmarkRow(
        kernel=kernel,
        num_arms=num_arms,
        batch=batch,
        status=fields.pop("status", "ok"),
        median_seconds=median,
        min_seconds=timing.min_seconds * scale,
        iqr_seconds=timing.iqr_seconds * scale,
        repeats=timing.repeats,
        first_call_seconds=timing.first_call_seconds,
        arms_per_second=num_arms * batch / median if median > 0 else None,
        **fields,
    )


def _jax_row(
    kernel: str,
    num_arms: int,
    batch: int,
    *,
    key: Any,
    fn_args: tuple[Any, Any],
    repeats: int,
    budget: float,
    predicted: float | None,
    bytes_per_item: int,
) -> BenchmarkRow:
    if predicted is not None and predicted > budget:
        note = (
            f"predicted {_format_seconds(predicted)} per call (B x the B=1 median) exceeds "
            f"the row budget of {budget:.3g} s (--max-seconds, or what --total-seconds left)"
        )
        return BenchmarkRow(kernel, num_arms, batch, "skipped", note=note)
    fn, args = fn_args
    keys = list(jax.random.split(key, repeats + 1))
    compiled, compile_seconds = compile_jitted(fn, keys[0], *args)
    footprint, new_bytes, source = _memory_estimate(compiled, num_arms, batch, bytes_per_item)
    available = _device_available_bytes(jax.devices()[0])

    def skipped(note: str) -> BenchmarkRow:
        return BenchmarkRow(
            kernel,
            num_arms,
            batch,
            "skipped",
            compile_seconds=compile_seconds,
            memory_bytes=footprint,
            memory_source=source,
            note=note,
        )

    if available is not None and new_bytes > MEMORY_HEADROOM * available:
        return skipped(
            f"needs {new_bytes / GIB:.1f} GiB of new device memory ({source}), "
            f"{available / GIB:.1f} GiB available"
        )
    next_key = iter(keys)
    try:
        timing = time_calls(
            lambda: compiled(next(next_key), *args),
            repeats,
            budget_seconds=budget - compile_seconds,
        )
    except jax.errors.JaxRuntimeError as error:
        if "RESOURCE_EXHAUSTED" not in str(error):
            raise
        return skipped(
            f"out of device memory at run time ({source} estimated {footprint / GIB:.1f} GiB)"
        )
    return _row_from_timing(
        kernel,
        num_arms,
        batch,
        timing,
        compile_seconds=compile_seconds,
        memory_bytes=footprint,
        memory_source=source,
    )


def _numpy_row(
    num_arms: int,
    batch: int,
    *,
    draw: Callable[[], Any],
    memory: tuple[int, str],
    repeats: int,
    budget: float,
) -> BenchmarkRow:
    """Time ``batch`` calls of ``draw`` (one request each) per repeat, or extrapolate."""
    start = time.perf_counter()
    draw()
    one_draw = time.perf_counter() - start
    left = budget - one_draw
    draws = batch
    if batch * one_draw > left:
        draws = max(1, min(batch, NUMPY_EXTRAPOLATE_FROM, int(left // one_draw)))
    timing = time_calls(
        lambda: [draw() for _ in range(draws)],
        repeats,
        budget_seconds=left,
        warmup=False,
        estimate_seconds=draws * one_draw,
    )
    timing = timing._replace(first_call_seconds=one_draw)
    memory_fields = {"memory_bytes": memory[0], "memory_source": memory[1]}
    if draws == batch:
        return _row_from_timing("numpy", num_arms, batch, timing, **memory_fields)
    note = (
        f"{draws} of {batch} draws per repeat timed, scaled by {batch / draws:g} "
        f"(B draws would take about {_format_seconds(batch * one_draw)} per repeat)"
    )
    return _row_from_timing(
        "numpy",
        num_arms,
        batch,
        timing,
        batch / draws,
        status="extrapolated",
        extrapolated_from_batch=draws,
        note=note,
        **memory_fields,
    )


def _with_ratios(rows: list[BenchmarkRow], floor: str | None) -> list[BenchmarkRow]:
    medians = {(r.kernel, r.num_arms, r.batch): r.median_seconds for r in rows}
    out = []
    for row in rows:
        numpy_median = medians.get(("numpy", row.num_arms, row.batch))
        floor_median = medians.get((floor, row.num_arms, row.batch))
        if row.median_seconds:
            row = row._replace(
                speedup_vs_numpy=numpy_median / row.median_seconds if numpy_median else None,
                time_over_normal_argmax=(
                    row.median_seconds / floor_median if floor_median else None
                ),
            )
        out.append(row)
    return out


def _results(
    suite: Suite,
    config: SuiteConfig,
    device: dict[str, Any],
    rows: list[BenchmarkRow],
    posteriors: dict,
    planned_rows: int,
) -> dict[str, Any]:
    return {
        "benchmark": suite.name,
        "device": device,
        "config": config._asdict(),
        "planned_rows": planned_rows,
        "methods": {"compile": COMPILE_METHOD, "timing": TIMING_METHOD, **suite.methods},
        "posteriors": posteriors,
        "rows": [row._asdict() for row in _with_ratios(rows, suite.floor)],
    }


def run_suite(
    config: SuiteConfig,
    *,
    suite: Suite | None = None,
    factory: Callable[..., Any] | None = None,
    progress: bool = False,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every row of ``config`` and return the results as a JSON-ready dict.

    Args:
      config: sizes, batches, repeats and budgets.
      suite: what to run; ``beta_bernoulli_suite(factory)`` unless given.
      factory: the policy factory of the default suite (see :func:`beta_bernoulli_suite`);
        ignored when ``suite`` is given.
      progress: show a tqdm bar over rows (on stderr).
      on_row: called with the results so far after every row (``main`` writes files there).

    Returns:
      ``{"benchmark", "device", "config", "planned_rows", "methods", "posteriors", "rows"}``;
      ``rows`` holds :class:`BenchmarkRow` dicts in plan order (fewer than ``planned_rows``
      only in the partial results handed to ``on_row``).
    """
    for name in ("sizes", "batches"):
        values = getattr(config, name)
        if not values or not all(isinstance(v, int) and v >= 1 for v in values):
            fail(f"config.{name}", "a non-empty tuple of positive integers", values)
    if suite is None:
        suite = beta_bernoulli_suite(factory)
    plan = suite.plan(config)
    device = device_info()
    root_key = jax.random.key(config.seed)
    suite_start = time.perf_counter()
    rows: list[BenchmarkRow] = []
    posteriors: dict[str, dict[str, Any]] = {}
    host: dict[int, Any] = {}
    arrays: dict[tuple[str, int], Any] = {}
    bar = tqdm(plan, desc=suite.name, unit="row", disable=not progress)
    for index, (kernel, num_arms, batch) in enumerate(bar):
        bar.set_postfix_str(f"{kernel} N={_format_count(num_arms)} B={batch}")
        elapsed = time.perf_counter() - suite_start
        left = math.inf if config.total_seconds is None else config.total_seconds - elapsed
        budget = min(config.max_seconds, left)
        if left <= 0:
            note = f"suite budget exhausted (--total-seconds {config.total_seconds:g})"
            rows.append(BenchmarkRow(kernel, num_arms, batch, "skipped", note=note))
        elif isinstance(inputs := _inputs(suite, num_arms, config.seed, host, posteriors), str):
            rows.append(BenchmarkRow(kernel, num_arms, batch, "skipped", note=inputs))
        elif kernel == "numpy":
            if ("numpy", num_arms) not in arrays:
                arrays = {("numpy", num_arms): suite.to_numpy(inputs)}
            rng = np.random.default_rng((config.seed, index))
            rows.append(
                _numpy_row(
                    num_arms,
                    batch,
                    draw=suite.numpy_request(arrays["numpy", num_arms], rng),
                    memory=suite.numpy_memory(num_arms),
                    repeats=config.repeats,
                    budget=budget,
                )
            )
        else:
            if ("jax", num_arms) not in arrays:
                arrays = {("jax", num_arms): suite.to_device(inputs)}
            first = next((r for r in rows if r[:3] == (kernel, num_arms, 1)), None)
            predicted = batch * first.median_seconds if first and first.median_seconds else None
            rows.append(
                _jax_row(
                    kernel,
                    num_arms,
                    batch,
                    key=jax.random.fold_in(root_key, index),
                    fn_args=suite.jax_callable(kernel, batch, arrays["jax", num_arms]),
                    repeats=config.repeats,
                    budget=budget,
                    predicted=predicted if batch > 1 else None,
                    bytes_per_item=suite.bytes_per_item,
                )
            )
        if num_arms not in {n for _, n, _ in plan[index + 1 :]}:
            host.pop(num_arms, None)
        if on_row is not None:
            on_row(_results(suite, config, device, rows, posteriors, len(plan)))
    bar.close()
    return _results(suite, config, device, rows, posteriors, len(plan))


def _inputs(
    suite: Suite, num_arms: int, seed: int, host: dict[int, Any], posteriors: dict[str, Any]
) -> Any:
    """The cached host inputs for ``num_arms``, or why they could not be made."""
    if num_arms not in host:
        needed = suite.host_bytes_per_item * num_arms
        available = _host_available_bytes()
        if available is not None and needed > MEMORY_HEADROOM * available:
            host[num_arms] = (
                f"{suite.name} inputs need about {needed / GIB:.1f} GiB of host memory, "
                f"{available / GIB:.1f} GiB available"
            )
        else:
            host[num_arms], posteriors[str(num_arms)] = suite.make_inputs(num_arms, seed)
    return host[num_arms]


def _device_state(policy: Any, posterior: tuple[np.ndarray, np.ndarray]) -> Any:
    alpha, beta = posterior
    state = policy.init(alpha.shape[0])
    return jax.block_until_ready(state._replace(alpha=jnp.asarray(alpha), beta=jnp.asarray(beta)))


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s" if seconds < 1000 else f"{seconds:.0f} s"


def _format_count(count: int) -> str:
    exponent = round(math.log10(count)) if count > 0 else 0
    return f"1e{exponent}" if count == 10**exponent else f"{count:,}"


def _format_rate(rate: float | None) -> str:
    if not rate:
        return ""
    mantissa, exponent = f"{rate:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _format_ratio(value: float | None, approximate: bool = False) -> str:
    if value is None:
        return ""
    return f"{'≈' if approximate else ''}{value:.3g}"


def to_markdown(results: dict[str, Any]) -> str:
    """The results as a Markdown page: device, methods and one table row per measurement."""
    device, rows, methods = results["device"], results["rows"], results["methods"]
    with_floor = "time_over_normal_argmax" in methods
    unit = methods.get("rate_unit", "arms")
    extrapolated = {(r["num_arms"], r["batch"]) for r in rows if r["status"] == "extrapolated"}
    ratios = "- speed-up vs numpy = numpy median / row median (≈: numpy extrapolated); " + (
        "time / normal_argmax = row median / normal_argmax median (same N, B)"
        if with_floor
        else f"same N, B; {unit}/s = N * B / median"
    )
    header = (
        f"| kernel | N | B | median | min | IQR | repeats | compile | {unit}/s "
        "| speed-up vs numpy |" + (" time / normal_argmax |" if with_floor else "") + " note |"
    )
    lines = [
        f"# {results['benchmark']}",
        "",
        f"- device: {device['device_kind']} ({device['platform']}, "
        f"{device['device_count']} device(s)); CPU: {device['cpu_model']}, "
        f"{device['usable_cores']} usable of {device['cpu_count']} cores",
        f"- jax {device['jax_version']}, numpy {device['numpy_version']}, {device['date']}; "
        f"{len(rows)} of {results['planned_rows']} planned rows done",
        f"- timing: {results['methods']['timing']}",
        f"- compile: {results['methods']['compile']}",
        ratios,
        "",
        header,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        + ("---:|" if with_floor else "")
        + "---|",
    ]
    for row in rows:
        cells = [
            row["kernel"],
            _format_count(row["num_arms"]),
            str(row["batch"]),
            _format_seconds(row["median_seconds"]),
            _format_seconds(row["min_seconds"]),
            _format_seconds(row["iqr_seconds"]),
            str(row["repeats"]) if row["repeats"] else "",
            _format_seconds(row["compile_seconds"]),
            _format_rate(row["arms_per_second"]),
            _format_ratio(row["speedup_vs_numpy"], (row["num_arms"], row["batch"]) in extrapolated),
        ]
        if with_floor:
            cells.append(_format_ratio(row["time_over_normal_argmax"]))
        cells.append(
            (row["status"] + (": " + row["note"] if row["note"] else ""))
            if row["status"] != "ok"
            else row["note"]
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<benchmark>.json`` and ``.md`` into ``out_dir`` (created if needed), e.g.
    ``beta_bernoulli_sample.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{results['benchmark']}.json"
    markdown_path = out / f"{results['benchmark']}.md"
    for path, text in (
        (json_path, json.dumps(results, indent=2, allow_nan=False) + "\n"),
        (markdown_path, to_markdown(results)),
    ):
        partial = path.with_name(path.name + ".partial")
        partial.write_text(text)
        partial.replace(path)  # atomic: an interrupted run never leaves half a file
    return json_path, markdown_path


def _count(text: str) -> int:
    """A positive integer count from the command line; ``1e6`` is accepted."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prime-science bench",
        description="Time Beta-Bernoulli Thompson sampling (k = 1) against numpy and a "
        "normal-draw floor (beta_bernoulli_sample), probit Thompson scoring + top-10 "
        "against numpy (probit_scoring) and layout hill climbing against numpy (hill_climb); "
        "write <suite>.json and .md.",
    )
    parser.add_argument(
        "--suite",
        choices=(*SUITES, "all"),
        default="all",
        help="which benchmark to run (default %(default)s)",
    )
    parser.add_argument(
        "--sizes",
        type=_count,
        nargs="+",
        help="numbers of arms / candidates N (default beta_bernoulli_sample: 1e5 1e6 1e7, "
        "probit_scoring: 1e5 1e6; one size more with --gpu or on a GPU); for hill_climb the "
        "number of components (default 10), taken from --sizes only with --suite hill_climb",
    )
    parser.add_argument(
        "--batches",
        type=_count,
        nargs="+",
        help="requests per call B (default 1 256; hill_climb: 1 1024)",
    )
    parser.add_argument(
        "--repeats",
        type=_count,
        help="timed calls per row (default 7; fewer when a row would exceed --max-seconds)",
    )
    parser.add_argument("--out", help="output directory (default benchmarks/results/<platform>)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: N in 1e5 1e6, B in 1 16, 3 repeats"
    )
    parser.add_argument(
        "--gpu", action="store_true", help="add the largest size (automatic on a GPU)"
    )
    parser.add_argument(
        "--max-seconds",
        type=_positive_seconds,
        default=DEFAULT_MAX_SECONDS,
        help="wall-time budget per row (default %(default)g)",
    )
    parser.add_argument(
        "--total-seconds",
        type=_positive_seconds,
        help="budget of each suite; later rows are skipped",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``prime-science bench``: run the suite(s), write JSON and Markdown after every row.

    Returns:
      The exit status (0).
    """
    args = _parser().parse_args(argv)
    accelerator = args.gpu or jax.default_backend() != "cpu"
    names = tuple(SUITES) if args.suite == "all" else (args.suite,)
    out_dir = Path(args.out or Path("benchmarks", "results", jax.devices()[0].platform))
    for name in names:
        sizes = default_sizes(accelerator, name)
        batches, repeats = SUITE_BATCHES.get(name, DEFAULT_BATCHES), DEFAULT_REPEATS
        # hill_climb's N counts components (10^N layouts), not arms: with --suite all it
        # keeps its own sizes, so that --sizes 1e6 does not ask for a 10^(10^6) space
        counts_items = name != HILL_CLIMB_BENCHMARK_NAME
        if args.quick:
            sizes = QUICK_SIZES if counts_items else sizes
            batches, repeats = QUICK_BATCHES, QUICK_REPEATS
        if args.sizes and (counts_items or args.suite == name):
            sizes = args.sizes
        config = SuiteConfig(
            sizes=tuple(sizes),
            batches=tuple(args.batches or batches),
            repeats=args.repeats or repeats,
            max_seconds=args.max_seconds,
            total_seconds=args.total_seconds,
            seed=args.seed,
        )
        results = run_suite(
            config,
            suite=SUITES[name](),
            progress=True,
            on_row=lambda partial: write_results(partial, out_dir),
        )
        for path in write_results(results, out_dir):
            print(path)
    return 0
