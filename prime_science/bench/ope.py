"""The ``ope`` suite: off-policy evaluation of one policy with bootstrap intervals.

Workload (:func:`ope_workload`). ``N`` logged rows over :data:`NUM_ACTIONS` (80) items and
:data:`NUM_POSITIONS` (3) slots, the Open Bandit Dataset's "all" campaign shape: uniform random
behaviour (``pscore = 1/80``), slots uniform, clicks ``Bernoulli(q(a, k))`` with ``q`` drawn
around the dataset's 0.4% click rate; the evaluation policy is a Plackett–Luce-like
distribution over items per slot and the reward model ``q^`` a noisy copy of ``q``, both tables
``float32[1, 80, 3]`` used for every row (the context-free form of
:mod:`prime_science.evaluation.ope`; per-row ``[N, 80, 3]`` tables would need 9.6 GB each at
``N = 1e7``).

One call = one request of size ``B``: the seven estimators of
:data:`prime_science.evaluation.ope.ESTIMATORS` on the log and their percentile intervals from
``B`` Poisson-bootstrap resamples.

Kernels, per ``(N, B)``:

* ``ours``: :func:`prime_science.evaluation.ope.bootstrap_intervals` (the per-row statistics,
  then every resample and every estimator in one jitted, vmapped pass over blocks of rows).
* ``numpy``: the same work in plain numpy (:func:`numpy_row_statistics`, then per resample
  the row counts, ``counts @ stats`` (float32) and the seven ratios, :func:`numpy_resample`);
  ``B`` resamples in a Python loop, each one a driver "request". The counts are the classic
  multinomial bootstrap's, ``bincount(Generator.integers(0, N, N))``: the fastest plain-numpy
  way found (47 ms per resample at ``N = 1e6`` on the 2-core machine, against 76 ms for
  ``Generator.poisson(1, N)``, the scheme ``ours`` draws, and 60 ms for the Poisson inverse CDF
  by ``searchsorted``), so the baseline is the cheaper bootstrap of the two. The per-row
  statistics and the final percentiles are computed once, outside the timed requests (they
  cost one resample's worth or less), which flatters numpy a little more. When ``B`` resamples
  exceed the row budget the driver times fewer and scales linearly (``≈``).

Timing, budgets and files: :mod:`prime_science.bench.driver`. Sizes: ``N`` in 1e5, 1e6 on the
CPU by default (1e7 too on an accelerator); ``--sizes 1e7`` reaches the full size anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.bench.driver import Suite
from prime_science.core.errors import fail
from prime_science.evaluation.ope import (
    DEFAULT_OS_LAMBDA,
    DEFAULT_SWITCH_TAU,
    ESTIMATORS,
    LoggedData,
    bootstrap_intervals,
)

__all__ = [
    "ACCELERATOR_SIZES",
    "BATCHES",
    "CPU_SIZES",
    "NAME",
    "NUM_ACTIONS",
    "NUM_POSITIONS",
    "numpy_bootstrap_intervals",
    "numpy_estimates",
    "numpy_resample",
    "numpy_row_statistics",
    "ope_suite",
    "ope_workload",
]

NAME = "ope"
NUM_ACTIONS = 80
NUM_POSITIONS = 3
CPU_SIZES = (100_000, 1_000_000)
ACCELERATOR_SIZES = (*CPU_SIZES, 10_000_000)
BATCHES = (1000,)
HOST_BYTES_PER_ROW = 16 + 28  # the log (4 fields x 4 bytes) + numpy's float32 statistics
NUMPY_BYTES_PER_ROW = 28 + 8 + 8 + 4  # statistics, int64 indices and counts, float32 counts


def ope_workload(num_rows: int, seed: int) -> tuple[LoggedData, np.ndarray, np.ndarray]:
    """A log of ``num_rows`` rows, an evaluation policy and a reward model (module docstring).

    Returns:
      ``(data, action_dist, estimated_rewards)``: numpy :class:`LoggedData` (int32 action and
      position, float32 reward and pscore) and two ``float32[1, 80, 3]`` tables.
    """
    if isinstance(num_rows, bool) or not isinstance(num_rows, int | np.integer) or num_rows < 1:
        fail("num_rows", "a positive integer", repr(num_rows))
    rng = np.random.default_rng(seed)
    shape = (NUM_ACTIONS, NUM_POSITIONS)
    click = 0.004 * np.exp(rng.normal(0.0, 0.5, shape)) * np.array([1.2, 1.0, 0.8])
    scores = rng.gumbel(size=shape) * 2.0
    dist = np.exp(scores - scores.max(axis=0))
    dist /= dist.sum(axis=0)
    model = click * np.exp(rng.normal(0.0, 0.2, shape))
    action = rng.integers(0, NUM_ACTIONS, num_rows, dtype=np.int32)
    position = rng.integers(0, NUM_POSITIONS, num_rows, dtype=np.int32)
    reward = (rng.random(num_rows, dtype=np.float32) < click[action, position]).astype(np.float32)
    data = LoggedData(
        action=action,
        position=position,
        reward=reward,
        pscore=np.full(num_rows, 1 / NUM_ACTIONS, np.float32),
    )
    return data, dist[None].astype(np.float32), model[None].astype(np.float32)


def numpy_row_statistics(
    data: LoggedData,
    action_dist: np.ndarray,
    estimated_rewards: np.ndarray,
    switch_tau: float = DEFAULT_SWITCH_TAU,
    os_lambda: float = DEFAULT_OS_LAMBDA,
) -> np.ndarray:
    """The seven per-row statistics of :mod:`prime_science.evaluation.ope` in numpy:
    ``float32[n, 7]`` = ``(1, w, w r, q^(x, pi_e, k), w (r - q^), 1{w <= tau} w (r - q^),
    w~ (r - q^))`` (tables ``[1, A, K]`` or ``[n, A, K]``)."""
    rows = np.arange(len(data.action)) if action_dist.shape[0] > 1 else 0
    weight = action_dist[rows, data.action, data.position] / data.pscore
    direct = (action_dist * estimated_rewards).sum(axis=1)[rows, data.position]
    residual = data.reward - estimated_rewards[rows, data.action, data.position]
    shrunk = weight if np.isinf(os_lambda) else os_lambda * weight / (weight**2 + os_lambda)
    columns = (
        np.ones_like(weight),
        weight,
        weight * data.reward,
        direct,
        weight * residual,
        np.where(weight <= switch_tau, weight * residual, 0.0),
        shrunk * residual,
    )
    return np.stack(columns, axis=1).astype(np.float32)


def numpy_estimates(totals: np.ndarray) -> dict[str, float]:
    """The seven estimators from the summed statistics ``T`` (the ratios of the ope module)."""
    count, weight, weighted_reward, direct, residual, switch, shrunk = (float(t) for t in totals)
    return {
        "dm": direct / count,
        "ipw": weighted_reward / count,
        "snipw": weighted_reward / weight,
        "dr": (direct + residual) / count,
        "sndr": direct / count + residual / weight,
        "switch_dr": (direct + switch) / count,
        "dr_os": (direct + shrunk) / count,
    }


def numpy_resample(rng: np.random.Generator, stats: np.ndarray) -> dict[str, float]:
    """One bootstrap resample: ``n`` rows drawn with replacement, their counts ``c``,
    ``T = c @ stats``, the ratios."""
    num_rows = stats.shape[0]
    counts = np.bincount(rng.integers(0, num_rows, num_rows), minlength=num_rows)
    return numpy_estimates(counts.astype(np.float32) @ stats)


def numpy_bootstrap_intervals(
    rng: np.random.Generator,
    data: LoggedData,
    action_dist: np.ndarray,
    estimated_rewards: np.ndarray,
    num_resamples: int,
    level: float = 0.95,
) -> dict[str, tuple[float, float, float]]:
    """The whole request in numpy: ``{name: (estimate, low, high)}`` (percentile intervals)."""
    stats = numpy_row_statistics(data, action_dist, estimated_rewards)
    point = numpy_estimates(stats.sum(axis=0, dtype=np.float64))
    draws = [numpy_resample(rng, stats) for _ in range(num_resamples)]
    quantiles = ((1 - level) / 2, (1 + level) / 2)
    out = {}
    for name in ESTIMATORS:
        low, high = np.quantile([draw[name] for draw in draws], quantiles)
        out[name] = (point[name], float(low), float(high))
    return out


def _inputs(num_rows: int, seed: int) -> tuple[Any, dict[str, Any]]:
    start = time.perf_counter()
    data, dist, model = ope_workload(num_rows, seed)
    info = {
        "generate_seconds": time.perf_counter() - start,
        "num_actions": NUM_ACTIONS,
        "num_positions": NUM_POSITIONS,
        "click_rate": float(data.reward.mean()),
    }
    return (data, dist, model), info


def ope_suite(factory: Callable[..., Any] | None = None) -> Suite:
    """The ``ope`` suite (module docstring); ``N`` counts logged rows, ``B`` resamples.

    Args:
      factory: unused (the suites' builders share the signature ``(factory=None)``).
    """
    del factory

    def plan(config):
        rows = [("ours", n, b) for n in config.sizes for b in config.batches]
        return rows + [("numpy", n, b) for n in config.sizes for b in config.batches]

    def to_device(inputs):
        data, dist, model = inputs
        device = (
            LoggedData(*(jnp.asarray(x) for x in data)),
            jnp.asarray(dist),
            jnp.asarray(model),
        )
        return jax.block_until_ready(device)

    def jax_callable(kernel, batch, device_inputs):
        def request(key, data, dist, model):
            return bootstrap_intervals(key, data, dist, model, num_resamples=batch)

        return request, device_inputs

    def numpy_request(inputs, rng):
        stats = numpy_row_statistics(*inputs)  # once, before anything is timed
        return lambda: numpy_resample(rng, stats)

    def numpy_memory(num_rows):
        return (
            NUMPY_BYTES_PER_ROW * num_rows,
            "formula: float32 [N, 7] statistics + indices + counts",
        )

    return Suite(
        name=NAME,
        unit="rows",
        floor=None,
        plan=plan,
        make_inputs=_inputs,
        to_device=to_device,
        to_numpy=lambda inputs: inputs,
        jax_callable=jax_callable,
        numpy_request=numpy_request,
        numpy_memory=numpy_memory,
        bytes_per_item=16,
        host_bytes_per_item=HOST_BYTES_PER_ROW,
        methods={
            "rate_unit": "rows",
            "num_actions": NUM_ACTIONS,
            "num_positions": NUM_POSITIONS,
            "estimators": list(ESTIMATORS),
            "workload": "ope_workload(N, seed): uniform random behaviour over 80 items x 3 "
            "slots, clicks ~0.4%, a context-free evaluation policy and reward model "
            "(float32[1, 80, 3])",
            "ours": "evaluation.ope.bootstrap_intervals: per-row statistics, then B Poisson(1) "
            "resamples x 7 estimators in one jitted vmapped pass over row blocks "
            "(counter-based counts), percentile intervals",
            "numpy": "per resample: multinomial counts bincount(Generator.integers(0, N, N)) "
            "(faster in numpy than Generator.poisson), float32 counts @ [N, 7] statistics, "
            "7 ratios; B resamples in a Python loop (statistics computed once, untimed)",
            "speedup_vs_numpy": "numpy median / row median, same N and B",
        },
    )
