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

Selection. ``sample(key, state, candidate_ids, k)`` scores candidate rows and returns the
top ``k`` row indices (a :class:`~prime_science.core.types.Selection`, best first):

* ``"thompson"``: one draw ``w~ = mu + sigma * jax.random.normal(key, (M,), dtype)`` per
  request, in the state's dtype (the features are drawn, not the candidates); score
  ``x_c^T w~``. The probit link is monotone, so the linear score ranks like the click
  probability. Candidates with the same id multiset tie exactly; ties go to the lower row.
* ``"greedy"``: score ``x_c^T mu``; ties are broken uniformly at random by ``key``.
* ``"epsilon_greedy"``: with probability ``epsilon`` ``k`` distinct rows uniformly at random,
  otherwise greedy; the reported scores are ``x_c^T mu``.
* ``"ucb"``: score ``x_c^T mu + ucb_scale * sqrt(sum_i x_ci^2 sigma_i^2)``; random ties.

Ties (greedy, the greedy branch of epsilon-greedy, UCB) are broken lexicographically on
``(score, a uniform per row)``, not by adding noise to the score: noise small enough not to
reorder distinct float scores rounds away on most ties. The scorer is a gather of ``K``
columns of the weight table and a sum, one candidate at a time, so the candidate axis can be
sharded and each shard's top-k merged.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr
from jax.sharding import PartitionSpec

from prime_science.core import errors
from prime_science.core.mesh import ARM_AXIS
from prime_science.core.random import key_words, random_bits, top_k_with_ids, uniform_open
from prime_science.core.types import PRNGKey, Selection

__all__ = [
    "GAUSS_HERMITE_NODES",
    "adf_factor_update",
    "select_rows",
    "selection_entry_points",
    "linear_scores",
    "materialise",
    "EXPLORATIONS",
    "ProbitState",
    "ProbitPolicy",
    "probit_adf",
]

EXPLORATIONS = ("thompson", "greedy", "epsilon_greedy", "ucb")
"""The selection rules of :func:`probit_adf` (see the module docstring)."""

_LOG_SQRT_2PI = 0.5 * float(np.log(2.0 * np.pi))
_TAIL_BELOW, _TAIL_LEVELS = -5.0, 24  # t < -5: Mills-ratio continued fraction, 24 levels
_TIE_STREAM, _UNIFORM_STREAM = 0, 1  # streams of core.random.random_bits used by sample


class ProbitState(NamedTuple):
    """Factorised Gaussian posterior over the weight table.

    Attributes:
      mean: ``float[num_features]`` posterior means ``mu_i``.
      variance: ``float[num_features]`` posterior variances ``sigma_i^2 > 0``.
    """

    mean: jax.Array
    variance: jax.Array


class ProbitPolicy(NamedTuple):
    """``(init, sample, update, sample_batch, predict)``, all pure."""

    init: Any
    sample: Any
    update: Any
    sample_batch: Any
    predict: Any


def materialise(values: jax.Array) -> jax.Array:
    """``values``, computed once and written to memory before any consumer reads it.

    XLA fuses a cheap-looking producer into every consumer, so a gather from it recomputes it
    per read (for the Thompson draw: ``K`` normal variates per candidate instead of one per
    feature, 5x slower at ``K = 8``). ``optimization_barrier`` is removed by XLA:CPU before
    fusion; a scatter is never fused into its consumers, so an identity scatter does the job.
    """
    return jnp.zeros_like(values).at[jnp.arange(values.shape[0])].set(values)


_UNROLLED_COLUMNS = 256
"""Longest row of feature ids that :func:`linear_scores` sums column by column."""


def _gather_column(table: jax.Array, ids: jax.Array) -> jax.Array:
    """``table[ids]`` with ``0`` where ``ids == -1``. Ids are validated at the boundary; under
    ``jit`` an out-of-range id reads a clamped entry (XLA's gather), never out of memory."""
    values = table.at[jnp.maximum(ids, 0)].get(mode="promise_in_bounds")
    return jnp.where(ids >= 0, values, 0)


