"""Delay distributions for simulation: an exponential / log-normal mixture truncated at an
attribution window.

:class:`DelayDistribution` is ``w Exp(mean) + (1 - w) LogNormal(mu, sigma)`` conditioned on
``D <= window``; :func:`exponential_delays` is the pure exponential case.
:func:`calibrated_delay_mixture` solves for the log-normal part so that ``F(1 h) = 0.35`` and
``F(24 h) = 0.50`` (Chapelle 2014's statistics; the mixture's form is this project's choice).
:func:`delay_cdf` is ``F``; :func:`sample_delays` draws by inverse CDF.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri
from scipy import optimize, special

from prime_science.bandits.delayed._checks import check_scalar
from prime_science.core import errors
from prime_science.core.types import PRNGKey

__all__ = [
    "DelayDistribution",
    "exponential_delays",
    "calibrated_delay_mixture",
    "delay_cdf",
    "sample_delays",
]


class DelayDistribution(NamedTuple):
    """Delays (hours) from ``w Exp(mean) + (1 - w) LogNormal(mu, sigma)`` conditioned on
    ``D <= window`` (conversions after the attribution window are never seen).

    Attributes (float32 scalars): ``exp_weight`` (``w``, before truncation), ``exp_mean``,
    ``lognormal_mu``, ``lognormal_sigma`` (of ``log D``), ``window`` (``inf``: none).
    """

    exp_weight: jax.Array
    exp_mean: jax.Array
    lognormal_mu: jax.Array
    lognormal_sigma: jax.Array
    window: jax.Array


def _distribution(*values: float) -> DelayDistribution:
    return DelayDistribution(*(jnp.asarray(v, jnp.float32) for v in values))


def exponential_delays(mean: float, window: float = np.inf) -> DelayDistribution:
    """Exponential delays with ``mean`` hours, truncated at ``window`` (default: none)."""
    check_scalar("mean", mean, positive=True)
    check_scalar("window", window, positive=True, allow_inf=True)
    return _distribution(1.0, mean, 0.0, 1.0, window)


def _untruncated_cdf_np(t, weight, exp_mean, mu, sigma):
    t = np.asarray(t, np.float64)
    return weight * -np.expm1(-t / exp_mean) + (1 - weight) * special.ndtr((np.log(t) - mu) / sigma)


def calibrated_delay_mixture(
    one_hour_share: float = 0.35,
    one_day_share: float = 0.50,
    window: float = 720.0,
    fast_mean: float = 0.25,
    fast_weight: float = 0.33,
) -> DelayDistribution:
    """This project's delay mixture, calibrated to Chapelle (2014)'s statistics.

    The fast component is fixed (``fast_weight = 0.33`` of ``Exp(mean 15 min)``, this
    project's choice, not the paper's). The log-normal's ``(mu, log sigma)`` are then solved
    numerically (``scipy.optimize.root``, float64, from ``(log 24, log 2)``) from the two
    equations::

        F(1 h) = G(1) / G(W) = one_hour_share,    F(24 h) = G(24) / G(W) = one_day_share

    with ``G`` the untruncated mixture CDF and ``W = window`` (30 days = 720 h): the shares
    are shares of the conversions seen within the window. ``one_hour_share`` must exceed
    what the fast component alone gives by 1 h (0.3237 with the defaults). The defaults give
    ``mu ~ 4.53`` (median about 93 h) and ``sigma ~ 1.62``; about 10% of the log-normal mass
    lies beyond 30 days.
    """
    checks = (
        ("one_hour_share", one_hour_share, 0.0, 1.0),
        ("one_day_share", one_day_share, one_hour_share, 1.0),
        ("fast_weight", fast_weight, 0.0, 1.0),
    )
    for name, value, low, high in checks:
        if not (np.isscalar(value) and low < float(value) < high):
            errors.fail(name, f"a number in ({low}, {high})", repr(value))
    check_scalar("fast_mean", fast_mean, positive=True)
    check_scalar("window", window, positive=True, allow_inf=True)
    if not float(window) > 24.0:
        errors.fail("window", "an attribution window longer than 24 h", repr(window))
    # the fast component alone, with all log-normal mass in (1 h, W], is the least F(1 h)
    fast_by_one_hour = fast_weight * -np.expm1(-1.0 / fast_mean)
    fast_in_window = fast_weight * -np.expm1(-float(window) / fast_mean)
    lowest = fast_by_one_hour / (fast_in_window + 1.0 - fast_weight)
    if not one_hour_share > lowest:
        errors.fail(
            "one_hour_share",
            f"a share above {lowest:.4f}, what the fast component alone gives by 1 h",
            repr(one_hour_share),
        )

    def residual(x):
        mu, sigma = x[0], np.exp(x[1])
        total = _untruncated_cdf_np(window, fast_weight, fast_mean, mu, sigma)
        return [
            _untruncated_cdf_np(1.0, fast_weight, fast_mean, mu, sigma) / total - one_hour_share,
            _untruncated_cdf_np(24.0, fast_weight, fast_mean, mu, sigma) / total - one_day_share,
        ]

    with np.errstate(all="ignore"):  # trial steps may overflow; the residual check decides
        solution = optimize.root(residual, [np.log(24.0), np.log(2.0)])
    if not solution.success or np.max(np.abs(residual(solution.x))) > 1e-8:
        errors.fail(
            "one_hour_share, one_day_share",
            "shares the log-normal part can reach given the fixed fast component",
            f"({one_hour_share}, {one_day_share}): {solution.message}",
        )
    mu, log_sigma = solution.x
    return _distribution(fast_weight, fast_mean, mu, np.exp(log_sigma), window)


def _untruncated_cdf(params: DelayDistribution, t: jax.Array) -> jax.Array:
    safe = jnp.where(t > 0, t, 1.0)
    finite = jnp.isfinite(safe)
    z = (jnp.log(jnp.where(finite, safe, 1.0)) - params.lognormal_mu) / params.lognormal_sigma
    log_normal = jnp.where(finite, ndtr(z), 1.0)
    exponential = -jnp.expm1(-safe / params.exp_mean)
    mixed = params.exp_weight * exponential + (1.0 - params.exp_weight) * log_normal
    return jnp.where(t > 0, mixed, 0.0)


def delay_cdf(params: DelayDistribution, t: jax.Array) -> jax.Array:
    """``F(t) = P(D <= t)`` of the truncated mixture: ``G(min(t, W)) / G(W)``."""
    t = jnp.asarray(t, jnp.result_type(float, t))
    total = _untruncated_cdf(params, params.window)
    inside = _untruncated_cdf(params, jnp.minimum(t, params.window)) / total
    return jnp.where(t >= params.window, jnp.ones_like(inside), inside)


@partial(jax.jit, static_argnums=2)
def _sample_delays(key, params, num):
    component_key, uniform_key = jax.random.split(key)
    exp_mass = -jnp.expm1(-params.window / params.exp_mean)  # 1 when the window is inf
    log_window = jnp.log(params.window)
    log_normal_mass = jnp.where(
        jnp.isfinite(log_window),
        ndtr((log_window - params.lognormal_mu) / params.lognormal_sigma),
        1.0,
    )
    fast_mass = params.exp_weight * exp_mass
    fast_share = fast_mass / (fast_mass + (1.0 - params.exp_weight) * log_normal_mass)
    fast = jax.random.bernoulli(component_key, fast_share, (num,))
    u = jax.random.uniform(uniform_key, (num,), jnp.float32)
    from_exp = -params.exp_mean * jnp.log1p(-u * exp_mass)
    from_log_normal = jnp.exp(
        params.lognormal_mu + params.lognormal_sigma * ndtri(u * log_normal_mass)
    )
    return jnp.minimum(jnp.where(fast, from_exp, from_log_normal), params.window)


def sample_delays(key: PRNGKey, params: DelayDistribution, n: int) -> jax.Array:
    """``float32[n]`` delays (hours) by inverse CDF of the chosen truncated component.
    ``key``: one PRNG key; ``params``: a :class:`DelayDistribution`."""
    errors.check_key("key", key)
    if not isinstance(params, DelayDistribution):
        errors.fail("params", "a DelayDistribution", type(params).__name__)
    if not isinstance(n, int | np.integer) or n < 1:
        errors.fail("n", "a positive integer", repr(n))
    return _sample_delays(key, params, int(n))
