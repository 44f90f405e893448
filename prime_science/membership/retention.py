"""Contractual retention with heterogeneity: the sBG and BdW models, maximum likelihood and NUTS.

A cohort of ``n_0`` customers signs up in year 0; ``n_t`` of them are still subscribed at the
end of year ``t``. A customer who leaves is seen leaving (contractual setting).

**Shifted-beta-geometric (sBG)**, Fader and Hardie (2007), "How to Project Customer Retention",
Journal of Interactive Marketing 21(1): each customer has a constant yearly churn probability
``theta ~ Beta(alpha, beta)``, so the churn year ``T`` is geometric given ``theta`` and, over the
cohort::

    P(T = 1) = alpha / (alpha + beta),
    P(T = t) = P(T = t - 1) (beta + t - 2) / (alpha + beta + t - 1),      t >= 2,
    S(t) = P(T > t) = 1 - sum_{tau <= t} P(T = tau) = B(alpha, beta + t) / B(alpha, beta),
    r_t = S(t) / S(t - 1) = (beta + t - 1) / (alpha + beta + t - 1).

The retention rate ``r_t`` rises with tenure although every customer's churn probability is
constant: the customers with a high ``theta`` leave first (the survivors' ``theta`` is
``Beta(alpha, beta + t)``). :func:`sbg_log_probs` and :func:`sbg_survival` run that recursion.

**Beta-discrete-Weibull (BdW)**, Fader, Hardie, Liu, Davin and Steenburgh (2018), Journal of
Interactive Marketing 43: ``P(T <= t | theta) = 1 - (1 - theta)^(t^c)`` with
``theta ~ Beta(alpha, beta)``, so::

    S(t) = E[(1 - theta)^(t^c)] = B(alpha, beta + t^c) / B(alpha, beta),
    P(T = t) = S(t - 1) - S(t).

``c > 1`` is positive duration dependence (a customer's churn hazard rises with tenure),
``c < 1`` negative, and ``c = 1`` is the sBG (:func:`bdw_survival` computes the closed form with
``betaln``, independently of the sBG recursion).

**Likelihood of a cohort** observed for years ``1 .. t_c`` (the calibration period)::

    LL = sum_{t=1}^{t_c} (n_{t-1} - n_t) log P(T = t) + n_{t_c} log S(t_c),

the last term for the ``n_{t_c}`` customers still subscribed at ``t_c`` (right-censored; leaving
it out is the classic bug). :func:`fit_retention` maximises it over ``log`` of the parameters
by a fixed number of safeguarded Newton steps (jittable, no data-dependent loop); standard
errors come from the inverse Hessian (delta method back to the natural scale).

:func:`fit_survival_curve` fits the same likelihood to a survival curve given as fractions
(e.g. simulated by a structural membership model), reading it as a cohort of ``cohort_size``.

**Posterior** (:func:`posterior_projection`): NUTS
(:func:`prime_science.priors.nuts.nuts_chain`, one chain, run in a ``lax.scan``, so it jits and
vmaps) over ``log alpha, log beta`` (and
``log c``) with weakly-informative independent priors

    log alpha ~ N(0, 2^2),   log beta ~ N(0, 2^2),   log c ~ N(0, 1)

(``prior_scale``, ``duration_prior_scale``): ``alpha`` and ``beta`` within a factor ``e^4``
of 1, ``c`` within a factor ``e^2``, at 95%. Given the parameters the count process is Markov:
the ``n_{t-1}`` customers still subscribed at ``t - 1`` all have the same posterior for their own
``theta`` and are independent, so ``n_t | n_{t-1} ~ Binomial(n_{t-1}, r_t)``. Projected counts
for years after ``t_c`` are drawn that way from the observed ``n_{t_c}`` (posterior predictive),
beside the expected survivors ``n_0 S(t)`` of each draw.

Dtypes: the float dtype is JAX's default (float32; float64 under ``jax.enable_x64``, which the
retention experiment declares); survivor counts are integers. Bad input raises
:class:`~prime_science.core.errors.InvalidArgumentError` naming the argument, checked eagerly
where the values are concrete.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from prime_science.core import errors
from prime_science.core.types import PRNGKey
from prime_science.priors.nuts import nuts_chain

__all__ = [
    "MODELS",
    "PARAMETER_NAMES",
    "RetentionFit",
    "PosteriorSamples",
    "PosteriorProjection",
    "sbg_log_probs",
    "sbg_survival",
    "bdw_survival",
    "log_survival",
    "churn_log_probs",
    "retention_rates",
    "cohort_log_likelihood",
    "fit_retention",
    "fit_survival_curve",
    "project",
    "posterior_samples",
    "predictive_survivors",
    "posterior_projection",
]

MODELS = ("sbg", "bdw")
"""The retention models by name: shifted-beta-geometric and beta-discrete-Weibull."""

PARAMETER_NAMES: dict[str, tuple[str, ...]] = {
    "sbg": ("alpha", "beta"),
    "bdw": ("alpha", "beta", "c"),
}
"""The parameters of each model, in the order of a ``params`` vector."""


class RetentionFit(NamedTuple):
    """A maximum-likelihood fit (``k`` parameters: 2 for ``sbg``, 3 for ``bdw``).

    Attributes:
      params: ``float[k]`` the estimates on the natural scale (``alpha, beta[, c]``).
      log_params: ``float[k]`` their logarithms (the scale of the Newton steps).
      standard_errors: ``float[k]`` delta-method standard errors of ``params``,
        ``params * sqrt(diag(-H^{-1}))`` with ``H`` the Hessian of the log-likelihood in
        ``log_params``.
      log_params_covariance: ``float[k, k]`` the inverse of the negative Hessian in
        ``log_params``.
      log_likelihood: ``float[]`` the maximised calibration log-likelihood.
      gradient_norm: ``float[]`` Euclidean norm of its gradient in ``log_params`` at the fit.
    """

    params: jax.Array
    log_params: jax.Array
    standard_errors: jax.Array
    log_params_covariance: jax.Array
    log_likelihood: jax.Array
    gradient_norm: jax.Array


class PosteriorSamples(NamedTuple):
    """One NUTS chain (``m`` kept draws).

    Attributes:
      log_params: ``float[m, k]`` posterior draws of ``log alpha, log beta[, log c]``.
      accept_prob: ``float[]`` mean acceptance probability of the kept draws.
      num_divergent: ``int32[]`` divergent transitions among the kept draws.
    """

    log_params: jax.Array
    accept_prob: jax.Array
    num_divergent: jax.Array


class PosteriorProjection(NamedTuple):
    """NUTS draws and what they project (``m`` kept draws, years ``0 .. t_max``).

    Attributes:
      log_params: ``float[m, k]`` posterior draws of ``log alpha, log beta[, log c]``.
      expected_survivors: ``float[m, t_max + 1]`` ``n_0 S(t)`` under each draw.
      predicted_survivors: ``float[m, t_max + 1]`` posterior predictive counts: the observed
        ``n_t`` up to ``t_c``, then ``n_t ~ Binomial(n_{t-1}, r_t)``.
      accept_prob: ``float[]`` mean acceptance probability of the kept draws.
      num_divergent: ``int32[]`` divergent transitions among the kept draws.
    """

    log_params: jax.Array
    expected_survivors: jax.Array
    predicted_survivors: jax.Array
    accept_prob: jax.Array
    num_divergent: jax.Array


def _check_model(model: str) -> None:
    if model not in MODELS:
        errors.fail("model", f"one of {MODELS}", repr(model))


def _check_positive_int(name: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        errors.fail(name, f"an integer >= {minimum}", repr(value))


def _check_positive(name: str, value) -> None:
    """A concrete value must be finite and > 0 (tracers pass: nothing is checked inside jit)."""
    if errors.is_concrete(value):
        values = np.asarray(value, np.float64)
        if not np.all(np.isfinite(values) & (values > 0)):
            errors.fail(name, "finite values > 0", values.tolist())


def _check_params(model: str, params) -> None:
    _check_model(model)
    names = PARAMETER_NAMES[model]
    if np.shape(params) != (len(names),):
        errors.fail("params", f"shape ({len(names)},) for {', '.join(names)}", np.shape(params))
    _check_positive("params", params)


def _check_survivors(survivors, calibration_years: int) -> None:
    """Rank 1, integer counts, ``n_0 > 0``, never rising; ``1 <= t_c <= T``."""
    errors.check_rank("survivors", survivors, 1)
    _check_positive_int("calibration_years", calibration_years)
    last_year = np.shape(survivors)[0] - 1
    if calibration_years > last_year:
        errors.fail(
            "calibration_years", f"at most the last observed year {last_year}", calibration_years
        )
    if not errors.is_concrete(survivors):
        return
    counts = np.asarray(survivors)
    if not np.all(np.isfinite(counts)) or not np.all(counts == np.round(counts)):
        errors.fail("survivors", "whole-number counts", counts.tolist())
    if counts[0] <= 0 or np.any(counts < 0):
        errors.fail("survivors", "a positive cohort size and non-negative counts", counts.tolist())
    rises = np.flatnonzero(np.diff(counts) > 0)
    if rises.size:
        year = int(rises[0]) + 1
        errors.fail(
            "survivors",
            "counts that never rise",
            f"{counts[year - 1]} in year {year - 1} then {counts[year]} in year {year}",
        )


def _float(x) -> jax.Array:
    """``x`` as an array of JAX's default float dtype."""
    return jnp.asarray(x, jnp.result_type(float))


