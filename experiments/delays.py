"""Delayed feedback: naive, wait-for-matured and censored (DFM) training of probit Thompson.

World (:mod:`prime_science.sim.callout_world`, as in :mod:`experiments.cold_start`): items
with attributes and a probit click truth ``p(c, X)``; every hour ``impressions_per_hour``
requests, each shown ONE item among those available that day. A click, if it happens, is
*observed* only after an exponential delay ``D ~ Exp(mean d)`` (:func:`exponential_delays`,
:func:`sample_delays`; no attribution window: 30 days is beyond the horizon), for each
``d in mean_delays`` (1 h, 24 h, 72 h). Impressions of hour ``s`` are shown at time ``s``
(hours); the model is updated at the end of every hour.

Model and policy. One probit ADF model (prior as in ``cold_start``: ``probit_prior_scale``
times the world's block variances) and Thompson sampling (one weight draw per request, the
available item with the largest score) for every strategy; the strategies differ only in
WHEN each impression is fed to the model (once, never again: ADF cannot un-learn) and with
WHICH likelihood. At the end of hour ``h`` the model folds in the impressions of hour
``s = h + 1 - a`` for a fixed feed age ``a`` (their elapsed time is ``e = a``), labelled
with what has arrived by then (``click and D <= a``):

* ``naive``: ``a = feed_age`` (1 h), pending = negative: a standard probit ADF update with
  ``y = observed``. Its labels have mean ``p F(a)`` (SCIENCE §7 target 13).
* ``wait``: wait for matured data, ``a = m = min(ceil(wait_factor * d), horizon)`` (2 d),
  label = converted within ``m``; a standard update. Impressions never reach age ``m``
  within the horizon when ``m`` equals it; ``d = 72`` h needs ``m = 144`` h, so on the quick
  8-day horizon only the first two days' impressions are ever fed.
* ``censored``: ``a = feed_age`` (1 h) like naive, but a row without a click is read as a
  censored observation of the delayed feedback model (Chapelle 2014, SCIENCE §3.2) with
  the KNOWN delay rate ``lambda = 1 / d``: its likelihood is ``P(no click seen by e | w) =
  1 - Phi(s) F(e)`` (``s`` the probit score, ``F(e) = 1 - exp(-e / d)``), not ``1 - Phi(s)``.
  Since ``1 - Phi(s) F = (1 - F) Phi(s) + Phi(-s)``, the exact ADF projection of this
  likelihood is the moment-matched mixture ``q * (posterior after a click) + (1 - q) *
  (posterior after a non-click)`` with ``q = dfm_conversion_probability(logit p~, -log d,
  0, e) = p~ e^{-e/d} / (1 - p~ + p~ e^{-e/d})``, ``p~ = Phi(x^T mu / Sigma)`` the model's
  current predictive click probability of that row (evaluated event by event, inside the
  ADF scan): the fractional label of the DFM E-step, applied the only way ADF admits. Per
  weight: ``mean = q m+ + (1 - q) m-``, ``var = q v+ + (1 - q) v- + q (1 - q)(m+ - m-)^2``. A
  row with an observed click has ``q = 1`` (the delay density does not involve ``w``).
  With ``q in {0, 1}`` the step is exactly the library's ADF step, so all three strategies
  run through the same code.

Segments, click noise (``click = u < p``) and delays (``D = d E``, ``E ~ Exp(1)`` common to
every ``d``) use common random numbers across strategies and delays.

Metrics per delay ``d`` (hours) and strategy:

* ``regret_<strategy>_d<d>``: cumulative expected regret ``sum max_c p - p(shown)``;
* ``calibration_<strategy>_d<d>``: over the last day's impressions, sum of the model's
  predictive click probability of the shown item (before that hour's update) over the sum
  of the true ``p``: 1 = unbiased CTR estimate; naive should sit near ``F(feed_age)``;
* ``naive_ratio_d<d>_e<e>``: on the naive strategy's impressions with ``s + e <= horizon``,
  (clicks observed within ``e`` hours) / (sum of true ``p``): the naive CTR estimate of an
  impression of age ``e`` over the truth, which should be ``F(e)`` (target 13);
  ``naive_ratio_error_d<d>_e<e>`` is that minus ``F(e)``.

Quick scale, 5 seeds (CPU): the naive ratio matches ``F(e)`` within about 2 s.e. at every
``(d, e)`` (target 13); censored training removes most of the naive bias (last-day
calibration 1.03 / 1.20 / 1.10 vs naive 0.66 / 0.056 / 0.015 for d = 1 / 24 / 72 h) and has
less regret than naive at every delay (d = 72 h: 5,943 vs 6,147, gap -204 +- 109), but NOT
the lowest regret when delays are long: ``wait`` has less at d = 24 h (3,649 vs 5,415) and
d = 72 h (5,746 vs 5,943). With 1 h of watching per row and ``F(1 h) = 0.014`` at d = 72 h, a
censored row carries almost no information, and every click that lands after the feed is
lost for good (each impression is fed once).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr
from matplotlib.figure import Figure

from experiments._common import argmax_available, standard_error
from prime_science.bandits import features as ft
from prime_science.bandits.delayed import (
    dfm_conversion_probability,
    exponential_delays,
    sample_delays,
)
from prime_science.bandits.probit import ProbitState, _probit_moments, linear_scores, materialise
from prime_science.core.types import PRNGKey
from prime_science.runner import Target
from prime_science.sim.callout_world import (
    BLOCK_SCALES,
    CalloutWorldConfig,
    callout_feature_spec,
    click_probabilities,
    item_columns,
    make_callout_world,
)

__all__ = [
    "NAME",
    "STRATEGIES",
    "Config",
    "Results",
    "adf_step",
    "feed_ages",
    "run",
    "summarize",
    "targets",
    "plot",
]

NAME = "delays"
STRATEGIES = ("naive", "wait", "censored")


class Config(NamedTuple):
    """Static settings (hashable).

    Attributes:
      num_initial_items, new_items_per_day, num_days, hours_per_day, impressions_per_hour,
        prime_share: the world and traffic (as in ``cold_start``).
      mean_delays: mean click delays ``d`` (hours), one simulation each.
      feed_age: the age (hours) at which naive and censored feed an impression.
      wait_factor: ``wait`` feeds at ``m = min(ceil(wait_factor * d), horizon)``.
      bias_ages: elapsed times ``e`` (hours) of the naive-ratio metric.
      probit_prior_scale, intercept_prior_variance, probit_noise: the probit model.
    """

    num_initial_items: int = 500
    new_items_per_day: int = 10
    num_days: int = 8
    hours_per_day: int = 24
    impressions_per_hour: int = 100
    prime_share: float = 0.5
    mean_delays: tuple[float, ...] = (1.0, 24.0, 72.0)
    feed_age: int = 1
    wait_factor: float = 2.0
    bias_ages: tuple[int, ...] = (1, 6, 24)
    probit_prior_scale: float = 1.0
    intercept_prior_variance: float = 1.0
    probit_noise: float = 1.0

    @classmethod
    def quick(cls) -> Config:
        """500 + 10/day items, 8 days of 24 hourly batches of 100 impressions."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """2,000 + 20/day items, 14 days of 24 hourly batches of 200 impressions."""
        return cls(
            num_initial_items=2_000, new_items_per_day=20, num_days=14, impressions_per_hour=200
        )

    @property
    def world(self) -> CalloutWorldConfig:
        return CalloutWorldConfig(
            num_initial_items=self.num_initial_items,
            new_items_per_day=self.new_items_per_day,
            num_days=self.num_days - 1,
            prime_share=self.prime_share,
        )

    @property
    def num_hours(self) -> int:
        return self.num_days * self.hours_per_day


class Results(NamedTuple):
    """One seed.

    Attributes:
      oracle_value: ``float32[hours]`` summed best click probability per hour.
      regret: ``float32[delays, strategies, hours]`` summed expected regret per hour.
      predicted: ``float32[delays, strategies, hours]`` summed predictive click probability
        of the shown items (before the hour's update).
      value: ``float32[delays, strategies, hours]`` summed true ``p`` of the shown items.
      observed: ``float32[delays, ages]`` naive strategy: clicks observed within ``e`` of the
        impressions with ``s + e <= horizon``.
      truth: ``float32[delays, ages]`` the sum of their true ``p``.
    """

    oracle_value: jax.Array
    regret: jax.Array
    predicted: jax.Array
    value: jax.Array
    observed: jax.Array
    truth: jax.Array


def feed_ages(config: Config) -> np.ndarray:
    """``int[delays, strategies]``: the age (hours) at which each strategy feeds an impression."""
    ages = []
    for d in config.mean_delays:
        wait = min(math.ceil(config.wait_factor * d), config.num_hours)
        ages.append([config.feed_age, wait, config.feed_age])
    return np.asarray(ages, np.int32)


def _prior_variance(config: Config) -> np.ndarray:
    spec = callout_feature_spec(config.world)
    variance = np.full(spec.num_features, config.intercept_prior_variance, np.float32)
    for name, scale in BLOCK_SCALES.items():
        variance[spec.block_slices[name]] = config.probit_prior_scale * scale**2
    return variance


def _gather(table: jax.Array, ids: jax.Array) -> jax.Array:
    return jnp.where(ids >= 0, table[jnp.maximum(ids, 0)], 0.0)


def adf_step(
    state: ProbitState,
    ids: jax.Array,
    observed: jax.Array,
    elapsed: jax.Array,
    log_rate: jax.Array,
    censored: jax.Array,
    beta: float = 1.0,
) -> ProbitState:
    """One probit ADF event (binary features ``ids: int[K]``, ``-1`` = padding).

    ``observed``: a click was seen. ``censored`` False: the standard update with
    ``y = 2 observed - 1``. ``censored`` True: a row without a click is the censored DFM
    observation of the module docstring (mixture weight ``q`` from
    :func:`dfm_conversion_probability` with delay rate ``exp(log_rate)`` after ``elapsed``).
    """
    valid = ids >= 0
    x = valid.astype(state.mean.dtype)
    mean, variance = _gather(state.mean, ids), _gather(state.variance, ids)
    total_variance = beta**2 + jnp.sum(x * variance)
    scale = jnp.sqrt(total_variance)
    t = jnp.sum(mean) / scale

    def moments(y):
        v, lam = _probit_moments(y * t)
        new_mean = mean + y * x * (variance / scale) * v
        new_variance = variance * (1.0 - x * (variance / total_variance) * lam)
        return new_mean, jnp.maximum(new_variance, jnp.finfo(state.mean.dtype).tiny)

    (mean_pos, var_pos), (mean_neg, var_neg) = moments(1.0), moments(-1.0)
    logit_p = log_ndtr(t) - log_ndtr(-t)
    q_dfm = dfm_conversion_probability(logit_p, log_rate, observed.astype(t.dtype), elapsed)
    q = jnp.where(censored, q_dfm, observed.astype(t.dtype))
    new_mean = q * mean_pos + (1.0 - q) * mean_neg
    new_variance = q * var_pos + (1.0 - q) * var_neg + q * (1.0 - q) * (mean_pos - mean_neg) ** 2
    target = jnp.where(valid, ids, state.mean.shape[0])
    return ProbitState(
        mean=state.mean.at[target].set(new_mean, mode="drop"),
        variance=state.variance.at[target].set(new_variance, mode="drop"),
    )


def _predict(state: ProbitState, ids: jax.Array, beta: float) -> jax.Array:
    """``Phi(x^T mu / Sigma)`` of every row of ``ids[..., K]``."""
    variance = linear_scores(state.variance, ids)
    return jax.scipy.special.ndtr(linear_scores(state.mean, ids) / jnp.sqrt(beta**2 + variance))


class _Hour(NamedTuple):
    key: jax.Array
    hour: jax.Array  # int32[]
    day: jax.Array  # int32[]
    segments: jax.Array  # int32[R]
    best: jax.Array  # float32[2]


def _simulate(
    key, ids, probs, arrival_day, prior, segments, uniforms, delays, best, age, log_rate,
    censored, config,
):  # fmt: skip
    """One (delay, strategy): a ``lax.scan`` over hours; ``age`` (hours) the feed age."""
    beta = config.probit_noise
    num_hours, num_requests = segments.shape

    def thompson(key, state, segments, available):
        def one(inputs):
            key, segment = inputs
            noise = jax.random.normal(key, state.mean.shape, state.mean.dtype)
            weights = materialise(state.mean + jnp.sqrt(state.variance) * noise)
            return argmax_available(linear_scores(weights, ids[segment]), available)

        return jax.lax.map(one, (jax.random.split(key, segments.shape[0]), segments))

    def step(carry, hour: _Hour):
        state, shown_items = carry
        available = arrival_day <= hour.day
        items = thompson(hour.key, state, hour.segments, available)
        rows = ids[hour.segments, items]
        shown = probs[hour.segments, items]
        predicted = jnp.sum(_predict(state, rows, beta))
        shown_items = shown_items.at[hour.hour].set(items)
        # feed the impressions of hour s = h + 1 - age, elapsed e = age, once
        source = hour.hour + 1 - age
        fed = jnp.maximum(source, 0)
        fed_rows = ids[segments[fed], shown_items[fed]]
        fed_rows = jnp.where(source >= 0, fed_rows, -1)
        fed_p = probs[segments[fed], shown_items[fed]]
        seen = (uniforms[fed] < fed_p) & (delays[fed] <= age.astype(delays.dtype))
        elapsed = age.astype(jnp.float32)

        def event(state, inputs):
            row, obs = inputs
            return adf_step(state, row, obs, elapsed, log_rate, censored, beta), None

        state, _ = jax.lax.scan(event, state, (fed_rows, seen))
        trace = (jnp.sum(hour.best[hour.segments] - shown), predicted, jnp.sum(shown))
        return (state, shown_items), trace

    hours = jnp.arange(num_hours, dtype=jnp.int32)
    scanned = _Hour(
        jax.random.split(key, num_hours), hours, hours // config.hours_per_day, segments, best
    )
    carry = (prior, jnp.zeros((num_hours, num_requests), jnp.int32))
    (_, shown_items), traces = jax.lax.scan(step, carry, scanned)
    return shown_items, traces


def run(key: PRNGKey, config: Config) -> Results:
    """Simulate one world; every (delay, strategy) through it (pure, jittable, one seed)."""
    key_world, key_segments, key_clicks, key_delays, key_policy = jax.random.split(key, 5)
    world_config = config.world
    spec = callout_feature_spec(world_config)
    world = make_callout_world(key_world, world_config)
    columns = item_columns(world)
    ids = jnp.stack([ft.encode(spec, columns, context={"segment": s}) for s in (0, 1)])
    probs = jnp.stack([click_probabilities(world, spec, s) for s in (0, 1)])  # [2, items]

    shape = (config.num_hours, config.impressions_per_hour)
    segments = jax.random.bernoulli(key_segments, config.prime_share, shape).astype(jnp.int32)
    uniforms = jax.random.uniform(key_clicks, shape)
    unit_delays = sample_delays(key_delays, exponential_delays(1.0), math.prod(shape))
    unit_delays = unit_delays.reshape(shape)
    day = jnp.arange(config.num_hours, dtype=jnp.int32) // config.hours_per_day
    best_by_day = jax.vmap(
        lambda d: jnp.max(jnp.where(world.arrival_day <= d, probs, -jnp.inf), axis=1)
    )(jnp.arange(config.num_days, dtype=jnp.int32))
    best = best_by_day[day]  # [hours, 2]
    oracle_value = jnp.sum(jnp.take_along_axis(best, segments, axis=1), axis=1)

    variance0 = jnp.asarray(_prior_variance(config))
    prior = ProbitState(mean=jnp.zeros_like(variance0), variance=variance0)
    delays_hours = jnp.asarray(config.mean_delays, jnp.float32)
    num_delays, num_strategies = len(config.mean_delays), len(STRATEGIES)
    ages = jnp.asarray(feed_ages(config))  # [D, S]
    log_rates = jnp.broadcast_to(-jnp.log(delays_hours)[:, None], ages.shape)
    censored = jnp.broadcast_to(
        jnp.asarray([name == "censored" for name in STRATEGIES]), ages.shape
    )
    scale = jnp.broadcast_to(delays_hours[:, None], ages.shape)
    # common random numbers: the same policy key for every (delay, strategy)

    def simulate(age, log_rate, is_censored, mean_delay):
        return _simulate(
            key_policy,
            ids,
            probs,
            world.arrival_day,
            prior,
            segments,
            uniforms,
            mean_delay * unit_delays,
            best,
            age,
            log_rate,
            is_censored,
            config,
        )

    flat = [x.reshape(-1) for x in (ages, log_rates, censored, scale)]
    shown_items, (regret, predicted, value) = jax.vmap(simulate)(*flat)
    regret, predicted, value = (
        x.reshape(num_delays, num_strategies, config.num_hours) for x in (regret, predicted, value)
    )

    # naive strategy's impressions: observed share within e vs truth
    naive = STRATEGIES.index("naive")
    items = shown_items.reshape(num_delays, num_strategies, *shape)[:, naive]  # [D, H, R]
    shown_p = probs[segments[None], items]  # [D, H, R]
    clicked = uniforms[None] < shown_p
    hours = jnp.arange(config.num_hours)[None, :, None]
    observed, truth = [], []
    for e in config.bias_ages:
        old_enough = hours + e <= config.num_hours
        seen = clicked & (delays_hours[:, None, None] * unit_delays[None] <= e) & old_enough
        observed.append(jnp.sum(seen, axis=(1, 2)).astype(jnp.float32))
        truth.append(jnp.sum(jnp.where(old_enough, shown_p, 0.0), axis=(1, 2)))
    return Results(
        oracle_value,
        regret,
        predicted,
        value,
        jnp.stack(observed, axis=1),
        jnp.stack(truth, axis=1),
    )


def summarize(results: Results, config: Config) -> dict[str, float]:
    """Scalar metrics of one seed (module docstring)."""
    metrics: dict[str, float] = {}
    last_day = slice(config.num_hours - config.hours_per_day, config.num_hours)
    for i, d in enumerate(config.mean_delays):
        tag = f"d{d:g}"
        for j, name in enumerate(STRATEGIES):
            metrics[f"regret_{name}_{tag}"] = float(np.sum(results.regret[i, j], dtype=np.float64))
            predicted = float(np.sum(results.predicted[i, j, last_day], dtype=np.float64))
            value = float(np.sum(results.value[i, j, last_day], dtype=np.float64))
            metrics[f"calibration_{name}_{tag}"] = predicted / value
        for k, e in enumerate(config.bias_ages):
            ratio = float(results.observed[i, k] / results.truth[i, k])
            metrics[f"naive_ratio_{tag}_e{e}"] = ratio
            metrics[f"naive_ratio_error_{tag}_e{e}"] = ratio + math.expm1(-e / d)
        metrics[f"regret_gap_censored_naive_{tag}"] = (
            metrics[f"regret_censored_{tag}"] - metrics[f"regret_naive_{tag}"]
        )
    return metrics


targets = [
    Target(
        "naive_ratio_error_d24_e1",
        "<",
        0.1,
        "numeric: the naive CTR estimate (pending = negative) of impressions 1 h old, over the "
        "true p, is at most F(1 h) + 0.1 for mean delay 24 h (upper side of +-0.1)",
        "SCIENCE.md 7 target 13; issue (delays)",
    ),
    Target(
        "naive_ratio_error_d24_e1",
        ">",
        -0.1,
        "numeric: ... and at least F(1 h) - 0.1 (lower side of +-0.1)",
        "SCIENCE.md 7 target 13; issue (delays)",
    ),
    Target(
        "regret_gap_censored_naive_d72",
        "<",
        0.0,
        "directional: with 72 h mean delays, censored (DFM) training has less cumulative regret "
        "than naive training",
        "issue (delays); SCIENCE.md 3.2",
    ),
]


def plot(results: Results, config: Config, out_dir: Path) -> list[Path]:
    """Cumulative regret per strategy per delay (bars, mean +- s.e.); naive ratio vs F(e)."""
    out_dir = Path(out_dir)
    seeds = results.oracle_value.shape[0]
    regret = np.asarray(results.regret, np.float64).sum(-1)  # [seeds, D, S]
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / len(STRATEGIES)
    positions = np.arange(len(config.mean_delays))
    for j, name in enumerate(STRATEGIES):
        axes.bar(
            positions + (j - 1) * width,
            regret[:, :, j].mean(0),
            width,
            yerr=standard_error(regret[:, :, j]),
            capsize=3,
            label=name,
        )
    axes.set_xticks(positions, [f"{d:g} h" for d in config.mean_delays])
    axes.set(
        xlabel="mean click delay",
        ylabel="cumulative regret (expected clicks)",
        title=f"{config.num_days} days, {seeds} seeds (± s.e.)",
    )
    axes.legend()
    regret_path = out_dir / "regret.png"
    figure.savefig(regret_path, dpi=120)

    ratio = np.asarray(results.observed, np.float64) / np.asarray(results.truth, np.float64)
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.subplots()
    grid = np.linspace(0.0, max(config.bias_ages) * 1.1, 200)
    for i, d in enumerate(config.mean_delays):
        (line,) = axes.plot(grid, -np.expm1(-grid / d), label=f"F(e), d = {d:g} h")
        axes.errorbar(
            config.bias_ages,
            ratio[:, i].mean(0),
            yerr=standard_error(ratio[:, i]),
            fmt="o",
            color=line.get_color(),
            capsize=3,
        )
    axes.set(
        xlabel="elapsed time e (hours)",
        ylabel="naive observed CTR / true p",
        title=f"naive bias vs F(e) (dots: {seeds} seeds ± s.e.)",
    )
    axes.legend()
    bias_path = out_dir / "naive_bias.png"
    figure.savefig(bias_path, dpi=120)
    return [regret_path, bias_path]
