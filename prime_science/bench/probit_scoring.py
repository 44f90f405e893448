"""The ``probit_scoring`` suite: Thompson scoring of ``N`` candidates and the top ``k = 10``.

Each candidate has ``K = 8`` active feature ids out of ``M = 5000``; a call serves ``B``
independent requests over the same candidates (:func:`probit_workload`: random means, variances
in ``[0.01, 1]``). Kernels, per ``(N, B)``:

* ``ours``: ``probit_adf(M, exploration="thompson").sample`` (``B = 1``) or ``.sample_batch``
  (``B > 1``), jitted.
* ``ours_greedy``: the same with ``exploration="greedy"`` (posterior-mean scores, computed once
  per call, then a top-``k`` with random tie-breaking per request): context, not a baseline.
* ``numpy``: per request ``w = mu + sigma * Generator.standard_normal(M)``, then
  :func:`numpy_top_k` (``w[ids].sum(axis=1)``, ``np.argpartition``, a sort of the ``k``);
  ``B`` requests in a Python loop.

Timing, budgets and files: :mod:`prime_science.bench.driver`.
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

__all__ = [
    "ACCELERATOR_SIZES",
    "CPU_SIZES",
    "NAME",
    "NUM_ACTIVE",
    "NUM_FEATURES",
    "TOP_K",
    "numpy_top_k",
    "probit_scoring_suite",
    "probit_workload",
]

NAME = "probit_scoring"
CPU_SIZES = (100_000, 1_000_000)
ACCELERATOR_SIZES = (*CPU_SIZES, 10_000_000)
NUM_FEATURES = 5_000
NUM_ACTIVE = 8
TOP_K = 10
HOST_BYTES_PER_CANDIDATE = 8 * NUM_ACTIVE  # int32 ids, numpy's float32 gather


def probit_workload(
    num_candidates: int,
    seed: int,
    num_features: int = NUM_FEATURES,
    num_active: int = NUM_ACTIVE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A probit posterior and a candidate set to score against it.

    Means ``mu_i ~ N(0, 1)``, variances ``sigma_i^2 = 10^U``, ``U ~ Uniform(-2, 0)`` (log-uniform
    on ``[0.01, 1]``), and ``candidate_ids[c, j]`` uniform on ``[0, num_features)`` (no padding;
    an id may repeat within a row, which the scorer counts twice, as the policy does).

    Returns:
      ``(mean, variance, candidate_ids)``: float32 ``[num_features]`` twice and int32
      ``[num_candidates, num_active]``.
    """
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, int | np.integer):
        fail("num_candidates", "a positive integer", repr(num_candidates))
    if num_candidates < 1:
        fail("num_candidates", "a positive integer", repr(num_candidates))
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal(num_features, dtype=np.float32)
    variance = (10.0 ** rng.uniform(-2.0, 0.0, num_features)).astype(np.float32)
    ids = rng.integers(0, num_features, (num_candidates, num_active), dtype=np.int32)
    return mean, variance, ids


def numpy_top_k(
    weights: np.ndarray, candidate_ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best rows of ``candidate_ids`` under ``scores = weights[ids].sum(axis=1)``.

    ``np.argpartition`` finds the ``k`` best in linear time and only those ``k`` are sorted
    (best first; equal scores in row order, as ``jax.lax.top_k``).

    Returns:
      ``(rows, scores)``: int ``[k]`` row indices and their scores.
    """
    scores = weights[candidate_ids].sum(axis=1)
    best = np.argpartition(scores, scores.shape[0] - k)[-k:]
    best = best[np.lexsort((best, -scores[best]))]
    return best, scores[best]


def _probit_inputs(num_candidates: int, seed: int) -> tuple[tuple[np.ndarray, ...], dict]:
    start = time.perf_counter()
    mean, variance, ids = probit_workload(num_candidates, seed)
    info = {
        "generate_seconds": time.perf_counter() - start,
        "num_features": NUM_FEATURES,
        "num_active": NUM_ACTIVE,
        "mean_of_means": float(mean.mean(dtype=np.float64)),
        "median_variance": float(np.median(variance)),
    }
    return (mean, variance, ids), info


def probit_scoring_suite(factory: Callable[..., Any] | None = None) -> Suite:
    """The ``probit_scoring`` suite: Thompson scoring + top-``k`` of ``N`` candidates.

    Args:
      factory: ``prime_science.bandits.probit.probit_adf`` unless given; called as
        ``factory(num_features=M, exploration=...)`` with ``"thompson"`` (``ours``) and
        ``"greedy"`` (``ours_greedy``).
    """
    if factory is None:
        from prime_science.bandits.probit import probit_adf as factory
    policies = {
        kernel: factory(num_features=NUM_FEATURES, exploration=exploration)
        for kernel, exploration in (("ours", "thompson"), ("ours_greedy", "greedy"))
    }
    k = TOP_K

    def plan(config):
        rows = [(kernel, n, b) for n in config.sizes for b in config.batches for kernel in policies]
        return rows + [("numpy", n, b) for n in config.sizes for b in config.batches]

    def to_device(inputs):
        mean, variance, ids = inputs
        state = policies["ours"].init()
        state = state._replace(mean=jnp.asarray(mean), variance=jnp.asarray(variance))
        return jax.block_until_ready((state, jnp.asarray(ids)))

    def jax_callable(kernel, batch, device_inputs):
        policy = policies[kernel]
        if batch == 1:
            return (lambda key, s, ids: policy.sample(key, s, ids, k)), device_inputs
        return (lambda key, s, ids: policy.sample_batch(key, s, ids, k, batch)), device_inputs

    def numpy_request(inputs, rng):
        mean, std, ids = inputs

        def request():
            weights = mean + std * rng.standard_normal(mean.shape[0], dtype=np.float32)
            return numpy_top_k(weights, ids, k)

        return request

    return Suite(
        name=NAME,
        unit="candidates",
        floor=None,
        plan=plan,
        make_inputs=_probit_inputs,
        to_device=to_device,
        to_numpy=lambda inputs: (inputs[0], np.sqrt(inputs[1]), inputs[2]),
        jax_callable=jax_callable,
        numpy_request=numpy_request,
        numpy_memory=lambda n: (
            (4 + 4 + 1) * NUM_ACTIVE * n + 8 * NUM_FEATURES,
            "formula: int32 ids, float32 gathered [N, K] and scores [N], int64 partition",
        ),
        bytes_per_item=4 * NUM_ACTIVE,
        host_bytes_per_item=HOST_BYTES_PER_CANDIDATE,
        methods={
            "k": k,
            "num_features": NUM_FEATURES,
            "num_active": NUM_ACTIVE,
            "rate_unit": "candidates",
            "workload": "probit_workload(N, seed): mu ~ N(0, 1), sigma^2 log-uniform on "
            "[0.01, 1], candidate ids uniform on [0, M), K per row",
            "ours": "probit_adf(M, exploration='thompson').sample / .sample_batch(key, state, "
            "ids, k, B), jitted",
            "ours_greedy": "the same with exploration='greedy' (posterior-mean scores, once "
            "per call; random tie-breaking per request)",
            "numpy": "per request: w = mu + sigma * Generator.standard_normal(M) (float32), "
            "scores = w[ids].sum(axis=1), top k by np.argpartition + sort of the k; "
            "B requests in a Python loop",
            "speedup_vs_numpy": "numpy median / row median, same N and B",
        },
    )
