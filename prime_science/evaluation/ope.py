"""Off-policy estimators of a policy's value from logged bandit feedback, position by position.

Data. Row ``i`` of the log records one (impression, position) pair: the context ``x_i``, the
slot ``k_i``, the item ``a_i`` the behaviour policy showed there, the reward ``r_i`` (a click or
any real number) and the propensity ``p_i = pi_b(a_i | x_i, k_i)`` (:class:`LoggedData`). The
evaluation policy is given row by row as ``action_dist[i, a, k] = pi_e(a | x_i, k)`` and the
reward model as ``estimated_rewards[i, a, k] = q^(x_i, a, k)``, both ``float[n, A, K]``; a
leading axis of length 1 stands for a policy (or model) that ignores the context and is used for
every row (the production Bernoulli TS policy of the Open Bandit Dataset is one), which keeps
``n x A x K`` arrays out of memory on long logs. The row's own position selects the slice
(``pi_e(. | x_i, k_i)``), as in the Open Bandit Pipeline (Saito, Aihara, Matsutani & Narita,
NeurIPS 2021 Datasets and Benchmarks).

Target. ``V(pi_e) = E_{x, k}[ sum_a pi_e(a | x, k) q(x, a, k) ]``, the expected reward per
logged row (per impression and position), with ``q(x, a, k) = E[r | x, a, k]``.

Estimators (:data:`ESTIMATORS`), with ``w_i = pi_e(a_i | x_i, k_i) / p_i``,
``q^_i = q^(x_i, a_i, k_i)``, ``q^_i(pi_e) = sum_a pi_e(a | x_i, k_i) q^(x_i, a, k_i)`` and
``E_n`` the mean over the ``n`` rows:

* ``dm``   (direct method):        ``E_n[q^_i(pi_e)]``
* ``ipw``  (inverse propensity):   ``E_n[w_i r_i]``
* ``snipw`` (self-normalised IPW): ``sum_i w_i r_i / sum_i w_i``
* ``dr``   (doubly robust; Dudík, Langford & Li 2011): ``E_n[q^_i(pi_e) + w_i (r_i - q^_i)]``
* ``sndr`` (self-normalised DR):   ``E_n[q^_i(pi_e)] + sum_i w_i (r_i - q^_i) / sum_i w_i``
* ``switch_dr`` (Wang, Agarwal & Dudík 2017): ``E_n[q^_i(pi_e) + 1{w_i <= tau} w_i (r_i - q^_i)]``
  (the DR term where the weight is at most ``tau``, the model alone elsewhere)
* ``dr_os`` (DR with optimistic shrinkage; Su, Dimakopoulou, Krishnamurthy & Dudík 2020):
  ``E_n[q^_i(pi_e) + w~_i (r_i - q^_i)]`` with ``w~ = lambda w / (w^2 + lambda)``
  (``lambda = 0``: DM; ``lambda = inf``: DR)

These agree with the Open Bandit Pipeline's documented ``DirectMethod``,
``InverseProbabilityWeighting``, ``SelfNormalizedInverseProbabilityWeighting``,
``DoublyRobust``, ``SelfNormalizedDoublyRobust`` (its 0.5 form, which normalises only the
correction), ``SwitchDoublyRobust`` and ``DoublyRobustWithShrinkage``.

What "DR is exact" means. With ``q^ = q`` and exact propensities, DM equals
``V_n = E_n[q(x_i, pi_e, k_i)]``, the value of ``pi_e`` on the logged contexts and slots, with no
error beyond the sampling of those ``(x_i, k_i)``; DR adds the correction
``E_n[w_i (r_i - q_i)]``, whose conditional mean given the contexts, slots and actions is zero
and whose variance is ``E[sum_a pi_e^2 / pi_b q (1 - q)] / n`` for clicks. So DR's error is
DM's sampling error plus mean-zero noise, and with noise-free rewards ``r_i = q_i`` DR equals
DM exactly; with ``pi_e = pi_b`` every weight is 1 and IPW = SNIPW = the mean logged reward
(``tests/evaluation/test_synthetic.py`` checks all three).

Sufficient statistics. Every estimator is a ratio of sums over rows of seven per-row numbers
``s_i = (1, w_i, w_i r_i, q^_i(pi_e), w_i (r_i - q^_i), 1{w_i <= tau} w_i (r_i - q^_i),
w~_i (r_i - q^_i))``: with ``T = sum_i c_i s_i`` (``c_i = 1`` on the data),
``dm = T_3 / T_0``, ``ipw = T_2 / T_0``, ``snipw = T_2 / T_1``, ``dr = (T_3 + T_4) / T_0``,
``sndr = T_3 / T_0 + T_4 / T_1``, ``switch_dr = (T_3 + T_5) / T_0``,
``dr_os = (T_3 + T_6) / T_0``. :func:`bootstrap_intervals` uses this: a resample is a vector of
row counts ``c``, and every estimator of every resample comes from one weighted sum.

Bootstrap (:func:`bootstrap_intervals`). Poisson bootstrap: each row's count in a resample is an
independent ``Poisson(1)`` draw (Hanley & MacGibbon 2006; Chamandy, Muralidharan, Najmi & Naidu
2012), the estimators are the ratios above on the counts (the means divide by ``sum_i c_i``), and
the interval is the percentile interval of the resampled estimates. Why Poisson rather than
multinomial counts or resampled row indices: independent counts are a pure function of
``(key, resample, row)``, so they are generated inside a streaming pass over blocks of rows with
no ``[resamples, n]`` index array and no random gathers (the log is read in order, once per
pass); for ratio estimators the Poisson and the multinomial bootstrap agree to first order (the
total count ``sum c_i`` is random, ``n +- sqrt(n)``, and the ratios normalise by it). The counts
come from the counter-based bits of :mod:`prime_science.core.random` (stream = resample,
counter = row) through the inverse CDF of ``Poisson(1)`` on the 32-bit grid (counts above 12,
probability ``6e-11``, are not drawn).

Checks. Every public function checks its inputs eagerly when they are concrete (shapes, ranges,
NaN, normalisation, names) and raises :class:`~prime_science.core.errors.InvalidArgumentError`
naming the argument; under ``jit``/``vmap`` only the shape checks run. Dtype: the float type of
``reward``, ``pscore``, ``action_dist`` and ``estimated_rewards`` (float32 by default, float64
under ``jax.enable_x64``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.core import errors
from prime_science.core.random import key_words, lowbias32, stream_seeds

__all__ = [
    "LoggedData",
    "Interval",
    "ESTIMATORS",
    "REWARD_MODEL_ESTIMATORS",
    "DEFAULT_SWITCH_TAU",
    "DEFAULT_OS_LAMBDA",
    "check_logged_data",
    "policy_value",
    "estimate_all",
    "bootstrap_intervals",
    "relative_error",
]

ESTIMATORS: tuple[str, ...] = ("dm", "ipw", "snipw", "dr", "sndr", "switch_dr", "dr_os")
"""Every estimator's name, in the order :func:`estimate_all` returns them."""

