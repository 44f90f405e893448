"""Helpers shared by the experiment modules (not an experiment: not listed in ``EXPERIMENTS``)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.bandits import features as ft
from prime_science.sim.callout_world import (
    BLOCK_SCALES,
    CalloutWorldConfig,
    callout_feature_spec,
    click_probabilities,
    item_columns,
    make_callout_world,
)

__all__ = [
    "standard_error",
    "plot_mean_bands",
    "CalloutTraffic",
    "callout_traffic",
    "world_config",
    "block_prior_variance",
    "segment_choices",
]


def standard_error(values: np.ndarray) -> np.ndarray:
    """Standard error over the leading (seed) axis, ``sd (ddof=1) / sqrt(seeds)``; zero for a
    single seed."""
    if values.shape[0] < 2:
        return np.zeros(values.shape[1:])
    return values.std(0, ddof=1) / np.sqrt(values.shape[0])


def plot_mean_bands(axes, x: np.ndarray, curves: dict[str, np.ndarray]) -> None:
    """One line per name: the mean over seeds of ``curves[name]`` (``[seeds, len(x)]``) with a
    +-1 s.e. band."""
    for name, values in curves.items():
        mean, se = values.mean(0), standard_error(values)
        axes.plot(x, mean, label=name)
        axes.fill_between(x, mean - se, mean + se, alpha=0.25)


class CalloutTraffic(NamedTuple):
    """A callout world and its hourly requests, shared by every policy of a seed (common
    random numbers).

    Attributes:
      ids: ``int32[2, items, K]`` active feature ids of each item for segment 0 / 1.
      probs: ``float32[2, items]`` true click probabilities.
      arrival_day: ``int32[items]`` the day each item becomes available.
      segments: ``int32[hours, requests]`` the segment of every request (1 = Prime).
      uniforms: ``float32[hours, requests]`` click noise: a shown item is clicked iff
        ``uniform < p``.
      best: ``float32[hours, 2]`` the best available click probability per segment.
      oracle_value: ``float32[hours]`` the oracle's summed click probability.
    """

    ids: jax.Array
    probs: jax.Array
    arrival_day: jax.Array
    segments: jax.Array
    uniforms: jax.Array
    best: jax.Array
    oracle_value: jax.Array


def callout_traffic(
    keys: tuple[jax.Array, jax.Array, jax.Array],
    world: CalloutWorldConfig,
    num_days: int,
    hours_per_day: int,
    impressions_per_hour: int,
    prime_share: float,
) -> CalloutTraffic:
    """Draw the world (``keys[0]``), the segments (``keys[1]``) and the click noise
    (``keys[2]``) of ``num_days`` days of ``hours_per_day`` hours of ``impressions_per_hour``
    requests."""
    key_world, key_segments, key_clicks = keys
    spec = callout_feature_spec(world)
    items = make_callout_world(key_world, world)
    columns = item_columns(items)
    ids = jnp.stack([ft.encode(spec, columns, context={"segment": s}) for s in (0, 1)])
    probs = jnp.stack([click_probabilities(items, spec, s) for s in (0, 1)])
    shape = (num_days * hours_per_day, impressions_per_hour)
    segments = jax.random.bernoulli(key_segments, prime_share, shape).astype(jnp.int32)
    uniforms = jax.random.uniform(key_clicks, shape)
    day = jnp.arange(shape[0], dtype=jnp.int32) // hours_per_day
    best_by_day = jax.vmap(
        lambda d: jnp.max(jnp.where(items.arrival_day <= d, probs, -jnp.inf), axis=1)
    )(jnp.arange(num_days, dtype=jnp.int32))  # [days, 2]
    best = best_by_day[day]
    oracle_value = jnp.sum(jnp.take_along_axis(best, segments, axis=1), axis=1)
    return CalloutTraffic(ids, probs, items.arrival_day, segments, uniforms, best, oracle_value)


def block_prior_variance(
    world: CalloutWorldConfig, scale: float, intercept_variance: float
) -> np.ndarray:
    """``float32[num_features]``: ``scale * s_block^2`` for every block of
    :data:`BLOCK_SCALES` (the world's weight scales: the prior an empirical-Bayes step would
    aim at, Nabi et al. 2022), ``intercept_variance`` for the intercept."""
    spec = callout_feature_spec(world)
    variance = np.full(spec.num_features, intercept_variance, np.float32)
    for name, block_scale in BLOCK_SCALES.items():
        variance[spec.block_slices[name]] = scale * block_scale**2
    return variance


def segment_choices(sample_fn, key, state, ids, segments, available, batch_size=None):
    """One item per request: request ``j`` (key ``jax.random.split(key, R)[j]``) shows
    ``sample_fn(key_j, state, ids[segments[j]], 1, available).arms[0]``, the policy's choice
    among the available items as seen by the request's segment (``ids: int32[2, items, K]``).

    ``sample_fn`` is a click model's ``sample`` (:class:`~prime_science.core.types.ClickPolicy`);
    requests run ``batch_size`` at a time (``lax.map``; ``None``: one at a time).
    """

    def one(inputs):
        request_key, segment = inputs
        return sample_fn(request_key, state, ids[segment], 1, available).arms[0]

    keys = jax.random.split(key, segments.shape[0])
    return jax.lax.map(one, (keys, segments), batch_size=batch_size)


def world_config(config, last_arrival_day: int) -> CalloutWorldConfig:
    """The callout world of an experiment ``config`` (with ``num_initial_items``,
    ``new_items_per_day`` and ``prime_share``) whose last items arrive on
    ``last_arrival_day``."""
    return CalloutWorldConfig(
        num_initial_items=config.num_initial_items,
        new_items_per_day=config.new_items_per_day,
        num_days=last_arrival_day,
        prime_share=config.prime_share,
    )
