"""Estimating the membership model's utility parameters from a member panel: NFXP, CCP / NPL,
tabular PQR with a projection, and the naive static logit.

**Data and likelihood.** A panel (:class:`~.simulate.Panel`) enters through its counts at the
free states (plan 0 or 1), ``N[segment, plan, tenure, E^2, content, regime, action]``
(:func:`choice_counts`): in a locked month only ``annual`` is feasible, its probability is
exactly 1 and the row adds 0 to the log-likelihood. The choice log-likelihood is::

    L(theta) = sum_{free rows i} log pi(a_i | s_i; theta)
             = sum_{free cells} N(s, a) log pi(a | s; theta).

Everything but :data:`~.model.STRUCTURAL` (prices, discount, engagement, content and regime
chains) is held at the values in ``params``: the transition processes are taken as known
(estimated in a first stage from the observed state moves, which this module does not redo).

**NFXP** (Rust 1987; :func:`nfxp`). Maximise ``L`` over ``theta``, solving the model
(:func:`~.model.solve`, both segments) inside. BHHH (Berndt, Hall, Hall and Hausman 1974):
per-cell scores ``d log pi(a | s) / d theta`` from one ``jax.jacfwd`` through the solver's
``while_loop`` (six tangents, cold-started so that the tangents converge with the values),
``g = sum N s``, ``H = sum N s s^T`` (the outer product of the per-row scores; rows in one cell
with one action share a score), ``theta <- theta + lambda H^{-1} g``, stopping when
``g^T H^{-1} g < tol``. The step length: ``lambda = 1, 1/2, 1/4, ..`` until ``L`` does not
fall; if the full step raised ``L``, ``lambda = 2, 4, ..`` while ``L`` keeps rising (far from
the optimum the outer product overstates the curvature and full BHHH steps crawl: from the
static-logit start, 41 full steps against 13 with doubling on one 5,000 x 24 panel). The
line search's solves are warm-started from the last value tables (values only, no tangents).
Started from the static-logit estimate by default (:func:`recovery` starts it from NPL).
Standard errors: ``sqrt diag H^{-1}`` at the estimate (the OPG / BHHH information of the choice
likelihood).

**First stage** (:data:`FIRST_STAGES`). CCP, NPL and PQR start from an estimate ``pi^`` of the
choice probabilities at all ``2 x 3,600`` free states. ``"frequency"``: smoothed frequencies
``pi^(a | s) = (N(s, a) + lambda / 3) / (N(s) + lambda)`` (:func:`frequency_log_policy`), noisy
or uniform at the many rarely visited states. ``"sieve"`` (the default): a multinomial logit of
the choice on a second-order expansion of the state, fitted by penalised maximum likelihood
(:func:`sieve_logit`; the smooth first stage of Bajari, Benkard and Levin 2007 and of the
review of Arcidiacono and Ellickson 2011), which pools rows across neighbouring states. On the
``membership`` experiment's 4,000 x 24 panels (float32, seeds 0-4) the sieve (ridge 0.01)
takes two-step CCP's largest ``|z|`` from 10.0-15.1 to 0.6-3.2 and PQR's annual-share error 12
months after a +10 % / -10 % annual price from 5.5 / 1.7 to 2.2 / 1.1 points (means, with
PQR's projection then weighted by the visits); PQR stays sensitive to the ridge (ridge 10:
4.2 / 11 points), CCP does not.

**CCP / NPL** (Hotz and Miller 1993; Aguirregabiria and Mira 2002; :func:`ccp`). From the
first-stage CCPs ``pi^`` at the free states: on the
free states with the annual macro-action (:mod:`.pqr`: ``D_a P_a`` the discounted move to the
next free state, ``beta`` for none and monthly, ``beta^{L+1}`` for annual), the value of
following ``pi`` solves ``V = sum_a pi_a (u_a - log pi_a) + B_pi V`` with
``B_pi = sum_a diag(pi_a) D_a P_a`` (the shock's expectation given the choice is
``-log pi_a`` in the model's normalisation ``V = log sum exp Q``), so with ``u_a = X_a theta +
o_a`` (package features for annual)::

    V = Z theta + zeta,   Z = (I - B_pi)^{-1} sum_a pi_a X_a,
                          zeta = (I - B_pi)^{-1} sum_a pi_a (o_a - log pi_a),
    v(s, a) = (X_a + D_a P_a Z) theta + o_a + D_a P_a zeta,

a logit in ``theta``: the pseudo-likelihood ``sum N(s, a) log softmax_a v(s, a)`` is maximised
by Newton's method (with step halving). NPL replaces ``pi`` by ``softmax v(theta^)`` and
repeats; ``npl_iterations = 1`` is the two-step CCP estimator. Standard errors: the inverse
Hessian of the last pseudo-likelihood, which ignores the first-stage CCPs (understated for the
two-step estimator; the NPL fixed point is the MLE's).

**PQR** (:func:`pqr_estimate`): :func:`.pqr.membership_pqr` on the first-stage CCPs, then
:func:`.pqr.project` of the recovered ``r(s, monthly)`` and ``R(s, annual)`` on the
(package) features, weighted by the approximate inverse variance of each recovered reward
(:func:`precision_weights`; unvisited states get weight 0). Exact from the true policy, it is a
plug-in estimator from a panel: ``R(s, annual)`` subtracts ``beta^{L+1} E[V(1, z_{L+1})]`` over
states a year ahead, many rarely visited. With frequency CCPs, smoothing pulls
``pi^(none | s)`` towards 1/3 there and ``V = Q_A - log pi(none)`` down, and the estimates are
biased (ten float32 4,000 x 24 panels: ``theta_price`` 0.051 against 0.1, ``kappa`` 2.10
against 1.5). From the sieve first stage the same panels give mean estimates within 0.06
utils of the truth (``theta_price`` 0.102), spreads 0.003-0.064, and standard errors by the
delta method through the sieve's coefficients (:func:`pqr_estimate`) 0.87-1.15 times those
spreads; the largest ``|z|`` per panel is 1.0-2.6. Weighting the projection by the visits
``n(s)`` instead leaves the spreads 2-6x wider.

**Static logit** (:func:`static_logit`, ``beta = 0``): at the free states
``pi(a | s) = softmax_a(X_a(s) theta + o_a(s))`` with the *flow* features of
:func:`~.model.utility_features`: ``none`` 0, ``monthly`` one month's benefits less the monthly
price (less ``kappa`` from plan 0), ``annual`` one month's benefits less the whole annual
price (less ``kappa`` from plan 0) -- the annual plan judged myopically, price paid at once
against one month of benefits; no continuation values. It is the naive baseline and is biased.

Precision follows ``params`` (float64 advisable: ``beta = 0.99``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.choice.ascent import halving_ascent
from prime_science.choice.mdp import check_count, check_scalar
from prime_science.core import errors
from prime_science.core.types import PRNGKey
from prime_science.membership import model, pqr, simulate

__all__ = [
    "ESTIMATORS",
    "FIRST_STAGES",
    "SIEVE_BLOCKS",
    "Estimate",
    "PQRFit",
    "SieveFit",
    "ccp",
    "check_panel",
    "choice_counts",
    "fit_panel",
    "frequency_log_policy",
    "interval_coverage",
    "nfxp",
    "panel_log_likelihood",
    "pqr_estimate",
    "pqr_from_counts",
    "precision_weights",
    "recovery",
    "sieve_features",
    "sieve_log_policy",
    "sieve_logit",
    "static_logit",
    "structural_vector",
    "with_structural",
]

ESTIMATORS = ("nfxp", "ccp", "npl", "pqr", "static")
"""The estimators :func:`recovery` knows: NFXP, two-step CCP, NPL, PQR's projection, static
logit."""


class Estimate(NamedTuple):
    """One estimator's fit of :data:`~.model.STRUCTURAL`.

    Attributes:
      estimates: ``float[6]``.
      standard_errors: ``float[6]`` (NaN where the estimator has none).
      log_likelihood: the estimator's objective at the estimate: the panel log-likelihood (NFXP),
        the pseudo-log-likelihood (CCP / NPL), the static logit's (static), minus the weighted
        sum of squared residuals (PQR).
      iterations: outer iterations (BHHH steps; the Newton steps of the last logit fit for CCP,
        NPL and static; 1 for PQR).
      converged: whether the stopping rule was met.
    """

    estimates: jax.Array
    standard_errors: jax.Array
    log_likelihood: jax.Array
    iterations: jax.Array
    converged: jax.Array


class PQRFit(NamedTuple):
    """PQR on a panel (:func:`pqr_estimate`).

    Attributes:
      reward: ``float[2 segments, 2, 6, E^2, 2, 3, 3]`` the recovered ``r(s, a)`` (``R`` for
        annual).
      projection: :class:`~.pqr.Projection` of the rewards on the features.
      estimate: the projection as an :class:`Estimate` (delta-method standard errors from the
        sieve first stage, NaN from frequencies: :func:`pqr_estimate`).
    """

    reward: jax.Array
    projection: pqr.Projection
    estimate: Estimate


def structural_vector(params: model.MembershipParams) -> jax.Array:
    """``float[6]``: the :data:`~.model.STRUCTURAL` fields of ``params``, in order."""
    return jnp.stack([jnp.asarray(getattr(params, name)) for name in model.STRUCTURAL])


def with_structural(params: model.MembershipParams, theta: jax.Array) -> model.MembershipParams:
    """``params`` with its :data:`~.model.STRUCTURAL` fields set from ``theta[6]``."""
    return params._replace(**{name: theta[i] for i, name in enumerate(model.STRUCTURAL)})


_PANEL_RANGES = (
    ("plan", None),
    ("tenure", len(model.TENURE_WIDTHS)),
    ("ship", None),
    ("video", None),
    ("content", 2),
    ("regime", len(model.REGIMES)),
    ("choice", len(model.ACTIONS)),
)


def check_panel(panel: simulate.Panel, *, levels: int = 5, lock_months: int = 11) -> None:
    """Named errors for a panel no estimator can read: not a :class:`~.simulate.Panel`, a field
    that is not an integer ``[N, T]`` array of the common shape, ``segment`` not ``int[N]``;
    when concrete, a value out of range (plan ``0 .. 1 + L``, tenure ``0 .. 5``, ship and video
    ``0 .. E - 1``, content 0-1, regime 0-2, choice 0-2, segment 0-1) or a locked month whose
    choice is not ``annual``; the message names the field and the first bad (member, month)."""
    if not isinstance(panel, simulate.Panel):
        errors.fail("panel", "a simulate.Panel", type(panel).__name__)
    shape = np.shape(panel.plan)
    if len(shape) != 2 or 0 in shape:
        errors.fail("panel.plan", "a non-empty int array [members, months]", f"shape {shape}")
    highs = {"plan": model.num_plans(lock_months), "ship": levels, "video": levels}
    for name, _ in _PANEL_RANGES:
        field = getattr(panel, name)
        if np.shape(field) != shape:
            errors.fail(f"panel.{name}", f"shape {shape} (as panel.plan)", np.shape(field))
        errors.check_dtype_kind(f"panel.{name}", field, "iu", "integer codes")
    errors.check_dtype_kind("panel.segment", panel.segment, "iu", "integer codes")
    if np.shape(panel.segment) != shape[:1]:
        errors.fail(
            "panel.segment", f"shape ({shape[0]},) (one per member)", np.shape(panel.segment)
        )
    if not all(errors.is_concrete(x) for x in panel):
        return
    for name, high in _PANEL_RANGES:
        high = highs.get(name, high)
        values = np.asarray(getattr(panel, name))
        bad = (values < 0) | (values >= high)
        if bad.any():
            member, month = np.argwhere(bad)[0]
            errors.fail(
                f"panel.{name}",
                f"codes in [0, {high})",
                f"{values[member, month]} at member {member}, month {month}",
            )
    segment = np.asarray(panel.segment)
    if np.any((segment < 0) | (segment > 1)):
        errors.fail("panel.segment", "0 or 1", f"{segment[(segment < 0) | (segment > 1)][0]}")
    locked = (np.asarray(panel.plan) >= 2) & (np.asarray(panel.choice) != model.ANNUAL)
    if locked.any():
        member, month = np.argwhere(locked)[0]
        errors.fail(
            "panel.choice",
            "annual (2) in a locked month (plan >= 2)",
            f"{int(np.asarray(panel.choice)[member, month])} at member {member}, month {month}",
        )


def choice_counts(
    panel: simulate.Panel, *, levels: int = 5, lock_months: int = 11, dtype=jnp.float32
) -> jax.Array:
    """``float[2 segments, 2 plans, 6, E^2, 2, 3, 3 actions]``: ``N(s, a)``, the panel's rows
    at free states (plan 0 or 1) by state and choice; locked rows are left out. Checked by
    :func:`check_panel`."""
    check_panel(panel, levels=levels, lock_months=lock_months)
    segment = jnp.broadcast_to(jnp.asarray(panel.segment)[:, None], panel.plan.shape)
    free = panel.plan < 2
    shape = (2, *pqr.free_shape(levels), len(model.ACTIONS))
    counts = jnp.zeros(shape, dtype)
    return counts.at[
        segment,
        jnp.minimum(panel.plan, 1),
        panel.tenure,
        panel.ship * levels + panel.video,
        panel.content,
        panel.regime,
        panel.choice,
    ].add(free.astype(dtype))


def frequency_log_policy(counts: jax.Array, pseudo_count: float = 1.0) -> jax.Array:
    """``log pi^(a | s) = log (N(s, a) + lambda / 3) - log (N(s) + lambda)`` for counts
    ``[..., 3]``, ``lambda = pseudo_count > 0`` (a symmetric Dirichlet prior: an unvisited
    state gets the uniform policy)."""
    check_scalar("pseudo_count", pseudo_count, "a positive number of pseudo-rows", positive=True)
    smoothed = counts + pseudo_count / counts.shape[-1]
    return jnp.log(smoothed) - jnp.log(jnp.sum(smoothed, axis=-1, keepdims=True))


SIEVE_BLOCKS = ("segment", "plan", "tenure", "ship", "video", "content", "regime")
"""The free-state components the sieve logit expands (:func:`sieve_features`), in the order of
the axes of :func:`choice_counts` (``ship`` and ``video`` split the ``E^2`` axis)."""


def sieve_features(levels: int = 5) -> np.ndarray:
    """``float64[2 segments, 2, 6, E^2, 2, 3, K]``: the sieve's design at every free state.

    Columns: a constant; the one-hot main effects of each component of :data:`SIEVE_BLOCKS`
    (its first level the base); every pairwise product of two components' one-hot columns
    (plan x regime, plan x tenure, tenure x regime, regime x segment, ship x video -- which
    spans every function of ``(e_ship, e_video)``, the linear-by-linear one included, ...).
    With ``n_c`` the levels of component ``c``,
    ``K = 1 + sum_c (n_c - 1) + sum_{c < c'} (n_c - 1)(n_c' - 1)`` (``K = 149`` at ``E = 5``,
    full column rank): a second-order expansion of the state (Bajari, Benkard and Levin
    2007 fit first-stage policies by such flexible logits)."""
    check_count("levels", levels, 2)
    sizes = (2, 2, len(model.TENURE_WIDTHS), levels, levels, 2, len(model.REGIMES))
    grid = np.meshgrid(*(np.arange(n) for n in sizes), indexing="ij")
    one_hot = [
        np.stack([(codes == level) for level in range(1, n)], axis=-1).astype(np.float64)
        for codes, n in zip(grid, sizes, strict=True)
    ]
    columns = [np.ones((*grid[0].shape, 1)), *one_hot]
    for i, first in enumerate(one_hot):
        for second in one_hot[i + 1 :]:
            product = first[..., :, None] * second[..., None, :]
            columns.append(product.reshape(*product.shape[:-2], -1))
    design = np.concatenate(columns, axis=-1)
    return design.reshape(2, 2, len(model.TENURE_WIDTHS), levels**2, 2, len(model.REGIMES), -1)


class SieveFit(NamedTuple):
    """The sieve logit of :func:`sieve_logit`.

    Attributes:
      coefficients: ``float[K, 2]``: ``b_monthly``, ``b_annual`` (``none`` the base, 0).
      log_policy: ``float[2 segments, 2, 6, E^2, 2, 3, 3]`` the fitted ``log pi(a | s)``.
      objective: the penalised log-likelihood at the fit.
      gradient: ``float[K, 2]`` its gradient at the fit (0 at the maximum).
      covariance: ``float[2K, 2K]`` the sandwich ``A^{-1} I A^{-1}`` of the flattened
        coefficients (row-major ``[K, 2]``), ``A = -d^2 J`` the penalised curvature and ``I``
        the unpenalised Fisher information; ``A^{-1}`` itself at ``ridge -> 0``.
      iterations: Newton steps taken.
      converged: whether the Newton decrement fell below ``tol``.
    """

    coefficients: jax.Array
    log_policy: jax.Array
    objective: jax.Array
    gradient: jax.Array
    covariance: jax.Array
    iterations: jax.Array
    converged: jax.Array


def _check_ridge(ridge) -> None:
    check_scalar(
        "ridge", ridge, "a positive ridge penalty (pseudo-rows per coefficient)", positive=True
    )


def _sieve_design(levels: int, dtype) -> jax.Array:
    """``float[S, K]``: :func:`sieve_features` with the free states flattened."""
    grid = sieve_features(levels)
    return jnp.asarray(grid.reshape(-1, grid.shape[-1]), dtype)


def _sieve_log_policy(design: jax.Array, flat: jax.Array) -> jax.Array:
    """``float[S, 3]``: ``log softmax (0, x(s) . b_monthly, x(s) . b_annual)`` for the flattened
    coefficients ``flat = b.reshape(-1)``, ``b`` of shape ``[K, 2]``."""
    utilities = design @ flat.reshape(design.shape[1], 2)
    return jax.nn.log_softmax(jnp.pad(utilities, ((0, 0), (1, 0))), axis=-1)


def _sieve_information(design: jax.Array, visits: jax.Array, flat: jax.Array) -> jax.Array:
    """``float[2K, 2K]``: the Fisher information of the unpenalised sieve log-likelihood,
    ``sum_s n(s) (diag p - p p^T)_{ac} x(s) x(s)^T`` over the member actions (docstring of
    :func:`sieve_logit`), flattened like the coefficients."""
    policy = jnp.exp(_sieve_log_policy(design, flat))[:, model.MONTHLY :]  # [S, 2]
    weights = visits[:, None, None] * (
        jnp.eye(2, dtype=policy.dtype) * policy[:, :, None]
        - policy[:, :, None] * policy[:, None, :]
    )  # [S, 2, 2]
    information = jnp.einsum("sk,sac,sl->kalc", design, weights, design)
    return information.reshape(flat.size, flat.size)


def sieve_logit(
    counts: jax.Array, *, ridge: float = 0.01, tol: float | None = None, max_iters: int = 50
) -> SieveFit:
    """The first-stage sieve logit of the choice at the free states.

    With the design ``x(s) in R^K`` of :func:`sieve_features`, utilities ``w(s, none) = 0``,
    ``w(s, a) = x(s) . b_a`` for ``a`` in {monthly, annual}, and
    ``pi(a | s) = softmax_a w(s, a)``, maximise the penalised log-likelihood::

        J(b) = sum_{s, a} N(s, a) log pi(a | s) - (ridge / 2) sum_{a, k >= 1} b_{a, k}^2

    (the constant ``k = 0`` unpenalised) by Newton's method with step halving. With
    ``n(s) = sum_a N(s, a)`` and ``p = pi(. | s)``::

        dJ / db_a = sum_s x(s) (N(s, a) - n(s) p_a) - ridge b_a,
        d^2 J / db_a db_c = -sum_s n(s) p_a (1[a = c] - p_c) x(s) x(s)^T - ridge 1[a = c] I',

    ``I'`` the identity without its constant entry; ``J`` is strictly concave for
    ``ridge > 0`` (unique maximum, also where a cell or a whole action is never seen). The
    first sum in the curvature is the Fisher information ``I(b)`` of the choices; the
    coefficients' sampling covariance is the sandwich ``A^{-1} I A^{-1}`` with
    ``A = I + ridge I'`` (the penalised M-estimator's; rows are conditionally independent
    given the states, so the information of the counts is the information of the panel).

    Args:
      counts: ``float[2 segments, 2, 6, E^2, 2, 3, 3]`` ``N(s, a)`` (:func:`choice_counts`); its
        dtype is the fit's.
      ridge: the penalty, in pseudo-rows' worth of curvature per coefficient (> 0).
      tol: stop when the Newton decrement ``g^T (-H)^{-1} g < tol`` (default 1e-10 in float64,
        1e-4 in float32).
      max_iters: Newton steps at most.

    Returns a :class:`SieveFit`. Pure and jittable.

    Raises :class:`~prime_science.core.errors.InvalidArgumentError` for a misshapen ``counts``,
    a ridge that is not a positive finite number, or bad stopping rules.
    """
    _check_ridge(ridge)
    check_count("max_iters", max_iters, 1)
    counts = jnp.asarray(counts)
    levels = math.isqrt(counts.shape[3]) if counts.ndim == 7 else 0
    expected = (2, *pqr.free_shape(max(levels, 2)), len(model.ACTIONS))
    if counts.ndim != 7 or levels < 2 or counts.shape != expected:
        errors.fail("counts", f"shape {expected} (choice_counts)", counts.shape)
    dtype = counts.dtype if jnp.issubdtype(counts.dtype, jnp.floating) else jnp.float32
    counts = counts.astype(dtype).reshape(-1, len(model.ACTIONS))
    design = _sieve_design(levels, dtype)
    num_features = design.shape[1]
    tol = _default_tol(dtype, 1e-10, 1e-4) if tol is None else tol
    visits = jnp.sum(counts, axis=-1)
    penalised = jnp.ones(num_features, dtype).at[0].set(0.0)
    # ridge I' in the flattened [K, 2] order: coefficient (k, a) sits at 2 k + a.
    ridge_diagonal = ridge * jnp.repeat(penalised, 2)
    member = slice(model.MONTHLY, None)

    def objective(flat, warm):
        coefficients = flat.reshape(num_features, 2)
        penalty = 0.5 * ridge * jnp.sum(penalised[:, None] * coefficients**2)
        return _counted_sum(counts, _sieve_log_policy(design, flat)) - penalty, warm

    def gradient_and_curvature(flat):
        policy = jnp.exp(_sieve_log_policy(design, flat))[:, member]  # [S, 2]
        residual = counts[:, member] - visits[:, None] * policy
        gradient = (design.T @ residual).reshape(-1) - ridge_diagonal * flat
        curvature = _sieve_information(design, visits, flat) + jnp.diag(ridge_diagonal)
        return gradient, curvature

    def direction(flat, _):
        gradient, curvature = gradient_and_curvature(flat)
        step = jnp.linalg.solve(curvature, gradient)
        return step, gradient @ step

    start = jnp.zeros(2 * num_features, dtype)
    flat, value, _, info = halving_ascent(
        objective, direction, start, (), tol=tol, max_iters=max_iters, max_halvings=30
    )
    gradient, curvature = gradient_and_curvature(flat)
    inverse = jnp.linalg.inv(curvature)
    covariance = inverse @ _sieve_information(design, visits, flat) @ inverse
    shape = (2, *pqr.free_shape(levels), len(model.ACTIONS))
    return SieveFit(
        coefficients=flat.reshape(num_features, 2),
        log_policy=_sieve_log_policy(design, flat).reshape(shape),
        objective=value,
        gradient=gradient.reshape(num_features, 2),
        covariance=0.5 * (covariance + covariance.T),
        iterations=info.num_iters,
        converged=info.converged,
    )


def sieve_log_policy(counts: jax.Array, *, ridge: float = 0.01) -> jax.Array:
    """``float[2 segments, 2, 6, E^2, 2, 3, 3]``: ``log pi^(a | s)`` of the sieve logit
    (:func:`sieve_logit`) at every free state, visited or not (the same shape and convention as
    :func:`frequency_log_policy` of :func:`choice_counts`)."""
    return sieve_logit(counts, ridge=ridge).log_policy


FIRST_STAGES = ("frequency", "sieve")
"""First-stage CCP estimators of :func:`ccp` and :func:`pqr_estimate`: smoothed frequencies
(:func:`frequency_log_policy`) or the sieve logit (:func:`sieve_log_policy`)."""


def _check_first_stage(first_stage: str, pseudo_count: float, ridge: float) -> None:
    if first_stage not in FIRST_STAGES:
        errors.fail("first_stage", f"one of {FIRST_STAGES}", first_stage)
    check_scalar("pseudo_count", pseudo_count, "a positive number of pseudo-rows", positive=True)
    _check_ridge(ridge)


def _first_stage_log_policy(counts, first_stage, pseudo_count, ridge):
    if first_stage == "sieve":
        return sieve_log_policy(counts, ridge=ridge)
    return frequency_log_policy(counts, pseudo_count)


def _free_log_policy(params, levels, lock_months, initial=None):
    """``(log pi at free states [2 segments, 2, ...], value tables [2 segments, plans, ...])``."""

    def solve(segment, start):
        return model.solve(params, segment, levels=levels, lock_months=lock_months, initial=start)

    if initial is None:
        solution = jax.vmap(lambda s: solve(s, None))(jnp.arange(2))
    else:
        solution = jax.vmap(solve)(jnp.arange(2), initial)
    return solution.log_policy[:, :2], solution.value


def _counted_sum(counts, log_policy):
    return jnp.sum(jnp.where(counts > 0, counts * log_policy, 0.0))


def panel_log_likelihood(
    params: model.MembershipParams,
    panel: simulate.Panel,
    *,
    levels: int = 5,
    lock_months: int = 11,
) -> jax.Array:
    """``sum_{free rows} log pi(choice | state)`` under ``params`` (both segments solved); locked
    rows add 0. Jittable; forward-mode differentiable in ``params``."""
    counts = choice_counts(
        panel, levels=levels, lock_months=lock_months, dtype=params.theta_ship.dtype
    )
    log_policy, _ = _free_log_policy(params, levels, lock_months)
    return _counted_sum(counts, log_policy)


def _check_start(name: str, start, dtype) -> jax.Array:
    start = jnp.asarray(start, dtype)
    if start.shape != (len(model.STRUCTURAL),):
        errors.fail(name, f"shape ({len(model.STRUCTURAL)},) in STRUCTURAL order", start.shape)
    if errors.is_concrete(start) and not np.all(np.isfinite(np.asarray(start))):
        errors.fail(name, "finite starting values", np.asarray(start).tolist())
    return start


def _default_tol(dtype, float64_tol: float, float32_tol: float) -> float:
    return float64_tol if jnp.dtype(dtype) == jnp.float64 else float32_tol


def _scores(params, theta, levels, lock_months):
    """``float[2, 2, 6, E^2, 2, 3, 3, 6]``: ``d log pi(a | s) / d theta`` at the free states."""
    return jax.jacfwd(
        lambda t: _free_log_policy(with_structural(params, t), levels, lock_months)[0]
    )(theta)


def _information(counts, scores):
    gradient = jnp.einsum("...,...k->k", counts, scores)
    outer = jnp.einsum("...,...k,...l->kl", counts, scores, scores)
    return gradient, outer


def _bhhh_ascent(
    log_likelihood, direction, start, warm, tol, max_iters, max_halvings, max_doublings
):
    """BHHH with the step-length rule of the module docstring: ``(theta, L, iterations)``.
    ``log_likelihood(theta, warm) -> (L, warm)``; ``direction(theta) -> (step, g^T step)``."""
    check_scalar("tol", tol, "a positive tolerance", positive=True)
    check_count("max_iters", max_iters, 1)
    check_count("max_halvings", max_halvings, 0)
    check_count("max_doublings", max_doublings, 0)
    one = jnp.ones((), start.dtype)

    def cond(carry):
        _, _, _, k, criterion, stalled = carry
        return (criterion >= tol) & (k < max_iters) & ~stalled

    def body(carry):
        theta, value, warm, k, _, _ = carry
        step, criterion = direction(theta)

        def halve_cond(state):
            _, trial_value, _, halvings = state
            return ~(trial_value >= value) & (halvings < max_halvings)

        def halve_body(state):
            length, _, _, halvings = state
            length = length / 2
            return (length, *log_likelihood(theta + length * step, warm), halvings + 1)

        length, new_value, new_warm, halvings = jax.lax.while_loop(
            halve_cond, halve_body, (one, *log_likelihood(theta + step, warm), jnp.int32(0))
        )
        accepted = new_value >= value

        def double_cond(state):
            _, best_value, _, doublings = state
            return (doublings < max_doublings) & (doublings >= 0)

        def double_body(state):
            length, best_value, best_warm, doublings = state
            trial_value, trial_warm = log_likelihood(theta + 2 * length * step, best_warm)
            better = trial_value > best_value
            return (
                jnp.where(better, 2 * length, length),
                jnp.where(better, trial_value, best_value),
                jax.tree.map(lambda a, b: jnp.where(better, a, b), trial_warm, best_warm),
                jnp.where(better, doublings + 1, -1),
            )

        start_doubling = jnp.where(accepted & (halvings == 0), 0, -1)
        length, new_value, new_warm, _ = jax.lax.while_loop(
            double_cond, double_body, (length, new_value, new_warm, start_doubling)
        )
        theta = jnp.where(accepted, theta + length * step, theta)
        value = jnp.where(accepted, new_value, value)
        warm = jax.tree.map(lambda a, b: jnp.where(accepted, a, b), new_warm, warm)
        return theta, value, warm, k + 1, jnp.where(accepted, criterion, 0.0), ~accepted

    value, warm = log_likelihood(start, warm)
    infinity = jnp.asarray(jnp.inf, start.dtype)
    initial = (start, value, warm, jnp.int32(0), infinity, jnp.bool_(False))
    theta, value, _, k, _, _ = jax.lax.while_loop(cond, body, initial)
    return theta, value, k


def nfxp(
    params: model.MembershipParams,
    panel: simulate.Panel,
    *,
    initial: jax.Array | None = None,
    tol: float | None = None,
    max_iters: int = 50,
    max_halvings: int = 20,
    max_doublings: int = 6,
    levels: int = 5,
    lock_months: int = 11,
) -> Estimate:
    """Nested fixed point maximum likelihood of :data:`~.model.STRUCTURAL` (module docstring).

    Args:
      params: the known fields (transitions, prices, discount); its STRUCTURAL fields are
        ignored. Its dtype is the fit's.
      panel: the data (:func:`check_panel`).
      initial: ``float[6]`` starting values; default the static-logit estimate.
      tol: stop when ``g^T H^{-1} g < tol`` (default 1e-8 in float64, 1e-2 in float32).
      max_iters, max_halvings, max_doublings: BHHH steps, step halvings and step doublings
        at most.
      levels, lock_months: the model's sizes.

    Returns an :class:`Estimate` with OPG standard errors. Pure and jittable.

    Raises :class:`~prime_science.core.errors.InvalidArgumentError` for a bad panel, non-finite
    or misshapen starting values, bad ``params`` or stopping rules.
    """
    model.check_params(params, levels)
    dtype = params.theta_ship.dtype
    counts = choice_counts(panel, levels=levels, lock_months=lock_months, dtype=dtype)
    if initial is None:
        start = static_logit(params, panel, levels=levels, lock_months=lock_months).estimates
    else:
        start = _check_start("initial", initial, dtype)
    tol = _default_tol(dtype, 1e-8, 1e-2) if tol is None else tol

    def log_likelihood(theta, warm):
        log_policy, value = _free_log_policy(
            with_structural(params, theta), levels, lock_months, warm
        )
        return _counted_sum(counts, log_policy), value

    def direction(theta):
        gradient, outer = _information(counts, _scores(params, theta, levels, lock_months))
        step = jnp.linalg.solve(outer, gradient)
        return step, gradient @ step

    _, warm = _free_log_policy(with_structural(params, start), levels, lock_months)
    theta, value, iterations = _bhhh_ascent(
        log_likelihood, direction, start, warm, tol, max_iters, max_halvings, max_doublings
    )
    gradient, outer = _information(counts, _scores(params, theta, levels, lock_months))
    inverse = jnp.linalg.inv(outer)
    converged = gradient @ inverse @ gradient < tol
    return Estimate(theta, jnp.sqrt(jnp.diag(inverse)), value, iterations, converged)


def _fit_logit(features, offset, counts, start, tol, max_iters):
    """Maximise ``sum N(s, a) log softmax_a(features(s, a) . theta + offset(s, a))`` (concave)
    by Newton's method with step halving; ``(theta, log-likelihood, iterations, converged,
    standard errors sqrt diag (-Hessian)^{-1})``."""

    def log_likelihood(theta, warm):
        utility = features @ theta + offset
        return _counted_sum(counts, jax.nn.log_softmax(utility, axis=-1)), warm

    def hessian(theta):
        return jax.hessian(lambda t: log_likelihood(t, None)[0])(theta)

    def direction(theta, _):
        gradient = jax.grad(lambda t: log_likelihood(t, None)[0])(theta)
        step = jnp.linalg.solve(-hessian(theta), gradient)
        return step, gradient @ step

    theta, value, _, info = halving_ascent(
        log_likelihood, direction, start, (), tol=tol, max_iters=max_iters, max_halvings=30
    )
    se = jnp.sqrt(jnp.diag(jnp.linalg.inv(-hessian(theta))))
    return Estimate(theta, se, value, info.num_iters, info.converged)


def static_logit(
    params: model.MembershipParams,
    panel: simulate.Panel,
    *,
    initial: jax.Array | None = None,
    tol: float | None = None,
    max_iters: int = 100,
    levels: int = 5,
    lock_months: int = 11,
) -> Estimate:
    """The static multinomial logit (``beta = 0``; module docstring) by Newton's method from
    ``initial`` (default zeros); standard errors from the inverse Hessian. ``tol`` on the Newton
    decrement ``g^T (-H)^{-1} g`` (default 1e-10 in float64, 1e-3 in float32)."""
    model.check_params(params, levels)
    dtype = params.theta_ship.dtype
    counts = choice_counts(panel, levels=levels, lock_months=lock_months, dtype=dtype)
    start = jnp.zeros(len(model.STRUCTURAL), dtype) if initial is None else initial
    start = _check_start("initial", start, dtype)
    features = model.utility_features(params, levels, lock_months)[:2]
    offset = params.benefit_shift * features[..., 0]
    tol = _default_tol(dtype, 1e-10, 1e-3) if tol is None else tol
    return _fit_logit(features, offset, counts, start, tol, max_iters)


def _semi_markov_segments(params, levels, lock_months) -> pqr.SemiMarkov:
    """:func:`.pqr.semi_markov` of both segments (a leading segment axis)."""
    return jax.vmap(lambda s: pqr.semi_markov(params, s, levels=levels, lock_months=lock_months))(
        jnp.arange(2)
    )


def _choice_specific(chain: pqr.SemiMarkov, log_policy: jax.Array):
    """Hotz-Miller for one segment: ``(X~ [.., 3, 6], o~ [.., 3])`` with
    ``v = X~ theta + o~`` (module docstring)."""
    policy = jnp.exp(log_policy)
    num_states = policy[..., 0].size
    operator = pqr.policy_operator(chain, policy)
    flows = jnp.concatenate(
        [chain.features, (chain.offset - log_policy)[..., None]], axis=-1
    )  # [.., 3, 7]
    expected_flow = jnp.einsum("...a,...ak->...k", policy, flows).reshape(num_states, -1)
    system = jnp.eye(num_states, dtype=operator.dtype) - operator
    values = jnp.linalg.solve(system, expected_flow).reshape(*policy.shape[:-1], -1)
    ahead = pqr.continuation(chain, values)  # [.., 3, 7]
    return chain.features + ahead[..., :-1], chain.offset + ahead[..., -1]


def ccp(
    params: model.MembershipParams,
    panel: simulate.Panel,
    *,
    npl_iterations: int = 1,
    first_stage: str = "sieve",
    pseudo_count: float = 1.0,
    ridge: float = 0.01,
    initial: jax.Array | None = None,
    tol: float | None = None,
    max_newton_iters: int = 100,
    levels: int = 5,
    lock_months: int = 11,
) -> Estimate:
    """Two-step CCP (``npl_iterations = 1``) or NPL with ``npl_iterations`` pseudo-likelihood
    fits (module docstring), from the ``first_stage`` CCPs (:data:`FIRST_STAGES`: the sieve
    logit with ``ridge``, or frequencies smoothed by ``pseudo_count``). Each fit is Newton's
    method from the last estimate (the first from ``initial``, default zeros), ``tol`` on its
    Newton decrement (default 1e-10 in float64, 1e-3 in float32). Pure and jittable;
    ``iterations`` counts the last fit's Newton steps."""
    model.check_params(params, levels)
    check_count("npl_iterations", npl_iterations, 1)
    _check_first_stage(first_stage, pseudo_count, ridge)
    dtype = params.theta_ship.dtype
    counts = choice_counts(panel, levels=levels, lock_months=lock_months, dtype=dtype)
    start = jnp.zeros(len(model.STRUCTURAL), dtype) if initial is None else initial
    start = _check_start("initial", start, dtype)
    tol = _default_tol(dtype, 1e-10, 1e-3) if tol is None else tol
    chains = _semi_markov_segments(params, levels, lock_months)

    def fit(log_policy, theta):
        features, offset = jax.vmap(_choice_specific)(chains, log_policy)
        fitted = _fit_logit(features, offset, counts, theta, tol, max_newton_iters)
        new_policy = jax.nn.log_softmax(features @ fitted.estimates + offset, axis=-1)
        return new_policy, fitted

    first = _first_stage_log_policy(counts, first_stage, pseudo_count, ridge)
    log_policy, fitted = fit(first, start)

    def npl_step(carry, _):
        log_policy, previous = carry
        return fit(log_policy, previous.estimates), None

    (_, fitted), _ = jax.lax.scan(npl_step, (log_policy, fitted), None, npl_iterations - 1)
    return fitted


