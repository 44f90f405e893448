"""Hill climbing (Hill et al. 2017) vs exact enumeration: the gap as a share of the score range.

Worlds: ``num_worlds`` per seed, each the 512-layout truth of
:mod:`prime_science.sim.layout_world` (3 components x 8 variants, ``W`` entries ``N(0, 1)``,
first-order scale ``alpha1 = 1``, interaction scale ``alpha2 = 2``). The gap is measured on the
linear score ``s(A)`` (the world's probit argument), which is an affine function of
``alpha1 sum W1 + alpha2 sum W2``, so the share of the range does not depend on the
calibration's ``W0`` and ``beta``.

For every ``(S, K)`` of ``restarts x steps`` (S restarts from uniformly random layouts, K
single-component steps with a uniformly random component each,
:func:`prime_science.layouts.search.hill_climb`) and every world, one hill climb gives::

    gap = (max_A s(A) - s(hill climb)) / (max_A s(A) - min_A s(A)),

with the exact maximum and minimum from enumerating all 512 layouts. The metric
``gap_S<S>_K<K>`` is its mean over the seed's worlds, in percent.

Expectation (an independent NumPy simulation of the same search by the project's authors, not
published and not in this repository; tolerance +-0.5 percentage points): about 14% at S = 1,
3% at S = 5, 0.9% at S = 10 (all K = 5) and 0.3% at S = 10, K = 10; the gap shrinks as S or K
grows.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from experiments._common import standard_error
from prime_science.core.experiment import Target
from prime_science.core.types import PRNGKey
from prime_science.layouts import design, search
from prime_science.sim.layout_world import LayoutWorldConfig, make_layout_world

__all__ = [
    "NAME",
    "METRIC_LABELS",
    "NA_REASONS",
    "DATASETS",
    "Config",
    "Results",
    "run",
    "summarize",
    "targets",
    "plot",
]

NAME = "layout_search"
DATASETS: tuple[str, ...] = ()
"""Packaged data sets the experiment reads: none (simulated worlds)."""
NA_REASONS: dict[str, str] = {}
"""No metric of this experiment can be undefined."""


class Config(NamedTuple):
    """Static settings (hashable).

    Attributes:
      world: the world family (512 layouts, ``alpha2 = 2``).
      restarts: the ``S`` values.
      steps: the ``K`` values.
      num_worlds: worlds per seed (one hill climb per world and ``(S, K)``).
    """

    world: LayoutWorldConfig = LayoutWorldConfig()
    restarts: tuple[int, ...] = (1, 5, 10)
    steps: tuple[int, ...] = (1, 5, 10)
    num_worlds: int = 4_000

    @classmethod
    def quick(cls) -> Config:
        """4,000 worlds per seed (20,000 over 5 seeds)."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """20,000 worlds per seed."""
        return cls(num_worlds=20_000)


class Results(NamedTuple):
    """One seed.

    Attributes:
      gap: ``float32[len(restarts), len(steps), num_worlds]``, the gap share (0..1).
    """

    gap: jax.Array


def _world_gaps(key: PRNGKey, config: Config) -> jax.Array:
    """Gaps ``[S values, K values]`` of one world."""
    key_world, key_search = jax.random.split(key)
    world = make_layout_world(key_world, config.world)
    space = config.world.space
    scores = design.score(space, world.weights, design.all_layouts(space))
    best, worst = jnp.max(scores), jnp.min(scores)
    tables = design.score_tables(space, world.weights)
    cells = list(itertools.product(config.restarts, config.steps))
    keys = jax.random.split(key_search, len(cells))
    gaps = [
        (best - search.hill_climb_tables(k, space, tables, s, steps).score) / (best - worst)
        for k, (s, steps) in zip(keys, cells, strict=True)
    ]
    return jnp.stack(gaps).reshape(len(config.restarts), len(config.steps))


def run(key: PRNGKey, config: Config) -> Results:
    """``num_worlds`` worlds, every ``(S, K)`` (pure, jittable)."""
    gaps = jax.vmap(lambda k: _world_gaps(k, config))(jax.random.split(key, config.num_worlds))
    return Results(gap=jnp.moveaxis(gaps, 0, -1))


def summarize(results: Results, config: Config) -> dict[str, float]:
    """``gap_S<S>_K<K>``: mean gap over the seed's worlds, in percent of the score range;
    ``exact_share_S<S>_K<K>``: share of worlds where hill climbing found the exact maximum."""
    gap = np.asarray(results.gap, np.float64)
    metrics = {}
    for i, s in enumerate(config.restarts):
        for j, k in enumerate(config.steps):
            metrics[f"gap_S{s}_K{k}"] = float(100.0 * gap[i, j].mean())
            metrics[f"exact_share_S{s}_K{k}"] = float(np.mean(gap[i, j] <= 1e-6))
    return metrics


def _metric_labels(config: Config) -> dict[str, str]:
    """Every metric of :func:`summarize` under ``config`` in words."""
    labels = {}
    for s in config.restarts:
        for k in config.steps:
            search = f"S = {s} restarts, K = {k} steps"
            labels[f"gap_S{s}_K{k}"] = (
                f"gap of hill climbing to the exact best layout, {search} (% of the layout-score "
                "range)"
            )
            labels[f"exact_share_S{s}_K{k}"] = (
                f"share of worlds where hill climbing finds the exact best layout, {search}"
            )
    return labels


METRIC_LABELS: dict[str, str] = _metric_labels(Config())
"""Every metric of :func:`summarize` in words (``quick()`` and ``full()`` share S and K)."""


def _band(metric: str, centre: float, source: str) -> list[Target]:
    return [
        Target(
            metric,
            op,
            bound,
            f"numeric: mean gap within {centre:g} +- 0.5 percentage points of the score range",
            source,
        )
        for op, bound in ((">=", max(centre - 0.5, 0.0)), ("<=", centre + 0.5))
    ]


_SOURCE = (
    "Hill et al. (2017, KDD), hill climbing over D = 3 components of N = 8 variants; expected "
    "gaps from an independent NumPy simulation of that search (alpha2 = 2) by this project's "
    "authors, not a published number"
)
targets = [
    *_band("gap_S10_K5", 0.9, _SOURCE),
    *_band("gap_S5_K5", 3.0, _SOURCE),
    *_band("gap_S1_K5", 14.0, _SOURCE),
    *_band("gap_S10_K10", 0.3, _SOURCE),
]


def plot(results: Results, config: Config, out_dir: Path) -> list[Path]:
    """Mean gap (percent, +- s.e. over seeds) against K, one line per S."""
    out_dir = Path(out_dir)
    gap = 100.0 * np.asarray(results.gap, np.float64).mean(-1)  # [seeds, S, K]
    figure = Figure(figsize=(7.2, 4.0), layout="constrained")
    axes = figure.subplots()
    for i, s in enumerate(config.restarts):
        axes.errorbar(
            config.steps,
            gap[:, i].mean(0),
            yerr=standard_error(gap[:, i]),
            capsize=3,
            label=f"S = {s} restart{'s' if s > 1 else ''}",
        )
    axes.set(
        xlabel="K (single-component steps per restart)",
        ylabel="gap to the exact best layout (% of score range)",
        yscale="log",
        title=f"{config.world.space.num_layouts} layouts, interaction scale alpha2 = "
        f"{config.world.alpha2:g}, {gap.shape[0]} seeds x {config.num_worlds:,} worlds (± s.e.)",
    )
    axes.legend()
    path = out_dir / "search_gap.png"
    figure.savefig(path, dpi=120)
    return [path]