def _sbg_log_survival(alpha, beta, t_max: int) -> jax.Array:
    """``float[t_max + 1]``: ``log S(t)`` of the sBG, ``t = 0 .. t_max``, from the recursion
    ``S(t) = S(t - 1) (beta + t - 1) / (alpha + beta + t - 1)``."""
    years = jnp.arange(1, t_max + 1, dtype=jnp.result_type(alpha, beta))
    log_rates = jnp.log(beta + years - 1) - jnp.log(alpha + beta + years - 1)
    return jnp.concatenate([jnp.zeros(1, log_rates.dtype), jnp.cumsum(log_rates)])


def sbg_log_probs(alpha, beta, t_max: int) -> jax.Array:
    """``float[t_max]``: ``log P(T = t)`` of the sBG for ``t = 1 .. t_max``, by the recursion
    ``P(T = t) = P(T = t - 1) (beta + t - 2) / (alpha + beta + t - 1)`` (equivalently
    ``S(t - 1) alpha / (alpha + beta + t - 1)``).

    Args:
      alpha, beta: ``float[]`` the Beta mixing distribution of the churn probability, ``> 0``.
      t_max: the last year (a Python integer ``>= 1``).
    """
    _check_positive_int("t_max", t_max)
    _check_positive("alpha", alpha)
    _check_positive("beta", beta)
    alpha, beta = _float(alpha), _float(beta)
    years = jnp.arange(1, t_max + 1, dtype=alpha.dtype)
    return _sbg_log_survival(alpha, beta, t_max - 1) + jnp.log(alpha / (alpha + beta + years - 1))


