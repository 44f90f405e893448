"""Group-structured prior records: the output of an empirical-Bayes meta-prior fit.

Gaussian form (Nabi et al. 2022). Features are partitioned into groups ``G_0 .. G_{K-1}``; feature
``i`` belongs to group ``g(i) = group_of_feature[i]`` and its weight has the prior

    w_i ~ N(mu_{g(i)}, tau_{g(i)}^2).

:class:`GaussianGroupPrior` stores ``mu: float[K]``, ``tau^2: float[K]`` and ``g: int32[M]``;
:func:`feature_prior` expands it to the per-feature ``(mean[M], variance[M])`` that
:func:`prime_science.bandits.probit.probit_adf` and
:func:`prime_science.bandits.logistic.logistic_laplace` take as ``prior_mean`` and
``prior_variance``. A feature never seen before (a new item's id, an unseen code) gets its
group's prior: that is the cold-start prior.

Beta form. Item click-through rates ``p_j`` of the items of group ``k`` (e.g. a category) share
the prior ``p_j ~ Beta(a_k, b_k)``. :class:`BetaGroupPrior` stores ``a, b: float[K]``;
:func:`item_prior` expands it with an item -> group map to the per-arm ``(alpha[n], beta[n])``
of :func:`prime_science.bandits.beta_bernoulli.beta_bernoulli`.

Both records are NamedTuples of arrays only, so they ``jit``, ``vmap`` and round-trip through
:func:`prime_science.core.checkpoint.save_checkpoint` / ``restore_checkpoint``. The checked
constructors (:func:`gaussian_group_prior`, :func:`beta_group_prior`) and the expanders validate
concrete inputs at the boundary: an empty group, a variance or Beta shape that is not a finite
positive number, a group id out of range or lengths that do not match raise
:class:`~prime_science.core.errors.InvalidArgumentError` naming the argument. Under ``jit``
only the static checks (ranks, dtypes, lengths) run. Variances must be strictly positive
because the bandit models divide by them; :func:`prime_science.priors.moments.meta_prior`
floors a truncated-at-zero estimate before it builds a record.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.core import errors

__all__ = [
    "GaussianGroupPrior",
    "BetaGroupPrior",
    "gaussian_group_prior",
    "beta_group_prior",
    "feature_prior",
    "item_prior",
    "groups_from_slices",
    "check_group_ids",
    "check_count",
    "check_positive",
]


class GaussianGroupPrior(NamedTuple):
    """``w_i ~ N(mean[g(i)], variance[g(i)])`` with ``g = group_of_feature``.

    Attributes:
      mean: ``float32[K]`` prior mean ``mu_k`` of every group.
      variance: ``float32[K]`` prior variance ``tau_k^2 > 0`` of every group.
      group_of_feature: ``int32[M]`` the group ``g(i)`` in ``[0, K)`` of every feature.
    """

    mean: jax.Array
    variance: jax.Array
    group_of_feature: jax.Array


class BetaGroupPrior(NamedTuple):
    """``p_j ~ Beta(alpha[k], beta[k])`` for every item ``j`` of group ``k``.

    Attributes:
      alpha: ``float32[K]`` first Beta shape ``a_k > 0``.
      beta: ``float32[K]`` second Beta shape ``b_k > 0``.
    """

    alpha: jax.Array
    beta: jax.Array


def _check_vector(name: str, value: Any, *, positive: bool) -> Any:
    """Rank 1, real, non-empty; finite (and > 0 if ``positive``) when concrete."""
    errors.check_rank(name, value, 1)
    errors.check_dtype_kind(name, value, "iuf", "real numbers")
    if np.shape(value)[0] == 0:
        errors.fail(name, "at least one group", "an empty array")
    if errors.is_concrete(value):
        array = np.asarray(value, np.float64)
        bad = ~np.isfinite(array) | ((array <= 0) if positive else False)
        if bad.any():
            what = "finite values > 0" if positive else "finite values"
            errors.fail(name, what, f"{array[bad][:5].tolist()} at {np.flatnonzero(bad)[:5]}")
    return value


def check_count(name: str, value: Any, low: int) -> int:
    """A Python or numpy integer ``>= low`` (not a bool); raises naming ``name``. Shared by
    the boundary checks of :mod:`prime_science.priors`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        errors.fail(name, f"an integer >= {low}", repr(value))
    return int(value)


def check_positive(name: str, value: Any) -> float | jax.Array:
    """A real scalar in float32's normal range ``[1.18e-38, 3.4e38]``: finite, ``> 0`` and with
    a finite reciprocal (a variance of ``0`` or ``1e-45`` would make a precision infinite).
    Raises naming ``name``; a traced value (under ``jit``) is checked for shape and dtype only
    and returned as is."""
    info = np.finfo(np.float32)
    dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
    if isinstance(value, bool) or np.ndim(value) != 0 or np.dtype(dtype).kind not in "iuf":
        errors.fail(name, "a real number > 0", repr(value))
    if not errors.is_concrete(value):
        return value
    if not info.tiny <= float(value) <= info.max:
        errors.fail(name, f"a finite number in [{info.tiny:.3g}, {info.max:.3g}]", repr(value))
    return float(value)


