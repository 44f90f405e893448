"""Contractual retention (Fader and Hardie 2007): sBG and BdW fitted on years 1-7, projected to 12.

Data: the two published cohorts of 1,000 customers (:mod:`prime_science.datasets.retention`,
"regular" and "high_end"), survivors at the end of years 0-12. For each cohort and model
(:mod:`prime_science.membership.retention`):

* maximum likelihood on the calibration years ``1 .. t_c`` (``t_c = 7``; Newton steps on the log
  parameters, a fixed count, with the right-censoring term for the customers still subscribed
  at ``t_c``), standard errors from the inverse Hessian;
* the projection ``n_0 S(t)`` of years ``t_c + 1 .. 12`` against the actual counts: mean absolute
  percentage error (MAPE);
* NUTS (NumPyro, one chain) over ``log alpha, log beta[, log c]`` with priors ``N(0, 2^2)`` on
  the log shapes and ``N(0, 1)`` on ``log c``, and posterior predictive counts of years
  ``t_c + 1 .. 12`` drawn from the observed survivors at ``t_c``; the metric is the share of
  those five actual counts inside the central ``interval_level`` predictive interval.

Models. sBG: a customer's yearly churn probability ``theta ~ Beta(alpha, beta)`` is constant,
yet the cohort's retention rate ``r_t = (beta + t - 1) / (alpha + beta + t - 1)`` rises with
tenure (the fickle leave first). BdW (Fader, Hardie, Liu, Davin and Steenburgh 2018):
``P(T <= t | theta) = 1 - (1 - theta)^(t^c)``, duration dependence ``c`` (``c = 1``: sBG).

The data do not depend on the seed, so the fits are the same for every seed (they run inside
``run`` with a fixed number of Newton steps, mapped over the cohorts without batching); the key
drives NUTS and the predictive draws.

Published (Fader and Hardie 2007, sBG on years 1-7): regular ``alpha = 0.704, beta = 1.182``;
high end ``alpha = 0.668, beta = 3.806``. Measured here (float64): the same to 1e-3; MAPE of
years 8-12: sBG 1.5% (regular) and 2.8% (high end), BdW 1.4% and 1.3%; the BdW gains 0.7
(regular) and 5.8 (high end) log-likelihood points with ``c = 1.28`` and ``1.72`` (positive
duration dependence). The sBG projection of the high-end cohort falls below the actual counts
from year 9 on (e.g. 378 vs 394 in year 12). The 90% posterior predictive intervals (drawn
from the 491 high-end and 241 regular survivors of year 7) hold every actual count of years
8-12 for both models and cohorts; they are 22-32 customers wide on average.

Cost (quick, one seed, the shared 2-core development machine at load ~8): ~50 s to trace and
compile (two NUTS kernels, two Newton fits, one binomial sampler), under 1 s to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from prime_science.core.experiment import Target
from prime_science.core.types import PRNGKey
from prime_science.datasets.retention import load_retention
from prime_science.datasets.retention import retention_rates as actual_retention_rates
from prime_science.membership import retention

__all__ = [
    "NAME",
    "PUBLISHED_SBG",
    "METRIC_LABELS",
    "NA_REASONS",
    "DATASETS",
    "Config",
    "ModelResults",
    "Results",
    "run",
    "summarize",
    "targets",
    "plot",
]

NAME = "retention"
DATASETS: tuple[str, ...] = ("retention",)
"""Packaged data sets the experiment reads (:mod:`prime_science.datasets`)."""

PUBLISHED_SBG: dict[str, tuple[float, float]] = {
    "regular": (0.704, 1.182),
    "high_end": (0.668, 3.806),
}
"""Fader and Hardie (2007): sBG ``(alpha, beta)`` fitted on years 1-7, by cohort."""

_COHORT_LABELS = {"regular": "regular cohort", "high_end": "high-end cohort"}
_MODEL_LABELS = {"sbg": "sBG", "bdw": "BdW"}


class Config(NamedTuple):
    """Static settings (hashable).

    Attributes:
      cohorts: cohort names of the data set.
      models: models of :data:`prime_science.membership.retention.MODELS`.
      calibration_years: ``t_c``, the last year the fits see.
      num_newton_steps: Newton steps of each maximum-likelihood fit.
      num_warmup, num_samples: NUTS adaptation steps and kept draws (one chain).
      interval_level: probability of the central predictive interval.
      precision: ``"float64"``: the runner enables x64 for this experiment.
    """

    cohorts: tuple[str, ...] = ("regular", "high_end")
    models: tuple[str, ...] = retention.MODELS
    calibration_years: int = 7
    num_newton_steps: int = 30
    num_warmup: int = 500
    num_samples: int = 500
    interval_level: float = 0.9
    precision: str = "float64"

    @classmethod
    def quick(cls) -> Config:
        """One chain of 500 warmup steps and 500 draws per cohort and model."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """One chain of 1,000 warmup steps and 4,000 draws per cohort and model."""
        return cls(num_warmup=1_000, num_samples=4_000)


class ModelResults(NamedTuple):
    """One model on every cohort (leading axis ``C`` = ``config.cohorts``; ``T = 12``).

    Attributes:
      params: ``float64[C, k]`` maximum-likelihood ``alpha, beta[, c]``.
      standard_errors: ``float64[C, k]`` their standard errors.
      log_likelihood: ``float64[C]`` maximised calibration log-likelihood.
      gradient_norm: ``float64[C]`` gradient norm (log parameters) at the fit.
      expected_survivors: ``float64[C, T + 1]`` ``n_0 S(t)`` at the fit.
      retention_rates: ``float64[C, T]`` ``r_t`` at the fit, ``t = 1 .. T``.
      posterior_expected: ``float64[C, m, T + 1]`` ``n_0 S(t)`` per NUTS draw.
      posterior_predicted: ``float64[C, m, T + 1]`` posterior predictive counts.
      accept_prob: ``float64[C]`` NUTS mean acceptance probability.
      num_divergent: ``int32[C]`` divergent NUTS transitions.
    """

    params: jax.Array
    standard_errors: jax.Array
    log_likelihood: jax.Array
    gradient_norm: jax.Array
    expected_survivors: jax.Array
    retention_rates: jax.Array
    posterior_expected: jax.Array
    posterior_predicted: jax.Array
    accept_prob: jax.Array
    num_divergent: jax.Array


class Results(NamedTuple):
    """One seed.

    Attributes:
      survivors: ``float64[C, T + 1]`` the actual counts.
      models: model name -> :class:`ModelResults`.
    """

    survivors: jax.Array
    models: dict[str, ModelResults]


def _cohort_survivors(config: Config) -> np.ndarray:
    """``int64[C, T + 1]``: the packaged counts of ``config.cohorts`` (read when ``run`` is
    traced; numpy constants)."""
    data = load_retention()
    return np.stack([data.survivors[cohort] for cohort in config.cohorts])


class _Posterior(NamedTuple):
    """One model's posterior on every cohort, before the predictive draws.

    Attributes:
      expected: ``float[C, m, T + 1]`` ``n_0 S(t)`` per draw.
      rates: ``float[C, m, T]`` ``r_t`` per draw.
      accept_prob: ``float[C]`` NUTS mean acceptance probability.
      num_divergent: ``int32[C]`` divergent NUTS transitions.
    """

    expected: jax.Array
    rates: jax.Array
    accept_prob: jax.Array
    num_divergent: jax.Array


def _fit_model(key: PRNGKey, model: str, counts: jax.Array, config: Config):
    """Maximum-likelihood fits (``lax.map`` over cohorts, so their small LAPACK calls are never
    batched), then NUTS (``vmap`` over cohorts) started at the fits: ``(RetentionFit with a
    leading cohort axis, _Posterior)``."""
    t_max = counts.shape[1] - 1
    fits = jax.lax.map(
        lambda cohort: retention.fit_retention(
            model, cohort, config.calibration_years, num_newton_steps=config.num_newton_steps
        ),
        counts,
    )

    def chain(cohort_key, cohort, start):
        return retention.posterior_samples(
            cohort_key,
            model,
            cohort,
            config.calibration_years,
            num_warmup=config.num_warmup,
            num_samples=config.num_samples,
            initial_log_params=start,
        )

    samples = jax.vmap(chain)(jax.random.split(key, counts.shape[0]), counts, fits.log_params)
    survival = jnp.exp(
        jax.vmap(jax.vmap(lambda z: retention.log_survival(model, jnp.exp(z), t_max)))(
            samples.log_params
        )
    )
    posterior = _Posterior(
        expected=counts[:, None, :1] * survival,
        rates=survival[..., 1:] / survival[..., :-1],
        accept_prob=samples.accept_prob,
        num_divergent=samples.num_divergent,
    )
    return fits, posterior


def run(key: PRNGKey, config: Config) -> Results:
    """Every model on every cohort for one seed (pure, jittable; float64 under the runner, which
    reads ``Config.precision``). The predictive paths of all models and cohorts are drawn in one
    batch (one compiled binomial sampler)."""
    counts = jnp.asarray(_cohort_survivors(config), jnp.result_type(float))
    t_max, last_seen = counts.shape[1] - 1, config.calibration_years
    key_models, key_paths = jax.random.split(key)
    model_keys = jax.random.split(key_models, len(config.models))
    fitted = [
        _fit_model(model_key, model, counts, config)
        for model, model_key in zip(config.models, model_keys, strict=True)
    ]
    rates = jnp.stack([posterior.rates[..., last_seen:] for _, posterior in fitted])
    batch = rates.shape[:-1]  # [models, cohorts, draws]
    path_keys = jax.random.split(key_paths, batch)
    alive = jnp.broadcast_to(counts[None, :, None, last_seen], batch)
    paths = jnp.vectorize(retention.predictive_survivors, signature="(),(h),()->(h)")(
        path_keys, rates, alive
    )
    observed = jnp.broadcast_to(counts[None, :, None, : last_seen + 1], (*batch, last_seen + 1))
    predicted = jnp.concatenate([observed, paths], axis=-1)
    models = {}
    for m, (model, (fits, posterior)) in enumerate(zip(config.models, fitted, strict=True)):
        expected = jax.vmap(lambda p, n0, model=model: retention.project(model, p, n0, t_max))(
            fits.params, counts[:, 0]
        )
        models[model] = ModelResults(
            params=fits.params,
            standard_errors=fits.standard_errors,
            log_likelihood=fits.log_likelihood,
            gradient_norm=fits.gradient_norm,
            expected_survivors=expected,
            retention_rates=expected[:, 1:] / expected[:, :-1],
            posterior_expected=posterior.expected,
            posterior_predicted=predicted[m],
            accept_prob=posterior.accept_prob,
            num_divergent=posterior.num_divergent,
        )
    return Results(survivors=counts, models=models)


def _interval(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The central ``level`` interval of ``draws`` over the leading axis."""
    tail = (1.0 - level) / 2.0
    return np.quantile(draws, tail, axis=0), np.quantile(draws, 1.0 - tail, axis=0)


