"""Cold start (Teo et al. 2016): attribute Thompson sampling vs per-item Beta Thompson sampling.

Attribute Thompson sampling (probit and logistic models) against independent Beta–Bernoulli
Thompson sampling per item, greedy and ε-greedy.

World (:mod:`prime_science.sim.callout_world`): ``num_initial_items`` items at day
0 and ``new_items_per_day`` arriving on each of days ``1 .. num_days - 1``, with brand, colour,
price, category and title attributes and a probit click truth ``p(c, X) = Phi(x(c, X)^T w)``.
The horizon is ``num_days`` days of ``hours_per_day`` hours; every hour ``impressions_per_hour``
requests arrive, each with a segment (Prime with probability ``prime_share``) and each shown
ONE item (``k = 1``) among the items available that day.

Policies. The three attribute policies share one probit ADF model (:func:`probit_adf`, prior
``N(0, probit_prior_variance)`` on every weight) over the world's feature layout; they differ
only in the selection rule (:mod:`prime_science.bandits.selection`), and every request is one
call of the model's ``sample`` over the segment's items with the day's availability mask:

* ``thompson``: one weight draw ``w~ = mu + sigma * z`` per request, show the available item
  with the largest ``x(c, X)^T w~``;
* ``greedy``: the largest posterior-mean score ``x^T mu``, ties broken uniformly at random per
  request;
* ``epsilon_greedy``: with probability ``epsilon`` a uniformly random available item, else
  greedy;
* ``independent``: Beta–Bernoulli Thompson sampling per item (no attributes, no segment), prior
  ``Beta(beta_prior_alpha, beta_prior_beta)`` (``Beta(1, 32)``: mean 3%); an item becomes
  active on its arrival day (its slot has never been updated, so it starts at the prior).

Every policy folds the hour's impressions into its posterior once per hour. Segments and
click noise use common random numbers: request ``j`` of hour ``h`` has the same segment and the
same uniform ``u`` for every policy and clicks iff ``u < p(shown item)``.

Metrics per policy (all expected values, so they carry no click noise):

* ``regret``: cumulative over the horizon of ``max_{available c} p(c, X) - p(shown, X)``;
* ``ctr``: mean true ``p`` of the shown items over all impressions;
* ``young_ctr``: mean true ``p`` over the impressions of *young* items, i.e. items that arrived
  on day ``>= 1`` and are less than ``young_days`` (2) days old (``day - arrival_day < 2``);
  ``young_share``: the share of impressions on young items;
* ``long_tail_share``: with ``n_i`` the policy's impressions of item ``i`` over the horizon and
  ``m = ceil(long_tail_top_share * num_items)`` (10% of all items that appear in the horizon),
  ``1 - (sum of the m largest n_i) / sum_i n_i``: the share of impressions outside the policy's
  own top 10% most-shown items.

Expectation (directional targets): attribute TS scores a new item by the shared weights of its
brand, category, price and tokens, so it has less regret than independent TS (which must try
each of thousands of items from scratch) and a higher CTR on young items; greedy stops
exploring and concentrates its impressions on a few popular items, so its long-tail share is
below Thompson's.

Prior. The probit prior variance of a weight is ``probit_prior_scale`` times the world's block
variance ``s_block^2`` (the prior the empirical-Bayes step of Nabi et al. 2022,
:mod:`experiments.meta_prior`, aims at), the intercept's is ``intercept_prior_variance``.
With the generic ``N(0, 1)`` on all 4,479 weights (4,096 of them title buckets) Thompson
sampling explores title noise for the whole quick horizon and loses to independent TS (regret
ratios 2.8 and 4.3 on two seeds; 1.6 on one with ``N(0, 0.1)``); see the experiment's report.

Young-item CTR is undefined (NaN) in a seed where a policy shows no young item: greedy never
does, and independent TS, whose new items start at the prior mean 3% against established
items near 30%, often does not. The per-seed value is kept (NaN there), and the comparison
(the target) uses the CTR pooled over seeds (:func:`pooled`), with a jackknife s.e.

The attribute policies come in two models: probit ADF (``thompson``, ``greedy``,
``epsilon_greedy``) and diagonal Laplace-logistic (``thompson_logistic``, Chapelle & Li 2011;
prior variances scaled by :data:`LOGISTIC_SCALE` squared).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from experiments._common import (
    CalloutTraffic,
    block_prior_variance,
    callout_traffic,
    plot_mean_bands,
    segment_choices,
    standard_error,
    world_config,
)
from prime_science.bandits.beta_bernoulli import beta_bernoulli
from prime_science.bandits.logistic import LogisticState, logistic_laplace
from prime_science.bandits.probit import ProbitState, probit_adf
from prime_science.core.errors import fail
from prime_science.core.experiment import Target, pooled_metrics
from prime_science.core.types import PRNGKey
from prime_science.sim.callout_world import (
    CalloutWorldConfig,
    callout_feature_spec,
)

__all__ = [
    "NAME",
    "POLICIES",
    "POLICY_LABELS",
    "METRIC_LABELS",
    "NA_REASONS",
    "DATASETS",
    "Config",
    "PolicyTrace",
    "Results",
    "run",
    "summarize",
    "pooled",
    "targets",
    "plot",
]

NAME = "cold_start"
POLICIES = ("thompson", "thompson_logistic", "greedy", "epsilon_greedy", "independent")
POLICY_LABELS = {
    "thompson": "attribute Thompson sampling, probit",
    "thompson_logistic": "attribute Thompson sampling, logistic",
    "greedy": "greedy probit",
    "epsilon_greedy": "ε-greedy probit",
    "independent": "independent Beta Thompson sampling per item",
}
"""Each policy in words, for the report and the plots."""
DATASETS: tuple[str, ...] = ()
"""Packaged data sets the experiment reads: none (simulated world)."""

LOGISTIC_SCALE = 1.702
"""``sigma(1.702 s)`` is within 0.01 of ``Phi(s)``: the logistic prior's scale over the probit's."""


class Config(NamedTuple):
    """Static settings (hashable: the jitted ``run`` closes over them).

    Attributes:
      num_initial_items: items available from day 0.
      new_items_per_day: items arriving on each of days ``1 .. num_days - 1``.
      num_days: horizon in days.
      hours_per_day: update batches per day.
      impressions_per_hour: requests per hour (one impression each).
      prime_share: probability that a request is from a Prime member.
      epsilon: exploration probability of ``epsilon_greedy``.
      probit_prior_scale: the probit prior variance of a weight is this times the world's
        ``s_block^2`` (:data:`BLOCK_SCALES`).
      intercept_prior_variance: the probit prior variance of the intercept.
      probit_noise: ``beta`` of the probit likelihood.
      logistic_chunks: Laplace updates per hour of the logistic model (divides
        ``impressions_per_hour``).
      beta_prior_alpha, beta_prior_beta: prior of the independent Beta TS.
      young_days: an item that arrived on day ``>= 1`` is young while ``day - arrival < this``.
      long_tail_top_share: the head is the top share of items by impressions.
    """

    num_initial_items: int = 2_000
    new_items_per_day: int = 20
    num_days: int = 10
    hours_per_day: int = 24
    impressions_per_hour: int = 100
    prime_share: float = 0.5
    epsilon: float = 0.05
    probit_prior_scale: float = 1.0
    intercept_prior_variance: float = 1.0
    probit_noise: float = 1.0
    logistic_chunks: int = 10
    beta_prior_alpha: float = 1.0
    beta_prior_beta: float = 32.0
    young_days: int = 2
    long_tail_top_share: float = 0.1

    @classmethod
    def quick(cls) -> Config:
        """2,000 + 20/day items, 10 days of 24 hourly batches of 100 (2,400 impressions/day)."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """30 days of 24 hourly batches of 420 (~10k impressions/day)."""
        return cls(num_days=30, impressions_per_hour=420)

    @property
    def world(self) -> CalloutWorldConfig:
        """The world: its last arrivals land on day ``num_days - 1``, inside the horizon."""
        return world_config(self, self.num_days - 1)

    @property
    def num_hours(self) -> int:
        return self.num_days * self.hours_per_day


class PolicyTrace(NamedTuple):
    """One policy over the horizon.

    Attributes:
      regret: ``float32[hours]`` summed expected regret of the hour's impressions.
      value: ``float32[hours]`` summed true click probability of the shown items.
      young_value: ``float32[hours]`` the same over impressions of young items.
      young_impressions: ``float32[hours]`` impressions of young items.
      item_impressions: ``float32[items]`` impressions of every item over the horizon.
    """

    regret: jax.Array
    value: jax.Array
    young_value: jax.Array
    young_impressions: jax.Array
    item_impressions: jax.Array


class Results(NamedTuple):
    """Everything ``run`` returns for one seed.

    Attributes:
      oracle_value: ``float32[hours]`` summed click probability of the best available item of
        every request.
      policies: ``{policy name: PolicyTrace}`` for every name in ``POLICIES``.
    """

    oracle_value: jax.Array
    policies: dict[str, PolicyTrace]


class _Hour(NamedTuple):
    """The scanned inputs of one hour."""

    key: jax.Array
    day: jax.Array  # int32[]
    segments: jax.Array  # int32[R]
    uniforms: jax.Array  # float32[R], click noise (common across policies)
    best: jax.Array  # float32[2], the oracle's click probability per segment


class _Chooser(NamedTuple):
    """An experiment-local policy: ``init() -> state``, ``choose(key, state, segments,
    available) -> int32[R]`` items, ``learn(state, items, segments, clicks) -> state``."""

    init: Any
    choose: Any
    learn: Any


def _prior_variance(config: Config) -> np.ndarray:
    return block_prior_variance(
        config.world, config.probit_prior_scale, config.intercept_prior_variance
    )


def _probit_choosers(ids: jax.Array, num_features: int, config: Config) -> dict[str, _Chooser]:
    """Thompson, greedy and ε-greedy over one probit ADF model; ``ids: int32[2, items, K]``.
    Each request is one call of the model's ``sample`` over its segment's items, masked by
    the day's availability (:func:`segment_choices`)."""
    choosers = {}
    for rule in ("thompson", "greedy", "epsilon_greedy"):
        model = probit_adf(
            num_features,
            prior_variance=_prior_variance(config),
            noise=config.probit_noise,
            exploration=rule,
            epsilon=config.epsilon,
        )

        def learn(state: ProbitState, items, segments, clicks, model=model):
            return model.update(state, ids[segments, items], clicks.astype(jnp.float32))

        def choose(key, state: ProbitState, segments, available, model=model):
            return segment_choices(model.sample, key, state, ids, segments, available)

        choosers[rule] = _Chooser(model.init, choose, learn)
    return choosers