def check_group_ids(name: str, ids: Any, num_groups: int, *, every_group: bool) -> None:
    """Boundary check of a group map: rank 1 integer ids in ``[0, num_groups)`` and, with
    ``every_group``, no group left empty (values checked only when ``ids`` is concrete).
    ``num_groups`` must be an integer ``>= 1`` (raises naming ``num_groups``)."""
    check_count("num_groups", num_groups, 1)
    errors.check_rank(name, ids, 1)
    errors.check_dtype_kind(name, ids, "iu", "integer group ids")
    if not errors.is_concrete(ids):
        return
    array = np.asarray(ids)
    bad = (array < 0) | (array >= num_groups)
    if bad.any():
        errors.fail(name, f"group ids in [0, {num_groups})", f"{array[bad][:5].tolist()}")
    if every_group:
        empty = np.flatnonzero(np.bincount(array, minlength=num_groups) == 0)
        if empty.size:
            errors.fail(name, "every group to own at least one feature", f"empty groups {empty}")


def gaussian_group_prior(mean: Any, variance: Any, group_of_feature: Any) -> GaussianGroupPrior:
    """A checked :class:`GaussianGroupPrior` (float32 hyper-parameters, int32 group map).

    Raises ``InvalidArgumentError`` for: ``mean`` and ``variance`` of different lengths, a
    non-finite mean, a variance that is not finite and > 0, a group id outside
    ``[0, len(mean))``, or a group that owns no feature (empty group).
    """
    _check_vector("mean", mean, positive=False)
    _check_vector("variance", variance, positive=True)
    errors.check_same_length(("mean", "variance"), mean, variance)
    check_group_ids("group_of_feature", group_of_feature, np.shape(mean)[0], every_group=True)
    return GaussianGroupPrior(
        mean=jnp.asarray(mean, jnp.float32),
        variance=jnp.asarray(variance, jnp.float32),
        group_of_feature=jnp.asarray(group_of_feature, jnp.int32),
    )


def beta_group_prior(alpha: Any, beta: Any) -> BetaGroupPrior:
    """A checked :class:`BetaGroupPrior` (float32 shapes, both finite and > 0, same length)."""
    _check_vector("alpha", alpha, positive=True)
    _check_vector("beta", beta, positive=True)
    errors.check_same_length(("alpha", "beta"), alpha, beta)
    return BetaGroupPrior(jnp.asarray(alpha, jnp.float32), jnp.asarray(beta, jnp.float32))


def feature_prior(record: GaussianGroupPrior) -> tuple[jax.Array, jax.Array]:
    """Per-feature prior ``(mean[M], variance[M]) = (mu[g], tau^2[g])``, a gather.

    Pass them as ``probit_adf(M, prior_mean=mean, prior_variance=variance)`` (or to
    ``logistic_laplace``). Jittable; on concrete records the record is checked first.
    """
    if not isinstance(record, GaussianGroupPrior):
        errors.fail("record", "a GaussianGroupPrior", type(record).__name__)
    gaussian_group_prior(*record)
    groups = jnp.asarray(record.group_of_feature)
    return jnp.asarray(record.mean)[groups], jnp.asarray(record.variance)[groups]


def item_prior(record: BetaGroupPrior, group_of_item: Any) -> tuple[jax.Array, jax.Array]:
    """Per-item Beta prior ``(alpha[n], beta[n]) = (a[g], b[g])`` with ``g = group_of_item``.

    Pass them as ``beta_bernoulli(prior_alpha=alpha, prior_beta=beta)`` with ``init(n)``.
    Groups without items are allowed here (a category may have no item today); ids outside
    ``[0, K)`` raise ``InvalidArgumentError`` naming ``group_of_item``.
    """
    if not isinstance(record, BetaGroupPrior):
        errors.fail("record", "a BetaGroupPrior", type(record).__name__)
    beta_group_prior(*record)
    check_group_ids("group_of_item", group_of_item, np.shape(record.alpha)[0], every_group=False)
    groups = jnp.asarray(group_of_item, jnp.int32)
    return jnp.asarray(record.alpha)[groups], jnp.asarray(record.beta)[groups]


def groups_from_slices(
    slices: dict[str, slice], num_features: int
) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(group_of_feature: int32[M], names)``: group ``k`` is the id range ``slices[names[k]]``.

    Use with :attr:`prime_science.bandits.features.FeatureSpec.block_slices` to make one group
    per feature block. Raises ``InvalidArgumentError`` naming ``num_features`` unless it is an
    integer ``>= 1``, ``slices`` unless it is a dict of slices that cover ``[0, num_features)``
    exactly once, and ``slices[name]`` unless that entry is a ``slice(start, stop)`` with
    integers ``0 <= start < stop <= num_features`` (step 1 or ``None``) disjoint from the others.
    """
    num_features = check_count("num_features", num_features, 1)
    if not isinstance(slices, dict):
        errors.fail("slices", "a dict of name -> slice", type(slices).__name__)
    groups = np.full(num_features, -1, np.int32)
    names = tuple(slices)
    for index, name in enumerate(names):
        ids = slices[name]
        bounds = (ids.start, ids.stop) if isinstance(ids, slice) else (None, None)
        ok = all(not isinstance(b, bool) and isinstance(b, int | np.integer) for b in bounds)
        ok = ok and ids.step in (None, 1) and 0 <= bounds[0] < bounds[1] <= num_features
        if not ok:
            errors.fail(
                f"slices[{name!r}]", f"a slice(start, stop) inside [0, {num_features})", ids
            )
        if (groups[ids] >= 0).any():
            errors.fail(f"slices[{name!r}]", "a range disjoint from the others", ids)
        groups[ids] = index
    if (groups < 0).any():
        missing = np.flatnonzero(groups < 0)
        errors.fail("slices", f"ranges covering every feature id < {num_features}", missing[:5])
    return groups, names
