"""Delayed feedback (Chapelle 2014; Vernade et al. 2020): four ways to train on late clicks.

Naive, wait-for-matured, censored-likelihood (the delayed feedback model, DFM) and OTFLinUCB
training, the first three under probit Thompson sampling.

World (:mod:`prime_science.sim.callout_world`, as in :mod:`experiments.cold_start`): items
with attributes and a probit click truth ``p(c, X)``; every hour ``impressions_per_hour``
requests, each shown ONE item among those available that day. A click, if it happens, is
*observed* only after an exponential delay ``D ~ Exp(mean d)`` (:func:`exponential_delays`,
:func:`sample_delays`), for each ``d in mean_delays`` (1 h, 24 h, 72 h). Impressions of hour
``s`` are shown at time ``s`` (hours); models are updated at the end of every hour, when the
impressions of hour ``s`` are ``e = h + 1 - s`` hours old.

Three strategies share one probit ADF model (prior as in ``cold_start``: ``probit_prior_scale``
times the world's block variances) and Thompson sampling (one weight draw per request, the
available item with the largest score); they differ in WHEN an impression is looked at and
with WHICH likelihood. Every look is :func:`prime_science.bandits.delayed.look_step`, one ADF
step of :func:`prime_science.bandits.probit.adf_factor_update` (Gauss–Hermite moment matching; for
a plain click or non-click it equals the closed-form probit step, tested); an impression id
is never counted twice:

* ``naive``: looked at when ``checkpoints[0]`` (1 h) old with ``y = clicked and D <= 1 h``
  (pending = negative); at each later checkpoint (6 h, 24 h, 72 h, 168 h), a click that
  arrived since the previous look is fed as a positive (the correction when the label
  arrives; the earlier negative cannot be taken back by ADF). Its first-look labels have
  mean ``p F(e)``, ``F`` the delay CDF (derived from the delay model).
* ``wait``: wait for matured data: one look at ``m = min(ceil(wait_factor * d), horizon)``
  (``wait_factor = 2``), ``y = clicked and D <= m``.
* ``censored``: the delayed feedback model (Chapelle 2014, KDD) with the probit
  ``p = Phi(s / beta)``: at each checkpoint the impression's likelihood gains the factor of
  :func:`prime_science.bandits.delayed.dfm_probit_log_ratio` (``(1 - p F(now)) / (1 - p
  F(before))`` while nothing is seen, ``p / (1 - p F(before))`` when the click arrives), so
  after the looks the model holds the DFM likelihood of all it has seen (re-processing an
  impression when its label changes). The delay rate is FITTED: at the start
  of every day ``k >= 1``, :func:`prime_science.bandits.delayed.fit_dfm` fits it jointly with
  a conversion probability per segment on every impression shown so far (labels and
  censoring times as seen then), as a MAP with a log-normal prior on the rate centred on the
  guess ``initial_mean_delay`` (12 h; s.d. ``delay_prior_sd = 1`` in log rate), which is also
  the rate of day 0. Without the prior the early fits swung from 6 h to 509 h for a true
  72 h (one or two days of data barely identify a long delay), and the resulting DFM
  factors left the final CTR estimate at 0.55 to 3.9 times the truth across 5 seeds. Each
  look's ratio uses the rate of the impression's previous look in its denominator, so the
  product telescopes even though the rate changes from day to day.
* ``otf``: the windowed estimator of Vernade et al. 2020 (ICML) as a baseline, with
  one-hot (segment, item) arms (the K-armed case: ``V`` is diagonal, ``V = lambda I +
  diag(n)``), window ``m`` as ``wait``: ``theta_i = b_i / (lambda + n_i)``, ``b_i`` = clicks
  seen within ``min(m, t - s)``; OTFLinUCB index ``theta_i + alpha (f_t + bias_t) /
  sqrt(lambda + n_i)``, ``f_t = sqrt(2 log(1/delta) + d log((d lambda + t) / (d lambda)))``,
  ``bias_t`` = the sum of ``1 / (lambda + n)`` over the arms of the impressions of the last
  ``m`` hours (squared norms, as the authors' public code), ``alpha = 0.001`` (that code's
  default, 0.01, made the width dominate every index over the whole quick horizon, about 1,100
  arms: regret identical at every delay in a 2-day trial, i.e. no learning). No attributes:
  it cold-starts every item, like independent TS in ``cold_start``.

Segments, click noise (``click = u < p``) and delays (``D = d E``, ``E ~ Exp(1)`` common to
every ``d``) use common random numbers across strategies and delays.

Metrics per delay ``d`` (hours) and strategy:

* ``regret_<strategy>_d<d>``: cumulative expected regret ``sum max_c p - p(shown)``;
* ``calibration_<strategy>_d<d>``: over the last day's impressions, the model's predicted
  click probability of the shown item (before that hour's update) summed, over the sum of
  the true ``p``: 1 = unbiased; ``otf`` predicts ``tau_m p`` by design;
* ``naive_ratio_d<d>_e<e>``: on the naive strategy's impressions with ``s + e <= horizon``,
  (clicks observed within ``e`` hours) / (sum of true ``p``): the naive CTR estimate of an
  impression of age ``e`` over the truth, which should be ``F(e)``;
  ``naive_ratio_error_d<d>_e<e>`` is that minus ``F(e)``;
* ``final_calibration_<strategy>_d<d>``: the final model's predicted click probability of
  every impression the strategy made, summed, over the sum of their true ``p``: the CTR
  estimate at the end, free of the winner's curse of ``calibration`` (Thompson sampling shows
  items whose draws were high); ``bias_removed_d<d>`` is ``1 - |final_calibration_censored -
  1| / |final_calibration_naive - 1|``;
* ``fitted_mean_delay_d<d>``: ``1 / lambda`` of the censored strategy's last fit (hours).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr
from matplotlib.figure import Figure

from experiments._common import (
    CalloutTraffic,
    block_prior_variance,
    callout_traffic,
    segment_choices,
    standard_error,
    world_config,
)
from prime_science.bandits import selection
from prime_science.bandits.delayed import (
    exponential_delays,
    fit_dfm,
    look_step,
    sample_delays,
)
from prime_science.bandits.probit import ProbitState, probit_adf
from prime_science.bandits.scoring import linear_scores
from prime_science.core.experiment import Target
from prime_science.core.types import PRNGKey
from prime_science.sim.callout_world import CalloutWorldConfig

__all__ = [
    "NAME",
    "STRATEGIES",
    "STRATEGY_LABELS",
    "METRIC_LABELS",
    "NA_REASONS",
    "DATASETS",
    "Config",
    "Results",
    "look_ages",
    "run",
    "summarize",
    "targets",
    "plot",
]

NAME = "delays"
STRATEGIES = ("naive", "wait", "censored", "otf")
_PROBIT = ("naive", "wait", "censored")  # the strategies over the probit model
STRATEGY_LABELS = {
    "naive": "naive (pending = negative)",
    "wait": "wait for matured data",
    "censored": "censored likelihood (DFM)",
    "otf": "OTFLinUCB (windowed)",
}
"""Each strategy in words, for the report and the plots."""
DATASETS: tuple[str, ...] = ()
"""Packaged data sets the experiment reads: none (simulated world)."""


class Config(NamedTuple):
    """Static settings (hashable).

    Attributes:
      num_initial_items, new_items_per_day, num_days, hours_per_day, impressions_per_hour,
        prime_share: the world and traffic (as in ``cold_start``).
      mean_delays: mean click delays ``d`` (hours), one simulation each.
      checkpoints: increasing ages (hours) at which ``naive`` and ``censored`` look at an
        impression; the last one is their attribution window.
      wait_factor: ``wait`` (and ``otf``'s window) uses ``m = min(ceil(wait_factor * d),
        horizon)``.
      initial_mean_delay: ``censored``'s delay guess (hours) before its first fit, and the
        centre of the prior of its fits.
      delay_prior_sd: s.d. of the log-normal prior of the fitted delay rate.
      dfm_iters: L-BFGS iterations of each daily ``fit_dfm``.
      otf_regularization, otf_alpha, otf_delta: ``lambda``, ``alpha``, ``delta`` of ``otf``.
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
    checkpoints: tuple[int, ...] = (1, 6, 24, 72, 168)
    wait_factor: float = 2.0
    initial_mean_delay: float = 12.0
    delay_prior_sd: float = 1.0
    dfm_iters: int = 100
    otf_regularization: float = 1.0
    otf_alpha: float = 0.001
    otf_delta: float = 0.05
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
        """The world: its last arrivals land on day ``num_days - 1``, inside the horizon."""
        return world_config(self, self.num_days - 1)

    @property
    def num_hours(self) -> int:
        return self.num_days * self.hours_per_day


