"""Bayesian linear probit regression with assumed-density filtering, and Thompson sampling.

Model (Graepel et al. 2010, ICML). A candidate is a vector ``x in N^M`` given by the
list of its active feature ids (``feature_ids: int[K]``, ``-1`` = padding, see
:mod:`prime_science.bandits.features`); ``x_i`` is the number of times id ``i`` is listed
(features.py never repeats an id, so ``x`` is binary there; a repeated id counts twice, in
the update and in every score alike). Weights are independent Gaussians
``w_i ~ N(mu_i, sigma_i^2)``; a click ``y in {-1, +1}`` has likelihood
``p(y | x, w) = Phi(y x^T w / beta)``, with ``beta`` the noise scale.

ADF update. One event ``(x, y)`` at a time, the posterior is projected back onto the
factorised Gaussian family by matching first and second moments (exact for the projection
``s = x^T w``, which is all the likelihood sees)::

    Sigma^2 = beta^2 + sum_i x_i^2 sigma_i^2,     t = y x^T mu / Sigma,
    v = phi(t) / Phi(t) = exp(log phi(t) - log Phi(t)),     lambda = v (v + t),
    mu_i      <- mu_i + y x_i (sigma_i^2 / Sigma) v,
    sigma_i^2 <- sigma_i^2 (1 - x_i^2 (sigma_i^2 / Sigma^2) lambda).

Only the listed features change. For ``t >= -5``, ``v`` is computed in log space with
``log_ndtr`` (the quotient ``phi / Phi`` is 0/0 in float32 below ``t ~ -13``). Further out the
log form stays finite but is not accurate enough: ``log phi`` and ``log Phi`` are both about
``-t^2/2`` and their difference loses ``log2(t^2)`` bits, and ``lambda = v (v + t)`` cancels
(``v ~ -t``), leaving ``lambda`` 2% off at ``t = -40`` and negative at ``t = -100`` in float32.
So for ``t < -5`` both come from the Mills-ratio continued fraction (``u = -t``)::

    Phi(-u) / phi(u) = 1 / (u + 1 / e),    e = u + 2 / (u + 3 / (u + ... + 24 / u)),
    v = u + 1 / e,     v + t = 1 / e,     lambda = v / e,

which has no cancellation and is accurate to float64 rounding from ``u = 5`` on (24 levels).
``lambda`` lies in ``(0, 1)``; it is clipped to ``[0, 1]`` against rounding, and ``sigma_i^2`` is
clipped below at the smallest normal number of its dtype (``1.2e-38`` in float32), which binds
only when rounding makes the factor above zero (``lambda`` -> 1 with ``sigma_i^2 >> beta^2``).
ADF depends on the order of the events: ``update`` applies a batch in order with ``lax.scan``
(a vectorised update over events would be a different algorithm).

Forgetting (optional, ``forgetting = eps in [0, 1]``). After every call to ``update`` each
weight's natural parameters (precision ``p = 1 / sigma^2`` and ``h = mu / sigma^2``) are pulled a
fraction ``eps`` toward the prior's: ``p <- (1 - eps) p + eps p0``, ``h <- (1 - eps) h + eps h0``.
Written without dividing by ``sigma^2``, with ``d = (1 - eps) sigma0^2 + eps sigma^2``::

    sigma^2 <- sigma0^2 (sigma^2 / d),
    mu      <- mu0 + ((1 - eps) sigma0^2 / d) (mu - mu0),

which is exactly the prior at ``eps = 1``. The pull is per call, so its strength per event
depends on the batch size; features absent from the batch are pulled too.

Predictive click probability. ``p(y = +1 | x) = Phi(x^T mu / Sigma)`` with ``Sigma`` as above.

Selection. ``sample(key, state, candidate_ids, k, available)`` scores candidate rows and
returns the top ``k`` available row indices (a :class:`~prime_science.core.types.Selection`,
best first) under a rule of :mod:`prime_science.bandits.selection`, given the scores:

* ``"thompson"``: one draw ``w~ = mu + sigma * jax.random.normal(key, (M,), dtype)`` per
  request, in the state's dtype (the features are drawn, not the candidates); score
  ``x_c^T w~``. The probit link is monotone, so the linear score ranks like the click
  probability. Candidates with the same id multiset tie exactly; ties go to the lower row.
* ``"greedy"`` and ``"epsilon_greedy"``: the posterior-mean scores ``x_c^T mu``.
* ``"ucb"``: ``x_c^T mu + ucb_scale * sqrt(sum_i x_ci^2 sigma_i^2)``.

The key-independent scores are computed once per call (shared by the requests of
``sample_batch``). The scorer is a gather of ``K`` columns of the weight table and a sum, one
candidate at a time (:func:`~prime_science.bandits.scoring.linear_top_k`), so the candidate
axis can be sharded and each shard's top-k merged.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr

from prime_science.bandits import selection
from prime_science.bandits.scoring import (
    check_candidates,
    check_feature_ids,
    check_finite_update,
    check_in_dtype,
    check_prior,
    check_scalar,
    check_state_values,
    gather_column,
    linear_scores,
    materialise,
    projected_variance,
)
from prime_science.core import errors
from prime_science.core.types import ClickPolicy, Selection

__all__ = [
    "GAUSS_HERMITE_NODES",
    "adf_factor_update",
    "ProbitState",
    "probit_adf",
]

_LOG_SQRT_2PI = 0.5 * float(np.log(2.0 * np.pi))
_TAIL_BELOW, _TAIL_LEVELS = -5.0, 24  # t < -5: Mills-ratio continued fraction, 24 levels


class ProbitState(NamedTuple):
    """Factorised Gaussian posterior over the weight table.

    Attributes:
      mean: ``float[num_features]`` posterior means ``mu_i``.
      variance: ``float[num_features]`` posterior variances ``sigma_i^2 > 0``.
    """

    mean: jax.Array
    variance: jax.Array


def _multiplicity(feature_ids: jax.Array, dtype: Any) -> jax.Array:
    """``x_i`` at every slot: how often the slot's id occurs in its row (``0`` for padding)."""
    valid = feature_ids >= 0
    same = (feature_ids[..., :, None] == feature_ids[..., None, :]) & valid[..., None, :]
    return jnp.where(valid, jnp.sum(same, axis=-1), 0).astype(dtype)