def sbg_survival(alpha, beta, t_max: int) -> jax.Array:
    """``float[t_max + 1]``: ``S(t) = P(T > t)`` of the sBG for ``t = 0 .. t_max`` (``S(0) = 1``),
    equal to ``1 - sum_{tau <= t} P(T = tau)``; computed as the running product of the retention
    rates ``r_t = (beta + t - 1) / (alpha + beta + t - 1)``, which keeps its relative accuracy
    where ``S`` is small. Arguments as in :func:`sbg_log_probs`."""
    _check_positive_int("t_max", t_max)
    _check_positive("alpha", alpha)
    _check_positive("beta", beta)
    return jnp.exp(_sbg_log_survival(_float(alpha), _float(beta), t_max))


def _bdw_log_survival(alpha, beta, c, years) -> jax.Array:
    """``log S(t) = log B(alpha, beta + t^c) - log B(alpha, beta)`` at ``years``, written as
    ``lgamma(beta + t^c) - lgamma(beta) - lgamma(alpha + beta + t^c) + lgamma(alpha + beta)``
    (``jax.scipy.special.betaln`` is as accurate but its second derivatives compile ~10x
    slower)."""
    shifted = beta + years**c
    return gammaln(shifted) - gammaln(beta) - gammaln(alpha + shifted) + gammaln(alpha + beta)