def precision_weights(counts: jax.Array, log_policy: jax.Array) -> jax.Array:
    """``float[..., 3]``: PQR's projection weights, the approximate inverse variance of a
    recovered reward. ``r(s, a)`` moves with ``log pi^(a | s) - log pi^(none | s)`` (the
    continuation terms are shared averages), whose variance from ``n(s)`` choices is about
    ``1 / (n p_a) + 1 / (n p_none)`` (the delta method for cell frequencies), so
    ``w(s, a) = n(s) p_a p_none / (p_a + p_none)`` with ``p = pi^(. | s)`` (0 at unvisited
    states; the ``none`` entry is ``n p_none / 2``, unused). On ten 4,000 x 24 panels of the
    membership model these weights cut the root-mean-square error of the six utility
    parameters 2-6x against weights ``n(s)`` (``theta_price``: 0.019 -> 0.003)."""
    policy = jnp.exp(log_policy)
    anchor = policy[..., model.NONE : model.NONE + 1]
    visits = jnp.sum(counts, axis=-1, keepdims=True)
    return visits * policy * anchor / (policy + anchor)


def pqr_estimate(
    params: model.MembershipParams,
    panel: simulate.Panel,
    *,
    first_stage: str = "sieve",
    pseudo_count: float = 1.0,
    ridge: float = 0.01,
    levels: int = 5,
    lock_months: int = 11,
) -> PQRFit:
    """Tabular PQR (anchor none) on the panel's ``first_stage`` CCPs (:data:`FIRST_STAGES`: the
    sieve logit with ``ridge``, or frequencies smoothed by ``pseudo_count``) with the known
    transitions in ``params``, and the projection of the recovered rewards on the (package)
    features weighted by :func:`precision_weights` (module docstring). Pure and jittable.

    Standard errors (sieve first stage) by the delta method: ``theta^ = t(b^)`` is a smooth
    map of the sieve coefficients (the PQR solve and the projection are linear in
    ``log pi^``, the softmax is smooth), so ``Cov theta^ ~ J Sigma J^T`` with ``J = dt / db``
    (reverse mode, six rows) and ``Sigma`` the coefficients' sandwich
    (:attr:`SieveFit.covariance`). The projection's weights are held at the fit (at first
    order their noise does not move ``theta^``: it multiplies residuals that vanish in the
    limit), and everything is conditional on the observed states. They measure sampling noise
    only, not the sieve's approximation bias (a second-order expansion; the true policy is not
    one).
    The frequency first stage gets NaN: its log-frequencies at rarely visited cells are far
    from linear in the counts (an unseen choice sits at ``log(lambda / 3)``), where the delta
    method misstates the spread (by -20 % with the raw frequencies plugged in, +50 % with the
    smoothed ones, against 300 resamples at 400 rows a state)."""
    model.check_params(params, levels)
    dtype = params.theta_ship.dtype
    counts = choice_counts(panel, levels=levels, lock_months=lock_months, dtype=dtype)
    return pqr_from_counts(
        params,
        counts,
        first_stage=first_stage,
        pseudo_count=pseudo_count,
        ridge=ridge,
        lock_months=lock_months,
    )