REWARD_MODEL_ESTIMATORS = frozenset({"dm", "dr", "sndr", "switch_dr", "dr_os"})
"""The estimators that need ``estimated_rewards``."""

DEFAULT_SWITCH_TAU = 100.0
"""Switch-DR's default weight threshold ``tau`` (the largest of the two values the Open Bandit
Pipeline's examples try; tune it per problem, e.g. by Wang et al.'s MSE bound)."""

DEFAULT_OS_LAMBDA = 100.0
"""DR-OS's default shrinkage ``lambda`` (the Pipeline's examples try 1 and 100)."""

NORMALISATION_TOLERANCE = 1e-4
"""How far ``sum_a action_dist[i, a, k]`` may be from 1 (float32 sums of a few hundred
probabilities are good to about 1e-6)."""

_POISSON_MAX_COUNT = 12
# Counts c with P(c >= k) = 1 - F(k - 1) become  c = #{k : bits >= round(2^32 F(k - 1))}.
_POISSON_CDF = np.cumsum([math.exp(-1.0) / math.factorial(j) for j in range(_POISSON_MAX_COUNT)])
_POISSON_THRESHOLDS = np.round(_POISSON_CDF * 2.0**32).astype(np.uint32)
_SIGNED_THRESHOLDS = tuple(int(t) - 2**31 for t in _POISSON_THRESHOLDS)  # sign bit flipped
_BLOCK_ELEMENTS = 2**20  # resamples x rows per block of the bootstrap pass (4 MB of counts)