def bdw_survival(alpha, beta, c, t) -> jax.Array:
    """``S(t) = B(alpha, beta + t^c) / B(alpha, beta)`` of the BdW at the years ``t`` (any shape,
    ``t >= 0``; ``S(0) = 1``).

    Args:
      alpha, beta: ``float[]`` the Beta mixing distribution, ``> 0``.
      c: ``float[]`` the duration dependence, ``> 0`` (``c = 1`` is the sBG).
      t: years, ``>= 0``.
    """
    for name, value in (("alpha", alpha), ("beta", beta), ("c", c)):
        _check_positive(name, value)
    if errors.is_concrete(t) and np.any(np.asarray(t) < 0):
        errors.fail("t", "years >= 0", np.asarray(t).tolist())
    alpha, beta, c, t = _float(alpha), _float(beta), _float(c), _float(t)
    # t = 0 is set apart: the derivative of t^c in c there is 0 * log 0
    positive = jnp.where(t > 0, t, 1.0)
    return jnp.where(t > 0, jnp.exp(_bdw_log_survival(alpha, beta, c, positive)), 1.0)


def _log_survival(model: str, params, t_max: int) -> jax.Array:
    alpha, beta = params[0], params[1]
    if model == "sbg":
        return _sbg_log_survival(alpha, beta, t_max)
    years = jnp.arange(1, t_max + 1, dtype=params.dtype)
    tail = _bdw_log_survival(alpha, beta, params[2], years)
    return jnp.concatenate([jnp.zeros(1, tail.dtype), tail])


def log_survival(model: str, params, t_max: int) -> jax.Array:
    """``float[t_max + 1]``: ``log S(t)`` for ``t = 0 .. t_max`` under ``model`` (``"sbg"`` or
    ``"bdw"``) with ``params`` ``float[k]`` = ``(alpha, beta)`` or ``(alpha, beta, c)``."""
    _check_params(model, params)
    _check_positive_int("t_max", t_max)
    return _log_survival(model, _float(params), t_max)


def _churn_log_probs(model: str, params, t_max: int) -> jax.Array:
    """``log P(T = t) = log S(t - 1) + log(1 - S(t) / S(t - 1))``, ``t = 1 .. t_max``."""
    log_s = _log_survival(model, params, t_max)
    return log_s[:-1] + jnp.log(-jnp.expm1(log_s[1:] - log_s[:-1]))


def churn_log_probs(model: str, params, t_max: int) -> jax.Array:
    """``float[t_max]``: ``log P(T = t)``, the probability that a new customer leaves in year
    ``t = 1 .. t_max``, ``log S(t - 1) + log(1 - S(t) / S(t - 1))``. Arguments as in
    :func:`log_survival`."""
    _check_params(model, params)
    _check_positive_int("t_max", t_max)
    return _churn_log_probs(model, _float(params), t_max)


def retention_rates(model: str, params, t_max: int) -> jax.Array:
    """``float[t_max]``: ``r_t = S(t) / S(t - 1)`` for ``t = 1 .. t_max`` (for the sBG,
    ``(beta + t - 1) / (alpha + beta + t - 1)``, rising with ``t``). Arguments as in
    :func:`log_survival`."""
    return jnp.exp(jnp.diff(log_survival(model, params, t_max)))


def _cohort_log_likelihood(model: str, params, counts, calibration_years: int) -> jax.Array:
    # one evaluation of log S feeds both terms (each BdW evaluation is four lgamma chains)
    log_s = _log_survival(model, params, calibration_years)
    log_probs = log_s[:-1] + jnp.log(-jnp.expm1(log_s[1:] - log_s[:-1]))
    lost = counts[:calibration_years] - counts[1 : calibration_years + 1]
    return jnp.sum(lost * log_probs) + counts[calibration_years] * log_s[-1]