def pqr_from_counts(
    params: model.MembershipParams,
    counts: jax.Array,
    *,
    first_stage: str = "sieve",
    pseudo_count: float = 1.0,
    ridge: float = 0.01,
    lock_months: int = 11,
) -> PQRFit:
    """:func:`pqr_estimate` from the choice counts ``N(s, a)`` of :func:`choice_counts`
    (``float[2 segments, 2, 6, E^2, 2, 3, 3]``, any non-negative numbers; ``E`` from the
    shape) instead of a panel.

    Many replicates (a bootstrap, a Monte Carlo) go through ``jax.lax.map``: a ``jax.vmap`` of
    this fit over 100 replicates of the 3-level model never returned on XLA:CPU (jaxlib 0.10.2:
    every thread of the pool idle, with or without ``--xla_cpu_multi_thread_eigen=false``),
    while ``lax.map`` takes 5 s for the same 100 fits on 2 cores."""
    levels = math.isqrt(counts.shape[3]) if np.ndim(counts) == 7 else 0
    model.check_params(params, max(levels, 2))
    _check_first_stage(first_stage, pseudo_count, ridge)
    dtype = params.theta_ship.dtype
    expected = (2, *pqr.free_shape(max(levels, 2)), len(model.ACTIONS))
    if np.shape(counts) != expected:
        errors.fail("counts", f"shape {expected} (choice_counts)", np.shape(counts))
    counts = jnp.asarray(counts, dtype)
    chains = _semi_markov_segments(params, levels, lock_months)
    if first_stage == "sieve":
        sieve = sieve_logit(counts, ridge=ridge)
        log_policy = sieve.log_policy
    else:
        log_policy = frequency_log_policy(counts, pseudo_count)
    weights = precision_weights(counts, log_policy)

    def fit(log_policy):
        recovered = jax.vmap(pqr.membership_pqr)(chains, log_policy)
        projection = pqr.project(chains.features, chains.offset, recovered.reward, weights)
        return recovered, projection

    if first_stage == "sieve":
        design = _sieve_design(levels, dtype)

        def theta_of(flat):
            return fit(_sieve_log_policy(design, flat).reshape(counts.shape))[1].theta

        jacobian = jax.jacrev(theta_of)(sieve.coefficients.reshape(-1))  # [6, 2K]
        covariance = jacobian @ sieve.covariance @ jacobian.T
        se = jnp.sqrt(jnp.maximum(jnp.diag(covariance), 0.0))
    else:
        se = jnp.full(len(model.STRUCTURAL), jnp.nan, dtype)
    recovered, projection = fit(log_policy)
    rmse_total = projection.rmse**2 * jnp.sum(weights[..., model.MONTHLY :])
    estimate = Estimate(projection.theta, se, -rmse_total, jnp.asarray(1), jnp.asarray(True))
    return PQRFit(recovered.reward, projection, estimate)


