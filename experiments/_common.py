"""Helpers shared by the experiment modules (not an experiment: not registered)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.core.random import top_k_with_ids

__all__ = ["standard_error", "argmax_available", "plot_mean_bands"]


def standard_error(values: np.ndarray) -> np.ndarray:
    """Standard error over the leading (seed) axis, ``sd (ddof=1) / sqrt(seeds)``; zero for a
    single seed."""
    if values.shape[0] < 2:
        return np.zeros(values.shape[1:])
    return values.std(0, ddof=1) / np.sqrt(values.shape[0])


def argmax_available(scores: jax.Array, available: jax.Array) -> jax.Array:
    """The available row with the largest score (ties: the lowest row)."""
    rows = jnp.arange(scores.shape[0], dtype=jnp.int32)
    return top_k_with_ids(jnp.where(available, scores, -jnp.inf), rows, 1)[1][0]


def plot_mean_bands(axes, x: np.ndarray, curves: dict[str, np.ndarray]) -> None:
    """One line per name: the mean over seeds of ``curves[name]`` (``[seeds, len(x)]``) with a
    +-1 s.e. band."""
    for name, values in curves.items():
        mean, se = values.mean(0), standard_error(values)
        axes.plot(x, mean, label=name)
        axes.fill_between(x, mean - se, mean + se, alpha=0.25)
