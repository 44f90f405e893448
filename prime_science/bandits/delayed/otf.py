"""The windowed statistics of OTFLinUCB (Vernade et al. 2020, ICML): linear bandits whose
conversions count only if they arrive within a window ``m`` of the impression.

At time ``t`` the windowed label of impression ``s`` is ``Y_{s,t} = X_s 1{D_s <= min(m, t -
s)}``, i.e. :func:`prime_science.bandits.delayed.ledger.naive` with ``window = m``.
:func:`otf_statistics` builds ``(V, b)`` and :func:`otf_estimate` ``V^-1 b -> tau_m theta``,
``tau_m = P(D <= m)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.bandits.delayed._checks import all_concrete, check_finite, check_scalar
from prime_science.core import errors

__all__ = ["otf_statistics", "otf_estimate"]


def otf_statistics(
    features: jax.Array, labels: jax.Array, weights: jax.Array, regularization: Any = 1.0
) -> tuple[jax.Array, jax.Array]:
    """The windowed statistics of OTFLinUCB (Vernade et al. 2020, ICML)::

        V = lambda I + sum_s w_s A_s A_s^T,      b = sum_s w_s Y_{s,t} A_s

    over every impression ``s`` shown before ``t`` (``w_s = 1``; 0 drops a row), with the
    windowed label ``Y_{s,t} = X_s 1{D_s <= min(m, t - s)}`` = ``naive(ledger, t, m).label``
    and ``A_s`` the caller's feature row of ``(item, context)``. ``V^-1 b`` estimates
    ``tau_m theta``, ``tau_m = P(D <= m)``. ``(V, b)`` are sums: add the statistics of
    expired rows once and those of the live snapshot at each ``t`` (that one with
    ``regularization = 0``, so ``lambda I`` is counted once).

    Args:
      features: ``[n, d]`` rows ``A_s``; labels, weights: ``[n]``.
      regularization: ``lambda >= 0``.

    Returns:
      ``(V: [d, d], b: [d])``.
    """
    errors.check_rank("features", features, 2)
    errors.check_rank("labels", labels, 1)
    errors.check_rank("weights", weights, 1)
    errors.check_same_length(("features", "labels"), features, labels)
    errors.check_same_length(("features", "weights"), features, weights)
    check_scalar("regularization", regularization)
    if all_concrete(regularization) and float(regularization) < 0:
        errors.fail("regularization", "lambda >= 0", repr(float(regularization)))
    features = jnp.asarray(features)
    dtype = jnp.result_type(float, features)
    features = features.astype(dtype)
    weighted = features * jnp.asarray(weights, dtype)[:, None]
    gram = weighted.T @ features + regularization * jnp.eye(features.shape[1], dtype=dtype)
    return gram, weighted.T @ jnp.asarray(labels, dtype)


def otf_estimate(gram: jax.Array, moment: jax.Array) -> jax.Array:
    """``theta_hat = V^-1 b`` by Cholesky when ``V`` (symmetric, read from its lower triangle)
    is positive definite, as it is with ``regularization > 0``.

    Singular fallback: when the Cholesky factorisation fails (``V`` only positive
    semi-definite, e.g. ``regularization = 0`` with fewer independent rows than features, or
    not positive definite at all), the result is ``V^+ b`` (``jnp.linalg.pinv``: singular
    values below ``10 d eps`` of the largest count as 0), the minimum-norm least-squares
    solution of ``V theta = b``; for a consistent singular system it solves it exactly, with
    no component in the null space of ``V``. Raises ``InvalidArgumentError`` for a ``gram``
    that is not ``[d, d]``, a ``moment`` that is not ``[d]``, and (concrete inputs) NaN or
    infinite entries.
    """
    errors.check_rank("gram", gram, 2)
    errors.check_rank("moment", moment, 1)
    rows, columns = np.shape(gram)
    if rows != columns:
        errors.fail("gram", "a square [d, d] matrix", f"shape {np.shape(gram)}")
    if np.shape(moment)[0] != rows:
        errors.fail("moment", f"a vector of length {rows} like gram", f"shape {np.shape(moment)}")
    check_finite("gram", gram)
    check_finite("moment", moment)
    return _otf_solve(gram, moment)


@jax.jit
def _otf_solve(gram, moment):
    dtype = jnp.result_type(float, gram, moment)
    gram, moment = jnp.asarray(gram, dtype), jnp.asarray(moment, dtype)
    factor, lower = jax.scipy.linalg.cho_factor(gram, lower=True)
    solution = jax.scipy.linalg.cho_solve((factor, lower), moment)
    positive_definite = jnp.all(jnp.diagonal(factor) > 0) & jnp.all(jnp.isfinite(solution))
    return jax.lax.cond(
        positive_definite,
        lambda: solution,
        lambda: jnp.linalg.pinv(gram, hermitian=True) @ moment,
    )
