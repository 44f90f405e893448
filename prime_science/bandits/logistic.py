"""Laplace-approximate Bayesian logistic regression (Chapelle & Li 2011), and Thompson sampling.

Model (Chapelle & Li 2011). Candidates and events are lists of active feature ids
(``feature_ids: int[K]``, ``-1`` = padding) exactly as in :mod:`prime_science.bandits.probit`:
``x_i`` is the number of times id ``i`` is listed. A click ``y in {-1, +1}`` has likelihood
``p(y | x, w) = sigma(y x^T w)``. The posterior is kept as a Gaussian ``N(m, Q^-1)`` with
precision ``Q``, either diagonal (``precision: float[M]``, the paper's choice) or full
(``precision: float[M, M]``; memory ``M^2`` and a Cholesky factorisation ``O(M^3)`` per
update and per ``sample``/``predict`` call, so meant for small tables, up to a few thousand
features).

Batch update (Laplace). For events ``j = 1..n`` with weights ``c_j >= 0`` (default 1)::

    w* = argmin_w  1/2 (w - m)^T Q (w - m) + sum_j c_j log(1 + exp(-y_j w^T x_j)),
    m <- w*,    Q <- Q + sum_j c_j p_j (1 - p_j) x_j x_j^T,    p_j = sigma(w*^T x_j),

where for the diagonal posterior ``Q = diag(q)`` and only the diagonal of the sum is kept,
``q_i <- q_i + sum_j c_j x_ij^2 p_j (1 - p_j)``. Features absent from the batch keep their
``(m_i, q_i)``. The update is batched: the events of one call are folded in together, so the
result does not depend on their order (it does depend on how events are split into calls).

The MAP is found by damped Newton's method in a ``lax.while_loop``, started at ``m``. The
objective is strictly convex, so with the exact Hessian ``H = Q + X^T diag(c p (1 - p)) X``
each step ``d = -H^-1 g`` (Cholesky solve) is a descent direction; the step length is the
largest of ``1, 1/2, ..., 2^-11`` satisfying the Armijo condition (all twelve are evaluated
at once), the full step if none does (rounding near the optimum). The loop stops when the
largest coordinate of the step is at most ``tol`` or after ``newton_steps`` steps. For the
diagonal posterior the objective separates into the features absent from the batch (already
at their optimum ``m_i``) and the ``U <= min(n K, M)`` distinct ids of the batch, whose
Hessian is dense (events couple them); Newton runs on those ``U`` coordinates, at
``O(n U^2 + U^3)`` per step, so keep ``n K`` to a few thousand per call (split larger
batches). Diagonal-Hessian "Newton" is not used: events couple the weights, so it is a scaled
gradient method (divergent without a line search, linear with one), not Newton. Margins use
``jax.nn.log_sigmoid`` and ``p (1 - p) = sigma(s) sigma(-s)``, accurate for large ``|s|``.

Predictive click probability. With ``mu = x^T m`` and ``s^2 = x^T Q^-1 x``
(``sum_i x_i^2 / q_i`` for the diagonal posterior), the probit approximation of the
logistic-Gaussian integral (MacKay 1992)::

    p(y = +1 | x) ~= sigma(mu / sqrt(1 + pi s^2 / 8)).

Selection. ``sample(key, state, candidate_ids, k, available)`` returns the top ``k`` available
candidate rows (a :class:`~prime_science.core.types.Selection`, best first) under a rule of
:mod:`prime_science.bandits.selection`, given the scores:

* ``"thompson"``: one draw per request, ``w~ = m + alpha Q^-1/2 z``, ``z ~ N(0, I)`` in the
  state's dtype, ``alpha = exploration_scale``: ``m + alpha z / sqrt(q)`` (diagonal) or
  ``m + alpha L^-T z`` with ``Q = L L^T`` (full), so ``Cov(w~) = alpha^2 Q^-1``. Score
  ``x_c^T w~`` (the logistic link is monotone); ties go to the lower row.
* ``"greedy"`` and ``"epsilon_greedy"``: the posterior-mean scores ``x_c^T m``.
* ``"ucb"``: ``x_c^T m + ucb_scale * sqrt(x_c^T Q^-1 x_c)``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.bandits import selection
from prime_science.bandits.scoring import (
    check_candidates,
    check_feature_ids,
    check_finite_update,
    check_in_dtype,
    check_prior,
    check_scalar,
    check_state_values,
    linear_scores,
    materialise,
    projected_variance,
)
from prime_science.core import errors
from prime_science.core.types import ClickPolicy, Selection, SolverInfo

__all__ = ["COVARIANCES", "LogisticState", "logistic_laplace"]

COVARIANCES = ("diagonal", "full")
"""The posterior precision structures of :func:`logistic_laplace`."""

_STEP_EXPONENTS = 12  # Newton step lengths 1, 1/2, ..., 2^-11
_ARMIJO = 1e-4


class LogisticState(NamedTuple):
    """Gaussian posterior ``N(mean, precision^-1)`` over the weight table.

    Attributes:
      mean: ``float[num_features]`` posterior mean ``m`` (the last MAP).
      precision: ``float[num_features]`` diagonal precisions ``q_i > 0``, or
        ``float[num_features, num_features]`` the symmetric positive-definite ``Q`` (``"full"``).
    """

    mean: jax.Array
    precision: jax.Array


def _quadratic_form(matrix: jax.Array, feature_ids: jax.Array) -> jax.Array:
    """``x^T A x`` for every row of ``feature_ids[..., K]``: the masked sum of the ``K x K``
    block of ``A`` gathered at the row's ids (a repeated id is counted in both slots)."""
    valid = feature_ids >= 0
    safe = jnp.maximum(feature_ids, 0)
    block = matrix[safe[..., :, None], safe[..., None, :]]
    mask = valid[..., :, None] & valid[..., None, :]
    return jnp.sum(jnp.where(mask, block, 0), axis=(-2, -1))