class Results(NamedTuple):
    """One seed.

    Attributes:
      oracle_value: ``float32[hours]`` summed best click probability per hour.
      regret: ``float32[delays, strategies, hours]`` summed expected regret per hour.
      predicted: ``float32[delays, strategies, hours]`` summed predicted click probability
        of the shown items (before the hour's update).
      value: ``float32[delays, strategies, hours]`` summed true ``p`` of the shown items.
      observed: ``float32[delays, ages]`` naive strategy: clicks observed within ``e`` of the
        impressions with ``s + e <= horizon``.
      truth: ``float32[delays, ages]`` the sum of their true ``p``.
      fitted_mean_delay: ``float32[delays, days]`` ``censored``'s delay estimate used on each
        day (day 0: the guess).
      final_predicted: ``float32[delays, strategies]`` the final model's predicted click
        probability summed over every impression the strategy made (``otf``: its final
        ``theta``, which estimates ``tau_m p``).
    """

    oracle_value: jax.Array
    regret: jax.Array
    predicted: jax.Array
    value: jax.Array
    observed: jax.Array
    truth: jax.Array
    fitted_mean_delay: jax.Array
    final_predicted: jax.Array


def _window(config: Config, mean_delay: float) -> int:
    return min(math.ceil(config.wait_factor * mean_delay), config.num_hours)


