"""Deep PQR (Geng et al. 2020) on the authors' SAmQ bus environment, and against NFXP (Su-Judd).

Environment (:mod:`prime_science.sim.samq_bus`): ``s`` in ``R^3``, ``theta = (1, 0, 0)``,
``b = 5``; action 0 (replace, the anchor) has reward 0 and resets the relevant coordinate;
action 1 (keep) has reward ``b - theta . s`` and adds ``U(1, 2)``; the two noise coordinates are
redrawn ``U(-5, 5)`` every step. The behaviour policy is the soft-optimal policy at
``beta = 0.9``, ``alpha = 1``, solved on a fine 1-D grid (accurate to ~1e-5).

Per seed and per sample size ``n`` (transitions; ``n / steps_per_agent`` independent agents,
each recorded for ``steps_per_agent`` steps after ``burn_in`` unrecorded ones), Deep PQR
(:mod:`prime_science.choice.deep_pqr`, detached Q-step target, held-out early stopping, linear
reward head) is fitted and evaluated:

* ``keep_slope_<n>``, ``keep_noise_coef_<n>`` (largest absolute noise coefficient),
  ``keep_intercept_<n>``: least squares of the R-step targets ``z_i`` on ``[s_i, 1]`` over the
  keep (non-anchor) rows — the author's evaluation with the CORRECT sign: the truth is
  ``(-theta, b) = (-1, 0, 0; 5)``. ``slope_error_<n> = |slope + theta_1|``,
  ``intercept_error_<n> = |intercept - b|``;
* ``anchor_intercept_<n>``: the same regression over anchor rows (truth: ``r_A = 0``);
* ``reward_rmse_<n>``: root mean square over a fresh test sample's states and both actions of
  ``r_hat(s, a) - r(s, a)``;
* ``loglik_gap_<n>``: mean test log-likelihood per row of the generating policy minus that of
  ``pi_hat`` (a fresh test sample of ``test_agents`` agents; >= 0 up to noise);
* ``anchor_q_error_<n>``: mean of ``Q_hat_A(s)`` over the test states minus the true
  ``Q(s, replace)`` (constant here); a constant error ``delta`` in ``Q_A`` shifts the keep
  reward by ``(1 - beta) delta``;
* the author-code variant (Q-step target NOT detached, as in the authors' code
  github.com/gengsinong/SAmQ: a residual gradient) at the
  largest ``n``, sharing our P-step: ``author_keep_slope``, ``author_keep_intercept``,
  ``author_reward_rmse``, ``author_anchor_q_error`` and ``author_minus_ours_reward_rmse``.

Su–Judd part (Su and Judd 2012's design of Rust 1987's bus; ``su_judd_datasets`` panels per
seed of the design of
:mod:`prime_science.sim.bus_engine`: 50 buses x 120 months, ``beta = 0.975``): Deep PQR with the
mileage bin ``x`` as a 1-D feature, anchor = replace with reward 0 and the linear reward head,
against NFXP (:func:`prime_science.choice.nfxp.estimate_bus`, float64, run on the host by
:func:`nfxp_estimates` from ``summarize``/``plot``) on the same panels. With the replace reward
normalised to 0 the truth is the keep-minus-replace utility ``RC - 0.001 theta11 x``; NFXP's
estimate of it is ``RC_hat - 0.001 theta11_hat x``.
Metrics: ``su_judd_{pqr,nfxp}_{slope_x1000,intercept,rmse}`` (RMSE over the panel's rows
against the truth), ``su_judd_pqr_minus_nfxp_{intercept,slope_x1000}``,
``su_judd_abs_gap_intercept`` (per seed, ``|mean over panels of PQR - NFXP intercept|``),
``su_judd_rmse_ratio_pqr_nfxp`` and ``su_judd_replacements`` (replacements per panel: about 43
of 5,950 rows, so the policy net must extrapolate ``log pi(replace | x)`` where replacements
are never seen). These are reported, not gated: with ~43 replacements per panel
the per-panel s.d. of the PQR - NFXP intercept gap is about 1.2, so a fixed threshold on a few
panels per seed would test noise.

In this environment the anchor's next state is independent of ``s`` (replace resets the only
relevant coordinate; the noise is redrawn), so ``Q_A`` is a constant and the residual-gradient
bias (``Var g(s')`` under the anchor transition) is small: the author variant is expected to be
close to ours here; the difference is reported, not assumed.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from experiments._common import standard_error
from prime_science.choice import nfxp
from prime_science.choice.data import ChoiceData
from prime_science.choice.deep_pqr import DeepPQRConfig, deep_pqr
from prime_science.core.errors import fail
from prime_science.core.experiment import Target
from prime_science.core.types import PRNGKey
from prime_science.sim import samq_bus
from prime_science.sim.bus_engine import SU_JUDD, BusEngineDesign, simulate_bus_panel

__all__ = [
    "NAME",
    "METRIC_LABELS",
    "NA_REASONS",
    "DATASETS",
    "Config",
    "SizeResults",
    "SuJuddResults",
    "Results",
    "nfxp_estimates",
    "run",
    "summarize",
    "targets",
    "plot",
]

NAME = "deep_pqr"
DATASETS: tuple[str, ...] = ()
"""Packaged data sets the experiment reads: none (simulated data)."""
NA_REASONS: dict[str, str] = {}
"""No metric of this experiment can be undefined."""


class Config(NamedTuple):
    """Static settings (hashable).

    Attributes:
      sample_sizes: transitions per fit (each a multiple of ``steps_per_agent``).
      steps_per_agent: recorded steps per independent agent.
      burn_in: unrecorded steps after the reset.
      test_agents: agents of the test sample (``steps_per_agent`` rows each).
      env: the environment (and its behaviour policy's discount).
      pqr: Deep PQR settings (``discount`` and ``alpha`` are taken from ``env``: known).
      su_judd_datasets: simulated Su–Judd panels per seed (0: skip that part).
      bus_design: the Su–Judd design (``beta = 0.975``, 50 buses x 120 months).
    """

    sample_sizes: tuple[int, ...] = (1_000, 5_000, 20_000)
    steps_per_agent: int = 10
    burn_in: int = 20
    test_agents: int = 2_000
    env: samq_bus.SamqBusConfig = samq_bus.SamqBusConfig()
    pqr: DeepPQRConfig = DeepPQRConfig()
    su_judd_datasets: int = 2
    bus_design: BusEngineDesign = SU_JUDD

    @classmethod
    def quick(cls) -> Config:
        """1k, 5k and 20k transitions (100, 500 and 2,000 agents); ~40 s for 5 seeds on 2
        shared CPU cores."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """quick()'s sample sizes with 4 Su–Judd panels per seed (the runner's full scale also
        doubles the seeds): 31 s for 2 seeds on the 2-core CPU. A five-size grid (1k ... 20k)
        did not finish in 13 minutes there (not diagnosed)."""
        return cls(su_judd_datasets=4)

    @property
    def model_config(self) -> DeepPQRConfig:
        return self.pqr._replace(
            discount=self.env.discount, alpha=self.env.alpha, anchor=samq_bus.ANCHOR
        )

    @property
    def bus_model_config(self) -> DeepPQRConfig:
        """Deep PQR on bus panels: anchor = replace (decision 1), ``beta`` of the design."""
        return self.pqr._replace(discount=self.bus_design.discount, alpha=1.0, anchor=1)


class SizeResults(NamedTuple):
    """One Deep PQR fit's evaluation (leading axis: the sample sizes, or none for the author
    variant).

    Attributes:
      keep_coef: ``float[..., 3]`` regression of ``z`` on ``s`` over keep rows.
      keep_intercept: ``float[...]``.
      anchor_intercept: ``float[...]`` intercept of the same regression over anchor rows.
      reward_rmse: ``float[...]`` over test states and both actions.
      test_loglik: ``float[...]`` mean ``log pi_hat(a|s)`` over the test rows.
      anchor_q_mean: ``float[...]`` mean ``Q_hat_A`` over the test states.
      epochs_policy, epochs_anchor_q: ``int32[...]``.
    """

    keep_coef: jax.Array
    keep_intercept: jax.Array
    anchor_intercept: jax.Array
    reward_rmse: jax.Array
    test_loglik: jax.Array
    anchor_q_mean: jax.Array
    epochs_policy: jax.Array
    epochs_anchor_q: jax.Array


class SuJuddResults(NamedTuple):
    """Su–Judd panels of one seed (leading axis: datasets).

    Attributes:
      pqr_keep: ``float[D, 2]`` Deep PQR's linear keep reward (slope per bin, intercept), the
        anchor (replace) reward being 0.
      panels: the simulated panels (:class:`ChoiceData` of ``int32[D, n]``), for NFXP
        (:func:`nfxp_estimates`, on the host in float64).
      replacements: ``float[D]`` replacements in the panel's rows.
    """

    pqr_keep: jax.Array
    panels: ChoiceData
    replacements: jax.Array


class Results(NamedTuple):
    """One seed: ``ours`` per sample size, ``author`` at the largest size, the truth's test
    log-likelihood and ``Q(., replace)``, and the Su–Judd comparison (``None`` when skipped)."""

    ours: SizeResults
    author: SizeResults
    true_test_loglik: jax.Array
    true_anchor_q: jax.Array
    su_judd: SuJuddResults | None


def _regression(states, targets, rows):
    """Least squares of ``targets`` on ``[states, 1]`` over ``rows`` (a mask)."""
    design = jnp.concatenate([states, jnp.ones_like(states[:, :1])], axis=1)
    mask = rows.astype(states.dtype)
    coef = jnp.linalg.lstsq(design * mask[:, None], targets * mask)[0]
    return coef[:-1], coef[-1]


def _evaluate(model, fit, data, test, config: Config) -> SizeResults:
    z = fit.reward.targets
    keep_coef, keep_intercept = _regression(data.states, z, data.actions != samq_bus.ANCHOR)
    _, anchor_intercept = _regression(data.states, z, data.actions == samq_bus.ANCHOR)
    error = model.reward(fit, test.states) - samq_bus.rewards(test.states, config.env)
    log_probs = model.log_policy(fit, test.states)
    return SizeResults(
        keep_coef,
        keep_intercept,
        anchor_intercept,
        jnp.sqrt(jnp.mean(error**2)),
        jnp.mean(jnp.take_along_axis(log_probs, test.actions[:, None], 1)),
        jnp.mean(model.anchor_q(fit, test.states)),
        fit.policy.epochs,
        fit.anchor_q.epochs,
    )


def run(key: PRNGKey, config: Config) -> Results:
    """Simulate, fit and evaluate for every sample size (pure, jittable, one seed)."""
    for n in config.sample_sizes:
        if n % config.steps_per_agent:
            fail("config.sample_sizes", "multiples of steps_per_agent", config.sample_sizes)
    env = config.env
    table = samq_bus.soft_q_table(env)
    model = deep_pqr(config.model_config, env.num_features, 2)
    author = deep_pqr(config.model_config._replace(detach_target=False), env.num_features, 2)
    key_test, key_bus, *keys = jax.random.split(key, 2 + len(config.sample_sizes))
    simulate = lambda k, agents: samq_bus.simulate(  # noqa: E731
        k, table, env, agents, config.steps_per_agent, config.burn_in
    )
    test = simulate(key_test, config.test_agents)
    ours, author_result = [], None
    for size, size_key in zip(config.sample_sizes, keys, strict=True):
        key_data, key_fit = jax.random.split(size_key)
        data = simulate(key_data, size // config.steps_per_agent)
        fit = model.fit(key_fit, data.states, data.actions, data.next_states)
        ours.append(_evaluate(model, fit, data, test, config))
        if size == max(config.sample_sizes):
            # the author's Q-step (target not detached) with the same split, P-step, keys
            # (initialisation and batch order) as ours: only the target differs
            key_split, _, key_q, key_r = jax.random.split(key_fit, 4)  # as in DeepPQR.fit
            prepared = author.prepare(key_split, *data[:3])
            anchor_fit = author.fit_anchor_q(key_q, prepared, fit.policy)
            reward_fit = author.fit_reward(key_r, prepared, fit.policy, anchor_fit)
            author_fit = fit._replace(anchor_q=anchor_fit, reward=reward_fit)
            author_result = _evaluate(author, author_fit, data, test, config)
    true_loglik = jnp.mean(jnp.take_along_axis(test.log_probs, test.actions[:, None], 1))
    su_judd = _su_judd(key_bus, config) if config.su_judd_datasets else None
    return Results(
        jax.tree.map(lambda *x: jnp.stack(x), *ours),
        author_result,
        true_loglik,
        table.q_replace,
        su_judd,
    )


@functools.lru_cache(maxsize=4)
def _nfxp_fn(design: BusEngineDesign):
    """Jitted, vmapped float64 NFXP over panels (traced and run inside ``jax.enable_x64``)."""

    def one(state, decision, increment):
        fit = nfxp.estimate_bus(
            ChoiceData(state, decision, increment),
            num_states=design.num_states,
            discount=design.discount,
            num_increments=len(design.increment_probs),
        )
        return fit.params

    return jax.jit(jax.vmap(one))


def nfxp_estimates(panels: ChoiceData, config: Config) -> np.ndarray:
    """NFXP ``(RC, theta11)`` per panel, ``float64[..., 2]`` for panels with any leading axes.

    Runs on the host, eagerly, in float64 (one vmapped call). It is NOT part of the jitted
    ``run``, on two counts. A ``jax.pure_callback`` into NFXP from inside ``run`` deadlocked on
    2 CPU cores while the Deep PQR loops of the same program were running. And with ``run``
    traced in float64 (``Config.precision``) and NFXP inside it, even behind an
    ``optimization_barrier``, the main job hung on 2 cores in both of two tries: gdb showed
    both threads of XLA's CPU pool inside jaxlib's batched LAPACK SVD (the fits' least
    squares), each waiting in ``ParallelBatchMap`` for work queued to that same pool. So
    ``run`` stays in float32, the precision that has never hung, and :func:`summarize` and
    :func:`plot` call this on the panels that ``run`` returns.
    """
    state = np.asarray(panels.state)
    leading = state.shape[:-1]
    flat = [np.reshape(np.asarray(x), (-1, x.shape[-1])) for x in panels]
    with jax.enable_x64(True):
        params = np.asarray(jax.device_get(_nfxp_fn(config.bus_design)(*flat)), np.float64)
    return params.reshape(*leading, 2)


def _panel_rows(panels: ChoiceData, design: BusEngineDesign):
    """Mileage, decision, next mileage of every bus-month with a next month (``[..., rows]``)."""
    shape = (*panels.state.shape[:-1], design.num_buses, design.num_months)
    x, d, j = (v.reshape(shape)[..., :-1].reshape(*shape[:-2], -1) for v in panels)
    return x, d, jnp.minimum(jnp.where(d == 1, 0, x) + j, design.num_states - 1)


def _su_judd(key: PRNGKey, config: Config) -> SuJuddResults:
    """Deep PQR (1-D mileage feature, linear reward head, anchor = replace with reward 0) on
    simulated Su–Judd panels; NFXP runs later on the returned panels (:func:`nfxp_estimates`)."""
    design = config.bus_design
    model = deep_pqr(config.bus_model_config, 1, 2)
    key_panels, key_fits = jax.random.split(key)
    panels = jax.vmap(lambda k: simulate_bus_panel(k, design))(
        jax.random.split(key_panels, config.su_judd_datasets)
    )  # ChoiceData of [D, n]

    def pqr_one(key, panel):
        x, d, next_x = _panel_rows(panel, design)
        states = x.astype(jnp.float32)[:, None]
        fit = model.fit(key, states, d, next_x.astype(jnp.float32)[:, None])
        slope, intercept = fit.reward.params.weights[0, 0], fit.reward.params.intercept[0]
        return jnp.stack([slope, intercept]), jnp.sum(d).astype(jnp.float32)

    pqr_keep, replacements = jax.vmap(pqr_one)(
        jax.random.split(key_fits, config.su_judd_datasets), panels
    )
    return SuJuddResults(pqr_keep, panels, replacements)


def summarize(results: Results, config: Config) -> dict[str, float]:
    """Per-seed scalars (see the module docstring for the definitions)."""
    theta, bonus = config.env.theta, config.env.bonus
    metrics: dict[str, float] = {}

    def describe(prefix: str, r: SizeResults) -> dict[str, float]:
        coef = np.asarray(r.keep_coef, np.float64)
        values = {
            "keep_slope": coef[0],
            "keep_noise_coef": np.max(np.abs(coef[1:])),
            "keep_intercept": float(r.keep_intercept),
            "slope_error": abs(coef[0] + theta[0]),
            "intercept_error": abs(float(r.keep_intercept) - bonus),
            "anchor_intercept": float(r.anchor_intercept),
            "reward_rmse": float(r.reward_rmse),
            "loglik_gap": float(results.true_test_loglik) - float(r.test_loglik),
            "anchor_q_error": float(r.anchor_q_mean) - float(results.true_anchor_q),
            "epochs_policy": float(r.epochs_policy),
            "epochs_anchor_q": float(r.epochs_anchor_q),
        }
        return {f"{prefix}{name}": float(v) for name, v in values.items()}

    for i, size in enumerate(config.sample_sizes):
        named = describe("", jax.tree.map(lambda x, i=i: x[i], results.ours))
        metrics.update({f"{name}_{size}": value for name, value in named.items()})
    largest = max(config.sample_sizes)
    for name in ("slope_error", "keep_noise_coef", "intercept_error", "loglik_gap"):
        metrics[f"{name}_largest"] = metrics[f"{name}_{largest}"]
    author = describe("author_", results.author)
    for name in ("keep_slope", "keep_intercept", "reward_rmse", "anchor_q_error"):
        metrics[f"author_{name}"] = author[f"author_{name}"]
    metrics["author_minus_ours_reward_rmse"] = (
        metrics["author_reward_rmse"] - metrics[f"reward_rmse_{largest}"]
    )
    if results.su_judd is not None:
        bus, design = results.su_judd, config.bus_design
        pqr = np.asarray(bus.pqr_keep, np.float64)
        nfxp_params = nfxp_estimates(bus.panels, config)
        nfxp_keep = np.stack([-0.001 * nfxp_params[:, 1], nfxp_params[:, 0]], axis=1)
        mileage = np.asarray(_panel_rows(bus.panels, design)[0], np.float64)  # [D, rows]
        truth = design.replacement_cost - 0.001 * design.theta11 * mileage
        metrics["su_judd_true_slope_x1000"] = -design.theta11
        metrics["su_judd_true_intercept"] = design.replacement_cost
        for name, keep in (("pqr", pqr), ("nfxp", nfxp_keep)):
            estimate = keep[:, 1:2] + keep[:, 0:1] * mileage
            rmse = np.sqrt(np.mean((estimate - truth) ** 2, axis=1))
            metrics[f"su_judd_{name}_slope_x1000"] = float(1000 * keep[:, 0].mean())
            metrics[f"su_judd_{name}_intercept"] = float(keep[:, 1].mean())
            metrics[f"su_judd_{name}_rmse"] = float(rmse.mean())
        metrics["su_judd_pqr_minus_nfxp_intercept"] = float(np.mean(pqr[:, 1] - nfxp_keep[:, 1]))
        metrics["su_judd_pqr_minus_nfxp_slope_x1000"] = float(
            1000 * np.mean(pqr[:, 0] - nfxp_keep[:, 0])
        )
        metrics["su_judd_abs_gap_intercept"] = abs(metrics["su_judd_pqr_minus_nfxp_intercept"])
        metrics["su_judd_rmse_ratio_pqr_nfxp"] = (
            metrics["su_judd_pqr_rmse"] / metrics["su_judd_nfxp_rmse"]
        )
        metrics["su_judd_replacements"] = float(np.mean(bus.replacements))
    smallest = min(config.sample_sizes)
    metrics["reward_rmse_ratio_largest_smallest"] = (
        metrics[f"reward_rmse_{largest}"] / metrics[f"reward_rmse_{smallest}"]
    )
    return metrics


def _metric_labels(config: Config) -> dict[str, str]:
    """Every metric of :func:`summarize` under ``config`` in words (rewards in utility units)."""
    fit = {
        "keep_slope": "slope on s_1 of the recovered keep reward (truth -1)",
        "keep_noise_coef": "largest |coefficient| of the noise coordinates in the recovered "
        "keep reward (truth 0)",
        "keep_intercept": "intercept of the recovered keep reward (truth b = 5)",
        "slope_error": "|slope on s_1 + 1| of the recovered keep reward",
        "intercept_error": "|intercept - 5| of the recovered keep reward",
        "anchor_intercept": "intercept of the recovered replace (anchor) reward (truth 0)",
        "reward_rmse": "reward RMSE over test states and both actions",
        "loglik_gap": "test log-likelihood per row, generating policy minus fitted policy (nats)",
        "anchor_q_error": "mean error of the fitted anchor Q over test states",
        "epochs_policy": "training epochs of the policy network",
        "epochs_anchor_q": "training epochs of the anchor-Q network",
    }
    labels = {
        f"{name}_{size}": f"{text}, Deep PQR, {size:,} transitions"
        for size in config.sample_sizes
        for name, text in fit.items()
    }
    for name in ("slope_error", "keep_noise_coef", "intercept_error", "loglik_gap"):
        labels[f"{name}_largest"] = f"{fit[name]}, Deep PQR, largest sample"
    for name in ("keep_slope", "keep_intercept", "reward_rmse", "anchor_q_error"):
        labels[f"author_{name}"] = (
            f"{fit[name]}, authors' code (target not detached), largest sample"
        )
    labels["author_minus_ours_reward_rmse"] = (
        "reward RMSE, authors' code minus Deep PQR with a detached target, largest sample"
    )
    labels["reward_rmse_ratio_largest_smallest"] = (
        "reward RMSE of Deep PQR, largest over smallest sample (ratio)"
    )
    if config.su_judd_datasets:
        utility = "keep-minus-replace utility on Su-Judd bus panels"
        labels["su_judd_true_slope_x1000"] = "true slope x 1000 of the " + utility
        labels["su_judd_true_intercept"] = "true intercept (RC) of the " + utility
        for name, method in (("pqr", "Deep PQR"), ("nfxp", "NFXP")):
            labels[f"su_judd_{name}_slope_x1000"] = f"slope x 1000 of the {utility}, {method}"
            labels[f"su_judd_{name}_intercept"] = f"intercept of the {utility}, {method}"
            labels[f"su_judd_{name}_rmse"] = (
                f"RMSE over the panel's rows of the {utility}, {method}"
            )
        labels |= {
            "su_judd_pqr_minus_nfxp_intercept": f"intercept of the {utility}, Deep PQR minus NFXP",
            "su_judd_pqr_minus_nfxp_slope_x1000": f"slope x 1000 of the {utility}, Deep PQR "
            "minus NFXP",
            "su_judd_abs_gap_intercept": f"|intercept gap| of the {utility}, Deep PQR vs NFXP",
            "su_judd_rmse_ratio_pqr_nfxp": f"RMSE of the {utility}, Deep PQR over NFXP (ratio)",
            "su_judd_replacements": "engine replacements per Su-Judd panel",
        }
    return labels


METRIC_LABELS: dict[str, str] = _metric_labels(Config.quick()) | _metric_labels(Config.full())
"""Every metric of :func:`summarize` in words."""
_SAMQ = (
    "Geng et al. (2020, ICML), the authors' SAmQ bus environment (github.com/gengsinong/SAmQ): "
    "keep reward b - theta . s with theta = (1, 0, 0), b = 5; tolerance set by this project"
)

targets = [
    Target(
        "slope_error_largest",
        "<",
        0.1,
        "numeric: the recovered keep reward regressed on the state has slope -theta_1 = -1 "
        "(|slope + 1| < 0.1 at the largest n, mean over seeds)",
        f"{_SAMQ}; the authors' script compares the slope with +theta, the reward's sign "
        "makes it -theta",
    ),
    Target(
        "keep_noise_coef_largest",
        "<",
        0.05,
        "numeric: the noise coordinates' coefficients are ~0 (largest |coef| < 0.05)",
        _SAMQ,
    ),
    Target(
        "intercept_error_largest",
        "<",
        0.3,
        "numeric: the keep reward's intercept is b = 5 (|intercept - 5| < 0.3)",
        _SAMQ,
    ),
    Target(
        "loglik_gap_largest",
        "<",
        0.01,
        "numeric: test log-likelihood of pi_hat within 0.01 nats/row of the generating policy's",
        _SAMQ,
    ),
    Target(
        "reward_rmse_ratio_largest_smallest",
        "<",
        1.0,
        "directional: the reward error shrinks with the sample size",
        "Geng et al. (2020, ICML): PQR's reward error is bounded with estimated policy and "
        "transitions, so it falls as the sample grows; a directional expectation",
    ),
]


def plot(results: Results, config: Config, out_dir: Path) -> list[Path]:
    """Keep-reward slope and intercept, and reward RMSE, vs sample size (mean +- s.e.)."""
    out_dir = Path(out_dir)
    sizes = np.asarray(config.sample_sizes, np.float64)
    ours = results.ours
    coef = np.asarray(ours.keep_coef, np.float64)  # [seeds, sizes, 3]
    intercept = np.asarray(ours.keep_intercept, np.float64)
    author_coef = np.asarray(results.author.keep_coef, np.float64)  # [seeds, 3]
    author_intercept = np.asarray(results.author.keep_intercept, np.float64)
    seeds = coef.shape[0]
    largest = sizes.max()

    figure = Figure(figsize=(9.6, 3.8), layout="constrained")
    axes = figure.subplots(1, 2)
    panels = (
        (axes[0], coef[..., 0], author_coef[:, 0], -config.env.theta[0], "slope on s_1"),
        (axes[1], intercept, author_intercept, config.env.bonus, "intercept b"),
    )
    for ax, values, author_values, truth, label in panels:
        ax.errorbar(
            sizes,
            values.mean(0),
            yerr=standard_error(values),
            marker="o",
            capsize=4,
            label="Deep PQR (detached target)",
        )
        ax.errorbar(
            [largest * 1.08],
            [author_values.mean()],
            yerr=[standard_error(author_values[:, None])[0]],
            marker="s",
            capsize=4,
            label="authors' code (target not detached)",
        )
        ax.axhline(truth, color="k", linestyle="--", label="truth")
        ax.set(xscale="log", xlabel="transitions", ylabel=f"keep reward: {label}")
    axes[0].legend()
    figure.suptitle(f"SAmQ bus environment (reward 5 - s_1 for keep), {seeds} seeds (± s.e.)")
    coef_path = out_dir / "keep_reward_coefficients.png"
    figure.savefig(coef_path, dpi=120)

    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = figure.subplots()
    rmse = np.asarray(ours.reward_rmse, np.float64)
    ax.errorbar(
        sizes,
        rmse.mean(0),
        yerr=standard_error(rmse),
        marker="o",
        capsize=4,
        label="Deep PQR (detached target)",
    )
    author_rmse = np.asarray(results.author.reward_rmse, np.float64)
    ax.errorbar(
        [largest * 1.08],
        [author_rmse.mean()],
        yerr=[standard_error(author_rmse[:, None])[0]],
        marker="s",
        capsize=4,
        label="author (not detached)",
    )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="transitions",
        ylabel="reward RMSE over test states (utility units)",
        title=f"{seeds} seeds (± s.e.)",
    )
    ax.legend()
    rmse_path = out_dir / "reward_error.png"
    figure.savefig(rmse_path, dpi=120)
    paths = [coef_path, rmse_path]
    if results.su_judd is not None:
        bus, design = results.su_judd, config.bus_design
        pqr = np.asarray(bus.pqr_keep, np.float64).reshape(-1, 2)
        nfxp_params = nfxp_estimates(bus.panels, config).reshape(-1, 2)
        figure = Figure(figsize=(9.6, 3.8), layout="constrained")
        axes = figure.subplots(1, 2)
        for ax, nfxp_values, pqr_values, truth, label in (
            (axes[0], nfxp_params[:, 0], pqr[:, 1], design.replacement_cost, "intercept (RC)"),
            (axes[1], -nfxp_params[:, 1], 1000 * pqr[:, 0], -design.theta11, "slope x 1000"),
        ):
            ax.scatter(nfxp_values, pqr_values, s=14)
            low = min(nfxp_values.min(), pqr_values.min())
            high = max(nfxp_values.max(), pqr_values.max())
            ax.plot([low, high], [low, high], "k--", lw=1, label="Deep PQR = NFXP")
            ax.plot([truth], [truth], "r*", ms=12, label="true value")
            ax.set(xlabel=f"NFXP {label}", ylabel=f"Deep PQR {label}")
        axes[0].legend()
        figure.suptitle(
            f"Su-Judd bus panels: keep-minus-replace utility, {len(pqr)} panels, one dot each"
        )
        bus_path = out_dir / "su_judd_pqr_vs_nfxp.png"
        figure.savefig(bus_path, dpi=120)
        paths.append(bus_path)
    return paths