def _logistic_chooser(ids: jax.Array, num_features: int, config: Config) -> _Chooser:
    """Thompson sampling over a diagonal Laplace-logistic model (Chapelle & Li 2011).

    Prior variances are the probit ones times ``LOGISTIC_SCALE**2`` (``sigma(1.702 s) ~
    Phi(s)``, so logistic weights are about 1.7 times probit weights). The hour's events are
    folded in as ``config.logistic_chunks`` Laplace updates of equal size (the diagonal update's
    Newton system is dense over the distinct ids of one call: ``O(U^3)``, ``U <= n K``).
    """
    model = logistic_laplace(
        num_features, prior_variance=LOGISTIC_SCALE**2 * _prior_variance(config)
    )
    chunks = config.logistic_chunks

    def learn(state: LogisticState, items, segments, clicks):
        rows = ids[segments, items].reshape(chunks, -1, ids.shape[-1])
        labels = clicks.astype(jnp.float32).reshape(chunks, -1)

        def fold(state, chunk):
            return model.update(state, *chunk), None

        return jax.lax.scan(fold, state, (rows, labels))[0]

    def thompson(key, state: LogisticState, segments, available):
        return segment_choices(model.sample, key, state, ids, segments, available)

    return _Chooser(model.init, thompson, learn)