# Columns of the per-row statistics s_i (module docstring).
_COUNT, _WEIGHT, _WEIGHTED_REWARD, _DIRECT, _RESIDUAL, _SWITCH_RESIDUAL, _SHRUNK_RESIDUAL = range(7)


class LoggedData(NamedTuple):
    """Logged bandit feedback, one row per (impression, position).

    Attributes:
      action: ``int32[n]`` the item shown, in ``[0, num_actions)``.
      position: ``int32[n]`` the slot, in ``[0, num_positions)``.
      reward: ``float[n]`` the reward (a click, 0/1, or any real number).
      pscore: ``float[n]`` the behaviour policy's probability ``pi_b(a_i | x_i, k_i)``, in
        ``(0, 1]``.
    """

    action: jax.Array
    position: jax.Array
    reward: jax.Array
    pscore: jax.Array


class Interval(NamedTuple):
    """A point estimate and its percentile-bootstrap interval ``[low, high]`` (scalars)."""

    estimate: jax.Array
    low: jax.Array
    high: jax.Array


def _check_estimators(estimators: Any) -> tuple[str, ...]:
    if isinstance(estimators, str):
        estimators = (estimators,)
    estimators = tuple(estimators)
    if not estimators:
        errors.fail("estimators", f"a non-empty sequence of names from {ESTIMATORS}", "none")
    for name in estimators:
        if name not in ESTIMATORS:
            errors.fail("estimator", f"one of {ESTIMATORS}", repr(name))
    return estimators


def _check_hyper(hyper: dict[str, Any]) -> tuple[Any, Any]:
    unknown = set(hyper) - {"switch_tau", "os_lambda"}
    if unknown:
        errors.fail("hyper-parameters", "switch_tau and/or os_lambda", sorted(unknown))
    switch_tau = hyper.get("switch_tau", DEFAULT_SWITCH_TAU)
    os_lambda = hyper.get("os_lambda", DEFAULT_OS_LAMBDA)
    for name, value in (("switch_tau", switch_tau), ("os_lambda", os_lambda)):
        if errors.is_concrete(value):
            if np.ndim(value) != 0:
                errors.fail(name, "a scalar", f"shape {np.shape(value)}")
            if not float(value) >= 0:  # NaN fails too
                errors.fail(name, "a number >= 0 (inf allowed)", value)
    return switch_tau, os_lambda


def _check_table(name: str, table: Any, num_rows: int) -> None:
    errors.check_rank(name, table, 3)
    errors.check_dtype_kind(name, table, "f", "a float array")
    if table.shape[0] not in (1, num_rows):
        errors.fail(
            name,
            f"shape [n, num_actions, num_positions] with n = {num_rows} rows (or 1: the same "
            "for every row)",
            f"shape {tuple(table.shape)}",
        )