def interval_coverage(estimate: Estimate, truth: jax.Array, z: float = 1.959964) -> jax.Array:
    """``bool[6]``: ``|estimate - truth| <= z se`` (the 95 % Wald interval covers the truth)."""
    return jnp.abs(estimate.estimates - truth) <= z * estimate.standard_errors


def recovery(
    key: PRNGKey,
    params: model.MembershipParams,
    num_members: int,
    months: int,
    estimators: Sequence[str] = ESTIMATORS,
    *,
    npl_iterations: int = 3,
    first_stage: str = "sieve",
    pseudo_count: float = 1.0,
    ridge: float = 0.01,
    burn_in: int = 36,
    levels: int = 5,
    lock_months: int = 11,
) -> dict[str, Estimate]:
    """Simulate one panel from ``params`` (:func:`~.simulate.simulate_panel`) and fit it with
    each of ``estimators`` (:func:`fit_panel`; NFXP starts from the NPL estimate: the NPL fixed
    point shares the maximum-likelihood estimate's limit, so BHHH needs a step or two, 3 s a
    float32 fit of a 4,000 x 24 panel on 2 CPU cores against about a minute from the static
    logit). Returns ``{name: Estimate}``. Pure and
    jittable with the sizes and names static, so ``jax.vmap`` over keys runs seeds in parallel
    (every NFXP fit then iterates until the slowest stops); :func:`interval_coverage` against
    :func:`structural_vector` of ``params`` scores it."""
    errors.check_key("key", key)
    unknown = [name for name in estimators if name not in ESTIMATORS]
    if unknown or not estimators:
        errors.fail("estimators", f"a non-empty subset of {ESTIMATORS}", list(estimators))
    check_count("num_members", num_members, 1)
    check_count("months", months, 1)
    check_count("burn_in", burn_in, 0)
    panel, _ = simulate.simulate_panel(
        key, params, num_members, months, burn_in=burn_in, levels=levels, lock_months=lock_months
    )
    return fit_panel(
        params,
        panel,
        estimators,
        npl_iterations=npl_iterations,
        first_stage=first_stage,
        pseudo_count=pseudo_count,
        ridge=ridge,
        levels=levels,
        lock_months=lock_months,
    )