def _design(feature_ids: jax.Array, columns: jax.Array, size: int, dtype: Any) -> jax.Array:
    """Dense counts ``X[j, u]`` of the events over ``size`` columns; ``columns[j, k]`` is the
    column of slot ``k`` of event ``j`` (``size`` or more, e.g. for padding, is dropped)."""
    rows = jnp.broadcast_to(jnp.arange(feature_ids.shape[0])[:, None], feature_ids.shape)
    design = jnp.zeros((feature_ids.shape[0], size), dtype)
    return design.at[rows, columns].add(1, mode="drop")


def _laplace_map(
    prior_mean: jax.Array,
    prior_precision: jax.Array,
    design: jax.Array,
    signs: jax.Array,
    weights: jax.Array,
    tol: float,
    max_steps: int,
) -> tuple[jax.Array, SolverInfo]:
    """``argmin_w 1/2 (w - m)^T P (w - m) - sum_j c_j log sigma(y_j x_j^T w)`` by damped Newton
    (module docstring), started at ``m``. ``P: [U, U]`` positive definite, ``design: [n, U]``.

    Returns ``(w, SolverInfo(num_iters, residual = max |last step|, converged))``.
    """
    step_lengths = 0.5 ** jnp.arange(_STEP_EXPONENTS, dtype=prior_mean.dtype)

    def objective(w):
        offset = w - prior_mean
        fit = -jnp.sum(weights * jax.nn.log_sigmoid(signs * (design @ w)))
        return 0.5 * offset @ (prior_precision @ offset) + fit

    def step(carry):
        w, value, _, num_iters = carry
        scores = design @ w
        gradient = prior_precision @ (w - prior_mean) - design.T @ (
            weights * signs * jax.nn.sigmoid(-signs * scores)
        )
        curvature = weights * jax.nn.sigmoid(scores) * jax.nn.sigmoid(-scores)
        hessian = prior_precision + (design.T * curvature) @ design
        direction = -jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(hessian), True), gradient)
        trials = w + step_lengths[:, None] * direction
        values = jax.vmap(objective)(trials)
        armijo = values <= value + _ARMIJO * step_lengths * (gradient @ direction)
        best = jnp.where(jnp.any(armijo), jnp.argmax(armijo), 0)
        new_w = trials[best]
        return new_w, values[best], jnp.max(jnp.abs(new_w - w)), num_iters + 1

    def keep_going(carry):
        _, _, residual, num_iters = carry
        return (num_iters < max_steps) & (residual > tol)

    start = (prior_mean, objective(prior_mean), jnp.asarray(jnp.inf, prior_mean.dtype), 0)
    w, _, residual, num_iters = jax.lax.while_loop(keep_going, step, start)
    return w, SolverInfo(jnp.asarray(num_iters, jnp.int32), residual, residual <= tol)


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        errors.fail(name, "a positive integer", repr(value))
    return int(value)