def check_logged_data(
    data: LoggedData, action_dist: Any, estimated_rewards: Any | None = None
) -> None:
    """Check a log, an evaluation policy and a reward model against each other.

    Shapes and dtypes are checked always; values (ranges, NaN, normalisation) when the arrays
    are concrete. Raises :class:`~prime_science.core.errors.InvalidArgumentError` naming the
    argument (and the first offending row) on: fields of different lengths or ranks, an empty
    log, integer fields that are not integers, ``action`` outside ``[0, num_actions)``,
    ``position`` outside ``[0, num_positions)``, ``pscore`` outside ``(0, 1]``, a NaN or
    infinite ``reward``, ``action_dist`` negative, non-finite or not summing to 1 over actions
    (within :data:`NORMALISATION_TOLERANCE`) for some row and position, ``estimated_rewards``
    not finite or of a shape other than ``action_dist``'s ``[., num_actions, num_positions]``.
    """
    if not isinstance(data, LoggedData):
        errors.fail("data", "a LoggedData(action, position, reward, pscore)", type(data).__name__)
    for field in LoggedData._fields:
        errors.check_rank(f"data.{field}", getattr(data, field), 1)
    num_rows = np.shape(data.action)[0]
    if num_rows == 0:
        errors.fail("data", "at least one logged row", "0 rows")
    for field in LoggedData._fields[1:]:
        errors.check_same_length(
            ("data.action", f"data.{field}"), data.action, getattr(data, field)
        )
    errors.check_dtype_kind("data.action", data.action, "iu", "an integer array")
    errors.check_dtype_kind("data.position", data.position, "iu", "an integer array")
    errors.check_dtype_kind("data.reward", data.reward, "fiub", "a numeric array")
    errors.check_dtype_kind("data.pscore", data.pscore, "f", "a float array")
    _check_table("action_dist", action_dist, num_rows)
    num_actions, num_positions = action_dist.shape[1:]
    if estimated_rewards is not None:
        _check_table("estimated_rewards", estimated_rewards, num_rows)
        if estimated_rewards.shape[1:] != action_dist.shape[1:]:
            errors.fail(
                "estimated_rewards",
                f"shape [n, {num_actions}, {num_positions}] like action_dist",
                f"shape {tuple(estimated_rewards.shape)}",
            )
    arrays = (*data, action_dist) + (() if estimated_rewards is None else (estimated_rewards,))
    if not all(errors.is_concrete(x) for x in arrays):
        return
    _check_values_in("data.action", np.asarray(data.action), 0, num_actions, "num_actions")
    _check_values_in("data.position", np.asarray(data.position), 0, num_positions, "num_positions")
    pscore = np.asarray(data.pscore)
    bad = np.flatnonzero(~((pscore > 0) & (pscore <= 1)))
    if bad.size:
        errors.fail("data.pscore", "probabilities in (0, 1]", f"{pscore[bad[0]]} at row {bad[0]}")
    reward = np.asarray(data.reward)
    bad = np.flatnonzero(~np.isfinite(reward))
    if bad.size:
        errors.fail("data.reward", "finite rewards (no NaN)", f"{reward[bad[0]]} at row {bad[0]}")
    dist = np.asarray(action_dist)
    bad = np.argwhere(~(np.isfinite(dist) & (dist >= 0)))
    if bad.size:
        row, action, position = bad[0]
        errors.fail(
            "action_dist",
            "finite probabilities >= 0",
            f"{dist[row, action, position]} at row {row}, action {action}, position {position}",
        )
    totals = dist.sum(axis=1, dtype=np.float64)
    bad = np.argwhere(np.abs(totals - 1.0) > NORMALISATION_TOLERANCE)
    if bad.size:
        row, position = bad[0]
        errors.fail(
            "action_dist",
            "pi_e(. | x_i, k) summing to 1 over actions for every row i and position k",
            f"sum {totals[row, position]:.6g} at row {row}, position {position}",
        )
    if estimated_rewards is not None:
        model = np.asarray(estimated_rewards)
        bad = np.argwhere(~np.isfinite(model))
        if bad.size:
            errors.fail(
                "estimated_rewards", "finite values", f"non-finite at index {tuple(bad[0])}"
            )


def _check_values_in(name: str, values: np.ndarray, low: int, high: int, what: str) -> None:
    bad = np.flatnonzero((values < low) | (values >= high))
    if bad.size:
        errors.fail(name, f"values in [0, {what} = {high})", f"{values[bad[0]]} at row {bad[0]}")