def cohort_log_likelihood(model: str, params, survivors, calibration_years: int) -> jax.Array:
    """``float[]``: ``sum_{t=1}^{t_c} (n_{t-1} - n_t) log P(T = t) + n_{t_c} log S(t_c)``.

    Args:
      model: ``"sbg"`` or ``"bdw"``.
      params: ``float[k]`` ``(alpha, beta)`` or ``(alpha, beta, c)``, all ``> 0``.
      survivors: ``int[T + 1]`` customers still subscribed at the end of years ``0 .. T``
        (``n_0 > 0``, never rising); only years ``0 .. t_c`` are read.
      calibration_years: ``t_c``, a Python integer in ``1 .. T``.
    """
    _check_params(model, params)
    _check_survivors(survivors, calibration_years)
    params = _float(params)
    return _cohort_log_likelihood(model, params, _float(survivors), calibration_years)


def _default_log_params(model: str) -> jax.Array:
    """Newton's start: ``alpha = beta = c = 1`` (uniform ``theta``, no duration dependence)."""
    return jnp.zeros(len(PARAMETER_NAMES[model]), jnp.result_type(float))


def _maximise(negative_log_likelihood, start, num_newton_steps: int, max_step: float):
    """``(x, value, gradient, Hessian)`` after ``num_newton_steps`` safeguarded Newton steps on
    ``negative_log_likelihood`` from ``start``.

    Each step: the direction ``-V diag(1 / |lambda|) V^T g`` (eigen-decomposition of the
    Hessian, so a saddle or a concave region still gives a descent direction), its length
    capped at ``max_step``, then the first of the step fractions ``1, 1/2, ..., 1/2^11, 0``
    whose value is no higher than the current one up to rounding (``16 eps |value|``: near the
    optimum the value's change is below float resolution, so a plain decrease test would
    stall)."""
    gradient_fn = jax.grad(negative_log_likelihood)
    # the Hessian and the gradient in one pass (the gradient is jacfwd's auxiliary output)
    derivatives_fn = jax.jacfwd(lambda x: (gradient_fn(x), gradient_fn(x)), has_aux=True)
    fractions = jnp.concatenate([2.0 ** -jnp.arange(12.0), jnp.zeros(1)]).astype(start.dtype)

    def step(x, _):
        hessian, gradient = derivatives_fn(x)
        eigenvalues, eigenvectors = jnp.linalg.eigh(hessian)
        floor = 1e-8 * jnp.max(jnp.abs(eigenvalues)) + jnp.finfo(x.dtype).tiny
        curvature = jnp.maximum(jnp.abs(eigenvalues), floor)
        direction = -eigenvectors @ ((eigenvectors.T @ gradient) / curvature)
        direction = direction * jnp.minimum(1.0, max_step / jnp.linalg.norm(direction))
        values = jax.vmap(lambda f: negative_log_likelihood(x + f * direction))(fractions)
        slack = 16 * jnp.finfo(x.dtype).eps * jnp.abs(values[-1])
        first = jnp.argmax(values <= values[-1] + slack)
        return x + fractions[first] * direction, (x, values[-1], gradient, hessian)

    # one step more than asked: its inputs are the fit (x after num_newton_steps steps, with its
    # value, gradient and Hessian), so the derivatives are traced once, inside the loop
    _, (xs, values, gradients, hessians) = jax.lax.scan(
        step, start, None, length=num_newton_steps + 1
    )
    return xs[-1], values[-1], gradients[-1], hessians[-1]


