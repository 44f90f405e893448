"""Linear scores over lists of feature ids, and the boundary checks of the linear click models.

A candidate is a vector ``x in N^M`` given by the list of its active feature ids
(``feature_ids: int[K]``, ``-1`` = padding, see :mod:`prime_science.bandits.features`); ``x_i``
is the number of times id ``i`` is listed. For a weight table ``w: float[M]`` and a factorised
variance ``sigma^2: float[M]`` the building blocks are::

    linear score        x^T w = sum_j w[ids_j],
    projected variance  x^T diag(sigma^2) x = sum_i x_i^2 sigma_i^2,

computed one id column at a time so that XLA fuses the gathers and the sum into one pass over
the candidates. :func:`linear_top_k` is the Thompson kernel: the top ``k`` of ``x_c^T w~`` over
candidates ``c``, optionally with the candidate axis split over a device mesh.

The checks (``check_*``) are the boundary checks shared by
:func:`~prime_science.bandits.probit.probit_adf` and
:func:`~prime_science.bandits.logistic.logistic_laplace`; each raises
:class:`~prime_science.core.errors.InvalidArgumentError` naming the argument.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from prime_science.core import errors
from prime_science.core.mesh import ARM_AXIS
from prime_science.core.random import top_k_with_ids

__all__ = [
    "materialise",
    "gather_column",
    "linear_scores",
    "projected_variance",
    "linear_top_k",
    "check_scalar",
    "check_prior",
    "check_feature_ids",
    "check_candidates",
    "check_in_dtype",
    "check_state_values",
    "check_finite_update",
]

_UNROLLED_COLUMNS = 256
"""Longest row of feature ids that :func:`linear_scores` sums column by column."""


def materialise(values: jax.Array) -> jax.Array:
    """``values``, computed once and written to memory before any consumer reads it.

    XLA fuses a cheap-looking producer into every consumer, so a gather from it recomputes it
    per read (for the Thompson draw: ``K`` normal variates per candidate instead of one per
    feature, 5x slower at ``K = 8``). ``optimization_barrier`` is removed by XLA:CPU before
    fusion; a scatter is never fused into its consumers, so an identity scatter does the job.
    """
    return jnp.zeros_like(values).at[jnp.arange(values.shape[0])].set(values)


def gather_column(table: jax.Array, ids: jax.Array) -> jax.Array:
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
        return jnp.sum(gather_column(weights, feature_ids), axis=-1)
    total = jnp.zeros(feature_ids.shape[:-1], weights.dtype)
    for column in range(feature_ids.shape[-1]):
        total = total + gather_column(weights, feature_ids[..., column])
    return total


def projected_variance(variance: jax.Array, feature_ids: jax.Array) -> jax.Array:
    """``sum_i x_i^2 sigma_i^2`` for every row of ``feature_ids[..., K]``: slot ``j`` adds
    ``x_i sigma_i^2`` with ``x_i`` its id's count in the row (column by column, as above)."""
    columns = [feature_ids[..., column] for column in range(feature_ids.shape[-1])]
    total = jnp.zeros(feature_ids.shape[:-1], variance.dtype)
    for ids in columns:
        count = sum(((ids == other) & (other >= 0)).astype(variance.dtype) for other in columns)
        total = total + count * gather_column(variance, ids)
    return total


def linear_top_k(
    weights: jax.Array,
    feature_ids: jax.Array,
    k: int,
    available: jax.Array | None = None,
    mesh: Any = None,
) -> tuple[jax.Array, jax.Array]:
    """The ``k`` largest ``x_c^T w`` over the rows ``c`` of ``feature_ids: int[N, K]`` and
    their rows, largest first, ties to the lower row; rows with ``available[c]`` false score
    ``-inf``.

    With ``mesh`` (a 1-D ``"arms"`` mesh, ``N`` divisible by its devices) each device scores its
    block of rows with the replicated ``weights`` and keeps its top ``k``; the ``k x devices``
    survivors are gathered and reduced again (device order is row order, so ties resolve as on
    one device). The result equals the single-device one.
    """

    def block_top_k(weights, block, block_available, offset):
        rows = offset + jnp.arange(block.shape[0], dtype=jnp.int32)
        scores = linear_scores(weights, block)
        if block_available is not None:
            scores = jnp.where(block_available, scores, -jnp.inf)
        return top_k_with_ids(scores, rows, k)

    if mesh is None:
        return block_top_k(weights, feature_ids, available, 0)

    def per_device(weights, block, *block_available):
        offset = jax.lax.axis_index(ARM_AXIS) * block.shape[0]
        values, chosen = block_top_k(weights, block, *(block_available or (None,)), offset)
        values = jax.lax.all_gather(values, ARM_AXIS, tiled=True)
        chosen = jax.lax.all_gather(chosen, ARM_AXIS, tiled=True)
        return top_k_with_ids(values, chosen, k)

    masks = () if available is None else (available,)
    return jax.shard_map(
        per_device,
        mesh=mesh,
        in_specs=(PartitionSpec(), *(PartitionSpec(ARM_AXIS),) * (1 + len(masks))),
        out_specs=(PartitionSpec(), PartitionSpec()),
        check_vma=False,
    )(weights, feature_ids, *masks)


def check_scalar(name: str, value: Any, low: float, high: float, what: str) -> float:
    """A real number in ``[low, high]`` (``what`` says so in words), returned as a float."""
    if isinstance(value, bool) or np.ndim(value) != 0 or np.asarray(value).dtype.kind not in "iuf":
        errors.fail(name, f"a real number {what}", repr(value))
    number = float(value)
    if not (np.isfinite(number) and low <= number <= high):
        errors.fail(name, f"a real number {what}", repr(value))
    return number


def check_prior(name: str, value: Any, num_features: int, positive: bool) -> np.ndarray:
    """A scalar or one finite value per feature (``> 0`` with ``positive``), as float64."""
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


def check_feature_ids(name: str, feature_ids: Any, num_features: int) -> None:
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


def check_candidates(candidate_ids: Any, k: Any, num_features: int, mesh: Any) -> None:
    """Static checks of a selection call: the ids, ``1 <= k <= N``, ``N`` divisible by the
    mesh's devices."""
    check_feature_ids("candidate_ids", candidate_ids, num_features)
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


def check_in_dtype(
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


def check_state_values(state: Any, field: str) -> None:
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


def check_finite_update(new_state: Any, remedy: str) -> None:
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