def summarize(results: Results, config: Config) -> dict[str, float]:
    """Per cohort ``c`` and model ``m``: ``{c}_{m}_{param}`` and ``{c}_{m}_{param}_se``,
    ``{c}_{m}_log_likelihood``, ``{c}_{m}_gradient_norm``, ``{c}_{m}_mape`` (percent, years
    ``t_c + 1 .. T``, fit vs actual), ``{c}_{m}_coverage`` (share of those actual counts inside
    the predictive interval), ``{c}_{m}_interval_width`` (mean width, customers),
    ``{c}_{m}_accept_prob``, ``{c}_{m}_divergences``. Per cohort: ``{c}_sbg_alpha_abs_error``,
    ``{c}_sbg_beta_abs_error`` (against Fader and Hardie 2007), ``{c}_sbg_retention_rise``
    (``r_T - r_1`` of the fitted sBG, percentage points), ``{c}_actual_retention_rise``, and
    ``{c}_bdw_lr_statistic`` ``2 (LL_BdW - LL_sBG)``."""
    survivors = np.asarray(results.survivors, np.float64)
    years = slice(config.calibration_years + 1, None)
    metrics: dict[str, float] = {}
    for i, cohort in enumerate(config.cohorts):
        actual = survivors[i, years]
        for model, fit in results.models.items():
            prefix = f"{cohort}_{model}"
            for j, name in enumerate(retention.PARAMETER_NAMES[model]):
                metrics[f"{prefix}_{name}"] = float(fit.params[i, j])
                metrics[f"{prefix}_{name}_se"] = float(fit.standard_errors[i, j])
            metrics[f"{prefix}_log_likelihood"] = float(fit.log_likelihood[i])
            metrics[f"{prefix}_gradient_norm"] = float(fit.gradient_norm[i])
            projected = np.asarray(fit.expected_survivors[i, years], np.float64)
            metrics[f"{prefix}_mape"] = float(100.0 * np.mean(np.abs(projected - actual) / actual))
            low, high = _interval(
                np.asarray(fit.posterior_predicted[i], np.float64)[:, years], config.interval_level
            )
            metrics[f"{prefix}_coverage"] = float(np.mean((low <= actual) & (actual <= high)))
            metrics[f"{prefix}_interval_width"] = float(np.mean(high - low))
            metrics[f"{prefix}_accept_prob"] = float(fit.accept_prob[i])
            metrics[f"{prefix}_divergences"] = float(fit.num_divergent[i])
        if "sbg" in results.models:
            sbg = results.models["sbg"]
            if cohort in PUBLISHED_SBG:
                for j, name in enumerate(("alpha", "beta")):
                    metrics[f"{cohort}_sbg_{name}_abs_error"] = abs(
                        float(sbg.params[i, j]) - PUBLISHED_SBG[cohort][j]
                    )
            rates = np.asarray(sbg.retention_rates[i], np.float64)
            metrics[f"{cohort}_sbg_retention_rise"] = float(100.0 * (rates[-1] - rates[0]))
            if "bdw" in results.models:
                metrics[f"{cohort}_bdw_lr_statistic"] = 2.0 * float(
                    results.models["bdw"].log_likelihood[i] - sbg.log_likelihood[i]
                )
        rates = actual_retention_rates(survivors[i])
        metrics[f"{cohort}_actual_retention_rise"] = float(100.0 * (rates[-1] - rates[0]))
    return metrics


