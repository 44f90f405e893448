"""Run registered experiments over seeds and write their results.

An *experiment* is a module (any object with these attributes works) that defines:

* ``NAME``: the registry name;
* ``Config``: a NamedTuple or frozen dataclass of static settings with constructors
  ``Config.quick()`` and ``Config.full()`` (built-in defaults, no data needed);
* ``run(key, config) -> results``: pure and jittable, for **one** seed;
* ``summarize(results, config) -> dict[str, float]``: scalar metrics of one seed's results;
* ``targets``: a sequence of :class:`Target` records, checked on the mean over seeds;
* ``plot(results, config, out_dir) -> list[Path]``: PNGs of the results of all seeds (every leaf
  has a leading seed axis), drawn with matplotlib's Agg canvas;
* optionally ``pooled(results, config) -> dict[str, float]``: metrics computed from all seeds
  at once (every leaf has a leading seed axis), for ratios whose per-seed denominator can be
  zero (e.g. a CTR over the few impressions of new items). Each is recorded with ``"pooled":
  true`` and a leave-one-seed-out jackknife standard error (``None`` if a leave-one-out value
  is not finite), and targets may name them.

:func:`run_experiment` jits ``vmap(run)`` once, feeds it the keys
``jax.random.split(jax.random.key(0), seeds)`` in chunks of ``seeds_per_call`` (one compiled
executable, a progress bar over chunks), then summarises every seed and writes
``<out_dir>/<NAME>/results.json``: metrics as mean and standard error over seeds
(``s.e. = sd / sqrt(seeds)``, ``sd`` with ``ddof = 1``), the targets with pass/fail, the config,
timings and the device.

Experiments register themselves with :func:`register` (the built-in ones in
``experiments/__init__.py``); :func:`registry` imports that package on first use.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import operator
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from tqdm import tqdm

from prime_science.benchmarking import device_info
from prime_science.core.errors import fail

__all__ = [
    "Target",
    "describe",
    "get_experiment",
    "pooled_metrics",
    "register",
    "registry",
    "run_experiment",
]

_EXPERIMENT_ATTRIBUTES = ("NAME", "Config", "run", "summarize", "targets", "plot")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_REGISTRY: dict[str, Any] = {}


class Target(NamedTuple):
    """A checkable claim about one metric: ``mean over seeds of metric <op> value``.

    Attributes:
      metric: a key of the experiment's ``summarize`` output.
      op: one of ``"<"``, ``"<="``, ``">"``, ``">="``.
      value: the threshold.
      description: the claim in words (say whether it is directional or a numeric target).
      source: where the target comes from (a SCIENCE.md item, an issue, a paper).
    """

    metric: str
    op: str
    value: float
    description: str
    source: str = ""

    def passes(self, measured: float) -> bool:
        """Whether ``measured <op> value`` holds (NaN never passes)."""
        return bool(_OPERATORS[self.op](measured, self.value))


def register(experiment: Any) -> Any:
    """Add an experiment to the registry (checked eagerly) and return it unchanged."""
    missing = [name for name in _EXPERIMENT_ATTRIBUTES if not hasattr(experiment, name)]
    if missing:
        fail(
            "experiment",
            f"an object defining {', '.join(_EXPERIMENT_ATTRIBUTES)}",
            f"{experiment!r} without {', '.join(missing)}",
        )
    for target in experiment.targets:
        if target.op not in _OPERATORS:
            fail(f"{experiment.NAME}.targets", f"op in {sorted(_OPERATORS)}", target.op)
    _REGISTRY[experiment.NAME] = experiment
    return experiment


def registry() -> dict[str, Any]:
    """All registered experiments by name (imports the built-in ``experiments`` package)."""
    importlib.import_module("experiments")
    return dict(_REGISTRY)


def get_experiment(name: str) -> Any:
    """The registered experiment called ``name``."""
    experiments = registry()
    if name not in experiments:
        fail("name", f"a registered experiment ({', '.join(sorted(experiments))})", repr(name))
    return experiments[name]


def run_experiment(
    experiment: str | Any,
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
      experiment: a registered name or an experiment object (see the module docstring).
      seeds: number of seeds; seed ``s`` uses ``jax.random.split(jax.random.key(0), seeds)[s]``.
      scale: ``"quick"`` or ``"full"``: which ``Config`` constructor gives the defaults.
      out_dir: the results folder; this experiment writes into ``out_dir/NAME``.
      config: a ``Config`` that replaces the scale's defaults (tests use small ones).
      seeds_per_call: seeds vmapped in one call of the compiled function; the last chunk is
        padded with repeated keys so that every call has the same shape (compiled once).
      progress: show a progress bar over the calls.

    Returns:
      The record written to ``results.json`` (``status = "ok"``).
    """
    if isinstance(experiment, str):
        experiment = get_experiment(experiment)
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

    chunk = min(seeds_per_call, seeds)
    num_calls = -(-seeds // chunk)
    keys = jax.random.split(jax.random.key(0), seeds)
    padded = keys[np.minimum(np.arange(num_calls * chunk), seeds - 1)]
    batched = jax.jit(jax.vmap(lambda key: experiment.run(key, config)))
    tic = time.perf_counter()
    compiled = batched.lower(padded[:chunk]).compile()
    compile_s = time.perf_counter() - tic

    outputs = []
    tic = time.perf_counter()
    for call in tqdm(range(num_calls), desc=experiment.NAME, unit="call", disable=not progress):
        outputs.append(jax.device_get(compiled(padded[call * chunk : (call + 1) * chunk])))
    run_s = time.perf_counter() - tic
    results = jax.tree.map(lambda *xs: np.concatenate(xs)[:seeds], *outputs)

    per_seed = [
        experiment.summarize(jax.tree.map(lambda x, s=s: x[s], results), config)
        for s in range(seeds)
    ]
    metrics = {name: _mean_and_se([m[name] for m in per_seed]) for name in per_seed[0]}
    if hasattr(experiment, "pooled"):
        metrics.update(pooled_metrics(experiment.pooled, results, config, seeds))
    plots = experiment.plot(results, config, folder)
    record = {
        "name": experiment.NAME,
        "status": "ok",
        "description": describe(experiment),
        "scale": scale,
        "seeds": seeds,
        "seeds_per_call": chunk,
        "config": _config_dict(config),
        "metrics": metrics,
        "targets": [_check(target, metrics) for target in experiment.targets],
        "plots": [Path(p).relative_to(folder).as_posix() for p in plots],
        "timings": {
            "compile_s": compile_s,
            "run_s": run_s,
            "run_s_per_seed": run_s / seeds,
            "total_s": time.perf_counter() - started,
        },
        "device": device_info(),
    }
    (folder / "results.json").write_text(json.dumps(record, indent=2, default=_json_default))
    return record


def _mean_and_se(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "se", "values"}``; ``se`` is ``None`` for a single seed."""
    array = np.asarray(values, dtype=np.float64)
    se = float(array.std(ddof=1) / math.sqrt(array.size)) if array.size > 1 else None
    return {"mean": float(array.mean()), "se": se, "values": array.tolist()}


def pooled_metrics(
    pooled: Callable[[Any, Any], Mapping[str, float]], results: Any, config: Any, seeds: int
) -> dict[str, dict[str, Any]]:
    """``pooled(results, config)`` over all ``seeds`` (leading axis of every leaf), each value
    with a leave-one-seed-out jackknife standard error ``sqrt((S - 1) / S * sum_s (t_s -
    t_bar)^2)`` (``None`` for one seed or a non-finite leave-one-out value): ``{name: {"mean",
    "se", "pooled": True}}``."""
    values = pooled(results, config)
    if seeds < 2:
        return {name: {"mean": value, "se": None, "pooled": True} for name, value in values.items()}
    keep = [np.delete(np.arange(seeds), s) for s in range(seeds)]
    left_out = [pooled(jax.tree.map(lambda x, k=k: x[k], results), config) for k in keep]
    record = {}
    for name, value in values.items():
        loo = np.asarray([row[name] for row in left_out], np.float64)
        se = None
        if np.all(np.isfinite(loo)):
            se = float(math.sqrt((seeds - 1) / seeds * np.sum((loo - loo.mean()) ** 2)))
        record[name] = {"mean": float(value), "se": se, "pooled": True}
    return record


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


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