def _row_statistics(
    data: LoggedData,
    action_dist: jax.Array,
    estimated_rewards: jax.Array | None,
    switch_tau: Any,
    os_lambda: Any,
) -> jax.Array:
    """The per-row statistics ``s_i`` of the module docstring: ``float[n, 7]``."""
    tables = (action_dist,) if estimated_rewards is None else (action_dist, estimated_rewards)
    dtype = jnp.result_type(data.reward, data.pscore, *tables, jnp.float32)
    num_rows = data.action.shape[0]

    def rows_of(table):
        if table.shape[0] == num_rows:
            return jnp.arange(num_rows)
        return jnp.zeros(num_rows, jnp.int32)

    reward = data.reward.astype(dtype)
    target = action_dist.astype(dtype)
    weight = target[rows_of(target), data.action, data.position] / data.pscore.astype(dtype)
    if estimated_rewards is None:
        direct = jnp.zeros_like(reward)
        residual = reward
    else:
        model = estimated_rewards.astype(dtype)
        model_at_row = jnp.sum(target * model, axis=1)  # q^(x, pi_e, k): [n or 1, K]
        direct = model_at_row[rows_of(model_at_row), data.position]
        residual = reward - model[rows_of(model), data.action, data.position]
    tau = jnp.asarray(switch_tau, dtype)
    lam = jnp.asarray(os_lambda, dtype)
    shrink_denominator = weight * weight + lam  # 0 only where w = 0 and lambda = 0: w~ = 0
    shrunk = lam * weight / jnp.where(shrink_denominator > 0, shrink_denominator, 1)
    shrunk = jnp.where(jnp.isinf(lam), weight, shrunk)
    return jnp.stack(
        [
            jnp.ones_like(reward),
            weight,
            weight * reward,
            direct,
            weight * residual,
            jnp.where(weight <= tau, weight * residual, 0.0),
            shrunk * residual,
        ],
        axis=-1,
    )


def _estimates_from_totals(totals: jax.Array, estimators: tuple[str, ...]) -> dict[str, jax.Array]:
    """Every estimator as a ratio of the summed statistics ``T = totals[..., 7]``."""
    count, weight = totals[..., _COUNT], totals[..., _WEIGHT]
    direct = totals[..., _DIRECT]
    formulas = {
        "dm": lambda: direct / count,
        "ipw": lambda: totals[..., _WEIGHTED_REWARD] / count,
        "snipw": lambda: totals[..., _WEIGHTED_REWARD] / weight,
        "dr": lambda: (direct + totals[..., _RESIDUAL]) / count,
        "sndr": lambda: direct / count + totals[..., _RESIDUAL] / weight,
        "switch_dr": lambda: (direct + totals[..., _SWITCH_RESIDUAL]) / count,
        "dr_os": lambda: (direct + totals[..., _SHRUNK_RESIDUAL]) / count,
    }
    return {name: formulas[name]() for name in estimators}


def _prepare(
    data: LoggedData,
    action_dist: Any,
    estimated_rewards: Any | None,
    estimators: Any,
    hyper: dict[str, Any],
) -> tuple[tuple[str, ...], Any, Any]:
    estimators = _check_estimators(estimators)
    if estimated_rewards is None:
        needing = [name for name in estimators if name in REWARD_MODEL_ESTIMATORS]
        if needing:
            errors.fail(
                "estimated_rewards",
                f"a reward model q^(x_i, a, k) of shape [n, num_actions, num_positions] for "
                f"{', '.join(needing)}",
                "None",
            )
    check_logged_data(data, action_dist, estimated_rewards)
    switch_tau, os_lambda = _check_hyper(hyper)
    return estimators, switch_tau, os_lambda


@jax.jit
def _estimate(data, action_dist, estimated_rewards, switch_tau, os_lambda):
    """Every estimator (one compilation per input shape, whichever names are asked for)."""
    stats = _row_statistics(data, action_dist, estimated_rewards, switch_tau, os_lambda)
    return _estimates_from_totals(jnp.sum(stats, axis=0), ESTIMATORS)