def fit_retention(
    model: str,
    survivors,
    calibration_years: int,
    *,
    num_newton_steps: int = 30,
    initial_params=None,
    max_step: float = 4.0,
) -> RetentionFit:
    """Maximum likelihood of ``model`` on years ``1 .. t_c`` of a cohort (jittable).

    Maximises :func:`cohort_log_likelihood` over ``log params`` by ``num_newton_steps``
    safeguarded Newton steps (a fixed count, so the fit jits and vmaps with no data-dependent
    loop; 30 from ``alpha = beta = c = 1`` reach a gradient norm below ``1e-6`` on the Fader
    and Hardie cohorts in float64). Standard errors: ``params_i * sqrt((-H^{-1})_{ii})`` with
    ``H`` the Hessian in ``log params`` (delta method).

    Args:
      model: ``"sbg"`` or ``"bdw"``.
      survivors: ``int[T + 1]`` survivor counts, years ``0 .. T``.
      calibration_years: ``t_c`` (Python integer ``1 .. T``).
      num_newton_steps: Newton steps (Python integer ``>= 1``).
      initial_params: ``float[k]`` natural-scale start (default all ones).
      max_step: largest Newton step in ``log params`` (Euclidean norm, ``> 0``).

    Returns:
      A :class:`RetentionFit`. Check ``gradient_norm`` for convergence.
    """
    _check_model(model)
    _check_survivors(survivors, calibration_years)
    _check_positive_int("num_newton_steps", num_newton_steps)
    _check_positive("max_step", max_step)
    if initial_params is None:
        start = _default_log_params(model)
    else:
        _check_params(model, initial_params)
        start = jnp.log(_float(initial_params))
    return _fit(model, _float(survivors), calibration_years, num_newton_steps, start, max_step)


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _fit(model, counts, calibration_years, num_newton_steps, start, max_step) -> RetentionFit:
    """:func:`fit_retention` after its checks (jitted once per model and sizes)."""

    def negative_log_likelihood(log_params):
        return -_cohort_log_likelihood(model, jnp.exp(log_params), counts, calibration_years)

    log_params, value, gradient, hessian = _maximise(
        negative_log_likelihood, start, num_newton_steps, max_step
    )
    covariance = jnp.linalg.inv(hessian)
    params = jnp.exp(log_params)
    return RetentionFit(
        params=params,
        log_params=log_params,
        standard_errors=params * jnp.sqrt(jnp.diag(covariance)),
        log_params_covariance=covariance,
        log_likelihood=-value,
        gradient_norm=jnp.linalg.norm(gradient),
    )


def fit_survival_curve(
    survival,
    *,
    model: str = "sbg",
    cohort_size=None,
    calibration_years: int | None = None,
    num_newton_steps: int = 30,
) -> RetentionFit:
    """Maximum likelihood of ``model`` on a survival curve, e.g. one simulated by a structural
    model of membership (jittable; ``vmap`` it over curves).

    The curve ``s_0 .. s_T`` (fractions with ``s_0 = 1``, or counts) is read as a cohort of
    ``n_0`` customers with ``n_t = n_0 s_t / s_0`` survivors, and :func:`fit_retention`'s
    likelihood is maximised over years ``1 .. t_c``. The estimates depend only on the
    proportions ``s_t / s_0``; the standard errors are those of a cohort of ``cohort_size``
    customers (``nan`` when it is not given: a curve of expected fractions carries no sample
    size).

    Args:
      survival: ``float[T + 1]`` survival fractions or counts, ``s_0 > 0``, never rising,
        ``s_T >= 0``.
      model: ``"sbg"`` or ``"bdw"``.
      cohort_size: customers behind the curve (``> 0``), for the standard errors.
      calibration_years: ``t_c`` in ``1 .. T`` (default ``T``: the whole curve).
      num_newton_steps: Newton steps (Python integer ``>= 1``).

    Returns:
      A :class:`RetentionFit`; its ``log_likelihood`` is that of ``cohort_size`` customers
      (of one customer without it).
    """
    _check_model(model)
    errors.check_rank("survival", survival, 1)
    last_year = np.shape(survival)[0] - 1
    if calibration_years is None:
        calibration_years = last_year
    _check_positive_int("calibration_years", calibration_years)
    if calibration_years > last_year:
        errors.fail("calibration_years", f"at most the last year {last_year}", calibration_years)
    _check_positive_int("num_newton_steps", num_newton_steps)
    if errors.is_concrete(survival):
        curve = np.asarray(survival, np.float64)
        if not np.all(np.isfinite(curve)) or curve[0] <= 0 or np.any(curve < 0):
            errors.fail("survival", "finite values >= 0 with s_0 > 0", curve.tolist())
        rises = np.flatnonzero(np.diff(curve) > 0)
        if rises.size:
            year = int(rises[0]) + 1
            errors.fail(
                "survival",
                "a curve that never rises",
                f"{curve[year - 1]} in year {year - 1} then {curve[year]} in year {year}",
            )
    if cohort_size is not None:
        _check_positive("cohort_size", cohort_size)
    survival = _float(survival)
    size = jnp.ones((), survival.dtype) if cohort_size is None else _float(cohort_size)
    fit = _fit(
        model,
        size * survival / survival[0],
        calibration_years,
        num_newton_steps,
        _default_log_params(model).astype(survival.dtype),
        4.0,  # fit_retention's default max_step (a Python float: the same compiled fit)
    )
    if cohort_size is None:
        fit = fit._replace(
            standard_errors=jnp.full_like(fit.standard_errors, jnp.nan),
            log_params_covariance=jnp.full_like(fit.log_params_covariance, jnp.nan),
        )
    return fit