def look_ages(config: Config) -> np.ndarray:
    """``int[delays, 3, looks]``: the ages (hours) at which ``naive``, ``wait`` and
    ``censored`` look at an impression; ``0`` pads unused looks."""
    looks = len(config.checkpoints)
    ages = []
    for d in config.mean_delays:
        wait = [_window(config, d)] + [0] * (looks - 1)
        ages.append([list(config.checkpoints), wait, list(config.checkpoints)])
    return np.asarray(ages, np.int32)


def _predict(state: ProbitState, ids: jax.Array, beta: float) -> jax.Array:
    """``Phi(x^T mu / Sigma)`` of every row of ``ids[..., K]``."""
    variance = linear_scores(state.variance, ids)
    return ndtr(linear_scores(state.mean, ids) / jnp.sqrt(beta**2 + variance))


def _shown_stats(world: CalloutTraffic, shown: jax.Array):
    """``(p, clicked)`` of the impressions ``shown: int32[H, R]``."""
    p = world.probs[world.segments, shown]
    return p, world.uniforms < p


def _fit_log_rate(world, shown, delays, now, iters, log_rate_prior):
    """``log lambda`` of the DFM fitted on the impressions of hours ``< now`` (as seen then),
    jointly with a conversion probability per segment (pooled over items: the delay law does
    not depend on the item, and per-item probabilities of rarely shown items would trade off
    against the rate; with a probability per (segment, item) the fit put the mean delay at
    302 h for a true 24 h after one day)."""
    _, clicked = _shown_stats(world, shown)
    hours = jnp.arange(shown.shape[0], dtype=jnp.float32)[:, None]
    elapsed = jnp.broadcast_to(now - hours, shown.shape)
    seen = clicked & (delays <= elapsed)
    params, _ = fit_dfm(
        seen.ravel().astype(jnp.float32),
        jnp.where(seen, delays, jnp.maximum(elapsed, 0.0)).ravel(),
        world.segments.ravel(),
        2,
        (elapsed > 0).ravel().astype(jnp.float32),
        log_rate_prior=log_rate_prior,
        max_iters=iters,
    )
    return params.log_rate.reshape(-1)[0]