def linear_scores(weights: jax.Array, feature_ids: jax.Array) -> jax.Array:
    """``x^T w`` for every row of ``feature_ids[..., K]``: one gather per id column and a sum.

    Column by column (``K`` is static) XLA fuses the gathers and the sum into one pass that
    writes only ``[...]``, about 5x faster on CPU than gathering ``[..., K]`` and reducing. Rows
    longer than ``_UNROLLED_COLUMNS`` ids (a layout of D components has ``D (D + 1) / 2``) gather
    ``[..., K]`` and reduce instead: an unrolled loop over 500,000 columns took minutes to trace.
    """
    if feature_ids.shape[-1] > _UNROLLED_COLUMNS:
        return jnp.sum(_gather_column(weights, feature_ids), axis=-1)
    total = jnp.zeros(feature_ids.shape[:-1], weights.dtype)
    for column in range(feature_ids.shape[-1]):
        total = total + _gather_column(weights, feature_ids[..., column])
    return total


def _multiplicity(feature_ids: jax.Array, dtype: Any) -> jax.Array:
    """``x_i`` at every slot: how often the slot's id occurs in its row (``0`` for padding)."""
    valid = feature_ids >= 0
    same = (feature_ids[..., :, None] == feature_ids[..., None, :]) & valid[..., None, :]
    return jnp.where(valid, jnp.sum(same, axis=-1), 0).astype(dtype)


def _projected_variance(variance: jax.Array, feature_ids: jax.Array) -> jax.Array:
    """``sum_i x_i^2 sigma_i^2`` for every row of ``feature_ids[..., K]``: slot ``j`` adds
    ``x_i sigma_i^2`` with ``x_i`` its id's count in the row (column by column, as above)."""
    columns = [feature_ids[..., column] for column in range(feature_ids.shape[-1])]
    total = jnp.zeros(feature_ids.shape[:-1], variance.dtype)
    for ids in columns:
        count = sum(((ids == other) & (other >= 0)).astype(variance.dtype) for other in columns)
        total = total + count * _gather_column(variance, ids)
    return total


def _tie_keys(key: PRNGKey, stream: int, size: int) -> jax.Array:
    """``size`` float32 uniforms on (0, 1) (24-bit grid), a pure function of
    ``(key, stream, row)``. Float, not integer: XLA:CPU's top-k on int32 is a full sort (200x
    slower); two rows share a value with probability ``2^-24``, and then the lower row wins."""
    counters = jnp.arange(size, dtype=jnp.uint32)
    return uniform_open(random_bits(key_words(key), stream, counters))


