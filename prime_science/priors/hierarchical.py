"""Hierarchical meta-prior models in NumPyro, fitted by SVI and NUTS (after Nabi et al. 2022).

This is the only module of prime_science that imports NumPyro; it returns
the plain records of :mod:`prime_science.priors.record` and NamedTuples of arrays.

Gaussian model. For features ``i`` of group ``k = g(i)``, ``w_i ~ N(mu_k, tau_k^2)`` is seen
through an estimate ``w^_i ~ N(w_i, s_i^2)`` with known ``s_i^2``. The weights are marginalised
out::

    w^_i ~ N(mu_k, tau_k^2 + s_i^2),

so the log marginal likelihood of the hyper-parameters is a sum of ``K`` independent
heteroscedastic Gaussian terms. Three fits:

* :func:`fit_gaussian_type2` — type-II maximum likelihood: ``mu`` and ``log tau`` are
  ``numpyro.param`` sites, the guide is empty, so the ELBO is exactly the log marginal
  likelihood and SVI (Adam) maximises it. With equal ``s_i^2`` the maximiser is
  ``mu^ = mean``, ``tau^2 = max(0, (n-1)/n S^2 - s^2)`` (the ML version of the method of
  moments; tests compare the two).
* :func:`fit_gaussian_autonormal` — hyper-priors ``mu_k ~ N(0, prior_scale^2)``,
  ``tau_k ~ HalfNormal(tau_scale)``, an ``AutoNormal`` guide; the record takes the guide's
  posterior medians.
* :func:`fit_gaussian_nuts` — the same hyper-priors, NUTS (one chain by default); the record
  takes posterior means of ``mu_k`` and ``tau_k^2``; diagnostics are split R-hat and effective
  sample size from ``numpyro.diagnostics.summary``.

Beta-binomial model. Items ``j`` of group ``k`` have click rates ``p_j ~ Beta(a_k, b_k)``;
``clicks_j ~ Binomial(n_j, p_j)``; marginally ``clicks_j ~ BetaBinomial(a_k, b_k, n_j)``.
:func:`fit_beta_binomial_type2` maximises that marginal likelihood over ``log a, log b`` by
SVI and returns a :class:`~prime_science.priors.record.BetaGroupPrior`.

All fits are pure functions of their arguments and key (SVI runs under ``jit`` through
``SVI.run``'s scan); they are meant to run outside the jitted experiment loops.

Bad input. Every fit checks, before any work, its key (``errors.check_key``), ``num_groups``
(an integer ``>= 1``, checked first so that ``0`` is reported as ``num_groups``), the data
(the method-of-moments checks, or counts for the Beta-binomial fit), the step counts (integers
``>= 1``; ``num_warmup >= 0``, ``num_samples >= 4``) and the real options (``learning_rate``,
``prior_scale``, ``tau_scale``: finite and ``> 0``), and raises ``InvalidArgumentError``
naming the argument. An SVI fit whose parameters come out non-finite (too large a step)
raises naming ``learning_rate``. Fitted variances and Beta shapes are clipped to float32's
normal range ``[1.2e-38, 3.4e38]``: a group whose ML ``tau`` drifts to 0 over many steps
keeps a tiny positive variance instead of an underflowed zero.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.diagnostics import summary
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal

from prime_science.core import errors
from prime_science.core.types import PRNGKey
from prime_science.priors.moments import method_of_moments
from prime_science.priors.record import (
    BetaGroupPrior,
    GaussianGroupPrior,
    beta_group_prior,
    check_count,
    check_group_ids,
    check_positive,
    gaussian_group_prior,
)

__all__ = [
    "SviInfo",
    "NutsInfo",
    "gaussian_model",
    "gaussian_hyperprior_model",
    "beta_binomial_model",
    "fit_gaussian_type2",
    "fit_gaussian_autonormal",
    "fit_gaussian_nuts",
    "fit_beta_binomial_type2",
]


class SviInfo(NamedTuple):
    """How an SVI fit went.

    Attributes:
      losses: ``float32[num_steps]`` the negative ELBO after every step (for type-II ML, minus
        the log marginal likelihood).
    """

    losses: jax.Array


class NutsInfo(NamedTuple):
    """NUTS diagnostics per group (``float[K]``) and the divergence count.

    Attributes:
      r_hat_mean, r_hat_scale: split R-hat of ``mu_k`` and ``tau_k``.
      ess_mean, ess_scale: effective sample sizes of ``mu_k`` and ``tau_k``.
      num_divergences: ``int32[]`` divergent transitions after warm-up.
    """

    r_hat_mean: jax.Array
    r_hat_scale: jax.Array
    ess_mean: jax.Array
    ess_scale: jax.Array
    num_divergences: jax.Array


def _check_gaussian_data(key, estimates, sampling_variances, group_of_feature, num_groups):
    """Boundary checks (key and ``num_groups`` first, then the method-of-moments checks and
    every group non-empty) and jnp conversion."""
    errors.check_key("key", key)
    check_count("num_groups", num_groups, 1)
    method_of_moments(estimates, sampling_variances, group_of_feature, num_groups)
    check_group_ids("group_of_feature", group_of_feature, num_groups, every_group=True)
    return (
        jnp.asarray(estimates, jnp.float32),
        jnp.asarray(sampling_variances, jnp.float32),
        jnp.asarray(group_of_feature, jnp.int32),
    )


def _clip_positive(values: jax.Array) -> jax.Array:
    """``values`` clipped to float32's normal range (module docstring)."""
    info = jnp.finfo(jnp.float32)
    return jnp.clip(values, info.tiny, info.max)


