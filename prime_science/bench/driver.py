"""The driver every throughput suite shares: plan, inputs, budgets, timing, ratios and files.

A :class:`Suite` names a benchmark's kernels and how to make their inputs; :func:`run_suite`
runs its plan for a :class:`SuiteConfig` (sizes ``N``, request counts ``B``, repeats and
budgets) and returns one :class:`BenchmarkRow` per ``(kernel, N, B)`` with the ratios to the
``numpy`` baseline (and to the suite's floor kernel, if it has one); :func:`write_results`
writes ``<suite>.json`` and ``<suite>.md`` (:func:`to_markdown`). The suites themselves live
beside this module, one per file, and :mod:`prime_science.bench.registry` lists them.

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
budget costs baselines rather than the kernel.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from tqdm import tqdm

from prime_science.bench.timing import Timing, compile_jitted, time_calls
from prime_science.core.errors import fail
from prime_science.core.machine import device_info

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "DEFAULT_REPEATS",
    "BenchmarkRow",
    "Suite",
    "SuiteConfig",
    "run_suite",
    "to_markdown",
    "write_results",
]

DEFAULT_REPEATS = 7
DEFAULT_MAX_SECONDS = 60.0
NUMPY_EXTRAPOLATE_FROM = 8
MEMORY_HEADROOM = 0.9
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


class SuiteConfig(NamedTuple):
    """What to run.

    Attributes:
      sizes: numbers of items ``N`` (arms, candidates, components: the suite's ``unit``).
      batches: numbers of independent requests ``B`` per call.
      repeats: the most timed calls per row.
      max_seconds: wall-time budget of one row (repeats shrink to fit; see the module doc).
      total_seconds: budget of the whole suite; rows after it are skipped. ``None``: no limit.
      seed: seeds the posteriors, the JAX keys and the numpy generators.
    """

    sizes: tuple[int, ...]
    batches: tuple[int, ...]
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
    suite: Suite,
    config: SuiteConfig,
    *,
    progress: bool = False,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every row of ``suite``'s plan for ``config`` and return the results as a JSON-ready
    dict.

    Args:
      suite: what to run (one of :data:`prime_science.bench.registry.SUITES`, built).
      config: sizes, batches, repeats and budgets.
      progress: show a tqdm bar over rows (on stderr).
      on_row: called with the results so far after every row (the ``bench`` command writes
        files there).

    Returns:
      ``{"benchmark", "device", "config", "planned_rows", "methods", "posteriors", "rows"}``;
      ``rows`` holds :class:`BenchmarkRow` dicts in plan order (fewer than ``planned_rows``
      only in the partial results handed to ``on_row``).
    """
    for name in ("sizes", "batches"):
        values = getattr(config, name)
        if not values or not all(isinstance(v, int) and v >= 1 for v in values):
            fail(f"config.{name}", "a non-empty tuple of positive integers", values)
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