def _simulate_probit(key, world, prior, delays, ages, censored, config):
    """One (delay, probit strategy): days of hours, a ``lax.scan`` each; ``ages: int32[J]``."""
    beta = config.probit_noise
    num_hours, num_requests = world.segments.shape
    before_ages = jnp.concatenate([jnp.zeros(1, ages.dtype), ages[:-1]])

    def look(state, shown, looked_rate, hour, log_rate, first, before, now):
        """Every impression of hour ``hour + 1 - now`` (if any), looked at ``now`` hours old;
        ``looked_rate[s]`` is the log delay rate of the last look at hour ``s``'s impressions."""
        source = hour + 1 - now.astype(jnp.int32)
        fed = jnp.maximum(source, 0)
        previous = jnp.where(first, log_rate, looked_rate[fed])
        segments, items = world.segments[fed], shown[fed]
        rows = jnp.where((now > 0) & (source >= 0), world.ids[segments, items], -1)
        clicked = world.uniforms[fed] < world.probs[segments, items]
        seen_now = clicked & (delays[fed] <= now)
        seen_before = clicked & (delays[fed] <= before)

        def event(state, row):
            ids, now_seen, before_seen = row
            args = (first, before_seen, now_seen, before, now, log_rate, previous, censored, beta)
            return look_step(state, ids, *args), None

        state = jax.lax.scan(event, state, (rows, seen_now, seen_before))[0]
        looked_rate = looked_rate.at[source].set(log_rate, mode="drop")
        return state, looked_rate

    def hour_step(carry, inputs):
        state, shown, looked_rate, log_rate = carry
        key, hour = inputs
        day = hour // config.hours_per_day
        segments = world.segments[hour]
        thompson = probit_adf(state.mean.shape[0]).sample  # the rule reads only the state
        items = segment_choices(thompson, key, state, world.ids, segments, world.arrival_day <= day)
        value = world.probs[segments, items]
        predicted = jnp.sum(_predict(state, world.ids[segments, items], beta))
        shown = shown.at[hour].set(items)
        for j in range(ages.shape[0]):  # static: the looks at increasing ages
            now, before = ages[j].astype(jnp.float32), before_ages[j].astype(jnp.float32)
            first = jnp.bool_(j == 0)
            state, looked_rate = look(state, shown, looked_rate, hour, log_rate, first, before, now)
        trace = (jnp.sum(world.best[hour][segments] - value), predicted, jnp.sum(value))
        return (state, shown, looked_rate, log_rate), trace

    def day_step(carry, day):
        state, shown, looked_rate, log_rate = carry
        now = (day * config.hours_per_day).astype(jnp.float32)
        prior = (-math.log(config.initial_mean_delay), config.delay_prior_sd)
        fitted = _fit_log_rate(world, shown, delays, now, config.dfm_iters, prior)
        log_rate = jnp.where(day > 0, fitted, log_rate)
        hours = day * config.hours_per_day + jnp.arange(config.hours_per_day, dtype=jnp.int32)
        keys = jax.vmap(lambda h: jax.random.fold_in(key, h))(hours)
        carry = (state, shown, looked_rate, log_rate)
        carry, traces = jax.lax.scan(hour_step, carry, (keys, hours))
        return carry, (traces, log_rate)

    log_rate0 = jnp.float32(-math.log(config.initial_mean_delay))
    shown = jnp.zeros((num_hours, num_requests), jnp.int32)
    carry = (prior, shown, jnp.full(num_hours, log_rate0), log_rate0)
    days = jnp.arange(config.num_days, dtype=jnp.int32)
    (state, shown, _, _), (traces, log_rates) = jax.lax.scan(day_step, carry, days)
    traces = tuple(x.reshape(num_hours) for x in traces)
    rows = world.ids[world.segments, shown]  # [H, R, K]
    final_predicted = jnp.sum(_predict(state, rows, beta))
    return shown, traces, jnp.exp(-log_rates), final_predicted