def project(model: str, params, cohort_size, t_max: int) -> jax.Array:
    """``float[t_max + 1]``: expected survivors ``n_0 S(t)``, ``t = 0 .. t_max``.

    Args:
      model, params: as in :func:`log_survival`.
      cohort_size: ``n_0`` (``> 0``).
      t_max: the last year (Python integer ``>= 1``).
    """
    _check_positive("cohort_size", cohort_size)
    return _float(cohort_size) * jnp.exp(log_survival(model, params, t_max))


def _log_prior(model: str, log_params, prior_scale: float, duration_prior_scale: float):
    """Independent normal log-densities (up to a constant) of ``log alpha, log beta[, log c]``."""
    scales = jnp.asarray(
        [prior_scale, prior_scale, duration_prior_scale][: len(PARAMETER_NAMES[model])],
        log_params.dtype,
    )
    return -0.5 * jnp.sum((log_params / scales) ** 2)


def posterior_samples(
    key: PRNGKey,
    model: str,
    survivors,
    calibration_years: int,
    *,
    num_warmup: int = 500,
    num_samples: int = 500,
    prior_scale: float = 2.0,
    duration_prior_scale: float = 1.0,
    num_newton_steps: int = 30,
    initial_log_params=None,
) -> PosteriorSamples:
    """NUTS posterior of ``model`` on years ``1 .. t_c`` of a cohort.

    One chain of NumPyro's NUTS (diagonal mass matrix and step size adapted during
    ``num_warmup`` steps) on the potential ``-(LL + log prior)`` over ``log params``, with the
    priors of the module docstring, started at ``initial_log_params`` or else at the
    maximum-likelihood fit (:func:`fit_retention` with ``num_newton_steps``); the chain runs
    in a ``lax.scan``, so the whole function jits and vmaps over keys.

    Args:
      key: the PRNG key of the chain.
      model: ``"sbg"`` or ``"bdw"``.
      survivors: ``int[T + 1]`` survivor counts; years ``0 .. t_c`` are used.
      calibration_years: ``t_c`` (Python integer ``1 .. T``).
      num_warmup, num_samples: NUTS adaptation steps (``>= 0``) and kept draws (``>= 1``).
      prior_scale, duration_prior_scale: the prior s.d. of ``log alpha, log beta`` and of
        ``log c`` (``> 0``).
      num_newton_steps: Newton steps of the starting fit.
      initial_log_params: ``float[k]`` the chain's start in ``log params`` (a caller that has
        fitted the cohort already passes ``fit.log_params``; under ``vmap`` over cohorts this
        keeps the fit's small LAPACK calls out of the batch).

    Returns:
      A :class:`PosteriorSamples` with ``num_samples`` draws.
    """
    errors.check_key("key", key)
    _check_model(model)
    _check_survivors(survivors, calibration_years)
    _check_positive_int("num_warmup", num_warmup, 0)
    _check_positive_int("num_samples", num_samples)
    _check_positive("prior_scale", prior_scale)
    _check_positive("duration_prior_scale", duration_prior_scale)
    counts = _float(survivors)
    if initial_log_params is None:
        start = fit_retention(
            model, survivors, calibration_years, num_newton_steps=num_newton_steps
        ).log_params
    else:
        if np.shape(initial_log_params) != (len(PARAMETER_NAMES[model]),):
            errors.fail(
                "initial_log_params",
                f"shape ({len(PARAMETER_NAMES[model])},)",
                np.shape(initial_log_params),
            )
        start = _float(initial_log_params)

    def potential(log_params):
        log_likelihood = _cohort_log_likelihood(
            model, jnp.exp(log_params), counts, calibration_years
        )
        return -(log_likelihood + _log_prior(model, log_params, prior_scale, duration_prior_scale))

    chain = nuts_chain(key, potential, start, num_warmup=num_warmup, num_samples=num_samples)
    return PosteriorSamples(
        log_params=chain.draws,
        accept_prob=chain.accept_prob,
        num_divergent=chain.num_divergent,
    )


