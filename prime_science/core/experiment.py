"""The experiment contract: what a reproduction defines, its targets and its pooled metrics.

An *experiment* is a module (any object with these attributes works) that defines:

* ``NAME``: the name the command line knows it by;
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
  true`` and a leave-one-seed-out jackknife standard error (:func:`pooled_metrics`), and
  targets may name them;
* optionally ``Config.precision``: ``"float32"`` (the default) or ``"float64"``; the runner
  traces, runs, summarises and plots the experiment with JAX's x64 mode set accordingly
  (``jax.enable_x64``), so library code takes its dtype from its inputs;
* optionally ``DATASETS``: names of the data sets it reads (keys of
  :data:`prime_science.datasets.source.DATASETS`; default none), checked by the command line
  before any experiment starts;
* optionally ``METRIC_LABELS``: metric key -> the metric in words with its units (default: the
  key), stored with each metric so that a report can be rebuilt from ``results.json`` alone;
* optionally ``NA_REASONS``: metric key -> why the metric can be undefined, stored as the
  metric's ``na_reason`` when its mean is not finite (default: ``"not finite in k of n
  seeds"``).

This module sits in ``core`` so that the experiments, which build on the science packages,
never import the tools that run them (``prime_science.runner``, the command line).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from prime_science.core.errors import fail

__all__ = [
    "EXPERIMENT_ATTRIBUTES",
    "TARGET_OPERATORS",
    "Target",
    "check_experiment",
    "pooled_metrics",
]

EXPERIMENT_ATTRIBUTES = ("NAME", "Config", "run", "summarize", "targets", "plot")
"""The attributes every experiment defines (the module docstring says what each one is)."""

TARGET_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
"""The comparisons a :class:`Target` may use, by their symbol."""


class Target(NamedTuple):
    """A checkable claim about one metric: ``mean over seeds of metric <op> value``.

    Attributes:
      metric: a key of the experiment's ``summarize`` (or ``pooled``) output.
      op: one of ``"<"``, ``"<="``, ``">"``, ``">="``.
      value: the threshold.
      description: the claim in words (say whether it is directional or a numeric target).
      source: where the target comes from (a paper, or the project's own documentation).
    """

    metric: str
    op: str
    value: float
    description: str
    source: str = ""

    def passes(self, measured: float) -> bool:
        """Whether ``measured <op> value`` holds (NaN never passes)."""
        return bool(TARGET_OPERATORS[self.op](measured, self.value))


def check_experiment(experiment: Any) -> Any:
    """Return ``experiment`` unchanged once it defines :data:`EXPERIMENT_ATTRIBUTES` and every
    target's ``op`` is one of :data:`TARGET_OPERATORS`.

    Raises:
      InvalidArgumentError: naming the missing attributes or the bad operator.
    """
    missing = [name for name in EXPERIMENT_ATTRIBUTES if not hasattr(experiment, name)]
    if missing:
        fail(
            "experiment",
            f"an object defining {', '.join(EXPERIMENT_ATTRIBUTES)}",
            f"{experiment!r} without {', '.join(missing)}",
        )
    for target in experiment.targets:
        if target.op not in TARGET_OPERATORS:
            fail(f"{experiment.NAME}.targets", f"op in {sorted(TARGET_OPERATORS)}", target.op)
    return experiment


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