def _simulate_otf(world, delays, window, config):
    """OTFLinUCB with one-hot (segment, item) arms (module docstring)."""
    num_hours, num_requests = world.segments.shape
    num_items = world.probs.shape[1]
    num_arms = 2 * num_items
    lam, alpha = config.otf_regularization, config.otf_alpha
    hours_axis = jnp.arange(num_hours, dtype=jnp.float32)[:, None]

    def step(carry, hour):
        counts, shown = carry
        day = hour // config.hours_per_day
        now = (hour).astype(jnp.float32)  # statistics of the impressions of hours < hour
        _, clicked_all = _shown_stats(world, shown)
        arms_all = world.segments * num_items + shown
        shown_before = hours_axis < now
        age = now - hours_axis
        seen = clicked_all & (delays <= jnp.minimum(window, age)) & shown_before
        moment = jnp.zeros(num_arms).at[arms_all.ravel()].add(seen.ravel().astype(jnp.float32))
        theta = moment / (lam + counts)
        recent = shown_before & (age <= window)
        bias = jnp.sum(jnp.where(recent, 1.0 / (lam + counts[arms_all]), 0.0))
        t = jnp.sum(counts)
        f = jnp.sqrt(
            2.0 * math.log(1.0 / config.otf_delta)
            + num_arms * jnp.log((num_arms * lam + t) / (num_arms * lam))
        )
        index = theta + alpha * (f + bias) / jnp.sqrt(lam + counts)
        segments = world.segments[hour]
        available = world.arrival_day <= day
        table = index.reshape(2, num_items)
        items = jax.vmap(lambda s: selection.top_k(table[s], 1, available).arms[0])(segments)
        value = world.probs[segments, items]
        predicted = jnp.sum(theta.reshape(2, num_items)[segments, items])
        counts = counts.at[segments * num_items + items].add(1.0)
        shown = shown.at[hour].set(items)
        return (counts, shown), (
            jnp.sum(world.best[hour][segments] - value),
            predicted,
            jnp.sum(value),
        )

    carry = (jnp.zeros(num_arms), jnp.zeros((num_hours, num_requests), jnp.int32))
    (counts, shown), traces = jax.lax.scan(step, carry, jnp.arange(num_hours, dtype=jnp.int32))
    _, clicked = _shown_stats(world, shown)
    arms = world.segments * num_items + shown
    seen = clicked & (delays <= jnp.minimum(window, num_hours - jnp.arange(num_hours)[:, None]))
    moment = jnp.zeros(num_arms).at[arms.ravel()].add(seen.ravel().astype(jnp.float32))
    final_predicted = jnp.sum((moment / (lam + counts))[arms])
    return traces, final_predicted


def run(key: PRNGKey, config: Config) -> Results:
    """Simulate one world; every (delay, strategy) through it (pure, jittable, one seed)."""
    key_world, key_segments, key_clicks, key_delays, key_policy = jax.random.split(key, 5)
    shared = callout_traffic(
        (key_world, key_segments, key_clicks),
        config.world,
        config.num_days,
        config.hours_per_day,
        config.impressions_per_hour,
        config.prime_share,
    )
    segments, uniforms, probs = shared.segments, shared.uniforms, shared.probs
    shape = segments.shape
    unit_delays = sample_delays(key_delays, exponential_delays(1.0), math.prod(shape))
    unit_delays = unit_delays.reshape(shape)
    variance0 = jnp.asarray(
        block_prior_variance(
            config.world, config.probit_prior_scale, config.intercept_prior_variance
        )
    )
    prior = ProbitState(mean=jnp.zeros_like(variance0), variance=variance0)
    delays_hours = jnp.asarray(config.mean_delays, jnp.float32)
    num_delays = len(config.mean_delays)
    ages = jnp.asarray(look_ages(config))  # [D, 3, J]
    censored = jnp.broadcast_to(jnp.asarray([n == "censored" for n in _PROBIT]), ages.shape[:2])
    scale = jnp.broadcast_to(delays_hours[:, None], ages.shape[:2])

    def simulate(look, is_censored, mean_delay):
        # common random numbers: the same policy key for every (delay, strategy)
        return _simulate_probit(
            key_policy, shared, prior, mean_delay * unit_delays, look, is_censored, config
        )

    flat = (ages.reshape(-1, ages.shape[-1]), censored.reshape(-1), scale.reshape(-1))
    shown_items, probit_traces, mean_delays, probit_final = jax.vmap(simulate)(*flat)
    windows = jnp.asarray([_window(config, d) for d in config.mean_delays], jnp.float32)
    otf_traces, otf_final = jax.vmap(
        lambda mean_delay, window: _simulate_otf(shared, mean_delay * unit_delays, window, config)
    )(delays_hours, windows)
    final_predicted = jnp.concatenate(
        [probit_final.reshape(num_delays, len(_PROBIT)), otf_final[:, None]], axis=1
    )
    regret, predicted, value = (
        jnp.concatenate([p.reshape(num_delays, len(_PROBIT), -1), o[:, None]], axis=1)
        for p, o in zip(probit_traces, otf_traces, strict=True)
    )
    censored_index = _PROBIT.index("censored")
    fitted = mean_delays.reshape(num_delays, len(_PROBIT), -1)[:, censored_index]

    # naive strategy's impressions: observed share within e vs truth
    naive = _PROBIT.index("naive")
    items = shown_items.reshape(num_delays, len(_PROBIT), *shape)[:, naive]  # [D, H, R]
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
        shared.oracle_value,
        regret,
        predicted,
        value,
        jnp.stack(observed, axis=1),
        jnp.stack(truth, axis=1),
        fitted,
        final_predicted,
    )