def _independent_chooser(num_items: int, config: Config) -> _Chooser:
    """Beta–Bernoulli TS per item; the active mask is the day's availability."""
    policy = beta_bernoulli(config.beta_prior_alpha, config.beta_prior_beta)

    def choose(key, state, segments, available):
        return policy.sample_batch(key, state, 1, segments.shape[0], available).arms[:, 0]

    def learn(state, items, segments, clicks):
        return policy.update(state, items, clicks.astype(jnp.float32))

    return _Chooser(lambda: policy.init(num_items), choose, learn)


def _simulate(
    chooser: _Chooser, hours: _Hour, traffic: CalloutTraffic, config: Config
) -> PolicyTrace:
    """One policy through the horizon: a ``lax.scan`` over hours."""
    probs, arrival_day = traffic.probs, traffic.arrival_day

    def step(carry, hour: _Hour):
        state, counts = carry
        available = arrival_day <= hour.day
        items = chooser.choose(hour.key, state, hour.segments, available)
        shown = probs[hour.segments, items]
        clicks = hour.uniforms < shown
        state = chooser.learn(state, items, hour.segments, clicks)
        arrival = arrival_day[items]
        young = (arrival > 0) & (hour.day - arrival < config.young_days)
        trace = (
            jnp.sum(hour.best[hour.segments] - shown),
            jnp.sum(shown),
            jnp.sum(jnp.where(young, shown, 0.0)),
            jnp.sum(young).astype(jnp.float32),
        )
        return (state, counts.at[items].add(1.0)), trace

    carry = (chooser.init(), jnp.zeros(probs.shape[1], jnp.float32))
    (_, counts), traces = jax.lax.scan(step, carry, hours)
    return PolicyTrace(*traces, item_impressions=counts)


