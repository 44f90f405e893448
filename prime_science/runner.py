"""Run an experiment over seeds and write its results.

An experiment is an object that keeps the contract of :mod:`prime_science.core.experiment`
(``NAME``, ``Config``, ``run``, ``summarize``, ``targets``, ``plot``, and optionally ``pooled``,
``Config.precision``, ``DATASETS``, ``METRIC_LABELS``, ``NA_REASONS``). The runner takes the
object itself; which experiments exist is for its caller to say (the command line reads
``experiments.EXPERIMENTS``), so this module never imports the experiments.

:func:`run_experiment` jits ``vmap(run)`` once, feeds it the keys
``jax.random.split(jax.random.key(0), seeds)`` in chunks of ``seeds_per_call`` (one compiled
executable, a progress bar over chunks), then summarises every seed and writes
``<out_dir>/<NAME>/results.json``: metrics as mean and standard error over seeds
(``s.e. = sd / sqrt(seeds)``, ``sd`` with ``ddof = 1``) with their labels, the targets with
pass/fail, the config, the data sets read, timings and the device. The file is strict JSON: a
number that is not finite is written as ``null`` (the metric's ``na_reason`` says why), never as
``NaN``. A crashed experiment is recorded by :func:`write_crash_record`, so that it still shows in
a report rebuilt from the files on disk.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from prime_science.core.errors import fail
from prime_science.core.experiment import Target, check_experiment, pooled_metrics
from prime_science.core.machine import device_info
from prime_science.datasets import source

__all__ = [
    "PRECISIONS",
    "describe",
    "run_experiment",
    "write_crash_record",
    "write_record",
]

PRECISIONS = ("float32", "float64")
"""The floating-point precisions a ``Config.precision`` may declare (default ``"float32"``)."""


def run_experiment(
    experiment: Any,
    *,
    seeds: int,
    scale: str = "quick",
    out_dir: str | os.PathLike[str],
    config: Any = None,
    seeds_per_call: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Run one experiment over ``seeds`` seeds and write ``<out_dir>/<NAME>/results.json``.

    Args:
      experiment: an experiment object (:mod:`prime_science.core.experiment`), checked first.
      seeds: number of seeds; seed ``s`` uses ``jax.random.split(jax.random.key(0), seeds)[s]``.
      scale: ``"quick"`` or ``"full"``: which ``Config`` constructor gives the defaults.
      out_dir: the results folder; this experiment writes into ``out_dir/NAME``.
      config: a ``Config`` that replaces the scale's defaults (tests use small ones).
      seeds_per_call: seeds vmapped in one call of the compiled function; the last chunk is
        padded with repeated keys so that every call has the same shape (compiled once).
      progress: show a progress bar over the calls, and on stderr a line before and after
        each silent stretch (tracing and compiling, summarising and plotting) with its duration.

    Returns:
      The record written to ``results.json`` (``status = "ok"``); in memory a number that is not
      finite stays a float ``nan``/``inf`` (the file has ``null``).
    """
    check_experiment(experiment)
    if scale not in ("quick", "full"):
        fail("scale", "'quick' or 'full'", repr(scale))
    if seeds < 1:
        fail("seeds", "a positive integer", seeds)
    if seeds_per_call < 1:
        fail("seeds_per_call", "a positive integer", seeds_per_call)
    if config is None:
        config = getattr(experiment.Config, scale)()
    folder = Path(out_dir, experiment.NAME)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    precision = getattr(config, "precision", "float32")
    if precision not in PRECISIONS:
        fail(f"{experiment.NAME}'s Config.precision", f"one of {PRECISIONS}", repr(precision))
    with jax.enable_x64(precision == "float64"):
        chunk = min(seeds_per_call, seeds)
        num_calls = -(-seeds // chunk)
        keys = jax.random.split(jax.random.key(0), seeds)
        padded = keys[np.minimum(np.arange(num_calls * chunk), seeds - 1)]
        batched = jax.jit(jax.vmap(lambda key: experiment.run(key, config)))
        with _stage(experiment.NAME, "compiling", progress) as compile_time:
            compiled = batched.lower(padded[:chunk]).compile()

        outputs = []
        tic = time.perf_counter()
        for call in tqdm(range(num_calls), desc=experiment.NAME, unit="call", disable=not progress):
            outputs.append(jax.device_get(compiled(padded[call * chunk : (call + 1) * chunk])))
        run_s = time.perf_counter() - tic
        results = jax.tree.map(lambda *xs: np.concatenate(xs)[:seeds], *outputs)

        with _stage(experiment.NAME, "summarising and plotting", progress):
            per_seed = [
                experiment.summarize(jax.tree.map(lambda x, s=s: x[s], results), config)
                for s in range(seeds)
            ]
            metrics = {name: _mean_and_se([m[name] for m in per_seed]) for name in per_seed[0]}
            if hasattr(experiment, "pooled"):
                metrics.update(pooled_metrics(experiment.pooled, results, config, seeds))
            plots = experiment.plot(results, config, folder)
    _annotate(metrics, experiment, seeds)
    record = {
        "name": experiment.NAME,
        "status": "ok",
        "description": describe(experiment),
        "scale": scale,
        "seeds": seeds,
        "seeds_per_call": chunk,
        "config": _config_dict(config),
        "datasets": {
            name: source.describe_source(name) for name in getattr(experiment, "DATASETS", ())
        },
        "metrics": metrics,
        # a configuration may leave a metric out (an estimator not run): its target is listed
        "targets": [_check(t, metrics) for t in experiment.targets if t.metric in metrics],
        "targets_not_checked": [t.metric for t in experiment.targets if t.metric not in metrics],
        "plots": [Path(p).relative_to(folder).as_posix() for p in plots],
        "timings": {
            "compile_s": compile_time[0],
            "run_s": run_s,
            "run_s_per_seed": run_s / seeds,
            "total_s": time.perf_counter() - started,
        },
        "device": device_info(),
    }
    write_record(record, out_dir)
    return record


def write_crash_record(
    name: str,
    error: str,
    out_dir: str | os.PathLike[str],
    *,
    scale: str,
    seeds: int,
    total_s: float,
    description: str = "",
) -> dict[str, Any]:
    """Write ``<out_dir>/<name>/results.json`` for an experiment that raised, and return it.

    The record is ``{"name", "status": "error", "error": <traceback>, "description", "scale",
    "seeds", "timings": {"total_s"}, "device"}``: a report rebuilt from the files on disk shows
    the crash until a later successful run of the experiment overwrites the file.
    """
    record = {
        "name": name,
        "status": "error",
        "error": error,
        "description": description,
        "scale": scale,
        "seeds": seeds,
        "timings": {"total_s": total_s},
        "device": device_info(),
    }
    write_record(record, out_dir)
    return record


def write_record(record: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``record`` to ``<out_dir>/<record["name"]>/results.json`` as strict JSON (every
    number that is not finite becomes ``null``) and return the path."""
    path = Path(out_dir, record["name"], "results.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_finite_or_null(record), indent=2, default=_json_default, allow_nan=False)
    path.write_text(text + "\n")
    return path


@contextmanager
def _stage(name: str, what: str, progress: bool) -> Iterator[list[float]]:
    """Time the block into the yielded one-element list; with ``progress``, say on stderr when
    it starts (``name: compiling…``) and how long it took."""
    seconds = [0.0]
    if progress:
        print(f"{name}: {what}…", file=sys.stderr, flush=True)
    tic = time.perf_counter()
    yield seconds
    seconds[0] = time.perf_counter() - tic
    if progress:
        print(f"{name}: {what} took {seconds[0]:.1f} s", file=sys.stderr, flush=True)


def _annotate(metrics: dict[str, dict[str, Any]], experiment: Any, seeds: int) -> None:
    """Add each metric's ``label`` (``METRIC_LABELS``, else the key) and, where its mean is not
    finite, its ``na_reason`` (``NA_REASONS``, else how many seeds were not finite)."""
    labels = getattr(experiment, "METRIC_LABELS", {})
    reasons = getattr(experiment, "NA_REASONS", {})
    for key, metric in metrics.items():
        metric["label"] = labels.get(key, key)
        if math.isfinite(metric["mean"]):
            continue
        if key in reasons:
            metric["na_reason"] = reasons[key]
        elif metric.get("pooled"):
            metric["na_reason"] = f"not finite when pooled over {seeds} seeds"
        else:
            bad = sum(not math.isfinite(value) for value in metric["values"])
            metric["na_reason"] = f"not finite in {bad} of {seeds} seeds"


def _mean_and_se(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "se", "values"}``; ``se`` is ``None`` for a single seed."""
    array = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # an infinite value: the mean is not finite anyway
        se = float(array.std(ddof=1) / math.sqrt(array.size)) if array.size > 1 else None
    return {"mean": float(array.mean()), "se": se, "values": array.tolist()}


def _check(target: Target, metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    measured = metrics[target.metric]["mean"]
    return {**target._asdict(), "measured": measured, "passed": target.passes(measured)}


def _config_dict(config: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return dict(config._asdict())


def describe(experiment: Any) -> str:
    """The first line of an experiment's docstring."""
    return (experiment.__doc__ or "").strip().split("\n", 1)[0]


def _finite_or_null(value: Any) -> Any:
    """``value`` with every float (or numpy float) that is not finite replaced by ``None``."""
    if isinstance(value, Mapping):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(item) for item in value]
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