def summarize(results: Results, config: Config) -> dict[str, float]:
    """Scalar metrics of one seed (module docstring), plus per delay:
    ``regret_gap_censored_naive``, ``regret_gap_censored_best_other`` (censored minus the
    best of the other strategies: < 0 when censored has the lowest regret) and
    ``bias_removed`` (``1 - |final_calibration_censored - 1| / |final_calibration_naive -
    1|``: the share of the naive CTR bias that censored training removes)."""
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
        regret = {name: metrics[f"regret_{name}_{tag}"] for name in STRATEGIES}
        metrics[f"regret_gap_censored_naive_{tag}"] = regret["censored"] - regret["naive"]
        metrics[f"regret_gap_censored_best_other_{tag}"] = regret["censored"] - min(
            value for name, value in regret.items() if name != "censored"
        )
        for j, name in enumerate(STRATEGIES):
            metrics[f"final_calibration_{name}_{tag}"] = float(
                results.final_predicted[i, j] / np.sum(results.value[i, j], dtype=np.float64)
            )
        naive_bias = abs(metrics[f"final_calibration_naive_{tag}"] - 1.0)
        censored_bias = abs(metrics[f"final_calibration_censored_{tag}"] - 1.0)
        metrics[f"bias_removed_{tag}"] = 1.0 - censored_bias / naive_bias
        metrics[f"fitted_mean_delay_{tag}"] = float(results.fitted_mean_delay[i, -1])
    return metrics


def _metric_labels(config: Config) -> dict[str, str]:
    """Every metric of :func:`summarize` under ``config`` in words."""
    labels = {}
    for d in config.mean_delays:
        tag, delay = f"d{d:g}", f"mean delay {d:g} h"
        for name, strategy in STRATEGY_LABELS.items():
            labels[f"regret_{name}_{tag}"] = (
                f"cumulative regret, {strategy}, {delay} (expected clicks)"
            )
            labels[f"calibration_{name}_{tag}"] = (
                f"predicted over true click-through rate of the last day's shown items, "
                f"{strategy}, {delay} (1 = unbiased)"
            )
            labels[f"final_calibration_{name}_{tag}"] = (
                f"final model's predicted over true click-through rate of all its impressions, "
                f"{strategy}, {delay} (1 = unbiased; OTFLinUCB estimates P(delay <= window) p)"
            )
        for e in config.bias_ages:
            share = -math.expm1(-e / d)
            labels[f"naive_ratio_{tag}_e{e}"] = (
                f"clicks observed within {e} h over expected clicks, naive, {delay} "
                f"(expected: F({e} h) = {share:.3f})"
            )
            labels[f"naive_ratio_error_{tag}_e{e}"] = (
                f"clicks observed within {e} h over expected clicks minus F({e} h), naive, {delay}"
            )
        labels[f"regret_gap_censored_naive_{tag}"] = (
            f"cumulative regret, censored likelihood minus naive, {delay} (expected clicks)"
        )
        labels[f"regret_gap_censored_best_other_{tag}"] = (
            f"cumulative regret, censored likelihood minus the best other strategy, {delay} "
            "(expected clicks)"
        )
        labels[f"bias_removed_{tag}"] = (
            f"share of the naive final click-through-rate bias that censored likelihood removes, "
            f"{delay}"
        )
        labels[f"fitted_mean_delay_{tag}"] = (
            f"mean delay fitted by the censored-likelihood strategy on the last day, true {d:g} h "
            "(hours)"
        )
    return labels


METRIC_LABELS: dict[str, str] = _metric_labels(Config())
"""Every metric of :func:`summarize` in words (``quick()`` and ``full()`` share the delays)."""
NA_REASONS: dict[str, str] = {
    key: f"undefined when the horizon is shorter than {key.rsplit('_e', 1)[1]} h: no impression "
    "is that old"
    for key in METRIC_LABELS
    if key.startswith("naive_ratio")
}
"""Why a metric can be NaN (not with the built-in configs)."""