def run(key: PRNGKey, config: Config) -> Results:
    """Simulate one world and run every policy through it (pure, jittable, one seed)."""
    if config.impressions_per_hour % config.logistic_chunks:
        fail(
            "config.logistic_chunks",
            f"a divisor of impressions_per_hour ({config.impressions_per_hour})",
            config.logistic_chunks,
        )
    key_world, key_segments, key_clicks, *policy_keys = jax.random.split(key, 3 + len(POLICIES))
    world_config = config.world
    traffic = callout_traffic(
        (key_world, key_segments, key_clicks),
        world_config,
        config.num_days,
        config.hours_per_day,
        config.impressions_per_hour,
        config.prime_share,
    )
    ids, num_features = traffic.ids, callout_feature_spec(world_config).num_features
    day = jnp.arange(config.num_hours, dtype=jnp.int32) // config.hours_per_day

    choosers = {
        **_probit_choosers(ids, num_features, config),
        "thompson_logistic": _logistic_chooser(ids, num_features, config),
        "independent": _independent_chooser(world_config.num_items, config),
    }
    traces = {}
    for name, policy_key in zip(POLICIES, policy_keys, strict=True):
        keys = jax.random.split(policy_key, config.num_hours)
        hours = _Hour(keys, day, traffic.segments, traffic.uniforms, traffic.best)
        traces[name] = _simulate(choosers[name], hours, traffic, config)
    return Results(traffic.oracle_value, traces)


def summarize(results: Results, config: Config) -> dict[str, float]:
    """Scalar metrics of one seed (see the module docstring for the definitions).

    Per policy: ``regret_<p>``, ``ctr_<p>``, ``young_ctr_<p>`` (NaN if the policy never showed
    a young item), ``young_share_<p>``, ``long_tail_share_<p>``; plus ``ctr_oracle``,
    ``regret_ratio_thompson_independent``, ``regret_ratio_logistic_independent`` and
    ``long_tail_gap_greedy_thompson`` (greedy minus Thompson). The young-CTR comparison is
    pooled over seeds (:func:`pooled`).
    """
    impressions = config.num_hours * config.impressions_per_hour
    metrics = {"ctr_oracle": float(np.sum(results.oracle_value) / impressions)}
    for name in POLICIES:
        trace = results.policies[name]
        young = float(np.sum(trace.young_impressions))
        counts = np.sort(np.asarray(trace.item_impressions, np.float64))[::-1]
        head = math.ceil(config.long_tail_top_share * counts.size)
        metrics[f"regret_{name}"] = float(np.sum(trace.regret, dtype=np.float64))
        metrics[f"ctr_{name}"] = float(np.sum(trace.value, dtype=np.float64) / impressions)
        metrics[f"young_ctr_{name}"] = (
            float(np.sum(trace.young_value, dtype=np.float64) / young) if young else math.nan
        )
        metrics[f"young_share_{name}"] = young / impressions
        metrics[f"long_tail_share_{name}"] = float(1.0 - counts[:head].sum() / counts.sum())
    metrics["regret_ratio_thompson_independent"] = (
        metrics["regret_thompson"] / metrics["regret_independent"]
    )
    metrics["regret_ratio_logistic_independent"] = (
        metrics["regret_thompson_logistic"] / metrics["regret_independent"]
    )
    metrics["long_tail_gap_greedy_thompson"] = (
        metrics["long_tail_share_greedy"] - metrics["long_tail_share_thompson"]
    )
    return metrics