def gaussian_model(estimates, sampling_variances, group_of_feature, num_groups: int) -> None:
    """Type-II ML model: ``w^_i ~ N(mu_g, tau_g^2 + s_i^2)`` with ``mu``, ``log_tau`` params."""
    mean = numpyro.param("mean", jnp.zeros(num_groups))
    log_scale = numpyro.param("log_scale", jnp.full(num_groups, -1.0))
    variance = jnp.exp(2 * log_scale)[group_of_feature] + sampling_variances
    numpyro.sample("obs", dist.Normal(mean[group_of_feature], jnp.sqrt(variance)), obs=estimates)


def gaussian_hyperprior_model(
    estimates,
    sampling_variances,
    group_of_feature,
    num_groups: int,
    prior_scale: float = 10.0,
    tau_scale: float = 1.0,
) -> None:
    """Hyper-priors ``mu_k ~ N(0, prior_scale^2)``, ``tau_k ~ HalfNormal(tau_scale)``; then
    ``w^_i ~ N(mu_g, tau_g^2 + s_i^2)``."""
    with numpyro.plate("groups", num_groups):
        mean = numpyro.sample("mean", dist.Normal(0.0, prior_scale))
        scale = numpyro.sample("scale", dist.HalfNormal(tau_scale))
    variance = (scale**2)[group_of_feature] + sampling_variances
    numpyro.sample("obs", dist.Normal(mean[group_of_feature], jnp.sqrt(variance)), obs=estimates)


def beta_binomial_model(clicks, impressions, group_of_item, num_groups: int) -> None:
    """Type-II ML model: ``clicks_j ~ BetaBinomial(a_g, b_g, n_j)``, ``log a``, ``log b``
    params (initialised at ``a = 1``, ``b = 10``)."""
    log_alpha = numpyro.param("log_alpha", jnp.zeros(num_groups))
    log_beta = numpyro.param("log_beta", jnp.full(num_groups, jnp.log(10.0)))
    numpyro.sample(
        "obs",
        dist.BetaBinomial(
            jnp.exp(log_alpha)[group_of_item], jnp.exp(log_beta)[group_of_item], impressions
        ),
        obs=clicks,
    )


def _empty_guide(*args: Any, **kwargs: Any) -> None:
    """No latent sites: the ELBO is the log marginal likelihood (type-II ML)."""


