"""Closed-form method-of-moments empirical Bayes for group meta-priors (Nabi et al. 2022).

The estimator below is the standard method of moments; that it is the paper's exact formula
is not confirmed (the paper's abstract says its variance estimator is unbiased and strongly
consistent).

Model. Weights of group ``k`` are exchangeable draws ``w_i ~ N(mu_k, tau_k^2)``, ``i in G_k``;
we see estimates ``w^_i ~ N(w_i, s_i^2)`` with known sampling variances ``s_i^2`` (posterior
mean and variance of a fit with a weak prior, or MLE +- Fisher), so marginally
``w^_i ~ N(mu_k, tau_k^2 + s_i^2)``. With ``n_k = |G_k|``::

    mu^_k       = (1 / n_k) sum_{i in G_k} w^_i,
    S_k^2       = (1 / (n_k - 1)) sum_{i in G_k} (w^_i - mu^_k)^2,      (sample variance)
    tau~_k^2    = S_k^2 - (1 / n_k) sum_{i in G_k} s_i^2,               (untruncated)
    tau^_k^2    = max(0, tau~_k^2).                                     (truncated)

Unbiasedness: ``E[S_k^2] = tau_k^2 + mean_i s_i^2`` for independent ``w^_i`` with common mean
and variances ``tau^2 + s_i^2`` (heteroscedastic too: ``E sum (x_i - x bar)^2 = (1 - 1/n)
sum v_i``), so ``tau~_k^2`` is unbiased; its standard deviation is ``O(1 / sqrt(n_k))``
(``sqrt(2 / (n_k - 1)) (tau^2 + s^2)`` when all ``s_i^2 = s^2``). The truncation at zero makes
``tau^_k^2`` a valid variance but biases it upward when ``tau_k^2`` is small relative to the
noise; both are returned. A prior needs ``tau^2 > 0``: :func:`meta_prior` floors it.

Computation. Two passes of ``jax.ops.segment_sum`` over the group ids (sums, then centred
squares: the centred form does not cancel catastrophically as ``sum x^2 - n x bar^2`` would in
float32). Features whose group id is negative are left out of the fit (segment_sum drops ids
outside ``[0, num_groups)``); a group with ``n_k = 0`` has NaN mean, one with ``n_k = 1`` NaN
variance. The sums run in the estimates' float dtype (float32 unless x64 is on): on concrete
input, a value that does not fit it (``1e39`` in float32) and a group whose sums or squared
deviations overflow it (``[3e38, 3e38]``, ``[1e20, -1e20]``) raise ``InvalidArgumentError``
naming ``estimates`` or ``sampling_variances`` instead of returning ``inf`` or NaN. ``O(M)``
work, jittable with ``num_groups`` static; 1e6 weights in 100 groups take a few milliseconds
on CPU (:func:`prime_science.bench.meta_prior_fit.meta_prior_fit_timings`).
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.core import errors
from prime_science.priors.record import GaussianGroupPrior, check_count, check_group_ids

__all__ = ["GroupMoments", "method_of_moments", "meta_prior", "divide_out_prior"]


class GroupMoments(NamedTuple):
    """Per-group method-of-moments estimates (all ``float[K]``).

    Attributes:
      mean: ``mu^_k``.
      variance: ``tau^_k^2 = max(0, tau~_k^2)`` (truncated at zero).
      untruncated_variance: ``tau~_k^2 = S_k^2 - mean s_i^2`` (unbiased, may be negative).
      sample_variance: ``S_k^2`` of the estimates.
      mean_sampling_variance: ``(1 / n_k) sum s_i^2``.
      count: ``n_k``, the number of features that entered the fit.
    """

    mean: jax.Array
    variance: jax.Array
    untruncated_variance: jax.Array
    sample_variance: jax.Array
    mean_sampling_variance: jax.Array
    count: jax.Array


@partial(jax.jit, static_argnames="num_groups")
def _moments(estimates, sampling_variances, group_of_feature, num_groups):
    dtype = jnp.result_type(estimates.dtype, sampling_variances.dtype, jnp.float32)
    estimates = estimates.astype(dtype)
    groups = group_of_feature.astype(jnp.int32)
    total = partial(jax.ops.segment_sum, segment_ids=groups, num_segments=num_groups)
    count = total(jnp.ones_like(estimates))
    mean = total(estimates) / count
    centred = estimates - mean[jnp.clip(groups, 0, num_groups - 1)]  # left-out rows: dropped
    sample_variance = total(centred * centred) / (count - 1)
    mean_sampling_variance = total(sampling_variances.astype(dtype)) / count
    untruncated = sample_variance - mean_sampling_variance
    return GroupMoments(
        mean=mean,
        variance=jnp.maximum(untruncated, 0),
        untruncated_variance=untruncated,
        sample_variance=sample_variance,
        mean_sampling_variance=mean_sampling_variance,
        count=count,
    )


def method_of_moments(
    estimates: Any, sampling_variances: Any, group_of_feature: Any, num_groups: int
) -> GroupMoments:
    """Method-of-moments meta-prior ``(mu^_k, tau^_k^2)`` per group (module docstring).

    Args:
      estimates: ``float[M]`` the estimates ``w^_i``.
      sampling_variances: ``float[M]`` their sampling variances ``s_i^2 >= 0``.
      group_of_feature: ``int[M]`` group of every feature in ``[0, num_groups)``; ``-1`` (any
        negative id) leaves the feature out of the fit.
      num_groups: ``K`` (static under ``jit``).

    Returns:
      A :class:`GroupMoments` in the estimates' float dtype (float32 at least).

    Raises ``InvalidArgumentError`` for mismatched lengths, wrong ranks or dtypes and, on
    concrete inputs, non-finite estimates, negative or non-finite sampling variances of
    features that enter the fit, or group ids ``>= num_groups``.
    """
    check_count("num_groups", num_groups, 1)
    for name, value in (("estimates", estimates), ("sampling_variances", sampling_variances)):
        errors.check_rank(name, value, 1)
        errors.check_dtype_kind(name, value, "iuf", "real numbers")
    errors.check_rank("group_of_feature", group_of_feature, 1)
    errors.check_dtype_kind("group_of_feature", group_of_feature, "iu", "integer group ids")
    errors.check_same_length(("estimates", "sampling_variances"), estimates, sampling_variances)
    errors.check_same_length(("estimates", "group_of_feature"), estimates, group_of_feature)
    concrete = all(errors.is_concrete(v) for v in (estimates, sampling_variances, group_of_feature))
    dtype = jnp.result_type(_dtype(estimates), _dtype(sampling_variances), jnp.float32)
    if concrete:
        groups = np.asarray(group_of_feature)
        used = groups >= 0
        if (groups >= num_groups).any():
            bad = groups[groups >= num_groups][:5].tolist()
            errors.fail("group_of_feature", f"ids in [0, {num_groups}) or -1 (left out)", bad)
        largest = float(jnp.finfo(dtype).max)
        values = np.asarray(estimates, np.float64)[used]
        bad = ~(np.abs(values) <= largest)
        if bad.any():
            errors.fail(
                "estimates",
                f"finite values in {dtype} (|x| <= {largest:.3g})",
                values[bad][:5].tolist(),
            )
        noise = np.asarray(sampling_variances, np.float64)[used]
        bad = ~((noise >= 0) & (noise <= largest))
        if bad.any():
            errors.fail(
                "sampling_variances", f"finite values >= 0 in {dtype}", noise[bad][:5].tolist()
            )
    moments = _moments(
        jnp.asarray(estimates),
        jnp.asarray(sampling_variances),
        jnp.asarray(group_of_feature),
        num_groups=int(num_groups),
    )
    if concrete:
        _check_overflow(moments, dtype)
    return moments


def _dtype(value: Any) -> Any:
    """The dtype ``jnp.asarray(value)`` will have (float64 becomes float32 without x64)."""
    dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
    return jax.dtypes.canonicalize_dtype(dtype)


def _check_overflow(moments: GroupMoments, dtype: Any) -> None:
    """Groups whose sums overflowed ``dtype``: a non-finite mean with ``n_k >= 1`` or a
    non-finite variance with ``n_k >= 2`` (inputs already known finite)."""
    count = np.asarray(moments.count)
    for name, field, least in (
        ("estimates", moments.mean, 1),
        ("estimates", moments.sample_variance, 2),
        ("sampling_variances", moments.mean_sampling_variance, 1),
        ("estimates", moments.untruncated_variance, 2),
    ):
        bad = (count >= least) & ~np.isfinite(np.asarray(field))
        if bad.any():
            errors.fail(
                name,
                f"values whose group sums and squared deviations fit in {dtype}",
                f"an overflow in groups {np.flatnonzero(bad)[:5].tolist()}",
            )


def meta_prior(
    moments: GroupMoments,
    group_of_feature: jax.Array,
    *,
    fallback_mean: float | jax.Array = 0.0,
    fallback_variance: float | jax.Array = 1.0,
    min_variance: float = 1e-4,
    min_count: int = 2,
) -> GaussianGroupPrior:
    """The prior record ``N(mu^_k, max(tau^_k^2, min_variance))`` for every group.

    A group with fewer than ``min_count`` features in the fit cannot estimate a variance: it
    keeps ``fallback_variance`` (the generic prior's) and the fitted mean if it had at least
    one feature, else ``fallback_mean``. ``group_of_feature`` is the full map (every feature,
    including those left out of the fit, e.g. never-seen ids: they get their group's prior).
    Pure ``jnp``, jittable.

    Raises ``InvalidArgumentError`` naming the argument for: ``moments`` not a
    :class:`GroupMoments` (or, when concrete, a NaN or infinite mean of a group with ``n_k >= 1``
    or variance of one with ``n_k >= min_count``), ``group_of_feature`` not integer ids in
    ``[0, K)``, ``fallback_mean`` not finite, ``fallback_variance`` or ``min_variance`` not
    finite and at least the dtype's smallest normal number (a zero-variance prior divides by
    zero downstream), ``min_count`` not an integer ``>= 2`` (one feature has no sample
    variance). Values are checked when concrete; shapes always.
    """
    if not isinstance(moments, GroupMoments):
        errors.fail("moments", "a GroupMoments (method_of_moments)", type(moments).__name__)
    min_count = check_count("min_count", min_count, 2)
    num_groups = np.shape(moments.mean)[0] if np.ndim(moments.mean) == 1 else 0
    if num_groups < 1 or any(np.shape(field) != (num_groups,) for field in moments):
        errors.fail("moments", "fields of one shape [K], K >= 1", [np.shape(f) for f in moments])
    dtype = jax.dtypes.canonicalize_dtype(moments.mean.dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        errors.fail("moments", "floating-point fields", f"dtype {dtype}")
    check_group_ids("group_of_feature", group_of_feature, num_groups, every_group=False)
    info = jnp.finfo(dtype)
    for name, value, positive in (
        ("fallback_mean", fallback_mean, False),
        ("fallback_variance", fallback_variance, True),
        ("min_variance", min_variance, True),
    ):
        _check_hyper(name, value, num_groups, info, positive)
    if all(errors.is_concrete(field) for field in moments):
        count = np.asarray(moments.count)
        has_mean = (count >= 1) & ~np.isfinite(np.asarray(moments.mean))
        variance = np.asarray(moments.variance)
        has_variance = (count >= min_count) & ~(np.isfinite(variance) & (variance >= 0))
        if has_mean.any() or has_variance.any():
            errors.fail(
                "moments",
                "a finite mean where n_k >= 1 and variance >= 0 where n_k >= min_count",
                f"bad groups {np.flatnonzero(has_mean | has_variance)[:5].tolist()}",
            )
    has_mean = moments.count >= 1
    has_variance = moments.count >= min_count
    mean = jnp.where(has_mean, moments.mean, fallback_mean).astype(dtype)
    variance = jnp.where(has_variance, jnp.maximum(moments.variance, min_variance), 0)
    variance = jnp.where(has_variance, variance, fallback_variance).astype(dtype)
    return GaussianGroupPrior(mean, variance, jnp.asarray(group_of_feature, jnp.int32))


def _check_hyper(name: str, value: Any, num_groups: int, info: Any, positive: bool) -> None:
    """A real scalar or ``[K]`` array; when concrete finite in ``info``'s dtype and, with
    ``positive``, at least its smallest normal number."""
    if np.ndim(value) > 1 or (np.ndim(value) == 1 and np.shape(value)[0] != num_groups):
        errors.fail(name, f"a scalar or one value per group ({num_groups})", np.shape(value))
    errors.check_dtype_kind(name, value, "iuf", "real numbers")
    if errors.is_concrete(value):
        array = np.atleast_1d(np.asarray(value, np.float64))
        low = float(info.tiny) if positive else -float(info.max)
        bad = ~((array >= low) & (array <= float(info.max)))
        if bad.any():
            what = f"finite values >= {low:.3g}" if positive else "finite values"
            errors.fail(name, f"{what} in {info.dtype}", array[bad][:5].tolist())


def divide_out_prior(
    mean: jax.Array, variance: jax.Array, prior_mean: Any, prior_variance: Any
) -> tuple[jax.Array, jax.Array]:
    """Estimates ``(w^_i, s_i^2)`` from a Gaussian posterior by dividing its prior out.

    A factorised Gaussian posterior that assumed-density filtering (or a Laplace fit) built
    from a prior ``N(m0, v0)`` is ``prior x prod(Gaussian sites)``; in natural parameters the
    sites multiply to the data's (approximate) likelihood, with precision and mean

        q_i = 1 / v_i - 1 / v0_i,       w^_i = (m_i / v_i - m0_i / v0_i) / q_i,   s_i^2 = 1 / q_i.

    This is the weak-prior (``v0 -> inf``) refit that avoids double shrinkage (estimates
    already shrunk by a tight prior bias ``tau^2`` downward), without replaying the data. A
    feature the data never touched has ``q_i = 0``: it gets ``w^_i = m0_i`` and
    ``s_i^2 = +inf`` (leave it out of the fit). Jittable.

    Raises ``InvalidArgumentError`` naming the argument for shapes that do not broadcast or,
    when concrete, a non-finite ``mean`` or ``prior_mean``, a ``variance`` that is not finite
    and ``> 0``, or a ``prior_variance`` that is not ``> 0`` (``+inf``, a flat prior, is
    allowed).
    """
    arguments = (
        ("mean", mean, "finite values", lambda x: np.isfinite(x)),
        ("variance", variance, "finite values > 0", lambda x: np.isfinite(x) & (x > 0)),
        ("prior_mean", prior_mean, "finite values", lambda x: np.isfinite(x)),
        ("prior_variance", prior_variance, "values > 0 (inf allowed)", lambda x: x > 0),
    )
    for index, (name, value, what, good) in enumerate(arguments):
        errors.check_dtype_kind(name, value, "iuf", "real numbers")
        try:
            np.broadcast_shapes(*(np.shape(v) for _, v, _, _ in arguments[: index + 1]))
        except ValueError:
            errors.fail(
                name, f"a shape that broadcasts with mean's {np.shape(mean)}", np.shape(value)
            )
        if errors.is_concrete(value):
            array = np.atleast_1d(np.asarray(value, np.float64))
            if not good(array).all():
                errors.fail(name, what, array[~good(array)][:5].tolist())
    mean = jnp.asarray(mean)
    precision = 1.0 / variance - 1.0 / prior_variance
    informative = precision > 0
    safe = jnp.where(informative, precision, 1.0)
    shift = mean / variance - prior_mean / prior_variance
    estimate = jnp.where(informative, shift / safe, jnp.broadcast_to(prior_mean, mean.shape))
    return estimate, jnp.where(informative, 1.0 / safe, jnp.inf)