def pooled(results: Results, config: Config) -> dict[str, float]:
    """Young-item CTR pooled over seeds (leaves have a leading seed axis): per policy
    ``pooled_young_ctr_<p>`` = (sum over seeds and hours of ``young_value``) / (the same sum
    of ``young_impressions``), NaN if the policy never showed a young item in any seed; and
    the gaps ``pooled_young_ctr_gap_<attribute policy>_independent``. A per-seed young CTR is
    undefined in a seed without young impressions (independent TS often shows none), so the
    comparison pools them."""
    metrics = {}
    for name in POLICIES:
        trace = results.policies[name]
        young = float(np.sum(trace.young_impressions, dtype=np.float64))
        value = float(np.sum(trace.young_value, dtype=np.float64))
        metrics[f"pooled_young_ctr_{name}"] = value / young if young else math.nan
    for name in ("thompson", "thompson_logistic"):
        metrics[f"pooled_young_ctr_gap_{name}_independent"] = (
            metrics[f"pooled_young_ctr_{name}"] - metrics["pooled_young_ctr_independent"]
        )
    return metrics


_YOUNG = "items younger than two days"
METRIC_LABELS: dict[str, str] = {
    "ctr_oracle": "click-through rate of the oracle (best available item for every request; "
    "expected clicks per impression)",
    **{
        f"{metric}_{name}": f"{what}, {label}{unit}"
        for name, label in POLICY_LABELS.items()
        for metric, what, unit in (
            ("regret", "cumulative regret", " (expected clicks)"),
            ("ctr", "click-through rate", " (expected clicks per impression)"),
            ("young_ctr", f"click-through rate on {_YOUNG}", " (expected clicks per impression)"),
            ("young_share", f"share of impressions on {_YOUNG}", ""),
            ("long_tail_share", "share of impressions outside the 10% most shown items", ""),
            (
                "pooled_young_ctr",
                f"click-through rate on {_YOUNG}, pooled over seeds",
                " (expected clicks per impression)",
            ),
        )
    },
    "regret_ratio_thompson_independent": "cumulative regret of attribute Thompson sampling "
    "(probit) over independent Thompson sampling's (ratio)",
    "regret_ratio_logistic_independent": "cumulative regret of attribute Thompson sampling "
    "(logistic) over independent Thompson sampling's (ratio)",
    "long_tail_gap_greedy_thompson": "long-tail share of impressions, greedy minus attribute "
    "Thompson sampling (probit)",
    "pooled_young_ctr_gap_thompson_independent": f"click-through rate on {_YOUNG}, pooled over "
    "seeds, attribute Thompson sampling (probit) minus independent Thompson sampling",
    "pooled_young_ctr_gap_thompson_logistic_independent": f"click-through rate on {_YOUNG}, "
    "pooled over seeds, attribute Thompson sampling (logistic) minus independent Thompson "
    "sampling",
}
"""Every metric of :func:`summarize` and :func:`pooled` in words."""
_NEVER_YOUNG = "undefined when the policy showed no item younger than two days"
NA_REASONS: dict[str, str] = {
    **{
        f"young_ctr_{name}": f"{_NEVER_YOUNG} in a seed (greedy never does; independent "
        "Thompson sampling often does not, its new items start at the prior mean of 3%)"
        for name in POLICIES
    },
    **{
        f"pooled_young_ctr_{name}": f"{_NEVER_YOUNG} in any seed (greedy never does)"
        for name in POLICIES
    },
    **{
        f"pooled_young_ctr_gap_{name}_independent": f"{_NEVER_YOUNG} in any seed, for either "
        "policy of the difference"
        for name in ("thompson", "thompson_logistic")
    },
}
"""Why a metric can be NaN."""

