"""Empirical-Bayes meta-priors (Nabi et al. 2022): estimator check, cold start, learning rates.

Experiment 1 (estimator check). For each group size ``n_k`` in
``estimator_group_sizes`` and each of ``estimator_replicates`` replicates, draw known sampling
variances ``s_i^2 ~ U(noise_low, noise_high)`` (once per seed and size) and estimates
``w^_i ~ N(mu, tau^2 + s_i^2)``, and compute the method-of-moments estimate
(:func:`prime_science.priors.moments.method_of_moments`). Over the replicates the untruncated
``tau~^2`` should be unbiased (``|mean - tau^2| < 2 s.e.``) and its s.d. should shrink like
``1 / sqrt(n_k)`` (slope of ``log sd`` on ``log n_k`` about ``-0.5``).

Experiment 2 (cold start and traffic). Two independent draws of the callout world
(:mod:`prime_science.sim.callout_world`, same block scales, different items and weights):

* Logged phase, world A. A deployed probit-ADF Thompson-sampling model with the generic prior
  ``N(0, generic_prior_variance)`` on every weight runs ``logged_hours`` hourly batches of
  ``logged_impressions_per_hour`` requests (one impression each, Prime share ``prime_share``).
* EB step, deployed: type-II maximum likelihood of the group priors from the logged events
  themselves (:func:`prime_science.priors.laplace.probit_type2`: Laplace evidence, MacKay's
  fixed point, one group per feature block of ``callout_feature_spec(...).block_slices``:
  intercept, brand, colour, price, category, title, segment, segment x category; the intercept
  and the 3-feature segment block keep the generic variance and their MAP mean). The
  meta-prior of block ``k`` is ``N(mu^_k, tau^_k^2)``.
* EB step, compared: the route first built (the standard method-of-moments form of the
  empirical-Bayes step), a weak-prior probit MAP refit
  (:func:`prime_science.priors.refit.weak_prior_refit`: ``N(0, refit_prior_variance)``;
  ``w^_i``, and ``s_i^2`` from the inverse diagonal Fisher information) and the method of
  moments over features with ``s_i^2 <= max_sampling_variance``. In this world it is biased:
  an item's score is identified but its split between brand, category and title tokens is not
  (1,000 items, 200 brands, 4,096 title buckets), so the refit attenuates first-order weights
  (slope of ``w^`` on ``w`` about 0.4 for brand and title) and ``1 / F_ii`` ignores the
  correlated errors. (Dividing the generic prior out of the deployed ADF posterior,
  :func:`~prime_science.priors.moments.divide_out_prior`, was tried before that: worse still.)
* Deployment, world B. For every traffic level ``T`` in ``traffic_levels`` (impressions per
  hourly batch), two probit Thompson-sampling models start fresh and run ``deploy_days`` days
  of ``hours_per_day`` batches, new items arriving daily: ``generic`` (prior ``N(0,
  generic_prior_variance)``) and ``meta_prior`` (the EB prior). They see common random numbers
  (segments, click uniforms). Both use the same ADF updates; a prior enters only through the
  initial state (no forgetting).

Metrics per traffic level: expected regret per impression against the best available item of
the request's segment, the percent regret reduction of the meta-prior, and the CTR (mean true
click probability) of items in their first ``young_days`` days (arrived on day >= 1). Also the
learned ``tau^_k`` of every block next to the world's ``s_block``. Experiment 3 (decoupled
learning rates), on the same estimates: the segment x category cross group should get a
smaller ``tau^2`` than its first-order parent, category, and, with the paper's two groups
(all first-order features pooled vs the cross), a smaller untruncated ``tau~^2`` than the
first-order group.

Measured (quick, 5 seeds, 2-core CPU; mean +- s.e.). Experiment 1: ``|z|`` of the bias at ``n_k
= 1,000`` 0.80 +- 0.24, s.d. slope -0.499 +- 0.003. EB fit, learned ``tau^`` by type-II ML
(refit + moments, signed; true): brand 0.26 (0.09; 0.3), colour 0.19 (0.34; 0.2), price 0.17
(0.35; 0.2), category 0.44 (0.40; 0.5), title 0.098 (-0.13; 0.1), segment x category 0.088
(0.14; 0.1); mean ``|tau^ / s_block - 1|`` 0.17 +- 0.03. Experiment 2: regret reduction of the
meta-prior against ``N(0, 1)`` 49% +- 9% at 100 impressions per hourly batch, 81% +- 3% at
1,000, 88% +- 1% at 10,000; per-impression regret gap 0.20, 0.29, 0.24. The percent gain
*grows* over this range (target FAILS): the generic prior on 4,479 weights (4,096 title buckets
of true scale 0.1 drawn with s.d. 1) keeps exploring (its regret per impression only falls from
0.39 to 0.27 over the range) while the meta-prior's falls from 0.20 to 0.033; both are
consistent, so the gap must close at higher traffic: ``full()``, one seed (2,000 items, 240k
logged events; 6 min on CPU): learned ``tau^`` brand 0.29, category 0.51, title 0.090, segment
x category 0.098; regret reduction 42%, 80%, 90%, 70% at 100 ... 100,000 per batch,
per-impression gap 0.18, 0.33, 0.31, 0.056: a hump, the gain shrinks only beyond 10,000 per
batch. Young-item CTR, meta-prior minus generic: -0.03 +- 0.04 at 100, +0.06 +- 0.06 at 1,000,
+0.11 +- 0.06 at 10,000. (With the refit + moments prior and a lowest level of 10 per batch,
240 impressions in all, the reduction at 10 was 6% +- 3%: nothing much is learnable there by
either prior.)

Experiment 3. Per block the cross group's ``tau^2`` is 0.044 +- 0.012 of its first-order parent
category's (pass). With the paper's two groups (every first-order block pooled, the segment x
category cross; the intercept generic) the pooled first-order ``tau^2`` is 0.026 and the
cross's 0.069 (target FAILS): the truth's pooled first-order variance (0.017, title buckets
dominate) is barely above the cross's (0.01), and a pooled first-order prior too narrow for
category lets the category effects leak into segment x category (the two segments' cross
weights sum to a category effect). Deployed against one generic prior, the two-group prior
cuts regret by 42% +- 6% at 100, 74% +- 4% at 1,000 and 86% +- 1% at 10,000 per batch.

``numpyro_agreement`` (not part of ``run``) fits the same simulated groups by the method of
moments and by the three NumPyro fits of :mod:`prime_science.priors.hierarchical`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from experiments._common import segment_choices, standard_error, world_config
from prime_science.bandits import features as ft
from prime_science.bandits.probit import ProbitState, probit_adf
from prime_science.core.experiment import Target
from prime_science.core.types import PRNGKey
from prime_science.priors.laplace import Type2Fit, probit_type2
from prime_science.priors.moments import method_of_moments
from prime_science.priors.record import GaussianGroupPrior, feature_prior, groups_from_slices
from prime_science.priors.refit import weak_prior_refit
from prime_science.sim.callout_world import (
    BLOCK_SCALES,
    CalloutWorld,
    CalloutWorldConfig,
    callout_feature_spec,
    click_probabilities,
    item_columns,
    make_callout_world,
)

__all__ = [
    "NAME",
    "POLICIES",
    "POLICY_LABELS",
    "METRIC_LABELS",
    "NA_REASONS",
    "DATASETS",
    "BLOCK_LABELS",
    "Config",
    "Trace",
    "Results",
    "run",
    "summarize",
    "targets",
    "plot",
    "numpyro_agreement",
]

NAME = "meta_prior"
POLICIES = ("generic", "meta_prior", "two_group")
POLICY_LABELS = {
    "generic": "generic N(0, 1) prior",
    "meta_prior": "empirical-Bayes meta-prior per feature block",
    "two_group": "two-group meta-prior (first-order pooled, cross)",
}
"""Each deployed prior in words, for the report and the plots."""
BLOCK_LABELS = {
    "intercept": "intercept",
    "brand": "brand",
    "colour": "colour",
    "price": "price bucket",
    "category": "category",
    "title": "title tokens",
    "segment": "customer segment",
    "segment_x_category": "segment x category",
}
"""Each feature block of the callout world in words."""
DATASETS: tuple[str, ...] = ()
"""Packaged data sets the experiment reads: none (simulated worlds)."""
_REQUESTS_PER_STEP = 8


class Config(NamedTuple):
    """Static settings (hashable: the jitted ``run`` closes over them).

    Attributes:
      estimator_group_sizes: ``n_k`` values of Experiment 1.
      estimator_replicates: Monte-Carlo replicates per size.
      estimator_mean, estimator_variance: the true ``mu`` and ``tau^2`` of Experiment 1.
      estimator_noise_low, estimator_noise_high: range of the known ``s_i^2``.
      num_initial_items: items of world A, and of world B at day 0.
      new_items_per_day: world B's arrivals on each of days ``1 .. deploy_days - 1``.
      prime_share: probability that a request is from a Prime member.
      probit_noise: ``beta`` of the probit likelihood of every model.
      generic_prior_variance: ``sigma0^2`` of the generic prior ``N(0, sigma0^2)``.
      logged_hours, logged_impressions_per_hour: the logged phase in world A.
      refit_prior_variance: the weak prior ``N(0, v_weak)`` of the MAP refit of the logged data.
      refit_steps: L-BFGS iterations of the refit.
      max_sampling_variance: a feature enters the EB fit if its ``s_i^2`` is at most this
        (s.d. 0.5: beyond it a Gaussian approximation of a sparse-click estimate is poor).
      min_prior_variance: floor of a learned ``tau^2`` (a truncated zero is not a prior).
      eb_max_features: static size of the type-II fit's dense posterior (features touched by
        the log; a seed that touches more reports ``eb_features_dropped > 0``).
      eb_iters: evidence iterations of the type-II fit.
      deploy_days, hours_per_day: the deployment horizon in world B.
      traffic_levels: impressions per hourly batch in the deployment.
      young_days: an item that arrived on day ``>= 1`` is young while ``day - arrival < this``.
    """

    estimator_group_sizes: tuple[int, ...] = (250, 1_000, 4_000)
    estimator_replicates: int = 1_000
    estimator_mean: float = 0.3
    estimator_variance: float = 0.04
    estimator_noise_low: float = 0.01
    estimator_noise_high: float = 0.09
    num_initial_items: int = 1_000
    new_items_per_day: int = 20
    prime_share: float = 0.5
    probit_noise: float = 1.0
    generic_prior_variance: float = 1.0
    logged_hours: int = 96
    logged_impressions_per_hour: int = 250
    refit_prior_variance: float = 10.0
    refit_steps: int = 200
    max_sampling_variance: float = 0.25
    min_prior_variance: float = 1e-3
    eb_max_features: int = 3_072
    eb_iters: int = 12
    deploy_days: int = 4
    hours_per_day: int = 6
    traffic_levels: tuple[int, ...] = (100, 1_000, 10_000)
    young_days: int = 2

    @classmethod
    def quick(cls) -> Config:
        """1,000 items; 24k logged impressions; 4 days of 6 batches of 100, 1,000, 10,000."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """2,000 items; 240k logged impressions; 4 days of 6 batches of 100 ... 100,000 (about
        2.7M Thompson draws per policy; minutes per seed on CPU)."""
        return cls(
            num_initial_items=2_000,
            logged_hours=240,
            logged_impressions_per_hour=1_000,
            traffic_levels=(100, 1_000, 10_000, 100_000),
            eb_max_features=4_480,
        )

    def world(self, num_days: int) -> CalloutWorldConfig:
        """A world whose last arrivals land on day ``num_days``."""
        return world_config(self, num_days)

    @property
    def num_deploy_hours(self) -> int:
        return self.deploy_days * self.hours_per_day


class Trace(NamedTuple):
    """One policy at one traffic level, per hourly batch (``float32[hours]``).

    Attributes:
      regret: summed expected regret of the batch's impressions.
      value: summed true click probability of the shown items.
      young_value: the same over impressions of young items.
      young_impressions: impressions of young items.
    """

    regret: jax.Array
    value: jax.Array
    young_value: jax.Array
    young_impressions: jax.Array


class Results(NamedTuple):
    """Everything ``run`` returns for one seed.

    Attributes:
      estimator_untruncated: ``float32[sizes, replicates]`` ``tau~^2`` of Experiment 1.
      estimator_truncated: ``float32[sizes, replicates]`` ``max(0, tau~^2)``.
      learned_mean, learned_variance: ``float32[blocks]`` the deployed meta-prior: the type-II
        ML fit of the logged events (:func:`prime_science.priors.laplace.probit_type2`), blocks
        in ``block_slices`` order (intercept and segment: generic variance, MAP mean).
      learned_determined: ``float32[blocks]`` effective number of weights the log pins down.
      learned_touched: ``float32[blocks]`` features per block that occur in the log.
      moments_untruncated: ``float32[blocks]`` ``tau~^2`` of the weak-prior refit + method of
        moments route (for comparison; attenuated, see the module docstring).
      moments_count: ``float32[blocks]`` features per block in that method-of-moments fit.
      two_group_variance: ``float32[2]`` type-II ``tau^2`` of the paper's main grouping (all
        first-order features but the intercept pooled, and the segment x category cross).
      two_group_untruncated: ``float32[2]`` the method-of-moments ``tau~^2`` of that grouping.
      eb_features_dropped: touched features beyond ``eb_max_features`` (both fits; must be 0).
      oracle_value: ``{"t<T>": float32[hours]}`` summed best click probability per batch.
      policies: ``{"t<T>": {policy: Trace}}``.
    """

    estimator_untruncated: jax.Array
    estimator_truncated: jax.Array
    learned_mean: jax.Array
    learned_variance: jax.Array
    learned_determined: jax.Array
    learned_touched: jax.Array
    moments_untruncated: jax.Array
    moments_count: jax.Array
    two_group_variance: jax.Array
    two_group_untruncated: jax.Array
    eb_features_dropped: jax.Array
    oracle_value: dict[str, jax.Array]
    policies: dict[str, dict[str, Trace]]


class _Hour(NamedTuple):
    """The scanned inputs of one hourly batch."""

    key: jax.Array
    day: jax.Array  # int32[]
    segments: jax.Array  # int32[R]
    uniforms: jax.Array  # float32[R], click noise (common across policies)
    best: jax.Array  # float32[2], the oracle's click probability per segment


def _block_names(config: Config) -> tuple[str, ...]:
    return tuple(callout_feature_spec(config.world(0)).block_slices)


def _estimator_check(key: PRNGKey, config: Config) -> tuple[jax.Array, jax.Array]:
    """Experiment 1: ``tau~^2`` and ``max(0, tau~^2)`` per size and replicate."""
    untruncated, truncated = [], []
    for index, size in enumerate(config.estimator_group_sizes):
        key_noise, key_draws = jax.random.split(jax.random.fold_in(key, index))
        noise = jax.random.uniform(
            key_noise,
            (size,),
            minval=config.estimator_noise_low,
            maxval=config.estimator_noise_high,
        )
        groups = jnp.zeros(size, jnp.int32)

        def one(replicate_key, noise=noise, groups=groups, size=size):
            draws = jax.random.normal(replicate_key, (size,))
            estimates = config.estimator_mean + draws * jnp.sqrt(config.estimator_variance + noise)
            fit = method_of_moments(estimates, noise, groups, num_groups=1)
            return fit.untruncated_variance[0], fit.variance[0]

        keys = jax.random.split(key_draws, config.estimator_replicates)
        raw, floored = jax.lax.map(one, keys, batch_size=min(100, config.estimator_replicates))
        untruncated.append(raw)
        truncated.append(floored)
    return jnp.stack(untruncated), jnp.stack(truncated)


def _hours(
    key: PRNGKey, world: CalloutWorld, probs, num_hours: int, per_hour: int, config: Config
) -> _Hour:
    """Segments, click uniforms, days and oracle values of ``num_hours`` batches."""
    key_segments, key_clicks, key_policy = jax.random.split(key, 3)
    shape = (num_hours, per_hour)
    segments = jax.random.bernoulli(key_segments, config.prime_share, shape).astype(jnp.int32)
    uniforms = jax.random.uniform(key_clicks, shape)
    day = jnp.arange(num_hours, dtype=jnp.int32) // config.hours_per_day
    available = world.arrival_day[None, :] <= day[:, None]  # [hours, items]
    best = jnp.max(jnp.where(available[:, None, :], probs[None], -jnp.inf), axis=2)  # [hours, 2]
    return _Hour(jax.random.split(key_policy, num_hours), day, segments, uniforms, best)


def _simulate(
    model, state: ProbitState, hours: _Hour, ids, probs, arrival_day, config: Config
) -> tuple[ProbitState, tuple[Trace, jax.Array, jax.Array]]:
    """Probit Thompson sampling through the batches (``lax.scan``); one update per batch.

    Returns the final state, the per-batch :class:`Trace` and the logged events: the shown
    items ``int32[hours, R]`` and clicks ``bool[hours, R]``.
    """

    def step(state, hour: _Hour):
        available = arrival_day <= hour.day
        # 8 requests per vectorised step: about 4x faster on CPU than one at a time (same draws)
        items = segment_choices(
            model.sample, hour.key, state, ids, hour.segments, available, _REQUESTS_PER_STEP
        )
        shown = probs[hour.segments, items]
        clicks = hour.uniforms < shown
        events = ids[hour.segments, items]
        state = model.update(state, events, clicks.astype(jnp.float32))
        arrival = arrival_day[items]
        young = (arrival > 0) & (hour.day - arrival < config.young_days)
        trace = Trace(
            regret=jnp.sum(hour.best[hour.segments] - shown),
            value=jnp.sum(shown),
            young_value=jnp.sum(jnp.where(young, shown, 0.0)),
            young_impressions=jnp.sum(young).astype(jnp.float32),
        )
        return state, (trace, items, clicks)

    return jax.lax.scan(step, state, hours)


class _Type2(NamedTuple):
    fit: Type2Fit
    record: GaussianGroupPrior


def _type2(rows, impressions, clicks, groups, num_groups: int, names, config: Config) -> _Type2:
    """Type-II ML group priors of the logged events, aggregated to one row per (segment, item)
    (``impressions`` and ``clicks`` counts); the intercept and the 3-feature segment block are
    not fitted (generic variance, MAP mean)."""
    fixed = tuple(k for k, name in enumerate(names) if name in ("intercept", "segment"))
    fit = probit_type2(
        rows,
        clicks,
        groups,
        num_groups,
        impressions=impressions,
        max_features=config.eb_max_features,
        fixed_groups=fixed,
        noise=config.probit_noise,
        initial_variance=config.generic_prior_variance,
        min_variance=config.min_prior_variance,
        num_iters=config.eb_iters,
    )
    return _Type2(fit, GaussianGroupPrior(fit.mean, fit.variance, groups))


def _world(key: PRNGKey, world_config: CalloutWorldConfig, spec: ft.FeatureSpec):
    world = make_callout_world(key, world_config)
    columns = item_columns(world)
    ids = jnp.stack([ft.encode(spec, columns, context={"segment": s}) for s in (0, 1)])
    probs = jnp.stack([click_probabilities(world, spec, s) for s in (0, 1)])  # [2, items]
    return world, ids, probs


def run(key: PRNGKey, config: Config) -> Results:
    """Experiments 1 and 2 for one seed (pure, jittable)."""
    key_estimator, key_logged_world, key_logged, key_world, key_deploy = jax.random.split(key, 5)
    untruncated, truncated = _estimator_check(key_estimator, config)

    spec = callout_feature_spec(config.world(0))
    num_features = spec.num_features
    groups_np, names = groups_from_slices(spec.block_slices, num_features)
    groups = jnp.asarray(groups_np)
    model = probit_adf(num_features, noise=config.probit_noise)  # the prior is the init state
    generic = ProbitState(
        mean=jnp.zeros(num_features, jnp.float32),
        variance=jnp.full(num_features, config.generic_prior_variance, jnp.float32),
    )

    # Logged phase: the deployed generic-prior model in world A.
    logged_world, logged_ids, logged_probs = _world(key_logged_world, config.world(0), spec)
    hours = _hours(
        key_logged,
        logged_world,
        logged_probs,
        config.logged_hours,
        config.logged_impressions_per_hour,
        config,
    )
    hours = hours._replace(day=jnp.zeros_like(hours.day))  # world A has no arrivals
    _, (_, items, clicks) = _simulate(
        model, generic, hours, logged_ids, logged_probs, logged_world.arrival_day, config
    )

    # EB step: weak-prior refit of the logged events, then the method of moments per block.
    num_events = config.logged_hours * config.logged_impressions_per_hour
    events = logged_ids[hours.segments, items].reshape(num_events, -1)
    estimates, noise = weak_prior_refit(
        events,
        clicks.reshape(num_events),
        num_features,
        prior_variance=config.refit_prior_variance,
        num_steps=config.refit_steps,
        noise=config.probit_noise,
    )
    in_fit = noise <= config.max_sampling_variance
    moments = method_of_moments(
        jnp.where(in_fit, estimates, 0.0),
        jnp.where(in_fit, noise, 0.0),
        jnp.where(in_fit, groups, -1),
        num_groups=len(names),
    )
    cross = names.index("segment_x_category")
    first_order_or_cross = jnp.where(groups == cross, 1, 0)
    first_order_or_cross = jnp.where(groups == names.index("intercept"), -1, first_order_or_cross)
    two_groups = method_of_moments(
        jnp.where(in_fit, estimates, 0.0),
        jnp.where(in_fit, noise, 0.0),
        jnp.where(in_fit, first_order_or_cross, -1),
        num_groups=2,
    )
    # The deployed meta-priors: type-II ML of the logged events themselves (the refit's
    # estimates above are attenuated; they stay as the method-of-moments comparison).
    num_rows = 2 * logged_ids.shape[1]
    row_of_event = (hours.segments * logged_ids.shape[1] + items).reshape(num_events)
    impressions = jax.ops.segment_sum(jnp.ones(num_events), row_of_event, num_rows)
    row_clicks = jax.ops.segment_sum(
        clicks.reshape(num_events).astype(jnp.float32), row_of_event, num_rows
    )
    rows = logged_ids.reshape(num_rows, -1)  # (segment, item) rows
    per_block = _type2(rows, impressions, row_clicks, groups, len(names), names, config)
    learned = ProbitState(*feature_prior(per_block.record))
    # Experiment 3's deployed prior: the paper's two groups (every first-order block pooled,
    # the cross) plus the intercept, a group of one that keeps the generic prior.
    three = jnp.where(groups == names.index("intercept"), 2, first_order_or_cross)
    two_group_fit = _type2(
        rows, impressions, row_clicks, three, 3, ("first_order", "cross", "intercept"), config
    )
    two_group = ProbitState(*feature_prior(two_group_fit.record))

    # Deployment in world B at every traffic level.
    world, ids, probs = _world(key_world, config.world(config.deploy_days - 1), spec)
    oracle, policies = {}, {}
    for level, traffic in enumerate(config.traffic_levels):
        hours = _hours(
            jax.random.fold_in(key_deploy, level),
            world,
            probs,
            config.num_deploy_hours,
            traffic,
            config,
        )
        oracle[f"t{traffic}"] = jnp.sum(jnp.take_along_axis(hours.best, hours.segments, 1), 1)
        starts = jax.tree.map(lambda *leaves: jnp.stack(leaves), generic, learned, two_group)
        _, (traces, _, _) = jax.vmap(
            lambda start, hours=hours: _simulate(
                model, start, hours, ids, probs, world.arrival_day, config
            )
        )(starts)
        policies[f"t{traffic}"] = {
            name: jax.tree.map(lambda leaf, p=p: leaf[p], traces) for p, name in enumerate(POLICIES)
        }
    return Results(
        estimator_untruncated=untruncated,
        estimator_truncated=truncated,
        learned_mean=per_block.record.mean,
        learned_variance=per_block.record.variance,
        learned_determined=per_block.fit.determined,
        learned_touched=per_block.fit.touched,
        moments_untruncated=moments.untruncated_variance,
        moments_count=moments.count,
        two_group_variance=two_group_fit.record.variance[:2],
        two_group_untruncated=two_groups.untruncated_variance,
        eb_features_dropped=per_block.fit.num_dropped + two_group_fit.fit.num_dropped,
        oracle_value=oracle,
        policies=policies,
    )


def summarize(results: Results, config: Config) -> dict[str, float]:
    """Scalar metrics of one seed.

    Experiment 1, per size ``n``: ``estimator_bias_z_n<n>`` = (mean ``tau~^2`` - ``tau^2``) /
    s.e. over replicates, its absolute value ``estimator_abs_bias_z_n<n>``,
    ``estimator_sd_n<n>``, ``estimator_truncated_bias_n<n>``; ``estimator_sd_slope``: the
    least-squares slope of ``log sd`` on ``log n``.

    Experiment 2, per traffic ``T``: ``regret_per_impression_<policy>_t<T>``,
    ``regret_reduction_pct_t<T>`` = 100 (1 - meta-prior regret / generic regret),
    ``regret_reduction_pct_two_group_t<T>`` the same for the two-group prior (Experiment 3;
    ``regret_reduction_pct_two_group_low`` at the lowest traffic),
    ``regret_gap_per_impression_t<T>`` (generic minus meta-prior), ``young_ctr_<policy>_t<T>``
    (NaN if the policy showed no young item), ``young_ctr_gap_t<T>`` (meta-prior minus
    generic); ``regret_reduction_pct_low`` and ``young_ctr_gap_low`` (at the lowest traffic
    level) and ``reduction_pct_low_minus_high`` (lowest minus highest traffic).

    EB fit: ``learned_tau_<block>`` (type-II ML, deployed) beside ``moments_tau_<block>``
    (weak-prior refit + method of moments, signed square root of the untruncated ``tau~^2``;
    not for the intercept, a group of one feature) and
    ``true_tau_<block>`` (the world's ``s_block``); ``touched_<block>``, ``determined_<block>``
    (effective number of pinned weights), ``learned_mean_intercept``,
    ``tau2_ratio_cross_category`` (learned ``tau^2`` of segment x category over category's),
    ``learned_tau_mean_abs_rel_error`` (mean of ``|tau^ / s_block - 1|`` over the fitted blocks);
    with the paper's two groups (first-order pooled vs cross): ``two_group_tau2_first_order``,
    ``two_group_tau2_cross``, their difference ``two_group_tau2_cross_minus_first_order`` and
    the method-of-moments difference ``two_group_moments_tau2_cross_minus_first_order``;
    ``eb_features_dropped`` (must be 0).
    """
    metrics: dict[str, float] = {}
    sizes = np.asarray(config.estimator_group_sizes, np.float64)
    untruncated = np.asarray(results.estimator_untruncated, np.float64)
    truncated = np.asarray(results.estimator_truncated, np.float64)
    sds = untruncated.std(axis=1, ddof=1)
    for index, size in enumerate(config.estimator_group_sizes):
        se = sds[index] / np.sqrt(untruncated.shape[1])
        z = (untruncated[index].mean() - config.estimator_variance) / se
        metrics[f"estimator_bias_z_n{size}"] = float(z)
        metrics[f"estimator_abs_bias_z_n{size}"] = float(abs(z))
        metrics[f"estimator_sd_n{size}"] = float(sds[index])
        metrics[f"estimator_truncated_bias_n{size}"] = float(
            truncated[index].mean() - config.estimator_variance
        )
    if sizes.size >= 2:
        metrics["estimator_sd_slope"] = float(np.polyfit(np.log(sizes), np.log(sds), 1)[0])

    for traffic in config.traffic_levels:
        level = f"t{traffic}"
        impressions = config.num_deploy_hours * traffic
        regret = {}
        for name in POLICIES:
            trace = results.policies[level][name]
            regret[name] = float(np.sum(trace.regret, dtype=np.float64) / impressions)
            young = float(np.sum(trace.young_impressions, dtype=np.float64))
            young_value = float(np.sum(trace.young_value, dtype=np.float64))
            metrics[f"regret_per_impression_{name}_{level}"] = regret[name]
            metrics[f"young_ctr_{name}_{level}"] = young_value / young if young else float("nan")
        metrics[f"regret_reduction_pct_{level}"] = 100.0 * (
            1.0 - regret["meta_prior"] / regret["generic"]
        )
        metrics[f"regret_reduction_pct_two_group_{level}"] = 100.0 * (
            1.0 - regret["two_group"] / regret["generic"]
        )
        metrics[f"regret_gap_per_impression_{level}"] = regret["generic"] - regret["meta_prior"]
        metrics[f"young_ctr_gap_{level}"] = (
            metrics[f"young_ctr_meta_prior_{level}"] - metrics[f"young_ctr_generic_{level}"]
        )
    low, high = min(config.traffic_levels), max(config.traffic_levels)
    metrics["regret_reduction_pct_low"] = metrics[f"regret_reduction_pct_t{low}"]
    metrics["regret_reduction_pct_two_group_low"] = metrics[
        f"regret_reduction_pct_two_group_t{low}"
    ]
    metrics["young_ctr_gap_low"] = metrics[f"young_ctr_gap_t{low}"]
    metrics["reduction_pct_low_minus_high"] = (
        metrics[f"regret_reduction_pct_t{low}"] - metrics[f"regret_reduction_pct_t{high}"]
    )

    names = _block_names(config)
    variance = np.asarray(results.learned_variance, np.float64)
    untruncated = np.asarray(results.moments_untruncated, np.float64)
    for index, name in enumerate(names):
        metrics[f"learned_tau_{name}"] = float(np.sqrt(variance[index]))
        if name != "intercept":  # one feature: no variance between features, tau~^2 = NaN
            metrics[f"moments_tau_{name}"] = float(
                np.sign(untruncated[index]) * np.sqrt(abs(untruncated[index]))
            )
        metrics[f"touched_{name}"] = float(results.learned_touched[index])
        metrics[f"determined_{name}"] = float(results.learned_determined[index])
        if name in BLOCK_SCALES:
            metrics[f"true_tau_{name}"] = BLOCK_SCALES[name]
    fitted = [n for n in names if n in BLOCK_SCALES and n != "segment"]
    metrics["learned_tau_mean_abs_rel_error"] = float(
        np.mean([abs(metrics[f"learned_tau_{n}"] / BLOCK_SCALES[n] - 1.0) for n in fitted])
    )
    metrics["learned_mean_intercept"] = float(results.learned_mean[names.index("intercept")])
    metrics["tau2_ratio_cross_category"] = float(
        variance[names.index("segment_x_category")] / variance[names.index("category")]
    )
    first_order, cross = np.asarray(results.two_group_variance, np.float64)
    metrics["two_group_tau2_first_order"] = float(first_order)
    metrics["two_group_tau2_cross"] = float(cross)
    metrics["two_group_tau2_cross_minus_first_order"] = float(cross - first_order)
    first_order, cross = np.asarray(results.two_group_untruncated, np.float64)
    metrics["two_group_moments_tau2_cross_minus_first_order"] = float(cross - first_order)
    metrics["eb_features_dropped"] = float(results.eb_features_dropped)
    return metrics


def _metric_labels(config: Config) -> dict[str, str]:
    """Every metric of :func:`summarize` under ``config`` in words."""
    labels = {}
    for n in config.estimator_group_sizes:
        group = f"group of n_k = {n:,} weights"
        labels |= {
            f"estimator_bias_z_n{n}": "bias of the untruncated method-of-moments tau^2 over "
            f"replicates, {group} (standard errors)",
            f"estimator_abs_bias_z_n{n}": "absolute bias of the untruncated method-of-moments "
            f"tau^2 over replicates, {group} (standard errors)",
            f"estimator_sd_n{n}": f"s.d. of the untruncated tau^2 over replicates, {group}",
            f"estimator_truncated_bias_n{n}": f"bias of the truncated max(0, tau^2), {group}",
        }
    labels["estimator_sd_slope"] = (
        "slope of log s.d. of the untruncated tau^2 on log n_k (1/sqrt(n_k): -0.5)"
    )
    young = "click-through rate on items in their first two days"
    for traffic in config.traffic_levels:
        level = f"t{traffic}"
        batch = f"{traffic:,} impressions per batch"
        for name, prior in POLICY_LABELS.items():
            labels[f"regret_per_impression_{name}_{level}"] = (
                f"regret per impression, {prior}, {batch} (expected clicks)"
            )
            labels[f"young_ctr_{name}_{level}"] = (
                f"{young}, {prior}, {batch} (expected clicks per impression)"
            )
        labels |= {
            f"regret_reduction_pct_{level}": "regret reduction of the meta-prior against the "
            f"generic prior, {batch} (%)",
            f"regret_reduction_pct_two_group_{level}": "regret reduction of the two-group "
            f"meta-prior against the generic prior, {batch} (%)",
            f"regret_gap_per_impression_{level}": "regret per impression, generic prior minus "
            f"meta-prior, {batch} (expected clicks)",
            f"young_ctr_gap_{level}": f"{young}, meta-prior minus generic prior, {batch}",
        }
    low = f"lowest traffic ({min(config.traffic_levels):,} impressions per batch)"
    labels |= {
        "regret_reduction_pct_low": f"regret reduction of the meta-prior at the {low} (%)",
        "regret_reduction_pct_two_group_low": "regret reduction of the two-group meta-prior at "
        f"the {low} (%)",
        "young_ctr_gap_low": f"{young}, meta-prior minus generic prior, at the {low}",
        "reduction_pct_low_minus_high": "regret reduction of the meta-prior at the lowest minus "
        "at the highest traffic level (percentage points)",
    }
    for name in _block_names(config):
        block = f"{BLOCK_LABELS[name]} block"
        labels[f"learned_tau_{name}"] = (
            f"prior s.d. tau of the {block}, type-II maximum likelihood (deployed)"
            if name not in ("intercept", "segment")
            else f"prior s.d. tau of the {block} (not fitted: the generic prior)"
        )
        if name != "intercept":
            labels[f"moments_tau_{name}"] = (
                f"prior s.d. tau of the {block}, weak-prior refit + method of moments (signed)"
            )
        labels[f"touched_{name}"] = f"features of the {block} that occur in the log (count)"
        labels[f"determined_{name}"] = (
            f"effective number of weights of the {block} the log pins down"
        )
        if name in BLOCK_SCALES:
            labels[f"true_tau_{name}"] = f"true s.d. of the world's weights, {block}"
    return labels | {
        "learned_tau_mean_abs_rel_error": "mean relative error |tau / s_block - 1| of the "
        "learned prior s.d. over the fitted blocks",
        "learned_mean_intercept": "learned prior mean of the intercept",
        "tau2_ratio_cross_category": "learned prior variance of segment x category over that "
        "of category (ratio)",
        "two_group_tau2_first_order": "prior variance tau^2 of all first-order features pooled, "
        "type-II maximum likelihood",
        "two_group_tau2_cross": "prior variance tau^2 of the segment x category cross, type-II "
        "maximum likelihood (two groups)",
        "two_group_tau2_cross_minus_first_order": "prior variance tau^2, cross minus pooled "
        "first-order group, type-II maximum likelihood",
        "two_group_moments_tau2_cross_minus_first_order": "prior variance tau^2, cross minus "
        "pooled first-order group, weak-prior refit + method of moments",
        "eb_features_dropped": "features of the log beyond the type-II fit's capacity (count)",
    }


METRIC_LABELS: dict[str, str] = _metric_labels(Config.quick()) | _metric_labels(Config.full())
"""Every metric of :func:`summarize` in words (``full()`` adds a traffic level)."""
_NO_YOUNG = "undefined when the prior's policy showed no item in its first two days"
NA_REASONS: dict[str, str] = {
    **{
        key: f"{_NO_YOUNG} at that traffic level"
        for key in METRIC_LABELS
        if key.startswith("young_ctr_") and not key.startswith("young_ctr_gap")
    },
    **{
        key: f"{_NO_YOUNG} at that traffic level, for either prior of the difference"
        for key in METRIC_LABELS
        if key.startswith("young_ctr_gap")
    },
    **{
        key: "undefined when fewer than two features of the block have a sampling variance "
        "small enough to enter the method-of-moments fit"
        for key in METRIC_LABELS
        if key.startswith("moments_tau_")
    },
    "two_group_moments_tau2_cross_minus_first_order": "undefined when fewer than two features "
    "of either group have a sampling variance small enough to enter the method-of-moments fit",
}
"""Why a metric can be NaN."""

_CONSISTENT = (
    "Nabi et al. (2022, Management Science), abstract: the estimator is strongly consistent; "
    "the 1/sqrt(n_k) rate is standard sampling theory"
)
_DECOUPLED = (
    "Nabi et al. (2022, Management Science), first titled 'Decoupling Learning Rates Using "
    "Empirical Bayes Priors': a smaller prior variance for second-order features slows their "
    "learning"
)
targets = [
    Target(
        "estimator_abs_bias_z_n1000",
        "<",
        2.0,
        "numeric: the untruncated method-of-moments tau^2 is unbiased over Monte-Carlo "
        "replicates with n_k = 1,000 (|mean - tau^2| < 2 s.e.)",
        "Nabi et al. (2022, Management Science), abstract: the meta-prior variance estimator is "
        "unbiased; the method-of-moments form is in prime_science/priors/moments.py",
    ),
    Target(
        "estimator_sd_slope",
        ">",
        -0.6,
        "numeric: the s.d. of tau^2 shrinks like 1/sqrt(n_k): slope of log sd on log n_k "
        "over n_k = 250, 1,000, 4,000 is about -0.5 (lower bound -0.6)",
        _CONSISTENT,
    ),
    Target(
        "estimator_sd_slope",
        "<",
        -0.4,
        "numeric: slope of log sd on log n_k about -0.5 (upper bound -0.4)",
        _CONSISTENT,
    ),
    Target(
        "regret_reduction_pct_low",
        ">",
        0.0,
        "directional: at the lowest traffic level (100 impressions per batch) probit Thompson "
        "sampling with the empirical-Bayes group prior has less regret than with N(0, 1) priors",
        "Nabi et al. (2022, Management Science), abstract: the gains are largest at low "
        "traffic (direction only; their traffic levels and lifts are not reproduced)",
    ),
    Target(
        "reduction_pct_low_minus_high",
        ">",
        0.0,
        "directional: the percent regret reduction of the meta-prior shrinks as traffic grows "
        "(lowest minus highest traffic level > 0)",
        "Nabi et al. (2022, Management Science), abstract: the gains are largest at low "
        "traffic and shrink as traffic grows (direction only)",
    ),
    Target(
        "young_ctr_gap_low",
        ">",
        0.0,
        "directional: at the lowest traffic level the meta-prior gives a higher CTR on items in "
        "their first two days than N(0, 1) priors",
        "Nabi et al. (2022, Management Science): the learned prior is the cold-start prior of "
        "new features; CTR on young items is this experiment's cold-start measure",
    ),
    Target(
        "eb_features_dropped",
        "<",
        0.5,
        "numeric: the type-II fit saw every feature the log touched (none beyond its capacity, "
        "the config's eb_max_features)",
        "implementation check of prime_science/priors/laplace.py (no paper)",
    ),
    Target(
        "learned_tau_mean_abs_rel_error",
        "<",
        0.25,
        "numeric: the deployed meta-prior recovers the world's block scales s_block (brand, "
        "colour, price, category, title, segment x category; mean relative error < 25%)",
        "Nabi et al. (2022, Management Science): empirical Bayes estimates the group prior "
        "variances; the world's block scales are BLOCK_SCALES of "
        "prime_science/sim/callout_world.py",
    ),
    Target(
        "tau2_ratio_cross_category",
        "<",
        1.0,
        "directional (decoupled learning rates): the learned prior variance of the segment x "
        "category cross group is smaller than that of its first-order parent, category",
        _DECOUPLED,
    ),
    Target(
        "two_group_tau2_cross_minus_first_order",
        "<",
        0.0,
        "directional (decoupled learning rates, the paper's main grouping): with two groups, "
        "first-order features pooled vs the segment x category cross, the cross group's "
        "type-II ML tau^2 is the smaller",
        f"{_DECOUPLED}; first- vs second-order feature groups",
    ),
    Target(
        "regret_reduction_pct_two_group_low",
        ">",
        0.0,
        "directional (decoupled learning rates): at the lowest traffic level probit Thompson "
        "sampling with the two-group meta-prior (first-order pooled, cross) has less regret "
        "than with one generic N(0, 1) prior",
        f"{_DECOUPLED}; a directional expectation, no published number",
    ),
]


def plot(results: Results, config: Config, out_dir: Path) -> list[Path]:
    """Regret per impression vs traffic (both priors); learned vs true tau per block;
    s.d. of the estimator vs n_k on log axes."""
    out_dir = Path(out_dir)
    seeds = results.learned_mean.shape[0]
    per_seed = [summarize(jax.tree.map(lambda x, s=s: x[s], results), config) for s in range(seeds)]
    traffic = np.asarray(config.traffic_levels, np.float64)

    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.subplots()
    for name, marker in zip(POLICIES, "os^", strict=True):
        values = np.array(
            [
                [m[f"regret_per_impression_{name}_t{t}"] for t in config.traffic_levels]
                for m in per_seed
            ]
        )
        axes.errorbar(
            traffic,
            values.mean(0),
            yerr=standard_error(values),
            label=POLICY_LABELS[name],
            marker=marker,
            capsize=3,
        )
    axes.set(
        xscale="log",
        xlabel="impressions per hourly batch",
        ylabel="regret per impression (expected clicks)",
        title=f"{config.num_deploy_hours} batches, {seeds} seeds (± s.e.)",
    )
    axes.legend()
    regret_path = out_dir / "regret_vs_traffic.png"
    figure.savefig(regret_path, dpi=120)

    names = _block_names(config)
    blocks = [n for n in names if n in BLOCK_SCALES]
    learned = np.array([[m[f"learned_tau_{n}"] for n in blocks] for m in per_seed])
    moments = np.array([[m[f"moments_tau_{n}"] for n in blocks] for m in per_seed])
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.subplots()
    positions = np.arange(len(blocks))
    axes.bar(
        positions - 0.27,
        learned.mean(0),
        0.27,
        yerr=standard_error(learned),
        label="type-II maximum likelihood (deployed)",
    )
    axes.bar(
        positions,
        moments.mean(0),
        0.27,
        yerr=standard_error(moments),
        label="weak-prior refit + method of moments (signed)",
    )
    axes.bar(
        positions + 0.27, [BLOCK_SCALES[n] for n in blocks], 0.27, label="truth (world's s.d.)"
    )
    axes.axhline(0.0, color="black", linewidth=0.5)
    axes.set_xticks(positions, [BLOCK_LABELS[n] for n in blocks], rotation=30, ha="right")
    axes.set(
        ylabel="prior s.d. tau",
        title=f"empirical-Bayes meta-prior per feature block, {seeds} seeds (± s.e.)",
    )
    axes.legend()
    tau_path = out_dir / "learned_tau.png"
    figure.savefig(tau_path, dpi=120)

    sizes = np.asarray(config.estimator_group_sizes, np.float64)
    sds = np.array(
        [[m[f"estimator_sd_n{n}"] for n in config.estimator_group_sizes] for m in per_seed]
    )
    figure = Figure(figsize=(5.6, 3.8), layout="constrained")
    axes = figure.subplots()
    axes.plot(sizes, sds.mean(0), "o-", label="measured")
    axes.plot(
        sizes, sds.mean(0)[0] * np.sqrt(sizes[0] / sizes), "--", label="1/sqrt(n_k) from the first"
    )
    axes.set(
        xscale="log",
        yscale="log",
        xlabel="group size n_k (weights)",
        ylabel="s.d. of the untruncated tau^2",
        title="method-of-moments estimator check",
    )
    axes.legend()
    sd_path = out_dir / "estimator_sd.png"
    figure.savefig(sd_path, dpi=120)
    return [regret_path, tau_path, sd_path]


def numpyro_agreement(
    seed: int = 0,
    *,
    means: tuple[float, ...] = (0.5, -1.0, 0.0, 2.0),
    scales: tuple[float, ...] = (0.1, 0.3, 0.5, 1.0),
    per_group: int = 400,
    noise_low: float = 0.01,
    noise_high: float = 0.05,
) -> dict[str, Any]:
    """Method of moments vs the NumPyro fits on one simulated data set (not jitted; seconds).

    Simulates ``per_group`` estimates per group, ``w^_i ~ N(mu_k, tau_k^2 + s_i^2)`` with
    ``s_i^2 ~ U(noise_low, noise_high)``, and returns ``{fit: {"mean": [...], "scale":
    [...]}}`` for ``"moments"``, ``"type2_svi"``, ``"autonormal"`` and ``"nuts"`` plus
    ``"true"`` and NUTS' largest R-hat and smallest ESS.
    """
    from prime_science.priors import hierarchical  # NumPyro only when asked for

    rng = np.random.default_rng(seed)
    mu, tau = np.asarray(means), np.asarray(scales)
    groups = np.repeat(np.arange(mu.size), per_group).astype(np.int32)
    noise = rng.uniform(noise_low, noise_high, groups.size).astype(np.float32)
    estimates = mu[groups] + rng.normal(size=groups.size) * np.sqrt(tau[groups] ** 2 + noise)
    estimates = estimates.astype(np.float32)
    data = (estimates, noise, groups, mu.size)
    moments = method_of_moments(*data)
    out: dict[str, Any] = {
        "true": {"mean": mu.tolist(), "scale": tau.tolist()},
        "moments": {
            "mean": np.asarray(moments.mean).tolist(),
            "scale": np.sqrt(np.asarray(moments.variance)).tolist(),
        },
    }
    key = jax.random.key(seed)
    fits = {
        "type2_svi": hierarchical.fit_gaussian_type2,
        "autonormal": hierarchical.fit_gaussian_autonormal,
        "nuts": hierarchical.fit_gaussian_nuts,
    }
    for name, fit in fits.items():
        record, info = fit(key, *data)
        out[name] = {
            "mean": np.asarray(record.mean).tolist(),
            "scale": np.sqrt(np.asarray(record.variance)).tolist(),
        }
        if name == "nuts":
            out["nuts_max_r_hat"] = float(max(info.r_hat_mean.max(), info.r_hat_scale.max()))
            out["nuts_min_ess"] = float(min(info.ess_mean.min(), info.ess_scale.min()))
    return out