def _probit_moments(t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``v(t) = phi(t) / Phi(t)`` and ``lambda(t) = v (v + t)`` clipped to ``[0, 1]``: the log
    form for ``t >= -5``, the continued fraction below (module docstring)."""
    log_form = jnp.exp(-0.5 * t * t - _LOG_SQRT_2PI - log_ndtr(t))
    u = jnp.maximum(-t, -_TAIL_BELOW)  # the unused branch stays finite
    tail = u
    for level in range(_TAIL_LEVELS, 1, -1):
        tail = u + level / tail
    in_tail = t < _TAIL_BELOW
    v = jnp.where(in_tail, u + 1.0 / tail, log_form)
    gap = jnp.where(in_tail, 1.0 / tail, v + t)  # v + t
    return v, jnp.clip(v * gap, 0.0, 1.0)


GAUSS_HERMITE_NODES = 32
"""Nodes of the Gauss–Hermite rule of :func:`adf_factor_update`."""


def adf_factor_update(
    state: ProbitState,
    feature_ids: jax.Array,
    log_factor: Any,
    num_nodes: int = GAUSS_HERMITE_NODES,
) -> ProbitState:
    """Assumed-density filtering with any likelihood factor ``g(s)`` of one event's score.

    With ``s = x^T w``, ``x`` the event's binary features (``feature_ids: int[K]``, ``-1`` =
    padding, ids distinct) and ``w ~ N(mu, diag(sigma^2))``, the score is ``N(m, v)``,
    ``m = sum mu_i``, ``v = sum sigma_i^2``. The tilted law ``g(s) N(s; m, v) / Z`` has
    moments ``E``, ``V``, computed by the ``num_nodes``-point Gauss–Hermite rule in ``s``
    (``log_factor(s) = log g(s)``, vectorised, finite). Its projection back onto the factorised
    Gaussian (Minka's ADF/EP update for a factor of a linear score) is, per active weight::

        mu_i      <- mu_i + sigma_i^2 (E - m) / v,
        sigma_i^2 <- sigma_i^2 - sigma_i^4 (v - V) / v^2.

    For ``g(s) = Phi(y s / beta)`` this is the probit ADF step of ``probit_adf(noise=beta)``
    (the closed form there; with 32 nodes the two agree to ~1e-16 relative in float64 at
    ``v / beta^2 ~ 1`` and ~2e-6 at ``v / beta^2 ~ 5``, tested: the sharper the factor
    against the score's spread, the larger the quadrature error). It is meant for factors
    with no closed form, e.g. the delayed-feedback likelihood ratios of
    :func:`prime_science.bandits.delayed.dfm_probit_log_ratio`. Bounded, smooth ``g`` keep
    the rule accurate; ``V <= v`` is not guaranteed for every ``g`` (a factor can widen the
    law), so the variance is floored at the dtype's smallest normal number.
    """
    dtype = state.mean.dtype
    valid = feature_ids >= 0
    x = valid.astype(dtype)
    mean = gather_column(state.mean, feature_ids) * x
    variance = gather_column(state.variance, feature_ids) * x
    m, v = jnp.sum(mean), jnp.sum(variance)
    nodes, weights = np.polynomial.hermite.hermgauss(num_nodes)
    scores = m + jnp.sqrt(2.0 * v) * jnp.asarray(nodes, dtype)
    log_terms = jnp.asarray(np.log(weights), dtype) + log_factor(scores)
    tilt = jax.nn.softmax(log_terms)
    tilted_mean = jnp.sum(tilt * scores)
    tilted_variance = jnp.sum(tilt * (scores - tilted_mean) ** 2)
    safe_v = jnp.where(v > 0, v, 1.0)
    new_mean = mean + variance * (tilted_mean - m) / safe_v
    new_variance = variance - variance**2 * (v - tilted_variance) / safe_v**2
    new_variance = jnp.maximum(new_variance, jnp.finfo(dtype).tiny)
    target = jnp.where(valid & (v > 0), feature_ids, state.mean.shape[0])
    return ProbitState(
        mean=state.mean.at[target].set(new_mean, mode="drop"),
        variance=state.variance.at[target].set(new_variance, mode="drop"),
    )


def _check_state(state: Any, num_features: int) -> None:
    """Static: a :class:`ProbitState` of two float vectors of length ``num_features``."""
    if not isinstance(state, ProbitState):
        errors.fail("state", "a ProbitState", type(state).__name__)
    for field, array in zip(state._fields, state, strict=True):
        if np.shape(array) != (num_features,) or np.dtype(array.dtype).kind != "f":
            got = f"shape {np.shape(array)}, dtype {np.dtype(array.dtype)}"
            errors.fail(f"state.{field}", f"float[{num_features}]", got)
    if state.mean.dtype != state.variance.dtype:
        errors.fail("state.variance", f"dtype {state.mean.dtype}", f"{state.variance.dtype}")


def probit_adf(
    num_features: int,
    *,
    prior_mean: Any = 0.0,
    prior_variance: Any = 1.0,
    noise: float = 1.0,
    forgetting: float = 0.0,
    exploration: str = "thompson",
    epsilon: float = 0.05,
    ucb_scale: float = 1.0,
    mesh: Any = None,
) -> ClickPolicy:
    """Bayesian linear probit regression (ADF) with a selection rule over candidates.

    Args:
      num_features: ``M``, the length of the weight table.
      prior_mean, prior_variance: the prior ``N(mu0_i, sigma0_i^2)``, scalars or
        ``float[num_features]`` arrays (finite; variances > 0).
      noise: ``beta > 0``, the probit noise scale.
      forgetting: ``eps in [0, 1]``, the pull toward the prior after every ``update`` call.
      exploration: one of :data:`~prime_science.bandits.selection.RULES`.
      epsilon: exploration probability of ``"epsilon_greedy"``, in ``[0, 1]``.
      ucb_scale: ``c >= 0`` of ``"ucb"``.
      mesh: a 1-D device mesh (:func:`prime_science.core.mesh.arm_mesh`) to split the
        candidate axis of ``sample`` / ``sample_batch`` over (``"thompson"`` only): each
        device scores its block of candidates with the same weight draw and keeps its top
        ``k``; the ``k x devices`` survivors are gathered and reduced again, so the result
        equals one device's for the same key (tested on 8 simulated devices). ``N`` must be
        divisible by the number of devices. The weight table is replicated.

    Returns:
      A :class:`~prime_science.core.types.ClickPolicy`. Computation runs in the state's float
      dtype (float32 from ``init()``, float64 with ``init(jnp.float64)`` under x64). Bad
      arguments raise :class:`~prime_science.core.errors.InvalidArgumentError` before anything
      is computed; value checks (id ranges, clicks) run on concrete inputs only, static checks
      always.
    """
    if isinstance(num_features, bool) or not isinstance(num_features, int | np.integer):
        errors.fail("num_features", "a positive integer", repr(num_features))
    if num_features < 1:
        errors.fail("num_features", "a positive integer", repr(num_features))
    num_features = int(num_features)
    mean0 = check_prior("prior_mean", prior_mean, num_features, positive=False)
    variance0 = check_prior("prior_variance", prior_variance, num_features, positive=True)
    beta = check_scalar("noise", noise, np.finfo(np.float64).tiny, np.inf, "> 0")
    decay = check_scalar("forgetting", forgetting, 0.0, 1.0, "in [0, 1]")
    rule = selection.selection_rule(exploration, epsilon=epsilon, ucb_scale=ucb_scale)
    if mesh is not None and not rule.draws:
        errors.fail("mesh", "None unless exploration='thompson'", f"a mesh with {exploration!r}")

    def init(dtype: Any = jnp.float32) -> ProbitState:
        """Every weight at its prior, in ``dtype`` (float32 by default). Raises
        ``InvalidArgumentError`` when the prior or ``noise ** 2`` is not representable in
        ``dtype`` (e.g. a float32 variance of ``1e39`` or ``1e-40``)."""
        if not jnp.issubdtype(dtype, jnp.floating):
            errors.fail("dtype", "a floating dtype", repr(dtype))
        check_in_dtype("prior_mean", mean0, dtype, positive=False)
        check_in_dtype("prior_variance", variance0, dtype, positive=True)
        check_in_dtype("noise", beta**2, dtype, positive=True, label="noise ** 2")
        shape = (num_features,)
        return ProbitState(
            mean=jnp.broadcast_to(jnp.asarray(mean0, dtype), shape),
            variance=jnp.broadcast_to(jnp.asarray(variance0, dtype), shape),
        )

    def adf_step(state: ProbitState, event: tuple[jax.Array, jax.Array]):
        """One ADF update (module docstring) for ``ids: int[K]``, ``y in {-1, +1}``."""
        ids, y = event
        dtype = state.mean.dtype
        valid = ids >= 0
        x = _multiplicity(ids, dtype)
        mean = gather_column(state.mean, ids)
        variance = gather_column(state.variance, ids)
        total_variance = beta**2 + jnp.sum(x * variance)
        total_scale = jnp.sqrt(total_variance)
        t = y * jnp.sum(mean) / total_scale
        v, lam = _probit_moments(t)
        new_mean = mean + y * x * (variance / total_scale) * v
        factor = 1.0 - x * x * (variance / total_variance) * lam
        new_variance = jnp.maximum(variance * factor, jnp.finfo(dtype).tiny)
        # Padding scatters out of range and is dropped; repeated ids write identical values.
        target = jnp.where(valid, ids, num_features)
        return ProbitState(
            mean=state.mean.at[target].set(new_mean, mode="drop"),
            variance=state.variance.at[target].set(new_variance, mode="drop"),
        ), None

    def forget(state: ProbitState) -> ProbitState:
        """Natural-parameter pull toward the prior by ``forgetting`` (module docstring)."""
        dtype = state.mean.dtype
        mu0, var0 = jnp.asarray(mean0, dtype), jnp.asarray(variance0, dtype)
        blend = (1.0 - decay) * var0 + decay * state.variance
        # keep = (1 - eps) sigma0^2 / d is exactly 0 at eps = 1, so the mean is exactly mu0
        # there on every backend (keep mu + (1 - keep) mu0 was 1 ulp off on an H200).
        keep = (1.0 - decay) * var0 / blend
        return ProbitState(
            mean=mu0 + keep * (state.mean - mu0), variance=var0 * (state.variance / blend)
        )

    @jax.jit
    def update_core(state, feature_ids, clicks):
        dtype = state.mean.dtype
        signs = 2.0 * jnp.asarray(clicks).astype(dtype) - 1.0
        state, _ = jax.lax.scan(adf_step, state, (jnp.asarray(feature_ids, jnp.int32), signs))
        return forget(state) if decay > 0.0 else state

    def update(state: ProbitState, feature_ids: jax.Array, clicks: jax.Array) -> ProbitState:
        """Fold in events ``(feature_ids[j], clicks[j])``, ``j = 0 .. n-1``, in order.

        Args:
          state: the posterior.
          feature_ids: ``int[n, K]`` active ids of each shown candidate, ``-1`` = padding.
          clicks: ``bool``/``float[n]`` with values in ``{0, 1}`` (``y = 2 click - 1``).

        Returns:
          The new posterior, same shapes and dtypes; forgetting (if any) applied after the
          batch. Raises ``InvalidArgumentError`` (nothing computed) for: a wrong state, ids that
          are not an integer ``[n, K]`` array or out of ``[-1, num_features)``; clicks that are
          not 1-D, not real, NaN or outside ``{0, 1}``; ``n`` mismatched; (concrete states)
          a non-finite mean or a variance that is not finite and > 0; and, after the update
          (eager calls only), a result that overflowed the dtype (named ``state``).
        """
        _check_state(state, num_features)
        check_feature_ids("feature_ids", feature_ids, num_features)
        errors.check_rank("clicks", clicks, 1)
        errors.check_dtype_kind("clicks", clicks, "biuf", "0/1 clicks (bool or real)")
        errors.check_same_length(("feature_ids", "clicks"), feature_ids, clicks)
        if errors.is_concrete(clicks):
            values = np.asarray(clicks, dtype=np.float64)
            bad = (values != 0) & (values != 1)  # NaN is bad
            if bad.any():
                errors.fail("clicks", "values in {0, 1}", f"{values[bad][:5].tolist()}")
        concrete = all(errors.is_concrete(x) for x in (*state, feature_ids, clicks))
        if concrete:
            check_state_values(state, "variance")
        new_state = update_core(state, feature_ids, clicks)
        if concrete:
            check_finite_update(new_state, "smaller prior means or variances")
        return new_state

    def fixed_scores(state, ids):
        """The key-independent scores of the rule, materialised (``None`` for Thompson)."""
        if rule.draws:
            return None
        scores = linear_scores(state.mean, ids)
        if rule.name == "ucb":
            variance = projected_variance(state.variance, ids)
            scores = selection.upper_bounds(scores, variance, rule.ucb_scale)
        return materialise(scores)

    def choose(key, state, ids, scores, k, available) -> Selection:
        """One request: the top ``k`` rows of ``ids`` under the rule, given ``fixed_scores``."""
        weights = None
        if rule.draws:
            noise_draw = jax.random.normal(key, state.mean.shape, state.mean.dtype)
            weights = state.mean + jnp.sqrt(state.variance) * noise_draw
        return selection.select_linear(
            rule, key, ids, k, available, weights=weights, scores=scores, mesh=mesh
        )

    @partial(jax.jit, static_argnums=3)
    def sample_core(key, state, candidate_ids, k, available):
        ids = jnp.asarray(candidate_ids, jnp.int32)
        return choose(key, state, ids, fixed_scores(state, ids), k, available)

    @partial(jax.jit, static_argnums=(3, 4))
    def sample_batch_core(key, state, candidate_ids, k, num_requests, available):
        # Requests run one after the other (lax.map): a vmapped gather from a [requests, M]
        # table is about 6x slower per request on XLA:CPU. Key-independent scores are shared.
        ids = jnp.asarray(candidate_ids, jnp.int32)
        scores = fixed_scores(state, ids)
        keys = jax.random.split(key, num_requests)
        return jax.lax.map(lambda key: choose(key, state, ids, scores, k, available), keys)

    def check_sample(state, candidate_ids, k):
        _check_state(state, num_features)
        check_candidates(candidate_ids, k, num_features, mesh)

    sample, sample_batch = selection.entry_points(check_sample, sample_core, sample_batch_core)

    @jax.jit
    def predict_core(state, feature_ids):
        ids = jnp.asarray(feature_ids, jnp.int32)
        total_variance = beta**2 + projected_variance(state.variance, ids)
        return ndtr(linear_scores(state.mean, ids) / jnp.sqrt(total_variance))

    def predict(state: ProbitState, feature_ids: jax.Array) -> jax.Array:
        """Predictive click probability ``Phi(x^T mu / Sigma)`` of every row of
        ``feature_ids: int[n, K]`` (``-1`` = padding), in the state's dtype."""
        _check_state(state, num_features)
        check_feature_ids("feature_ids", feature_ids, num_features)
        return predict_core(state, feature_ids)

    return ClickPolicy(init, sample, update, sample_batch, predict)