def logistic_laplace(
    num_features: int,
    *,
    prior_mean: Any = 0.0,
    prior_variance: Any = 1.0,
    covariance: str = "diagonal",
    exploration: str = "thompson",
    epsilon: float = 0.05,
    ucb_scale: float = 1.0,
    exploration_scale: float = 1.0,
    newton_steps: int = 20,
    tol: float = 1e-6,
    mesh: Any = None,
) -> ClickPolicy:
    """Laplace-approximate Bayesian logistic regression with a selection rule over candidates.

    Args:
      num_features: ``M``, the length of the weight table.
      prior_mean, prior_variance: the prior ``N(m0_i, 1 / q0_i)`` with ``q0_i = 1 /
        prior_variance_i`` (independent weights, also for ``"full"``), scalars or
        ``float[num_features]`` arrays (finite; variances > 0).
      covariance: one of :data:`COVARIANCES`; ``"full"`` stores ``Q: [M, M]`` (small ``M``).
      exploration: one of :data:`~prime_science.bandits.selection.RULES`.
      epsilon: exploration probability of ``"epsilon_greedy"``, in ``[0, 1]``.
      ucb_scale: ``c >= 0`` of ``"ucb"``.
      exploration_scale: ``alpha >= 0`` of ``"thompson"``: draws have covariance
        ``alpha^2 Q^-1`` (Chapelle & Li found ``alpha < 1`` helpful).
      newton_steps: the most Newton steps per ``update``, a positive integer.
      tol: stop Newton once no coordinate moves more than ``tol >= 0``.
      mesh: split the candidate axis of ``sample`` / ``sample_batch`` over a 1-D device mesh
        (``"thompson"`` only), exactly as :func:`~prime_science.bandits.probit.probit_adf`.

    Returns:
      A :class:`~prime_science.core.types.ClickPolicy`. Computation runs in the state's float
      dtype (float32 from ``init()``, float64 with ``init(jnp.float64)`` under x64). Bad
      arguments raise :class:`~prime_science.core.errors.InvalidArgumentError` before anything
      is computed; value checks (id ranges, clicks, weights) run on concrete inputs only, static
      checks always.
    """
    num_features = _check_count("num_features", num_features)
    mean0 = check_prior("prior_mean", prior_mean, num_features, positive=False)
    variance0 = check_prior("prior_variance", prior_variance, num_features, positive=True)
    if covariance not in COVARIANCES:
        errors.fail("covariance", f"one of {COVARIANCES}", repr(covariance))
    rule = selection.selection_rule(exploration, epsilon=epsilon, ucb_scale=ucb_scale)
    alpha = check_scalar("exploration_scale", exploration_scale, 0.0, np.inf, ">= 0")
    newton_steps = _check_count("newton_steps", newton_steps)
    tol = check_scalar("tol", tol, 0.0, np.inf, ">= 0")
    if mesh is not None and not rule.draws:
        errors.fail("mesh", "None unless exploration='thompson'", f"a mesh with {exploration!r}")
    full = covariance == "full"
    precision_shape = (num_features, num_features) if full else (num_features,)

    def init(dtype: Any = jnp.float32) -> LogisticState:
        """Every weight at its prior, in ``dtype`` (float32 by default). Raises
        ``InvalidArgumentError`` when the prior mean or precision ``1 / prior_variance`` is not
        representable in ``dtype`` (e.g. a float32 mean of ``1e39`` or variance of ``1e-39``)."""
        if not jnp.issubdtype(dtype, jnp.floating):
            errors.fail("dtype", "a floating dtype", repr(dtype))
        check_in_dtype("prior_mean", mean0, dtype, positive=False)
        precision0 = np.broadcast_to(1.0 / variance0, (num_features,))
        check_in_dtype("prior_variance", precision0, dtype, True, label="1 / prior_variance")
        return LogisticState(
            mean=jnp.broadcast_to(jnp.asarray(mean0, dtype), (num_features,)),
            precision=jnp.asarray(np.diag(precision0) if full else precision0, dtype),
        )

    def check_state(state: Any) -> None:
        """Static: a :class:`LogisticState` of the configured shapes and one float dtype."""
        if not isinstance(state, LogisticState):
            errors.fail("state", "a LogisticState", type(state).__name__)
        for field, shape in (("mean", (num_features,)), ("precision", precision_shape)):
            array = getattr(state, field)
            if np.shape(array) != shape or np.dtype(array.dtype).kind != "f":
                got = f"shape {np.shape(array)}, dtype {np.dtype(array.dtype)}"
                errors.fail(f"state.{field}", f"float{list(shape)}", got)
        if state.mean.dtype != state.precision.dtype:
            errors.fail("state.precision", f"dtype {state.mean.dtype}", f"{state.precision.dtype}")

    def update_diagonal(state, ids, signs, weights):
        dtype = state.mean.dtype
        size = min(ids.size, num_features)
        if size == 0:  # no events (or K = 0): nothing to fit
            return state
        slots = jnp.where(ids >= 0, ids, num_features)
        active = jnp.unique(slots.ravel(), size=size, fill_value=num_features)
        columns = jnp.where(ids >= 0, jnp.searchsorted(active, ids), size)
        design = _design(ids, columns, size, dtype)
        mean = state.mean.at[active].get(mode="fill", fill_value=0)
        precision = state.precision.at[active].get(mode="fill", fill_value=1)
        w, _ = _laplace_map(mean, jnp.diag(precision), design, signs, weights, tol, newton_steps)
        scores = design @ w
        curvature = weights * jax.nn.sigmoid(scores) * jax.nn.sigmoid(-scores)
        precision = precision + (design * design).T @ curvature
        return LogisticState(
            mean=state.mean.at[active].set(w, mode="drop"),
            precision=state.precision.at[active].set(precision, mode="drop"),
        )

    def update_full(state, ids, signs, weights):
        columns = jnp.where(ids >= 0, ids, num_features)
        design = _design(ids, columns, num_features, state.mean.dtype)
        w, _ = _laplace_map(state.mean, state.precision, design, signs, weights, tol, newton_steps)
        scores = design @ w
        curvature = weights * jax.nn.sigmoid(scores) * jax.nn.sigmoid(-scores)
        precision = state.precision + (design.T * curvature) @ design
        return LogisticState(mean=w, precision=0.5 * (precision + precision.T))

    @jax.jit
    def update_core(state, feature_ids, clicks, weights):
        dtype = state.mean.dtype
        signs = 2.0 * jnp.asarray(clicks).astype(dtype) - 1.0
        ids = jnp.asarray(feature_ids, jnp.int32)
        weights = jnp.asarray(weights).astype(dtype)
        return (update_full if full else update_diagonal)(state, ids, signs, weights)

    def update(
        state: LogisticState,
        feature_ids: jax.Array,
        clicks: jax.Array,
        weights: jax.Array | None = None,
    ) -> LogisticState:
        """Fold in the batch of events ``(feature_ids[j], clicks[j], weights[j])`` (Laplace).

        Args:
          state: the posterior.
          feature_ids: ``int[n, K]`` active ids of each shown candidate, ``-1`` = padding.
          clicks: ``bool``/``float[n]`` with values in ``{0, 1}`` (``y = 2 click - 1``).
          weights: optional ``float[n]`` event weights ``c_j >= 0`` (finite); default 1.

        Returns:
          The new posterior, same tree, shapes and dtypes. Raises ``InvalidArgumentError``
          (nothing computed) for: a wrong state; ids that are not an integer ``[n, K]`` array
          or out of ``[-1, num_features)``; clicks that are not 1-D, not real, NaN or outside
          ``{0, 1}``; weights that are not 1-D, not real, negative or not finite in the
          state's dtype (``1e39`` in float32); ``n`` mismatched; (concrete states) a non-finite
          mean or precision, or a precision (diagonal) that is not > 0; and, after the update
          (eager calls only), a result that is not finite (named ``state``: e.g. weights so
          large that the Newton system overflows).
        """
        check_state(state)
        check_feature_ids("feature_ids", feature_ids, num_features)
        errors.check_rank("clicks", clicks, 1)
        errors.check_dtype_kind("clicks", clicks, "biuf", "0/1 clicks (bool or real)")
        errors.check_same_length(("feature_ids", "clicks"), feature_ids, clicks)
        if errors.is_concrete(clicks):
            values = np.asarray(clicks, dtype=np.float64)
            bad = (values != 0) & (values != 1)  # NaN is bad
            if bad.any():
                errors.fail("clicks", "values in {0, 1}", f"{values[bad][:5].tolist()}")
        if weights is None:
            weights = jnp.ones(np.shape(clicks), state.mean.dtype)
        else:
            errors.check_rank("weights", weights, 1)
            errors.check_dtype_kind("weights", weights, "biuf", "real event weights")
            errors.check_same_length(("feature_ids", "weights"), feature_ids, weights)
            if errors.is_concrete(weights):
                values = np.asarray(weights, dtype=np.float64)
                largest = float(jnp.finfo(state.mean.dtype).max)
                bad = ~(np.isfinite(values) & (values >= 0) & (values <= largest))
                if bad.any():
                    expected = f"finite values >= 0 (at most {largest:g} in {state.mean.dtype})"
                    errors.fail("weights", expected, f"{values[bad][:5].tolist()}")
        concrete = all(errors.is_concrete(x) for x in (*state, feature_ids, clicks, weights))
        if concrete:
            check_state_values(state, "precision")
        new_state = update_core(state, feature_ids, clicks, weights)
        if concrete:
            check_finite_update(new_state, "smaller event weights or prior precisions")
        return new_state

    def spread(state, ids, cholesky):
        """``x^T Q^-1 x`` of every row of ``ids`` (``cholesky``: ``L`` of ``Q``, full only)."""
        if not full:
            return projected_variance(1.0 / state.precision, ids)
        identity = jnp.eye(num_features, dtype=state.mean.dtype)
        return _quadratic_form(jax.scipy.linalg.cho_solve((cholesky, True), identity), ids)

    def shared(state, ids):
        """Key-independent pieces of a request: the Cholesky factor of ``Q`` (full only) and
        the rule's scores, materialised (``None`` for Thompson)."""
        cholesky = jnp.linalg.cholesky(state.precision) if full else None
        if rule.draws:
            return cholesky, None
        scores = linear_scores(state.mean, ids)
        if rule.name == "ucb":
            variance = spread(state, ids, cholesky)
            scores = selection.upper_bounds(scores, variance, rule.ucb_scale)
        return cholesky, materialise(scores)

    def choose(key, state, ids, cholesky, scores, k, available) -> Selection:
        """One request: the top ``k`` rows of ``ids`` under the rule, given ``shared``."""
        weights = None
        if rule.draws:
            normals = jax.random.normal(key, state.mean.shape, state.mean.dtype)
            if full:
                solve = jax.scipy.linalg.solve_triangular
                offset = solve(cholesky, normals, lower=True, trans="T")
            else:
                offset = normals / jnp.sqrt(state.precision)
            weights = state.mean + alpha * offset
        return selection.select_linear(
            rule, key, ids, k, available, weights=weights, scores=scores, mesh=mesh
        )

    @partial(jax.jit, static_argnums=3)
    def sample_core(key, state, candidate_ids, k, available):
        ids = jnp.asarray(candidate_ids, jnp.int32)
        return choose(key, state, ids, *shared(state, ids), k, available)

    @partial(jax.jit, static_argnums=(3, 4))
    def sample_batch_core(key, state, candidate_ids, k, num_requests, available):
        ids = jnp.asarray(candidate_ids, jnp.int32)
        cholesky, scores = shared(state, ids)
        keys = jax.random.split(key, num_requests)
        return jax.lax.map(
            lambda key: choose(key, state, ids, cholesky, scores, k, available), keys
        )

    def check_sample(state, candidate_ids, k):
        check_state(state)
        check_candidates(candidate_ids, k, num_features, mesh)

    sample, sample_batch = selection.entry_points(check_sample, sample_core, sample_batch_core)

    @jax.jit
    def predict_core(state, feature_ids):
        ids = jnp.asarray(feature_ids, jnp.int32)
        cholesky = jnp.linalg.cholesky(state.precision) if full else None
        variance = spread(state, ids, cholesky)
        scale = jnp.sqrt(1.0 + (np.pi / 8.0) * variance)
        return jax.nn.sigmoid(linear_scores(state.mean, ids) / scale)

    def predict(state: LogisticState, feature_ids: jax.Array) -> jax.Array:
        """Predictive click probability ``sigma(x^T m / sqrt(1 + pi x^T Q^-1 x / 8))`` (the
        probit approximation, module docstring) of every row of ``feature_ids: int[n, K]``
        (``-1`` = padding), in the state's dtype."""
        check_state(state)
        check_feature_ids("feature_ids", feature_ids, num_features)
        return predict_core(state, feature_ids)

    return ClickPolicy(init, sample, update, sample_batch, predict)