def _metric_labels(config: Config) -> dict[str, str]:
    """Every metric of :func:`summarize` under ``config`` in words."""
    labels = {}
    years = f"years {config.calibration_years + 1}-12"
    level = f"{100 * config.interval_level:g}%"
    for cohort in config.cohorts:
        where = _COHORT_LABELS.get(cohort, cohort)
        for model in config.models:
            prefix, name = f"{cohort}_{model}", _MODEL_LABELS[model]
            for parameter in retention.PARAMETER_NAMES[model]:
                what = {"alpha": "Beta shape alpha", "beta": "Beta shape beta"}.get(
                    parameter, "duration dependence c"
                )
                labels[f"{prefix}_{parameter}"] = f"{name} maximum-likelihood {what}, {where}"
                labels[f"{prefix}_{parameter}_se"] = f"standard error of the {name} {what}, {where}"
            labels |= {
                f"{prefix}_log_likelihood": f"{name} log-likelihood of years 1-"
                f"{config.calibration_years}, {where}",
                f"{prefix}_gradient_norm": f"{name} gradient norm at the fit (log parameters), "
                f"{where}",
                f"{prefix}_mape": f"{name} projection of {years}: mean absolute percentage error "
                f"against the actual survivors (%), {where}",
                f"{prefix}_coverage": f"{name}: share of the actual survivors of {years} inside "
                f"the {level} posterior predictive interval, {where}",
                f"{prefix}_interval_width": f"{name}: mean width of the {level} posterior "
                f"predictive interval of {years} (customers), {where}",
                f"{prefix}_accept_prob": f"{name} NUTS mean acceptance probability, {where}",
                f"{prefix}_divergences": f"{name} NUTS divergent transitions (count), {where}",
            }
        labels |= {
            f"{cohort}_sbg_alpha_abs_error": "absolute error of the sBG alpha against Fader and "
            f"Hardie (2007), {where}",
            f"{cohort}_sbg_beta_abs_error": "absolute error of the sBG beta against Fader and "
            f"Hardie (2007), {where}",
            f"{cohort}_sbg_retention_rise": "fitted sBG retention rate of year 12 minus that of "
            f"year 1 (percentage points), {where}",
            f"{cohort}_actual_retention_rise": "actual retention rate of year 12 minus that of "
            f"year 1 (percentage points), {where}",
            f"{cohort}_bdw_lr_statistic": "likelihood-ratio statistic 2 (LL BdW - LL sBG) of the "
            f"duration dependence c, {where}",
        }
    return labels