def _run_svi(key, model, guide, num_steps, learning_rate, *args):
    """SVI with Adam; raises naming ``learning_rate`` when the parameters end non-finite
    (checked when they are concrete, i.e. outside ``jit``)."""
    check_count("num_steps", num_steps, 1)
    check_positive("learning_rate", learning_rate)
    svi = SVI(model, guide, numpyro.optim.Adam(learning_rate), Trace_ELBO())
    result = svi.run(key, num_steps, *args, progress_bar=False)
    leaves = jax.tree_util.tree_leaves(result.params)
    concrete = all(errors.is_concrete(leaf) for leaf in leaves)
    if concrete and not all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in leaves):
        errors.fail(
            "learning_rate",
            "a step size at which the SVI parameters stay finite",
            f"{learning_rate!r} (the fit diverged)",
        )
    return result.params, SviInfo(result.losses)


def fit_gaussian_type2(
    key: PRNGKey,
    estimates: Any,
    sampling_variances: Any,
    group_of_feature: Any,
    num_groups: int,
    *,
    num_steps: int = 500,
    learning_rate: float = 0.05,
) -> tuple[GaussianGroupPrior, SviInfo]:
    """Type-II maximum likelihood of ``(mu_k, tau_k)`` by SVI (Adam on ``mu``, ``log tau``).

    Returns the record ``N(mu_k, tau_k^2)`` over the given feature map and the loss trace.
    ``tau_k`` is parametrised on the log scale, so a group whose ML ``tau`` is 0 drifts toward
    0 without reaching it (the record's variance stays > 0, clipped at float32's smallest
    normal number). Bad input: module docstring.
    """
    data = _check_gaussian_data(key, estimates, sampling_variances, group_of_feature, num_groups)
    params, info = _run_svi(
        key, gaussian_model, _empty_guide, num_steps, learning_rate, *data, num_groups
    )
    variance = _clip_positive(jnp.exp(2 * params["log_scale"]))
    return gaussian_group_prior(params["mean"], variance, data[2]), info


def fit_gaussian_autonormal(
    key: PRNGKey,
    estimates: Any,
    sampling_variances: Any,
    group_of_feature: Any,
    num_groups: int,
    *,
    num_steps: int = 1000,
    learning_rate: float = 0.02,
    prior_scale: float = 10.0,
    tau_scale: float = 1.0,
) -> tuple[GaussianGroupPrior, SviInfo]:
    """Variational Bayes over the hyper-parameters with an ``AutoNormal`` guide; the record
    holds the guide's posterior medians ``mu_k`` and ``tau_k^2`` (bad input: module
    docstring)."""
    data = _check_gaussian_data(key, estimates, sampling_variances, group_of_feature, num_groups)
    prior_scale = check_positive("prior_scale", prior_scale)
    tau_scale = check_positive("tau_scale", tau_scale)
    guide = AutoNormal(gaussian_hyperprior_model)
    params, info = _run_svi(
        key,
        gaussian_hyperprior_model,
        guide,
        num_steps,
        learning_rate,
        *data,
        num_groups,
        prior_scale,
        tau_scale,
    )
    median = guide.median(params)
    variance = _clip_positive(median["scale"] ** 2)
    return gaussian_group_prior(median["mean"], variance, data[2]), info