def estimate_all(
    data: LoggedData,
    action_dist: jax.Array,
    estimated_rewards: jax.Array | None = None,
    estimators: Sequence[str] = ESTIMATORS,
    **hyper: Any,
) -> dict[str, jax.Array]:
    """Every requested estimate of ``V(pi_e)`` from one pass over the log.

    Args:
      data: the log (:class:`LoggedData`, ``n`` rows).
      action_dist: ``float[n, A, K]`` (or ``[1, A, K]``) ``pi_e(a | x_i, k)``, summing to 1
        over ``a``.
      estimated_rewards: ``float[n, A, K]`` (or ``[1, A, K]``) ``q^(x_i, a, k)``; required by
        ``dm``, ``dr``, ``sndr``, ``switch_dr`` and ``dr_os``.
      estimators: names from :data:`ESTIMATORS`.
      **hyper: ``switch_tau`` (Switch-DR's threshold, default :data:`DEFAULT_SWITCH_TAU`) and
        ``os_lambda`` (DR-OS's shrinkage, default :data:`DEFAULT_OS_LAMBDA`), each ``>= 0``,
        ``inf`` allowed.

    Returns:
      ``{name: scalar}`` in the order of ``estimators``: the estimated mean reward per logged
      row (module docstring for the formulas).
    """
    estimators, switch_tau, os_lambda = _prepare(
        data, action_dist, estimated_rewards, estimators, hyper
    )
    data = LoggedData(*(jnp.asarray(x) for x in data))
    model = None if estimated_rewards is None else jnp.asarray(estimated_rewards)
    out = _estimate(data, jnp.asarray(action_dist), model, switch_tau, os_lambda)
    return {name: out[name] for name in estimators}


def policy_value(
    data: LoggedData,
    action_dist: jax.Array,
    estimator: str,
    estimated_rewards: jax.Array | None = None,
    *,
    switch_tau: float = DEFAULT_SWITCH_TAU,
    os_lambda: float = DEFAULT_OS_LAMBDA,
) -> jax.Array:
    """One estimate of ``V(pi_e)``, the mean reward per logged (impression, position) row.

    Args: as :func:`estimate_all`, with one ``estimator`` name from :data:`ESTIMATORS`.

    Returns:
      A scalar of the inputs' float dtype.
    """
    if not isinstance(estimator, str):
        errors.fail("estimator", f"one of {ESTIMATORS}", repr(estimator))
    hyper = {"switch_tau": switch_tau, "os_lambda": os_lambda}
    return estimate_all(data, action_dist, estimated_rewards, (estimator,), **hyper)[estimator]


def _poisson_counts(bits: jax.Array, dtype: Any) -> jax.Array:
    """``Poisson(1)`` counts from uniform 32-bit words by the inverse CDF (module docstring).

    The words are compared as signed integers after flipping their sign bit (same order): CPUs
    compare 32-bit lanes signed, and XLA's unsigned compare costs extra instructions per
    threshold; with the twelve compares unrolled the bootstrap pass ran 2-3x faster on the
    2-core CPU than a compare against a threshold vector summed over its axis.
    """
    signed = jax.lax.bitcast_convert_type(bits ^ jnp.uint32(0x80000000), jnp.int32)
    counts = jnp.zeros(bits.shape, jnp.int32)
    for threshold in _SIGNED_THRESHOLDS:
        counts = counts + (signed >= threshold).astype(jnp.int32)
    return counts.astype(dtype)