targets = [
    Target(
        "regret_ratio_thompson_independent",
        "<",
        1.0,
        "directional: attribute (probit) Thompson sampling has less cumulative regret than "
        "independent Beta-Bernoulli Thompson sampling per item",
        "Teo et al. (2016, RecSys) and Graepel et al. (2010, ICML): a Bayesian probit model of "
        "item attributes lets a new item borrow what other items taught; a directional "
        "expectation, no published number",
    ),
    Target(
        "regret_ratio_logistic_independent",
        "<",
        1.0,
        "directional: attribute (Laplace-logistic) Thompson sampling has less cumulative regret "
        "than independent Beta-Bernoulli Thompson sampling per item",
        "Chapelle and Li (2011, NIPS), Laplace-approximate Bayesian logistic regression with "
        "Thompson sampling; Teo et al. (2016, RecSys); a directional expectation",
    ),
    Target(
        "pooled_young_ctr_gap_thompson_independent",
        ">",
        0.0,
        "directional: attribute (probit) Thompson sampling has a higher CTR on items younger "
        "than two days than independent Thompson sampling (pooled over seeds)",
        "Teo et al. (2016, RecSys): a new item is scored by the shared weights of its "
        "attributes; CTR on young items is this experiment's cold-start measure",
    ),
    Target(
        "pooled_young_ctr_gap_thompson_logistic_independent",
        ">",
        0.0,
        "directional: attribute (logistic) Thompson sampling has a higher CTR on items younger "
        "than two days than independent Thompson sampling (pooled over seeds)",
        "Teo et al. (2016, RecSys): a new item is scored by the shared weights of its "
        "attributes; CTR on young items is this experiment's cold-start measure",
    ),
    Target(
        "long_tail_gap_greedy_thompson",
        "<",
        0.0,
        "directional: greedy probit puts a smaller share of impressions on the long tail "
        "(outside its top 10% items) than attribute Thompson sampling",
        "Teo et al. (2016, RecSys): Bayesian exploration against the popularity bias of a "
        "recommender that only exploits; a directional expectation",
    ),
]


def plot(results: Results, config: Config, out_dir: Path) -> list[Path]:
    """Cumulative regret vs day (mean +- s.e. over seeds); young-item CTR and long-tail share."""
    out_dir = Path(out_dir)
    seeds = results.oracle_value.shape[0]
    days = np.arange(1, config.num_hours + 1) / config.hours_per_day

    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.subplots()
    plot_mean_bands(
        axes,
        days,
        {
            POLICY_LABELS[name]: np.cumsum(
                np.asarray(results.policies[name].regret, np.float64), axis=-1
            )
            for name in POLICIES
        },
    )
    axes.set(
        xlabel="day",
        ylabel="cumulative regret (expected clicks)",
        title=f"{config.impressions_per_hour * config.hours_per_day:,} impressions/day, "
        f"{seeds} seeds (± s.e.)",
    )
    axes.legend()
    regret_path = out_dir / "cumulative_regret.png"
    figure.savefig(regret_path, dpi=120)

    paths = [regret_path]
    young_ctr = pooled_metrics(pooled, results, config, seeds)
    young = [young_ctr[f"pooled_young_ctr_{name}"]["mean"] for name in POLICIES]
    young_se = [young_ctr[f"pooled_young_ctr_{name}"]["se"] or 0.0 for name in POLICIES]
    per_seed = [summarize(jax.tree.map(lambda x, s=s: x[s], results), config) for s in range(seeds)]
    tail = np.array([[m[f"long_tail_share_{name}"] for name in POLICIES] for m in per_seed])
    for metric, label, means, errors, note in (
        (
            "young_ctr",
            "click-through rate on items < 2 days old (clicks per impression)",
            young,
            young_se,
            "pooled over seeds (± jackknife s.e.)",
        ),
        (
            "long_tail_share",
            "share of impressions outside the policy's 10% most shown items",
            tail.mean(0),
            standard_error(tail),
            f"{seeds} seeds (± s.e.)",
        ),
    ):
        figure = Figure(figsize=(8.0, 3.6), layout="constrained")
        axes = figure.subplots()
        shown = np.nan_to_num(np.asarray(means, np.float64))
        axes.barh([POLICY_LABELS[name] for name in POLICIES], shown, xerr=errors, capsize=4)
        for position, value in enumerate(means):
            if not np.isfinite(value):  # the policy never showed a young item
                axes.annotate("none shown", (0.0, position), ha="left", va="center")
        axes.invert_yaxis()
        axes.set(xlabel=label, title=note)
        path = out_dir / f"{metric}.png"
        figure.savefig(path, dpi=120)
        paths.append(path)
    return paths