def _top_k_random_ties(key: PRNGKey, scores: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Top ``k`` of ``scores`` ranked by ``(score, random bits)``: ties in uniform random order.

    Pass 1 finds the ``k``-th largest score ``s_k``. Pass 2 takes the top ``k`` of the rank
    ``2`` (score above ``s_k``: all of these are chosen), a uniform ``u in (0, 1)`` (score
    equal to ``s_k``: a uniform subset of the ties fills the rest) or ``-1`` (below). The ``k``
    chosen are then sorted by ``(score, u)``.
    """
    rows = jnp.arange(scores.shape[0], dtype=jnp.int32)
    tie_keys = _tie_keys(key, _TIE_STREAM, scores.shape[0])
    # Read s_k through the top-k's row ids: with its values alone XLA:CPU lowers the top-k to
    # a full sort (100x slower).
    kth_score = scores[top_k_with_ids(scores, rows, k)[1][-1]]
    rank = jnp.where(scores > kth_score, 2.0, jnp.where(scores == kth_score, tie_keys, -1.0))
    _, chosen = top_k_with_ids(rank, rows, k)
    negated_scores, _, chosen = jax.lax.sort(
        (-scores[chosen], -tie_keys[chosen], chosen), num_keys=2
    )
    return -negated_scores, chosen


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
    mean = _gather_column(state.mean, feature_ids) * x
    variance = _gather_column(state.variance, feature_ids) * x
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


def _check_candidates(candidate_ids: Any, k: Any, num_features: int, mesh: Any) -> None:
    """Static checks of a selection call: the ids, ``1 <= k <= N``, ``N`` divisible by the
    mesh's devices."""
    _check_feature_ids("candidate_ids", candidate_ids, num_features)
    num_candidates = np.shape(candidate_ids)[0]
    if mesh is not None and num_candidates % mesh.devices.size:
        errors.fail(
            "candidate_ids",
            f"a number of candidates divisible by the {mesh.devices.size} devices of mesh",
            f"{num_candidates} candidates",
        )
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        errors.fail("k", f"an integer in [1, {num_candidates}]", repr(k))
    if not 1 <= k <= num_candidates:
        errors.fail("k", f"an integer in [1, {num_candidates}]", repr(k))


def select_rows(key, exploration, ids, k, weights, scores, epsilon, mesh) -> Selection:
    """One request's top ``k`` rows of ``ids`` under a selection rule (module docstring).

    ``"thompson"``: by ``linear_scores(weights, ids)`` of the request's weight draw, ties to
    the lower row, the candidate axis split over ``mesh`` if given. Otherwise by the
    key-independent ``scores``, ties broken at random by ``key``; ``"epsilon_greedy"``
    explores ``k`` uniformly random rows with probability ``epsilon``. Shared by
    :func:`probit_adf` and :func:`~prime_science.bandits.logistic.logistic_laplace`.
    """
    rows = jnp.arange(ids.shape[0], dtype=jnp.int32)
    if exploration == "thompson":
        weights = materialise(weights)  # fused into the scorer it is redrawn per gather
        if mesh is not None:
            top, chosen = _sharded_top_scores(weights, ids, k, mesh)
        else:
            top, chosen = top_k_with_ids(linear_scores(weights, ids), rows, k)
    elif exploration == "epsilon_greedy":
        coin_key, choice_key = jax.random.split(key)

        def explore(choice_key):
            uniforms = _tie_keys(choice_key, _UNIFORM_STREAM, rows.shape[0])
            chosen = top_k_with_ids(uniforms, rows, k)[1]
            return scores[chosen], chosen

        exploit = lambda choice_key: _top_k_random_ties(choice_key, scores, k)
        explores = jax.random.uniform(coin_key) < epsilon
        top, chosen = jax.lax.cond(explores, explore, exploit, choice_key)
    else:
        top, chosen = _top_k_random_ties(key, scores, k)
    return Selection(arms=chosen, scores=top)


def selection_entry_points(check_sample, sample_core, sample_batch_core) -> tuple[Any, Any]:
    """The public ``sample`` and ``sample_batch`` of a click model: the boundary checks
    (``check_sample(state, candidate_ids, k)``, a positive integer ``num_requests``), then the
    jitted cores ``sample_core(key, state, ids, k)`` and
    ``sample_batch_core(key, state, ids, k, num_requests)`` (``k``, ``num_requests`` static).
    Shared by :func:`probit_adf` and :func:`~prime_science.bandits.logistic.logistic_laplace`.
    """

    def sample(key: PRNGKey, state: Any, candidate_ids: jax.Array, k: int = 1) -> Selection:
        """The top ``k`` of ``N`` candidates for one request, best first.

        Args:
          key: one PRNG key (``jax.random.key`` or legacy ``uint32[2]``); drives the posterior
            draw / tie-breaking / exploration.
          state: the posterior.
          candidate_ids: ``int[N, K]`` active ids of each candidate, ``-1`` = padding.
          k: how many to return, ``1 <= k <= N``; static under ``jit``.

        Returns:
          ``Selection(arms=int32[k] candidate rows, scores=float[k])``; the scores are what was
          ranked (sampled linear scores, posterior-mean scores, or upper bounds).
        """
        errors.check_key("key", key)
        check_sample(state, candidate_ids, k)
        return sample_core(key, state, candidate_ids, int(k))

    def sample_batch(
        key: PRNGKey,
        state: Any,
        candidate_ids: jax.Array,
        k: int = 1,
        num_requests: int = 1,
    ) -> Selection:
        """``num_requests`` independent requests over the same candidates: a ``Selection``
        with a leading request axis (``arms: int32[num_requests, k]``); request ``j`` equals
        ``sample(jax.random.split(key, num_requests)[j], ...)``."""
        errors.check_key("key", key)
        check_sample(state, candidate_ids, k)
        if isinstance(num_requests, bool) or not isinstance(num_requests, int | np.integer):
            errors.fail("num_requests", "a positive integer", repr(num_requests))
        if num_requests < 1:
            errors.fail("num_requests", "a positive integer", repr(num_requests))
        return sample_batch_core(key, state, candidate_ids, int(k), int(num_requests))

    return sample, sample_batch


def _sharded_top_scores(weights, ids, k, mesh):
    """Top ``k`` of ``linear_scores(weights, ids)`` with the candidate axis of ``ids`` split
    over ``mesh`` (axis ``"arms"``): a per-device top-k, then one over the gathered ones."""

    def per_device(weights, block):
        offset = jax.lax.axis_index(ARM_AXIS) * block.shape[0]
        rows = offset + jnp.arange(block.shape[0], dtype=jnp.int32)
        values, chosen = top_k_with_ids(linear_scores(weights, block), rows, k)
        values = jax.lax.all_gather(values, ARM_AXIS, tiled=True)
        chosen = jax.lax.all_gather(chosen, ARM_AXIS, tiled=True)
        return top_k_with_ids(values, chosen, k)  # device order = row order: same ties

    return jax.shard_map(
        per_device,
        mesh=mesh,
        in_specs=(PartitionSpec(), PartitionSpec(ARM_AXIS)),
        out_specs=(PartitionSpec(), PartitionSpec()),
        check_vma=False,
    )(weights, ids)


def _check_scalar(name: str, value: Any, low: float, high: float, what: str) -> float:
    if isinstance(value, bool) or np.ndim(value) != 0 or np.asarray(value).dtype.kind not in "iuf":
        errors.fail(name, f"a real number {what}", repr(value))
    number = float(value)
    if not (np.isfinite(number) and low <= number <= high):
        errors.fail(name, f"a real number {what}", repr(value))
    return number


def _check_prior(name: str, value: Any, num_features: int, positive: bool) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        errors.fail(name, "a real number or a 1-D array of them", f"dtype {array.dtype}")
    if array.ndim > 1 or (array.ndim == 1 and array.shape[0] != num_features):
        errors.fail(name, f"a scalar or one value per feature ({num_features})", array.shape)
    array = array.astype(np.float64)
    bad = ~np.isfinite(array) | ((array <= 0) if positive else False)
    if bad.any():
        expected = "finite values > 0" if positive else "finite values"
        errors.fail(name, expected, f"{np.atleast_1d(array)[np.atleast_1d(bad)][:5].tolist()}")
    return array


def _check_feature_ids(name: str, feature_ids: Any, num_features: int) -> None:
    """Rank 2 and integer always; ids in ``[-1, num_features)`` when concrete."""
    errors.check_rank(name, feature_ids, 2)
    errors.check_dtype_kind(name, feature_ids, "iu", "integer feature ids")
    if errors.is_concrete(feature_ids):
        ids = np.asarray(feature_ids)
        if ids.size and (ids.min() < -1 or ids.max() >= num_features):
            bad = (ids < -1) | (ids >= num_features)
            errors.fail(
                name, f"ids in [0, {num_features}) or -1 (padding)", f"{ids[bad][:5].tolist()}"
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


def _check_in_dtype(
    name: str, values: Any, dtype: Any, positive: bool, label: str = "values"
) -> None:
    """``values`` (finite float64, derived from argument ``name`` as ``label`` says) that stay
    finite once cast to ``dtype``, and with ``positive`` at least its smallest normal number
    (a float32 variance of ``1e-40`` would be subnormal, ``1e-46`` zero)."""
    info = jnp.finfo(jax.dtypes.canonicalize_dtype(dtype))
    array = np.atleast_1d(np.asarray(values, np.float64))
    low = float(info.tiny) if positive else -float(info.max)
    bad = (array < low) | (array > float(info.max))
    if bad.any():
        expected = f"{label} in [{low:g}, {float(info.max):g}] (representable in {info.dtype})"
        errors.fail(name, expected, f"{array[bad][:5].tolist()}")


def _check_state_values(state: Any, field: str) -> None:
    """Values (concrete states only): ``state.mean`` finite and ``state.<field>`` finite with
    a vector (or the diagonal of a matrix) > 0, as in every state the policies build."""
    mean, spread = np.asarray(state.mean), np.asarray(getattr(state, field))
    if not np.all(np.isfinite(mean)):
        errors.fail("state.mean", "finite values", f"{mean[~np.isfinite(mean)][:5].tolist()}")
    if spread.ndim == 2:
        good = np.isfinite(spread).all(axis=1) & (np.diagonal(spread) > 0)
        what = "finite values with a diagonal > 0"
    else:
        good = np.isfinite(spread) & (spread > 0)
        what = "finite values > 0"
    if not good.all():
        errors.fail(f"state.{field}", what, f"bad rows {np.flatnonzero(~good)[:5].tolist()}")


def _check_finite_update(new_state: Any, remedy: str) -> None:
    """After an eager update: every value still finite, or a named error (the caller's state
    is untouched: states are immutable). Extreme but representable posteriors (say means of
    ``1e30`` with variances of ``1e-30``) can overflow the dtype inside the update; the message
    suggests ``remedy``."""
    bad = ~jnp.isfinite(new_state.mean)
    for leaf in new_state[1:]:
        leaf_bad = ~jnp.isfinite(leaf)
        bad = bad | (jnp.any(leaf_bad, axis=1) if leaf.ndim == 2 else leaf_bad)
    if bool(jnp.any(bad)):
        errors.fail(
            "state",
            f"a posterior whose update by these events stays finite in {new_state.mean.dtype} "
            f"({remedy}, or float64 under x64)",
            f"non-finite values at features {np.flatnonzero(np.asarray(bad))[:5].tolist()}",
        )


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
) -> ProbitPolicy:
    """Bayesian linear probit regression (ADF) with a selection rule over candidates.

    Args:
      num_features: ``M``, the length of the weight table.
      prior_mean, prior_variance: the prior ``N(mu0_i, sigma0_i^2)``, scalars or
        ``float[num_features]`` arrays (finite; variances > 0).
      noise: ``beta > 0``, the probit noise scale.
      forgetting: ``eps in [0, 1]``, the pull toward the prior after every ``update`` call.
      exploration: one of :data:`EXPLORATIONS`.
      epsilon: exploration probability of ``"epsilon_greedy"``, in ``[0, 1]``.
      ucb_scale: ``c >= 0`` of ``"ucb"``.
      mesh: a 1-D device mesh (:func:`prime_science.core.mesh.arm_mesh`) to split the
        candidate axis of ``sample`` / ``sample_batch`` over (``"thompson"`` only): each
        device scores its block of candidates with the same weight draw and keeps its top
        ``k``; the ``k x devices`` survivors are gathered and reduced again, so the result
        equals one device's for the same key (tested on 8 simulated devices). ``N`` must be
        divisible by the number of devices. The weight table is replicated.

    Returns:
      A :class:`ProbitPolicy`. Computation runs in the state's float dtype (float32 from
      ``init()``, float64 with ``init(jnp.float64)`` under x64). Bad arguments raise
      :class:`~prime_science.core.errors.InvalidArgumentError` before anything is computed;
      value checks (id ranges, clicks) run on concrete inputs only, static checks always.
    """
    if isinstance(num_features, bool) or not isinstance(num_features, int | np.integer):
        errors.fail("num_features", "a positive integer", repr(num_features))
    if num_features < 1:
        errors.fail("num_features", "a positive integer", repr(num_features))
    num_features = int(num_features)
    mean0 = _check_prior("prior_mean", prior_mean, num_features, positive=False)
    variance0 = _check_prior("prior_variance", prior_variance, num_features, positive=True)
    beta = _check_scalar("noise", noise, np.finfo(np.float64).tiny, np.inf, "> 0")
    decay = _check_scalar("forgetting", forgetting, 0.0, 1.0, "in [0, 1]")
    if exploration not in EXPLORATIONS:
        errors.fail("exploration", f"one of {EXPLORATIONS}", repr(exploration))
    epsilon = _check_scalar("epsilon", epsilon, 0.0, 1.0, "in [0, 1]")
    ucb_scale = _check_scalar("ucb_scale", ucb_scale, 0.0, np.inf, ">= 0")
    if mesh is not None and exploration != "thompson":
        errors.fail("mesh", "None unless exploration='thompson'", f"a mesh with {exploration!r}")

    def init(dtype: Any = jnp.float32) -> ProbitState:
        """Every weight at its prior, in ``dtype`` (float32 by default). Raises
        ``InvalidArgumentError`` when the prior or ``noise ** 2`` is not representable in
        ``dtype`` (e.g. a float32 variance of ``1e39`` or ``1e-40``)."""
        if not jnp.issubdtype(dtype, jnp.floating):
            errors.fail("dtype", "a floating dtype", repr(dtype))
        _check_in_dtype("prior_mean", mean0, dtype, positive=False)
        _check_in_dtype("prior_variance", variance0, dtype, positive=True)
        _check_in_dtype("noise", beta**2, dtype, positive=True, label="noise ** 2")
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
        mean = _gather_column(state.mean, ids)
        variance = _gather_column(state.variance, ids)
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
        _check_feature_ids("feature_ids", feature_ids, num_features)
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
            _check_state_values(state, "variance")
        new_state = update_core(state, feature_ids, clicks)
        if concrete:
            _check_finite_update(new_state, "smaller prior means or variances")
        return new_state

    def fixed_scores(state, ids):
        """The key-independent scores of the rule, materialised (``None`` for Thompson)."""
        if exploration == "thompson":
            return None
        scores = linear_scores(state.mean, ids)
        if exploration == "ucb":
            scores = scores + ucb_scale * jnp.sqrt(_projected_variance(state.variance, ids))
        return materialise(scores)

    def choose(key, state, ids, scores, k) -> Selection:
        """One request: the top ``k`` rows of ``ids`` under the rule, given ``fixed_scores``."""
        weights = None
        if exploration == "thompson":
            noise_draw = jax.random.normal(key, state.mean.shape, state.mean.dtype)
            weights = state.mean + jnp.sqrt(state.variance) * noise_draw
        return select_rows(key, exploration, ids, k, weights, scores, epsilon, mesh)

    @partial(jax.jit, static_argnums=3)
    def sample_core(key, state, candidate_ids, k):
        ids = jnp.asarray(candidate_ids, jnp.int32)
        return choose(key, state, ids, fixed_scores(state, ids), k)

    @partial(jax.jit, static_argnums=(3, 4))
    def sample_batch_core(key, state, candidate_ids, k, num_requests):
        # Requests run one after the other (lax.map): a vmapped gather from a [requests, M]
        # table is about 6x slower per request on XLA:CPU. Key-independent scores are shared.
        ids = jnp.asarray(candidate_ids, jnp.int32)
        scores = fixed_scores(state, ids)
        keys = jax.random.split(key, num_requests)
        return jax.lax.map(lambda key: choose(key, state, ids, scores, k), keys)

    def check_sample(state, candidate_ids, k):
        _check_state(state, num_features)
        _check_candidates(candidate_ids, k, num_features, mesh)

    sample, sample_batch = selection_entry_points(check_sample, sample_core, sample_batch_core)

    @jax.jit
    def predict_core(state, feature_ids):
        ids = jnp.asarray(feature_ids, jnp.int32)
        total_variance = beta**2 + _projected_variance(state.variance, ids)
        return ndtr(linear_scores(state.mean, ids) / jnp.sqrt(total_variance))

    def predict(state: ProbitState, feature_ids: jax.Array) -> jax.Array:
        """Predictive click probability ``Phi(x^T mu / Sigma)`` of every row of
        ``feature_ids: int[n, K]`` (``-1`` = padding), in the state's dtype."""
        _check_state(state, num_features)
        _check_feature_ids("feature_ids", feature_ids, num_features)
        return predict_core(state, feature_ids)

    return ProbitPolicy(init, sample, update, sample_batch, predict)
