"""Is the shipping / video split learnable? The identification sweep.

The article's question: a member who used shipping and video renewed; was it for shipping or
for video? In the model (:mod:`.model`) the two benefits enter utility as
``theta_ship g(e_ship) + theta_video g(e_video)``. When the two engagements move together (the
common-shock weight ``rho = engagement_correlation`` near 1) the panel only sees their sum:
the sum ``theta_ship + theta_video`` stays identified while the split degrades, unless
something moves one engagement without the other. The exogenous content shocks do that: a new
season raises members' video target only (``content_arrival > 0``; 0 switches them off).

A *cell* is one ``(rho, content shocks on / off)``: its parameters are ``params`` with
``engagement_correlation = rho`` and, when the shocks are off, ``content_arrival = 0``
(:func:`cell_params`). In a cell, :func:`identification_cell` simulates ``replicates``
independent panels (:func:`~.simulate.simulate_panel`) and fits each with an estimator of
:mod:`.estimate` (``"ccp"``, ``"npl"`` or ``"nfxp"``), the cell's transitions taken as known.
It records the estimates of :data:`~.model.STRUCTURAL`, their standard errors and the
panel's empirical ``corr(e_ship, e_video)`` (:func:`engagement_correlation`). :func:`spread`
reduces a cell to the mean and the standard deviation over replicates of ``theta_ship``,
``theta_video`` and their sum: the split is learnable where the spread of each part is small
against its size, and only the sum is where the parts' spreads are large while the sum's is
small (the parts' errors are then negatively correlated).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.core import errors
from prime_science.core.types import PRNGKey
from prime_science.membership import estimate, model, simulate

__all__ = [
    "SWEEP_ESTIMATORS",
    "CellFits",
    "Spread",
    "cell_params",
    "engagement_correlation",
    "identification_cell",
    "spread",
]

SWEEP_ESTIMATORS = ("ccp", "npl", "nfxp")
"""The estimators a cell can use (names of :mod:`.estimate`'s functions; ``npl``: three
pseudo-likelihood fits)."""

SHIP, VIDEO = model.STRUCTURAL.index("theta_ship"), model.STRUCTURAL.index("theta_video")


class CellFits(NamedTuple):
    """One cell's fits (``R`` replicate panels).

    Attributes:
      estimates: ``float[R, 6]`` estimates of :data:`~.model.STRUCTURAL`.
      standard_errors: ``float[R, 6]`` the estimator's standard errors.
      engagement_correlation: ``float[R]`` each panel's empirical ``corr(e_ship, e_video)``.
      converged: ``bool[R]`` the estimator's stopping rule was met.
    """

    estimates: jax.Array
    standard_errors: jax.Array
    engagement_correlation: jax.Array
    converged: jax.Array


class Spread(NamedTuple):
    """Mean and standard deviation (``ddof = 1``) over replicates, each ``float[3]`` for
    ``(theta_ship, theta_video, theta_ship + theta_video)``, and the correlation of the
    replicates' ``theta_ship`` and ``theta_video`` errors (NaN for fewer than 3 replicates)."""

    mean: np.ndarray
    sd: np.ndarray
    part_correlation: float


def cell_params(
    params: model.MembershipParams, correlation, content_shocks
) -> model.MembershipParams:
    """``params`` with ``engagement_correlation = correlation`` and, where ``content_shocks`` is
    false, ``content_arrival = 0`` (jittable in both)."""
    if errors.is_concrete(correlation) and not 0.0 <= float(correlation) <= 1.0:
        errors.fail("correlation", "a common-shock weight in [0, 1]", float(correlation))
    dtype = params.engagement_correlation.dtype
    return params._replace(
        engagement_correlation=jnp.asarray(correlation, dtype),
        content_arrival=jnp.where(
            content_shocks, params.content_arrival, jnp.zeros_like(params.content_arrival)
        ),
    )


def engagement_correlation(panel: simulate.Panel, dtype=jnp.float32) -> jax.Array:
    """Pearson correlation of ``ship`` and ``video`` over every member-month of ``panel``."""
    ship = panel.ship.astype(dtype).reshape(-1)
    video = panel.video.astype(dtype).reshape(-1)
    ship, video = ship - ship.mean(), video - video.mean()
    return jnp.sum(ship * video) / jnp.sqrt(jnp.sum(ship**2) * jnp.sum(video**2))


def _fit(name: str, params, panel, levels, lock_months) -> estimate.Estimate:
    sizes = dict(levels=levels, lock_months=lock_months)
    if name == "nfxp":
        return estimate.nfxp(params, panel, **sizes)
    return estimate.ccp(params, panel, npl_iterations=3 if name == "npl" else 1, **sizes)


def identification_cell(
    key: PRNGKey,
    params: model.MembershipParams,
    correlation,
    content_shocks,
    num_members: int,
    months: int,
    *,
    replicates: int = 4,
    estimator: str = "ccp",
    burn_in: int = 36,
    levels: int = 5,
    lock_months: int = 11,
) -> CellFits:
    """Fit ``replicates`` panels of ``num_members x months`` simulated in one cell (module
    docstring); replicate ``r`` uses the ``r``-th key of ``jax.random.split(key, replicates)``.
    Jittable with the sizes and ``estimator`` static. The replicates run one after the other
    (``lax.map``): a ``vmap`` would batch the estimators' LAPACK solves, and batched LAPACK
    calls inside one large program have deadlocked XLA's CPU thread pool on 2 cores in this
    project; map over cells the same way."""
    errors.check_key("key", key)
    if estimator not in SWEEP_ESTIMATORS:
        errors.fail("estimator", f"one of {SWEEP_ESTIMATORS}", estimator)
    for name, value in (
        ("num_members", num_members),
        ("months", months),
        ("replicates", replicates),
    ):
        if not isinstance(value, (int, np.integer)) or value < 1:
            errors.fail(name, "a positive integer (static)", value)
    cell = cell_params(params, correlation, content_shocks)
    model.check_params(cell, levels)
    tables = simulate.tables(cell, levels=levels, lock_months=lock_months)

    def one(replicate_key):
        panel, _ = simulate.simulate_panel(
            replicate_key,
            cell,
            num_members,
            months,
            burn_in=burn_in,
            levels=levels,
            lock_months=lock_months,
            tables_=tables,
        )
        fit = _fit(estimator, cell, panel, levels, lock_months)
        corr = engagement_correlation(panel, cell.theta_ship.dtype)
        return CellFits(fit.estimates, fit.standard_errors, corr, fit.converged)

    return jax.lax.map(one, jax.random.split(key, replicates))


def spread(estimates) -> Spread:
    """Mean and s.d. over replicates of ``theta_ship``, ``theta_video`` and their sum, and the
    correlation of the two parts across replicates, from ``estimates`` ``float[R, 6]`` (a
    cell's :attr:`CellFits.estimates`; eager, numpy float64)."""
    estimates = np.asarray(estimates, np.float64)
    if estimates.ndim != 2 or estimates.shape[1] != len(model.STRUCTURAL):
        errors.fail("estimates", "an array [replicates, 6]", estimates.shape)
    parts = np.stack(
        [estimates[:, SHIP], estimates[:, VIDEO], estimates[:, SHIP] + estimates[:, VIDEO]], 1
    )
    count = parts.shape[0]
    sd = parts.std(0, ddof=1) if count > 1 else np.full(3, np.nan)
    correlation = float(np.corrcoef(parts[:, 0], parts[:, 1])[0, 1]) if count > 2 else np.nan
    return Spread(parts.mean(0), sd, correlation)