def _block_rows(num_rows: int, num_resamples: int) -> int:
    """Rows per block of the bootstrap pass: a power of two, ``~2^20 / num_resamples``."""
    rows = max(256, min(2**16, _BLOCK_ELEMENTS // num_resamples))
    rows = 1 << (rows.bit_length() - 1)
    return min(rows, 1 << max(0, (num_rows - 1).bit_length()))


@partial(jax.jit, static_argnames=("num_resamples",))
def _bootstrap(
    key, data, action_dist, estimated_rewards, switch_tau, os_lambda, level, *, num_resamples
):
    """Every estimator's interval (their ratios cost nothing next to the resampling pass)."""
    stats = _row_statistics(data, action_dist, estimated_rewards, switch_tau, os_lambda)
    num_rows, num_stats = stats.shape
    block = _block_rows(num_rows, num_resamples)
    num_blocks = -(-num_rows // block)
    padded = jnp.pad(stats, ((0, num_blocks * block - num_rows), (0, 0)))  # zero rows count 0
    blocks = padded.reshape(num_blocks, block, num_stats)
    words = key_words(key)
    seeds = jax.vmap(lambda resample: stream_seeds(words, resample))(
        jnp.arange(num_resamples, dtype=jnp.uint32)
    )

    def resample_totals(seed):
        """``sum_i c_i s_i`` for one resample, streaming over blocks of rows."""
        s0, s1 = seed

        def step(totals, block_index_and_stats):
            index, rows = block_index_and_stats
            counters = index * jnp.uint32(block) + jnp.arange(block, dtype=jnp.uint32)
            counts = _poisson_counts(lowbias32(lowbias32(counters ^ s0) + s1), stats.dtype)
            return totals + counts @ rows, None

        indices = jnp.arange(num_blocks, dtype=jnp.uint32)
        totals, _ = jax.lax.scan(step, jnp.zeros(num_stats, stats.dtype), (indices, blocks))
        return totals

    resampled = _estimates_from_totals(jax.vmap(resample_totals)(seeds), ESTIMATORS)
    point = _estimates_from_totals(jnp.sum(stats, axis=0), ESTIMATORS)
    quantiles = jnp.stack([(1 - level) / 2, (1 + level) / 2]).astype(stats.dtype)
    out = {}
    for name in ESTIMATORS:
        low, high = jnp.quantile(resampled[name], quantiles)
        out[name] = Interval(point[name], low, high)
    return out


def bootstrap_intervals(
    key: jax.Array,
    data: LoggedData,
    action_dist: jax.Array,
    estimated_rewards: jax.Array | None = None,
    estimators: Sequence[str] = ESTIMATORS,
    *,
    num_resamples: int = 1000,
    level: float = 0.95,
    **hyper: Any,
) -> dict[str, Interval]:
    """Percentile-bootstrap intervals of every requested estimator, in one jitted call.

    All ``num_resamples`` Poisson-bootstrap resamples (module docstring) and all estimators are
    computed together: one ``vmap`` over resamples of a streaming pass over blocks of rows. The
    interval is ``[Q_{(1 - level)/2}, Q_{(1 + level)/2}]`` of the resampled estimates (linear
    interpolation between order statistics); ``estimate`` is the estimate on the log itself.

    Args:
      key: a PRNG key (``jax.random.key(seed)``).
      data, action_dist, estimated_rewards, estimators, **hyper: as :func:`estimate_all`.
      num_resamples: bootstrap resamples ``B >= 1`` (static).
      level: coverage in ``(0, 1)``.

    Returns:
      ``{name: Interval(estimate, low, high)}`` in the order of ``estimators``.
    """
    errors.check_key("key", key)
    if isinstance(num_resamples, bool) or not isinstance(num_resamples, int | np.integer):
        errors.fail("num_resamples", "a positive integer", repr(num_resamples))
    if not 1 <= num_resamples < 2**31:
        errors.fail("num_resamples", "a positive integer below 2^31", num_resamples)
    if errors.is_concrete(level) and not 0 < float(level) < 1:
        errors.fail("level", "a coverage in (0, 1)", level)
    estimators, switch_tau, os_lambda = _prepare(
        data, action_dist, estimated_rewards, estimators, hyper
    )
    if np.shape(data.action)[0] >= 2**32:
        errors.fail("data", "fewer than 2^32 rows (row counters are 32-bit)", len(data.action))
    data = LoggedData(*(jnp.asarray(x) for x in data))
    model = None if estimated_rewards is None else jnp.asarray(estimated_rewards)
    out = _bootstrap(
        key,
        data,
        jnp.asarray(action_dist),
        model,
        switch_tau,
        os_lambda,
        level,
        num_resamples=int(num_resamples),
    )
    return {name: out[name] for name in estimators}


def relative_error(estimate: Any, truth: Any) -> jax.Array:
    """``|estimate - truth| / |truth|`` elementwise (the Open Bandit protocol's metric).

    Raises a named error when a concrete ``truth`` is zero (the relative error is undefined).
    """
    if errors.is_concrete(truth) and np.any(np.asarray(truth) == 0):
        errors.fail("truth", "a non-zero policy value", 0)
    estimate, truth = jnp.asarray(estimate), jnp.asarray(truth)
    return jnp.abs(estimate - truth) / jnp.abs(truth)