METRIC_LABELS: dict[str, str] = _metric_labels(Config())
"""Every metric of :func:`summarize` in words (``quick()`` and ``full()`` share the cohorts,
models and years)."""
NA_REASONS: dict[str, str] = {}
"""No metric of this experiment can be undefined (every cohort keeps survivors to year 12)."""

_PUBLISHED = "Fader and Hardie (2007), How to Project Customer Retention, J. Interactive Marketing"
_MEASURED = (
    "Fader and Hardie (2007) call the sBG forecasts remarkably accurate; the threshold is set "
    "above the errors measured here (1.5% regular, 2.8% high end), not a published figure"
)
_LEVEL = f"{100 * Config().interval_level:g}%"
targets = [
    *(
        Target(
            f"{cohort}_sbg_{name}_abs_error",
            "<=",
            0.01,
            f"numeric: sBG {name} within 0.01 of the published {value:g}",
            _PUBLISHED,
        )
        for cohort, published in PUBLISHED_SBG.items()
        for name, value in zip(("alpha", "beta"), published, strict=True)
    ),
    *(
        Target(
            f"{cohort}_sbg_mape",
            "<",
            5.0,
            "numeric: the sBG fitted on years 1-7 projects years 8-12 within 5% on average",
            _MEASURED,
        )
        for cohort in PUBLISHED_SBG
    ),
    *(
        Target(
            f"{cohort}_{model}_coverage",
            ">=",
            0.8,
            f"numeric: the {_LEVEL} posterior predictive interval of the {_MODEL_LABELS[model]} "
            "holds at least 4 of the 5 actual counts of years 8-12 (a sanity check: five "
            "correlated years per cohort cannot test calibration)",
            "this experiment's own measurement (every count inside, both models and cohorts)",
        )
        for cohort in PUBLISHED_SBG
        for model in retention.MODELS
    ),
    *(
        Target(
            f"{cohort}_sbg_retention_rise",
            ">",
            0.0,
            "directional: the fitted sBG retention rate rises with tenure although each "
            "customer's churn probability is constant (heterogeneity sorts the cohort)",
            _PUBLISHED,
        )
        for cohort in PUBLISHED_SBG
    ),
]