def fit_gaussian_nuts(
    key: PRNGKey,
    estimates: Any,
    sampling_variances: Any,
    group_of_feature: Any,
    num_groups: int,
    *,
    num_warmup: int = 300,
    num_samples: int = 300,
    num_chains: int = 1,
    prior_scale: float = 10.0,
    tau_scale: float = 1.0,
) -> tuple[GaussianGroupPrior, NutsInfo]:
    """NUTS over the hyper-parameters (``num_chains`` chains run sequentially); the record
    holds posterior means of ``mu_k`` and ``tau_k^2``; :class:`NutsInfo` has split R-hat and
    ESS per group (one chain: R-hat of its two halves; ``num_samples >= 4`` so that each half
    has two draws). Bad input: module docstring."""
    data = _check_gaussian_data(key, estimates, sampling_variances, group_of_feature, num_groups)
    num_warmup = check_count("num_warmup", num_warmup, 0)
    num_samples = check_count("num_samples", num_samples, 4)
    num_chains = check_count("num_chains", num_chains, 1)
    prior_scale = check_positive("prior_scale", prior_scale)
    tau_scale = check_positive("tau_scale", tau_scale)
    mcmc = MCMC(
        NUTS(gaussian_hyperprior_model),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="sequential",
        progress_bar=False,
    )
    mcmc.run(key, *data, num_groups, prior_scale, tau_scale, extra_fields=("diverging",))
    samples = mcmc.get_samples(group_by_chain=True)
    stats = summary(samples, group_by_chain=True)
    info = NutsInfo(
        r_hat_mean=jnp.asarray(stats["mean"]["r_hat"]),
        r_hat_scale=jnp.asarray(stats["scale"]["r_hat"]),
        ess_mean=jnp.asarray(stats["mean"]["n_eff"]),
        ess_scale=jnp.asarray(stats["scale"]["n_eff"]),
        num_divergences=jnp.sum(mcmc.get_extra_fields()["diverging"]).astype(jnp.int32),
    )
    mean = samples["mean"].mean(axis=(0, 1))
    variance = _clip_positive((samples["scale"] ** 2).mean(axis=(0, 1)))
    return gaussian_group_prior(mean, variance, data[2]), info


def fit_beta_binomial_type2(
    key: PRNGKey,
    clicks: Any,
    impressions: Any,
    group_of_item: Any,
    num_groups: int,
    *,
    num_steps: int = 500,
    learning_rate: float = 0.05,
) -> tuple[BetaGroupPrior, SviInfo]:
    """Type-II ML of per-group ``Beta(a_k, b_k)`` item-CTR priors from click counts.

    Args:
      clicks, impressions: ``[n]`` counts per item (``0 <= clicks <= impressions``).
      group_of_item: ``int[n]`` group of every item in ``[0, num_groups)``; every group needs
        items.

    Bad input (module docstring): ``impressions`` must be finite whole numbers ``>= 0`` and
    ``clicks`` whole numbers in ``[0, impressions]``.
    """
    errors.check_key("key", key)
    check_count("num_groups", num_groups, 1)
    for name, value in (("clicks", clicks), ("impressions", impressions)):
        errors.check_rank(name, value, 1)
        errors.check_dtype_kind(name, value, "iuf", "counts")
    errors.check_same_length(("clicks", "impressions"), clicks, impressions)
    errors.check_same_length(("clicks", "group_of_item"), clicks, group_of_item)
    if errors.is_concrete(clicks) and errors.is_concrete(impressions):
        c, n = np.asarray(clicks, np.float64), np.asarray(impressions, np.float64)
        bad = ~(np.isfinite(n) & (n >= 0) & (n == np.round(n)))
        if bad.any():
            errors.fail("impressions", "finite whole numbers >= 0", n[bad][:5].tolist())
        bad = ~((c >= 0) & (c <= n) & (c == np.round(c)))
        if bad.any():
            errors.fail("clicks", "whole numbers in [0, impressions]", c[bad][:5].tolist())
    check_group_ids("group_of_item", group_of_item, num_groups, every_group=True)
    data = (
        jnp.asarray(clicks, jnp.float32),
        jnp.asarray(impressions, jnp.float32),
        jnp.asarray(group_of_item, jnp.int32),
    )
    params, info = _run_svi(
        key, beta_binomial_model, _empty_guide, num_steps, learning_rate, *data, num_groups
    )
    alpha, beta = (_clip_positive(jnp.exp(params[name])) for name in ("log_alpha", "log_beta"))
    return beta_group_prior(alpha, beta), info