def predictive_survivors(key: PRNGKey, rates, alive) -> jax.Array:
    """``float[h]``: one path of survivor counts ``n_t ~ Binomial(n_{t-1}, r_t)`` over the
    ``h`` years after the last observed one, starting from its ``alive = n_{t_c}`` customers.

    Given the parameters this is the exact law of the counts: the customers still subscribed at
    ``t - 1`` are independent and each stays with probability ``r_t = S(t) / S(t - 1)``
    (integrating over its own ``theta``, whose law given survival to ``t - 1`` is the same for
    all of them). Callers ``vmap`` over draws and cohorts.

    Args:
      key: the PRNG key (split once per year).
      rates: ``float[h]`` retention rates ``r_{t_c + 1} .. r_{t_c + h}`` in ``[0, 1]``.
      alive: ``float[]`` customers subscribed at ``t_c`` (a whole number ``>= 0``).
    """
    errors.check_key("key", key)
    errors.check_rank("rates", rates, 1)
    if errors.is_concrete(rates):
        values = np.asarray(rates, np.float64)
        if not np.all((values >= 0) & (values <= 1)):
            errors.fail("rates", "retention rates in [0, 1]", values.tolist())
    if errors.is_concrete(alive) and not (np.asarray(alive) >= 0 and alive == np.round(alive)):
        errors.fail("alive", "a whole number of customers >= 0", alive)
    rates = _float(rates)

    def year(count, step):
        rate, year_key = step
        count = jax.random.binomial(year_key, count, rate).astype(rates.dtype)
        return count, count

    year_keys = jax.random.split(key, rates.shape[0])
    _, counts = jax.lax.scan(year, _float(alive), (rates, year_keys))
    return counts


def posterior_projection(
    key: PRNGKey,
    model: str,
    survivors,
    calibration_years: int,
    t_max: int,
    **nuts_options,
) -> PosteriorProjection:
    """:func:`posterior_samples` and, per draw, the expected survivors ``n_0 S(t)`` and one
    posterior predictive path (:func:`predictive_survivors`) from the observed ``n_{t_c}``.

    Args:
      key: the PRNG key (split once into NUTS and predictive subkeys).
      model, survivors, calibration_years: as in :func:`posterior_samples`.
      t_max: last projected year (Python integer ``>= t_c``).
      **nuts_options: the keyword options of :func:`posterior_samples`.

    Returns:
      A :class:`PosteriorProjection` (years ``0 .. t_max``).
    """
    errors.check_key("key", key)
    _check_survivors(survivors, calibration_years)
    _check_positive_int("t_max", t_max, calibration_years)
    key_nuts, key_paths = jax.random.split(key)
    samples = posterior_samples(key_nuts, model, survivors, calibration_years, **nuts_options)
    counts = _float(survivors)
    log_s = jax.vmap(lambda z: _log_survival(model, jnp.exp(z), t_max))(samples.log_params)
    rates = jnp.exp(jnp.diff(log_s, axis=-1))[:, calibration_years:]
    path_keys = jax.random.split(key_paths, rates.shape[0])
    future = jax.vmap(predictive_survivors, in_axes=(0, 0, None))(
        path_keys, rates, counts[calibration_years]
    )
    observed = jnp.broadcast_to(
        counts[: calibration_years + 1], (rates.shape[0], calibration_years + 1)
    )
    return PosteriorProjection(
        log_params=samples.log_params,
        expected_survivors=counts[0] * jnp.exp(log_s),
        predicted_survivors=jnp.concatenate([observed, future], axis=1),
        accept_prob=samples.accept_prob,
        num_divergent=samples.num_divergent,
    )
