"""Throughput of Beta–Bernoulli Thompson sampling, with its baselines timed in the same run.

One benchmark, ``beta_bernoulli_sample``: draw once from every arm's Beta posterior and return
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
``benchmarks/run.py``); it writes ``beta_bernoulli_sample.json`` and ``.md`` after every row.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
from tqdm import tqdm

from prime_science.core.errors import fail

__all__ = [
    "BENCHMARK_NAME",
    "BenchmarkRow",
    "SuiteConfig",
    "Timing",
    "compile_jitted",
    "default_sizes",
    "device_info",
    "main",
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


def default_sizes(accelerator: bool) -> tuple[int, ...]:
    """``1e5, 1e6, 1e7`` arms; ``1e8`` too on an accelerator."""
    return ACCELERATOR_SIZES if accelerator else CPU_SIZES


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.startswith(("model name", "Model", "cpu model")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def device_info() -> dict[str, Any]:
    """The machine a run measured: JAX device and versions, CPU model, cores and the date."""
    device = jax.devices()[0]
    return {
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


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


def _memory_estimate(compiled: Any, num_arms: int, batch: int) -> tuple[int, int, str]:
    """``(footprint, new_bytes, source)`` of one call of ``compiled``."""
    try:
        stats = compiled.memory_analysis()
    except (AttributeError, NotImplementedError, jax.errors.JaxRuntimeError):
        stats = None
    if stats is None:
        new = 4 * num_arms * batch
        return STATE_BYTES_PER_ARM * num_arms + new, new, "formula: B*N float32 (worst case)"
    new = stats.output_size_in_bytes + stats.temp_size_in_bytes - stats.alias_size_in_bytes
    return stats.argument_size_in_bytes + new, new, "xla memory_analysis"


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
    footprint, new_bytes, source = _memory_estimate(compiled, num_arms, batch)
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
    alpha: np.ndarray,
    beta: np.ndarray,
    seed: Sequence[int],
    repeats: int,
    budget: float,
) -> BenchmarkRow:
    rng = np.random.default_rng(seed)
    draw = lambda: int(np.argmax(rng.beta(alpha, beta)))
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
    memory = {"memory_bytes": 24 * num_arms, "memory_source": "formula: float64 alpha, beta, draw"}
    if draws == batch:
        return _row_from_timing("numpy", num_arms, batch, timing, **memory)
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
        **memory,
    )


def _with_ratios(rows: list[BenchmarkRow]) -> list[BenchmarkRow]:
    medians = {(r.kernel, r.num_arms, r.batch): r.median_seconds for r in rows}
    out = []
    for row in rows:
        numpy_median = medians.get(("numpy", row.num_arms, row.batch))
        normal_median = medians.get(("normal_argmax", row.num_arms, row.batch))
        if row.median_seconds:
            row = row._replace(
                speedup_vs_numpy=numpy_median / row.median_seconds if numpy_median else None,
                time_over_normal_argmax=(
                    row.median_seconds / normal_median if normal_median else None
                ),
            )
        out.append(row)
    return out


def _results(
    config: SuiteConfig,
    device: dict[str, Any],
    rows: list[BenchmarkRow],
    posteriors: dict,
    planned_rows: int,
) -> dict[str, Any]:
    return {
        "benchmark": BENCHMARK_NAME,
        "device": device,
        "config": config._asdict(),
        "planned_rows": planned_rows,
        "methods": {
            "compile": COMPILE_METHOD,
            "timing": TIMING_METHOD,
            "k": 1,
            "posterior": "realistic_posterior(N, seed): n ~ floor(LogNormal(3, 2)), "
            "p ~ Beta(1, 30), clicks ~ Binomial(n, p), alpha = 1 + clicks, beta = 1 + n - clicks",
            "speedup_vs_numpy": "numpy median / row median, same N and B",
            "time_over_normal_argmax": "row median / normal_argmax median, same N and B",
            "state_bytes_per_arm": STATE_BYTES_PER_ARM,
        },
        "posteriors": posteriors,
        "rows": [row._asdict() for row in _with_ratios(rows)],
    }


def run_suite(
    config: SuiteConfig,
    *,
    factory: Callable[..., Any] | None = None,
    progress: bool = False,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every row of ``config`` and return the results as a JSON-ready dict.

    Args:
      config: sizes, batches, repeats and budgets.
      factory: the policy factory; ``prime_science.bandits.beta_bernoulli.beta_bernoulli``
        unless given. It is called as ``factory(prior_alpha=1.0, prior_beta=1.0)`` and, for
        the ``ours_approximate`` rows, with ``approximate=True`` too (that policy samples from
        the state of the exact one).
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
    if factory is None:
        from prime_science.bandits.beta_bernoulli import beta_bernoulli as factory
    policies = {"ours": factory(prior_alpha=1.0, prior_beta=1.0)}
    approximate = _approximate_policy(factory)
    if approximate is not None:
        policies["ours_approximate"] = approximate
    plan = _plan(config, with_approximate=approximate is not None)
    device = device_info()
    root_key = jax.random.key(config.seed)
    suite_start = time.perf_counter()
    rows: list[BenchmarkRow] = []
    posteriors: dict[str, dict[str, Any]] = {}
    host: dict[int, tuple[np.ndarray, np.ndarray] | str] = {}
    arrays: dict[tuple[str, int], Any] = {}
    bar = tqdm(plan, desc=BENCHMARK_NAME, unit="row", disable=not progress)
    for index, (kernel, num_arms, batch) in enumerate(bar):
        bar.set_postfix_str(f"{kernel} N={_format_count(num_arms)} B={batch}")
        elapsed = time.perf_counter() - suite_start
        left = math.inf if config.total_seconds is None else config.total_seconds - elapsed
        budget = min(config.max_seconds, left)
        if left <= 0:
            note = f"suite budget exhausted (--total-seconds {config.total_seconds:g})"
            rows.append(BenchmarkRow(kernel, num_arms, batch, "skipped", note=note))
        elif isinstance(posterior := _posterior(num_arms, config.seed, host, posteriors), str):
            rows.append(BenchmarkRow(kernel, num_arms, batch, "skipped", note=posterior))
        elif kernel == "numpy":
            if ("numpy", num_arms) not in arrays:
                arrays = {("numpy", num_arms): tuple(x.astype(np.float64) for x in posterior)}
            alpha, beta = arrays["numpy", num_arms]
            rows.append(
                _numpy_row(
                    num_arms,
                    batch,
                    alpha=alpha,
                    beta=beta,
                    seed=(config.seed, index),
                    repeats=config.repeats,
                    budget=budget,
                )
            )
        else:
            if ("jax", num_arms) not in arrays:
                arrays = {("jax", num_arms): _device_state(policies["ours"], posterior)}
            state = arrays["jax", num_arms]
            first = next((r for r in rows if r[:3] == (kernel, num_arms, 1)), None)
            predicted = batch * first.median_seconds if first and first.median_seconds else None
            rows.append(
                _jax_row(
                    kernel,
                    num_arms,
                    batch,
                    key=jax.random.fold_in(root_key, index),
                    fn_args=_jax_callable(kernel, batch, policies, state),
                    repeats=config.repeats,
                    budget=budget,
                    predicted=predicted if batch > 1 else None,
                )
            )
        if num_arms not in {n for _, n, _ in plan[index + 1 :]}:
            host.pop(num_arms, None)
        if on_row is not None:
            on_row(_results(config, device, rows, posteriors, len(plan)))
    bar.close()
    return _results(config, device, rows, posteriors, len(plan))


def _posterior(
    num_arms: int, seed: int, host: dict[int, Any], posteriors: dict[str, dict[str, Any]]
) -> tuple[np.ndarray, np.ndarray] | str:
    """The cached posterior for ``num_arms``, or why it could not be made."""
    if num_arms not in host:
        needed = POSTERIOR_HOST_BYTES_PER_ARM * num_arms
        available = _host_available_bytes()
        if available is not None and needed > MEMORY_HEADROOM * available:
            host[num_arms] = (
                f"realistic_posterior needs about {needed / GIB:.1f} GiB of host memory, "
                f"{available / GIB:.1f} GiB available"
            )
        else:
            start = time.perf_counter()
            alpha, beta = realistic_posterior(num_arms, seed)
            host[num_arms] = (alpha, beta)
            impressions = alpha + beta - 2
            posteriors[str(num_arms)] = {
                "generate_seconds": time.perf_counter() - start,
                "median_impressions": float(np.median(impressions)),
                "mean_impressions": float(impressions.mean(dtype=np.float64)),
                "pooled_ctr": float(
                    (alpha - 1).sum(dtype=np.float64) / impressions.sum(dtype=np.float64)
                ),
                "fraction_never_shown": float(np.mean(impressions == 0)),
            }
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
    device, rows = results["device"], results["rows"]
    extrapolated = {(r["num_arms"], r["batch"]) for r in rows if r["status"] == "extrapolated"}
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
        "- speed-up vs numpy = numpy median / row median (≈: numpy extrapolated); "
        "time / normal_argmax = row median / normal_argmax median (same N, B)",
        "",
        "| kernel | N | B | median | min | IQR | repeats | compile | arms/s "
        "| speed-up vs numpy | time / normal_argmax | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        arms_per_second = row["arms_per_second"]
        cells = [
            row["kernel"],
            _format_count(row["num_arms"]),
            str(row["batch"]),
            _format_seconds(row["median_seconds"]),
            _format_seconds(row["min_seconds"]),
            _format_seconds(row["iqr_seconds"]),
            str(row["repeats"]) if row["repeats"] else "",
            _format_seconds(row["compile_seconds"]),
            _format_rate(arms_per_second),
            _format_ratio(row["speedup_vs_numpy"], (row["num_arms"], row["batch"]) in extrapolated),
            _format_ratio(row["time_over_normal_argmax"]),
            (row["status"] + (": " + row["note"] if row["note"] else ""))
            if row["status"] != "ok"
            else row["note"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``beta_bernoulli_sample.json`` and ``.md`` into ``out_dir`` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{BENCHMARK_NAME}.json"
    markdown_path = out / f"{BENCHMARK_NAME}.md"
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
        "normal-draw floor; write beta_bernoulli_sample.json and .md.",
    )
    parser.add_argument(
        "--sizes",
        type=_count,
        nargs="+",
        help="numbers of arms N (default 1e5 1e6 1e7, plus 1e8 with --gpu or on a GPU)",
    )
    parser.add_argument(
        "--batches", type=_count, nargs="+", help="requests per call B (default 1 256)"
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
    parser.add_argument("--gpu", action="store_true", help="add N = 1e8 (automatic on a GPU)")
    parser.add_argument(
        "--max-seconds",
        type=_positive_seconds,
        default=DEFAULT_MAX_SECONDS,
        help="wall-time budget per row (default %(default)g)",
    )
    parser.add_argument(
        "--total-seconds",
        type=_positive_seconds,
        help="budget of the whole suite; later rows are skipped",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``prime-science bench``: run the suite, write JSON and Markdown after every row.

    Returns:
      The exit status (0).
    """
    args = _parser().parse_args(argv)
    backend = jax.default_backend()
    sizes = default_sizes(args.gpu or backend != "cpu")
    batches, repeats = DEFAULT_BATCHES, DEFAULT_REPEATS
    if args.quick:
        sizes, batches, repeats = QUICK_SIZES, QUICK_BATCHES, QUICK_REPEATS
    config = SuiteConfig(
        sizes=tuple(args.sizes or sizes),
        batches=tuple(args.batches or batches),
        repeats=args.repeats or repeats,
        max_seconds=args.max_seconds,
        total_seconds=args.total_seconds,
        seed=args.seed,
    )
    out_dir = Path(args.out or Path("benchmarks", "results", jax.devices()[0].platform))
    results = run_suite(
        config, progress=True, on_row=lambda partial: write_results(partial, out_dir)
    )
    for path in write_results(results, out_dir):
        print(path)
    return 0