def fit_panel(
    params: model.MembershipParams,
    panel: simulate.Panel,
    estimators: Sequence[str] = ESTIMATORS,
    *,
    npl_iterations: int = 3,
    first_stage: str = "sieve",
    pseudo_count: float = 1.0,
    ridge: float = 0.01,
    levels: int = 5,
    lock_months: int = 11,
) -> dict[str, Estimate]:
    """Fit one panel with each of ``estimators`` (names from :data:`ESTIMATORS`), as
    :func:`recovery` does after simulating it: ``npl`` runs ``npl_iterations`` pseudo-likelihood
    fits, ``ccp`` one; CCP, NPL and PQR start from the ``first_stage`` CCPs; NFXP starts from
    the NPL estimate. Returns ``{name: Estimate}`` in the order of ``estimators``. Pure and
    jittable with the sizes and names static."""
    unknown = [name for name in estimators if name not in ESTIMATORS]
    if unknown or not estimators:
        errors.fail("estimators", f"a non-empty subset of {ESTIMATORS}", list(estimators))
    sizes = dict(levels=levels, lock_months=lock_months)
    stage = dict(first_stage=first_stage, pseudo_count=pseudo_count, ridge=ridge)
    results = {}
    if "static" in estimators:
        results["static"] = static_logit(params, panel, **sizes)
    if "ccp" in estimators:
        results["ccp"] = ccp(params, panel, **stage, **sizes)
    if "npl" in estimators or "nfxp" in estimators:
        results["npl"] = ccp(params, panel, npl_iterations=npl_iterations, **stage, **sizes)
    if "nfxp" in estimators:
        results["nfxp"] = nfxp(params, panel, initial=results["npl"].estimates, **sizes)
    if "pqr" in estimators:
        results["pqr"] = pqr_estimate(params, panel, **stage, **sizes).estimate
    return {name: results[name] for name in estimators}
