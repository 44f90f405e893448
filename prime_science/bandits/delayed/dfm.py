"""The delayed feedback model (DFM; Chapelle 2014, KDD): its likelihood, E-step and joint fit,
and the likelihood ratios that let a probit ADF model look at an impression at several ages.

**Model.** An impression converts eventually with probability ``p``; if it does, the
conversion is seen after a delay ``D ~ Exponential(lambda)`` (per hour), ``F(t) = 1 -
exp(-lambda t)``. An impression watched for ``t`` hours contributes::

    converted after delay t:   p lambda exp(-lambda t)
    nothing seen during t:     1 - p + p exp(-lambda t) = 1 - p F(t)

Its data are the rows of :func:`prime_science.bandits.delayed.ledger.censored` (label, and
delay or censoring time).

* :func:`dfm_log_likelihood` — the log of these per observation, ``p = sigmoid(logit_p)``,
  stable for every ``lambda t`` and ``logit_p``.
* :func:`dfm_conversion_probability` — ``P(C = 1 | observation)``, the E-step of EM.
* :func:`fit_dfm` — L-BFGS fit of a conversion logit per group and one shared (or one per
  group) log delay rate, optionally the MAP under a log-normal prior on the rate.
* :func:`dfm_probit_log_ratio` — with ``p = Phi(u)``, what an impression's likelihood gains
  between two looks (ages ``before <= now``); the factors telescope to the DFM likelihood.
* :func:`look_step` — one look at one impression as one ADF step
  (:func:`prime_science.bandits.probit.adf_factor_update`) of a probit model, either with that
  DFM ratio or with the naive label (pending = negative, a positive when the click arrives).
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
from jax.scipy.special import log_ndtr

from prime_science.bandits.delayed._checks import (
    FLOAT32_MAX,
    all_concrete,
    check_finite,
    check_scalar,
    check_times,
)
from prime_science.bandits.probit import ProbitState, adf_factor_update
from prime_science.core import errors
from prime_science.core.types import SolverInfo

__all__ = [
    "dfm_log_likelihood",
    "dfm_conversion_probability",
    "dfm_probit_log_ratio",
    "look_step",
    "DfmParams",
    "fit_dfm",
]


def _check_dfm_data(labels: Any, times: Any) -> None:
    if all_concrete(labels, times):
        y = np.asarray(labels, np.float64)
        if not np.isin(y, (0.0, 1.0)).all():
            errors.fail("labels", "0/1 labels", f"{np.unique(y[~np.isin(y, (0.0, 1.0))])[:5]}")
        t = np.asarray(times, np.float64)
        bad = ~(np.isfinite(t) & (t >= 0))
        if bad.any():
            errors.fail("times", "finite delays / elapsed times >= 0", f"{t[bad][:5].tolist()}")


def _check_dfm_params(dtype: Any, **values: Any) -> None:
    """Finite parameters; a ``*log_rate`` also with ``exp`` finite in ``dtype``."""
    largest_log = float(np.log(jnp.finfo(dtype).max))
    for name, value in values.items():
        check_finite(name, value, largest_log if name.endswith("log_rate") else np.inf)


def dfm_log_likelihood(
    logit_p: jax.Array, log_rate: jax.Array, labels: jax.Array, times: jax.Array
) -> jax.Array:
    """Per-observation log-likelihood of the delayed feedback model (broadcasting).

    ``p = sigmoid(logit_p)`` is the probability of an eventual conversion and the delay is
    ``Exponential(lambda)``, ``lambda = exp(log_rate)`` (per hour). With ``t = times``::

        label 1 (converted after delay t):  log p + log lambda - lambda t
        label 0 (nothing during t):         log(1 - p + p exp(-lambda t))

    The second is ``log1p(-p q)``, ``q = -expm1(-lambda t)``, while ``p q < 1/2`` and
    ``logaddexp(log(1 - p), log p - lambda t)`` beyond (where ``log1p`` would cancel), so
    both stay accurate from ``lambda t -> 0`` to ``lambda t -> inf`` and ``|logit_p|`` large.
    Gradients are finite everywhere (both branches are evaluated on safe inputs).

    Raises ``InvalidArgumentError`` (concrete inputs) for labels other than 0/1, times that
    are not finite and >= 0, a NaN or infinite ``logit_p``, and a ``log_rate`` that is not
    finite or whose ``exp`` overflows the dtype (``> 88.7`` in float32).
    """
    _check_dfm_data(labels, times)
    dtype = jnp.result_type(float, logit_p, log_rate, times)
    _check_dfm_params(dtype, logit_p=logit_p, log_rate=log_rate)
    logit_p, log_rate, times = (jnp.asarray(x, dtype) for x in (logit_p, log_rate, times))
    converted = jnp.asarray(labels) > 0.5
    rate = jnp.exp(log_rate)
    log_p = -jax.nn.softplus(-logit_p)
    log_not_p = -jax.nn.softplus(logit_p)
    converted_ll = log_p + log_rate - rate * jnp.where(converted, times, 0.0)
    hazard = rate * jnp.where(converted, 0.0, times)
    p_times_q = jax.nn.sigmoid(logit_p) * -jnp.expm1(-hazard)
    small = p_times_q < 0.5
    waiting_ll = jnp.where(
        small,
        jnp.log1p(-jnp.where(small, p_times_q, 0.0)),
        jnp.logaddexp(log_not_p, log_p - hazard),
    )
    return jnp.where(converted, converted_ll, waiting_ll)


def dfm_conversion_probability(
    logit_p: jax.Array, log_rate: jax.Array, labels: jax.Array, times: jax.Array
) -> jax.Array:
    """``P(C = 1 | observation)``: 1 for a conversion; for nothing during ``t``,
    ``p e^{-lambda t} / (1 - p + p e^{-lambda t}) = sigmoid(logit_p - lambda t)``.

    The E-step of EM for the DFM: as fractional labels it lets any Bernoulli model learn the
    eventual conversion rate from :func:`censored` rows. Checks as
    :func:`dfm_log_likelihood`.
    """
    _check_dfm_data(labels, times)
    dtype = jnp.result_type(float, logit_p, log_rate, times)
    _check_dfm_params(dtype, logit_p=logit_p, log_rate=log_rate)
    logit_p, log_rate, times = (jnp.asarray(x, dtype) for x in (logit_p, log_rate, times))
    waiting = jax.nn.sigmoid(logit_p - jnp.exp(log_rate) * times)
    return jnp.where(jnp.asarray(labels) > 0.5, jnp.ones_like(waiting), waiting)


def _log_one_minus_p_cdf(u: jax.Array, log_rate: jax.Array, elapsed: jax.Array) -> jax.Array:
    """``log(1 - Phi(u) F(e))`` with ``F(e) = 1 - exp(-lambda e)``: ``logaddexp(log Phi(-u),
    log Phi(u) - lambda e)``, exact at ``e = 0`` (0) and stable for large ``|u|``."""
    return jnp.logaddexp(log_ndtr(-u), log_ndtr(u) - jnp.exp(log_rate) * elapsed)


def dfm_probit_log_ratio(
    u: jax.Array,
    log_rate: jax.Array,
    before: jax.Array,
    now: jax.Array,
    arrived: jax.Array,
    previous_log_rate: jax.Array | None = None,
) -> jax.Array:
    """What an impression's DFM likelihood gains between two looks, as a function of its
    probit score: ``log L(now) - log L(before)`` with ``p = Phi(u)`` and exponential delays.

    The DFM likelihood (Chapelle 2014) of an impression with no conversion seen after ``e``
    hours is ``1 - p F(e)``; of one converted after delay ``D`` it is ``p f(D)``. Looking at
    an impression at ages ``0 = e_0 < e_1 < e_2 < ...`` and multiplying, at each look, by

    * ``(1 - p F(now)) / (1 - p F(before))`` if still nothing is seen (``arrived`` False),
    * ``p / (1 - p F(before))`` if the conversion arrived in ``(before, now]`` (``f(D)`` does
      not involve ``p`` and is dropped),

    telescopes to the DFM likelihood of everything seen by the last look: an ADF model can
    then fold an impression in at several ages (re-processing it when its label changes)
    without counting anything twice. When the delay rate is re-estimated between looks, pass
    the rate of the previous look as ``previous_log_rate`` (default ``log_rate``): the
    denominator is then the factor that look left, and the product still telescopes. Used
    with :func:`prime_science.bandits.probit.adf_factor_update` (``u = s / beta``).
    Broadcasts; ``before <= now``. Raises ``InvalidArgumentError`` (concrete inputs) for a NaN
    or infinite ``u``, ``before`` or ``now``, and log rates as in :func:`dfm_log_likelihood`.
    """
    dtype = jnp.result_type(float, u, log_rate, before, now)
    rates = {"log_rate": log_rate}
    if previous_log_rate is not None:
        rates["previous_log_rate"] = previous_log_rate
    _check_dfm_params(dtype, u=u, before=before, now=now, **rates)
    if all_concrete(before, now):
        earlier, later = np.asarray(before, np.float64), np.asarray(now, np.float64)
        if not np.all((earlier >= 0) & (later >= earlier)):
            errors.fail("now", "ages with 0 <= before <= now", f"before={before}, now={now}")
    if previous_log_rate is None:
        previous_log_rate = log_rate
    log_then = _log_one_minus_p_cdf(u, previous_log_rate, before)
    log_now = jnp.where(arrived, log_ndtr(u), _log_one_minus_p_cdf(u, log_rate, now))
    return log_now - log_then


def look_step(
    state: ProbitState,
    ids: jax.Array,
    first: jax.Array,
    seen_before: jax.Array,
    seen_now: jax.Array,
    before: jax.Array,
    now: jax.Array,
    log_rate: jax.Array,
    previous_log_rate: jax.Array,
    censored: jax.Array,
    beta: float = 1.0,
) -> ProbitState:
    """One look at one impression: one ADF step of a probit model (noise ``beta``) with the
    likelihood factor that this look adds.

    The impression has binary features ``ids: int[K]`` (``-1`` = padding) and probit score
    ``u = x^T w / beta``. Its click had been observed by the previous look, at age ``before``
    (``seen_before``), and is observed by this one, at age ``now`` (``seen_now``); ``first``:
    this is its first look (``before = 0``). The factor ``g(u)`` folded in by
    :func:`prime_science.bandits.probit.adf_factor_update` is:

    * not ``censored`` (naive: pending = negative): at the first look ``Phi(y u)``, ``y = +1``
      if ``seen_now`` else ``-1`` (the plain probit step); at a later look ``Phi(u)`` if the
      click arrived since the previous look (``seen_now and not seen_before``), else nothing;
    * ``censored`` (DFM): ``exp`` of :func:`dfm_probit_log_ratio` with the delay rate
      ``exp(log_rate)`` now and ``exp(previous_log_rate)`` at the previous look, i.e.
      ``(1 - p F(now)) / (1 - p F(before))`` while nothing is seen and ``p / (1 - p
      F(before))`` when the click arrives, ``p = Phi(u)``; nothing once the click has been
      seen at an earlier look. Over an impression's looks these factors telescope to its
      DFM likelihood, so nothing is counted twice.

    All arguments but ``state``, ``ids`` and ``beta`` are scalars (``bool`` flags, float ages
    in hours, log rates per hour), traced or not: the function is meant for ``lax.scan``
    over a stream of looks.
    """
    arrived = seen_now & ~seen_before
    plain_sign = jnp.where(first, 2.0 * seen_now - 1.0, 1.0)
    skip = jnp.where(censored, seen_before, ~first & ~arrived)

    def log_factor(score):
        u = score / beta
        dfm = dfm_probit_log_ratio(u, log_rate, before, now, arrived, previous_log_rate)
        return jnp.where(censored, dfm, log_ndtr(plain_sign * u))

    return adf_factor_update(state, jnp.where(skip, -1, ids), log_factor)


class DfmParams(NamedTuple):
    """Fitted DFM parameters per group: ``logit_p: float[num_groups]``, ``log_rate:
    float[num_groups]`` (all equal with a shared rate)."""

    logit_p: jax.Array
    log_rate: jax.Array


@partial(jax.jit, static_argnames=("num_groups", "shared_rate", "max_iters"))
def _fit_dfm(
    labels, times, groups, weights, l2, tol, prior_mean, prior_precision, *, num_groups,
    shared_rate, max_iters,
):  # fmt: skip
    converted = labels > 0.5
    group_weight = jnp.zeros(num_groups, times.dtype).at[groups].add(weights)
    group_positive = jnp.zeros(num_groups, times.dtype).at[groups].add(weights * converted)
    logit_init = jax.scipy.special.logit((group_positive + 0.5) / (group_weight + 1.0))
    positive_weight = jnp.sum(weights * converted)
    mean_delay = jnp.where(
        positive_weight > 0,
        jnp.sum(weights * converted * times) / jnp.maximum(positive_weight, 1e-30),
        jnp.sum(weights * times) / jnp.maximum(jnp.sum(weights), 1e-30),
    )
    rate_init = -jnp.log(jnp.maximum(mean_delay, 1e-6))
    log_rate_init = jnp.full((1 if shared_rate else num_groups,), rate_init)
    total = jnp.maximum(jnp.sum(weights), 1e-30)

    def objective(params):
        logit_p, log_rate = params
        rate_of = log_rate[jnp.zeros_like(groups) if shared_rate else groups]
        ll = dfm_log_likelihood(logit_p[groups], rate_of, labels, times)
        penalty = jnp.sum(logit_p**2) + jnp.sum((log_rate - log_rate_init) ** 2)
        prior = jnp.sum(prior_precision * (log_rate - prior_mean) ** 2) / total
        return -jnp.sum(weights * ll) / total + 0.5 * l2 * penalty + 0.5 * prior

    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry):
        params, opt_state = carry
        value, grad = value_and_grad(params, state=opt_state)
        updates, opt_state = solver.update(
            grad, opt_state, params, value=value, grad=grad, value_fn=objective
        )
        return optax.apply_updates(params, updates), opt_state

    def keep_going(carry):
        _, opt_state = carry
        count = otu.tree_get(opt_state, "count")
        residual = otu.tree_norm(otu.tree_get(opt_state, "grad"))
        return (count == 0) | ((count < max_iters) & (residual >= tol))

    params0 = (logit_init, log_rate_init)
    params, opt_state = jax.lax.while_loop(keep_going, step, (params0, solver.init(params0)))
    residual = otu.tree_norm(jax.grad(objective)(params))
    logit_p, log_rate = params
    fit = DfmParams(logit_p, jnp.broadcast_to(log_rate, (num_groups,)))
    info = SolverInfo(otu.tree_get(opt_state, "count"), residual, residual < tol)
    return fit, info


def fit_dfm(
    labels: jax.Array,
    times: jax.Array,
    groups: jax.Array,
    num_groups: int,
    weights: jax.Array | None = None,
    *,
    shared_rate: bool = True,
    l2: float = 1e-4,
    log_rate_prior: tuple[float, float] | None = None,
    max_iters: int = 200,
    tol: float = 1e-5,
) -> tuple[DfmParams, SolverInfo]:
    """Fit the DFM jointly: a conversion logit per group and one (shared) or one-per-group
    log delay rate, by L-BFGS (optax) on the weighted mean negative log-likelihood.

    Objective: ``-sum_i w_i ll_i / sum_i w_i + (l2 / 2)(|logit_p|^2 + |log_rate - r0|^2)``
    with ``ll`` from :func:`dfm_log_likelihood` and ``r0 = -log(mean observed delay)``, the
    starting rate: a weak Gaussian prior that keeps groups without conversions finite.
    With ``log_rate_prior = (m, s)`` the objective also gets ``(log_rate - m)^2 / (2 s^2
    sum_i w_i)``: a ``N(m, s^2)`` prior on each log rate, i.e. the MAP of the rate. Early on,
    when the oldest impressions are younger than the mean delay, the likelihood is nearly
    flat in the rate (a long delay and a high conversion probability explain the data as
    well as the truth), and the plain MLE can land far off (a 509 h mean delay for a true
    72 h after one day of data in ``experiments/delays.py``). Stops when the gradient norm
    falls below ``tol`` or after ``max_iters`` iterations.

    Args:
      labels, times: ``[n]`` 0/1 labels and delays / censoring times (e.g. a
        :func:`censored` batch's ``label`` and ``time``).
      groups: ``int[n]`` group of each row, in ``[0, num_groups)`` (e.g. the item).
      weights: ``[n]`` non-negative row weights (default 1; a batch's ``weight``).

    Returns:
      ``(DfmParams, SolverInfo)``; float32 unless the inputs are float64 under x64.

    Raises ``InvalidArgumentError`` for bad shapes or values (above), and for no data: no
    rows (named ``labels``) or, with concrete weights, a total weight of 0 (named
    ``weights``); there is nothing to fit, and the optimiser would report convergence at its
    starting point.
    """
    if not isinstance(num_groups, int | np.integer) or num_groups < 1:
        errors.fail("num_groups", "a positive integer", repr(num_groups))
    if not isinstance(max_iters, int | np.integer) or max_iters < 1:
        errors.fail("max_iters", "a positive integer", repr(max_iters))
    errors.check_rank("labels", labels, 1)
    check_times("times", times)
    errors.check_rank("groups", groups, 1)
    errors.check_dtype_kind("groups", groups, "iu", "integer group ids")
    errors.check_same_length(("labels", "times"), labels, times)
    errors.check_same_length(("labels", "groups"), labels, groups)
    if np.shape(labels)[0] == 0:
        errors.fail("labels", "at least one observation to fit", "no rows")
    _check_dfm_data(labels, times)
    check_scalar("l2", l2)
    if all_concrete(l2) and float(l2) < 0:
        errors.fail("l2", "a penalty >= 0", repr(float(l2)))
    check_scalar("tol", tol, positive=True)
    if all_concrete(groups):
        g = np.asarray(groups)
        bad = (g < 0) | (g >= num_groups)
        if bad.any():
            errors.fail("groups", f"group ids in [0, {num_groups})", f"{g[bad][:5].tolist()}")
    dtype = jnp.result_type(float, times)
    if weights is None:
        weights = jnp.ones(np.shape(labels), dtype)
    else:
        errors.check_rank("weights", weights, 1)
        errors.check_same_length(("labels", "weights"), labels, weights)
        if all_concrete(weights):
            w = np.asarray(weights, np.float64)
            good = np.isfinite(w) & (w >= 0) & (w <= FLOAT32_MAX)
            if not np.all(good):
                errors.fail("weights", "finite values >= 0", f"{w[~good][:5].tolist()}")
            if not w.sum() > 0:
                errors.fail("weights", "a positive total weight (some data to fit)", "all 0")
    prior_mean, prior_precision = 0.0, 0.0
    if log_rate_prior is not None:
        if len(log_rate_prior) != 2 or not float(log_rate_prior[1]) > 0:
            errors.fail("log_rate_prior", "(mean, s.d. > 0)", repr(log_rate_prior))
        prior_mean, prior_precision = log_rate_prior[0], 1.0 / float(log_rate_prior[1]) ** 2
    return _fit_dfm(
        jnp.asarray(labels, dtype),
        jnp.asarray(times, dtype),
        jnp.asarray(groups, jnp.int32),
        jnp.asarray(weights, dtype),
        jnp.asarray(l2, dtype),
        jnp.asarray(tol, dtype),
        jnp.asarray(prior_mean, dtype),
        jnp.asarray(prior_precision, dtype),
        num_groups=int(num_groups),
        shared_rate=bool(shared_rate),
        max_iters=int(max_iters),
    )
