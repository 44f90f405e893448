"""Per-weight estimates ``(w^_i, s_i^2)`` from logged probit click events: a weak-prior MAP
refit with inverse-diagonal Fisher sampling variances, the input of the method of moments
(:func:`prime_science.priors.moments.method_of_moments`).

Model. Event ``e`` has binary features ``x_e`` (a row of distinct ids, padding ``-1``) and a
click ``y_e in {0, 1}`` with ``P(y_e = 1) = Phi(x_e^T w / beta)``. Under the weak prior
``w ~ N(0, v I)`` the refit is the MAP::

    w^ = argmax_w  sum_e log Phi(t_e x_e^T w / beta) - |w|^2 / (2 v),    t_e = 2 y_e - 1,

found by ``num_steps`` L-BFGS iterations (optax) from ``w = 0``. The sampling variances are
the inverse diagonal of the expected Fisher information of the likelihood at ``w^``::

    F_ii  = sum_e x_ei phi(m_e)^2 / (beta^2 Phi(m_e) Phi(-m_e)),    m_e = x_e^T w^ / beta,
    s_i^2 = 1 / F_ii

(one event's information about its score is ``p'(m)^2 / (p (1 - p))`` with ``p = Phi(m)``,
times ``1 / beta^2`` for ``m = s / beta``); ``phi^2 / (Phi Phi)`` is evaluated in log space so
it stays finite for large ``|m|``.

Caveats. The weak prior only pins down directions the likelihood does not identify (a block's
common offset against the intercept). A feature no event touched has ``F_ii = 0`` and ``s_i^2 =
inf``. The diagonal inverse ignores correlations between features, so ``s_i^2`` is optimistic
for features that always co-occur; with confounded features (an item's brand, category and
title tokens) the MAP also attenuates first-order weights, which is why
:func:`prime_science.priors.laplace.probit_type2` fits group priors from the events directly.

Cost: ``O(num_steps n K)`` for ``n`` events of ``K`` ids, plus L-BFGS's ``O(num_steps M)``
over ``M = num_features`` weights; jittable with ``num_features`` and ``num_steps`` static.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import log_ndtr

from prime_science.bandits.scoring import linear_scores
from prime_science.core import errors
from prime_science.priors.record import check_count, check_positive

__all__ = ["WeightEstimates", "weak_prior_refit"]


class WeightEstimates(NamedTuple):
    """Per-feature estimates and their sampling variances (both ``float32[num_features]``),
    in the order :func:`prime_science.priors.moments.method_of_moments` takes them.

    Attributes:
      estimates: ``w^_i``, the weak-prior MAP.
      sampling_variances: ``s_i^2 = 1 / F_ii`` (``inf`` for a feature no event touched).
    """

    estimates: jax.Array
    sampling_variances: jax.Array


def _check(events: Any, clicks: Any, num_features: int) -> None:
    errors.check_rank("events", events, 2)
    errors.check_rank("clicks", clicks, 1)
    errors.check_dtype_kind("events", events, "iu", "integer feature ids")
    errors.check_dtype_kind("clicks", clicks, "biuf", "0/1 clicks")
    if np.shape(clicks)[0] != np.shape(events)[0]:
        errors.fail(
            "clicks", f"one click per row of events ({np.shape(events)[0]})", np.shape(clicks)
        )
    if errors.is_concrete(events):
        ids = np.asarray(events)
        if ids.size and (ids.min() < -1 or ids.max() >= num_features):
            errors.fail(
                "events", f"feature ids in [0, {num_features}) or -1", (ids.min(), ids.max())
            )
    if errors.is_concrete(clicks):
        values = np.asarray(clicks, np.float64)
        if not np.isin(values, (0.0, 1.0)).all():
            errors.fail("clicks", "0/1 clicks", np.unique(values[~np.isin(values, (0.0, 1.0))])[:5])


def weak_prior_refit(
    events: jax.Array,
    clicks: jax.Array,
    num_features: int,
    *,
    prior_variance: float = 10.0,
    num_steps: int = 200,
    noise: float = 1.0,
) -> WeightEstimates:
    """Estimates ``(w^_i, s_i^2)`` from logged events by a weak-prior probit MAP refit
    (module docstring).

    Args:
      events: ``int[n, K]`` feature ids of every logged event (``-1`` = padding).
      clicks: ``[n]`` 0/1 click of every event.
      num_features: ``M``, the number of weights (static).
      prior_variance: ``v`` of the weak prior ``N(0, v I)``.
      num_steps: L-BFGS iterations from ``w = 0`` (static).
      noise: ``beta`` of the probit likelihood.

    Returns:
      :class:`WeightEstimates`, ``float32[M]`` each.

    Raises ``InvalidArgumentError`` naming the argument for: wrong ranks, dtypes or lengths;
    (when concrete) ids outside ``[-1, M)`` or clicks other than 0/1; ``num_features`` or
    ``num_steps`` not an integer ``>= 1``; ``prior_variance`` or ``noise`` not a finite number
    in float32's normal range.
    """
    num_features = check_count("num_features", num_features, 1)
    num_steps = check_count("num_steps", num_steps, 1)
    prior_variance = check_positive("prior_variance", prior_variance)
    beta = check_positive("noise", noise)
    _check(events, clicks, num_features)
    signs = 2.0 * jnp.asarray(clicks).astype(jnp.float32) - 1.0

    def loss(weights):
        margins = signs * linear_scores(weights, events) / beta
        penalty = 0.5 * jnp.sum(weights * weights) / prior_variance
        return -jnp.sum(log_ndtr(margins)) + penalty

    optimizer = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def step(carry, _):
        weights, state = carry
        value, grad = value_and_grad(weights, state=state)
        updates, state = optimizer.update(
            grad, state, weights, value=value, grad=grad, value_fn=loss
        )
        return (optax.apply_updates(weights, updates), state), None

    start = jnp.zeros(num_features, jnp.float32)
    (weights, _), _ = jax.lax.scan(step, (start, optimizer.init(start)), None, length=num_steps)
    margin = linear_scores(weights, events) / beta
    log_density = -0.5 * margin * margin - 0.5 * np.log(2.0 * np.pi)
    information = jnp.exp(2.0 * log_density - log_ndtr(margin) - log_ndtr(-margin)) / beta**2
    valid = events >= 0
    fisher = (
        jnp.zeros(num_features, jnp.float32)
        .at[jnp.where(valid, events, num_features)]
        .add(jnp.where(valid, information[:, None], 0.0), mode="drop")
    )
    touched = fisher > 0
    return WeightEstimates(
        weights, jnp.where(touched, 1.0 / jnp.where(touched, fisher, 1.0), jnp.inf)
    )