def plot(results: Results, config: Config, out_dir: Path) -> list[Path]:
    """``survivors.png``: actual survivors, the fitted/projected ``n_0 S(t)`` of each model and
    its posterior predictive interval after ``t_c`` (seed 0), one panel per cohort;
    ``retention_rates.png``: actual and fitted retention rates ``r_t``."""
    out_dir = Path(out_dir)
    survivors = np.asarray(results.survivors, np.float64)[0]
    year = np.arange(survivors.shape[1])
    level = f"{100 * config.interval_level:g}%"
    paths = []
    figure = Figure(figsize=(11.0, 4.2), layout="constrained")
    for i, axes in enumerate(figure.subplots(1, len(config.cohorts), squeeze=False)[0]):
        axes.plot(year, survivors[i], "ko", label="actual")
        for model, fit in results.models.items():
            name = _MODEL_LABELS[model]
            (line,) = axes.plot(year, np.asarray(fit.expected_survivors)[0, i], label=f"{name} fit")
            low, high = _interval(np.asarray(fit.posterior_predicted)[0, i], config.interval_level)
            after = year >= config.calibration_years
            axes.fill_between(
                year[after],
                low[after],
                high[after],
                color=line.get_color(),
                alpha=0.2,
                label=f"{name} {level} predictive",
            )
        axes.axvline(config.calibration_years, color="grey", linestyle=":")
        axes.set(
            xlabel="year",
            ylabel="customers still subscribed",
            title=f"{_COHORT_LABELS.get(config.cohorts[i], config.cohorts[i])}: fit on years "
            f"1-{config.calibration_years}, project to {year[-1]}",
        )
        axes.legend()
    path = out_dir / "survivors.png"
    figure.savefig(path, dpi=120)
    paths.append(path)

    figure = Figure(figsize=(11.0, 4.2), layout="constrained")
    for i, axes in enumerate(figure.subplots(1, len(config.cohorts), squeeze=False)[0]):
        axes.plot(year[1:], actual_retention_rates(survivors[i]), "ko", label="actual")
        for model, fit in results.models.items():
            rates = np.asarray(fit.retention_rates)[0, i]
            axes.plot(year[1:], rates, label=f"{_MODEL_LABELS[model]} fit")
        axes.axvline(config.calibration_years, color="grey", linestyle=":")
        axes.set(
            xlabel="year t",
            ylabel="retention rate r_t = S(t) / S(t-1)",
            title=f"{_COHORT_LABELS.get(config.cohorts[i], config.cohorts[i])}: r_t rises with "
            "tenure",
        )
        axes.legend()
    path = out_dir / "retention_rates.png"
    figure.savefig(path, dpi=120)
    paths.append(path)
    return paths