_NAIVE_BIAS = (
    "Chapelle (2014, KDD): counting pending impressions as negatives biases the CTR; with "
    "exponential delays the naive estimate at age e is p F(e), F(e) = 1 - exp(-e / d) (derived)"
)
_DFM = (
    "Chapelle (2014, KDD), the delayed feedback model (censored likelihood); a directional "
    "expectation, no published number"
)
targets = [
    Target(
        "naive_ratio_error_d24_e1",
        "<",
        0.1,
        "numeric: the naive CTR estimate (pending = negative) of impressions 1 h old, over the "
        "true p, is at most F(1 h) + 0.1 for mean delay 24 h (upper side of +-0.1)",
        _NAIVE_BIAS,
    ),
    Target(
        "naive_ratio_error_d24_e1",
        ">",
        -0.1,
        "numeric: ... and at least F(1 h) - 0.1 (lower side of +-0.1)",
        _NAIVE_BIAS,
    ),
    Target(
        "regret_gap_censored_naive_d72",
        "<",
        0.0,
        "directional: with 72 h mean delays, censored (DFM) training has less cumulative regret "
        "than naive training",
        _DFM,
    ),
    Target(
        "bias_removed_d24",
        ">",
        0.5,
        "directional: with 24 h mean delays, censored (DFM) training removes most (over half) "
        "of the naive strategy's CTR under-estimate (final model, all impressions)",
        _DFM,
    ),
    Target(
        "bias_removed_d72",
        ">",
        0.5,
        "directional: the same with 72 h mean delays",
        _DFM,
    ),
    Target(
        "regret_gap_censored_best_other_d72",
        "<",
        0.0,
        "directional: with 72 h mean delays, censored (DFM) training has the lowest cumulative "
        "regret of naive, wait-for-matured, censored and OTF",
        f"{_DFM}; OTFLinUCB of Vernade et al. (2020, ICML) as a baseline",
    ),
]


def plot(results: Results, config: Config, out_dir: Path) -> list[Path]:
    """Cumulative regret per strategy per delay (bars, mean +- s.e.); naive ratio vs F(e);
    final calibration per strategy per delay."""
    out_dir = Path(out_dir)
    seeds = results.oracle_value.shape[0]
    regret = np.asarray(results.regret, np.float64).sum(-1)  # [seeds, D, S]
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / len(STRATEGIES)
    positions = np.arange(len(config.mean_delays))
    for j, name in enumerate(STRATEGIES):
        axes.bar(
            positions + (j - (len(STRATEGIES) - 1) / 2) * width,
            regret[:, :, j].mean(0),
            width,
            yerr=standard_error(regret[:, :, j]),
            capsize=3,
            label=STRATEGY_LABELS[name],
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
        (line,) = axes.plot(grid, -np.expm1(-grid / d), label=f"F(e), mean delay {d:g} h")
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
        ylabel="naive observed CTR / true click probability",
        title=f"naive bias vs the delay CDF F(e) (dots: {seeds} seeds ± s.e.)",
    )
    axes.legend()
    bias_path = out_dir / "naive_bias.png"
    figure.savefig(bias_path, dpi=120)

    total_value = np.asarray(results.value, np.float64).sum(-1)  # [seeds, D, S]
    calibration = np.asarray(results.final_predicted, np.float64) / total_value
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.subplots()
    for j, name in enumerate(STRATEGIES):
        axes.bar(
            positions + (j - (len(STRATEGIES) - 1) / 2) * width,
            calibration[:, :, j].mean(0),
            width,
            yerr=standard_error(calibration[:, :, j]),
            capsize=3,
            label=STRATEGY_LABELS[name],
        )
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_xticks(positions, [f"{d:g} h" for d in config.mean_delays])
    axes.set(
        xlabel="mean click delay",
        ylabel="final predicted CTR / true CTR",
        title=f"CTR estimate over all impressions at the end ({seeds} seeds ± s.e.;\n"
        "OTFLinUCB estimates P(delay <= window) x p)",
    )
    axes.legend()
    calibration_path = out_dir / "final_calibration.png"
    figure.savefig(calibration_path, dpi=120)
    return [regret_path, bias_path, calibration_path]
