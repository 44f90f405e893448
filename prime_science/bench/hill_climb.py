"""The ``hill_climb`` benchmark: Thompson draw + hill climbing for a batch of layout requests.

Workload. A layout space of ``N = D`` components with :data:`VARIANTS` (10) variants each and
pairwise interactions (MVT2): ``D = 10`` gives ``10^10`` layouts and ``M = 1 + 100 + 45 x 100 =
4,601`` weights. A posterior ``mu ~ N(0, 1)``, ``sigma^2`` log-uniform on ``[0.01, 1]``
(:func:`hill_climb_workload`). One request draws ``w~ = mu + sigma z`` and hill-climbs
``argmax_A x_A^T w~`` with :data:`RESTARTS` random restarts of :data:`STEPS` single-component
steps (uniformly random component per step); ``B`` independent requests per call.

Kernels, per ``(N, B)``:

* ``ours``: :func:`prime_science.layouts.search.hill_climb_tables` on
  :func:`prime_science.layouts.design.score_tables` of the draw, vmapped over the ``B``
  requests, jitted.
* ``numpy``: the same algorithm per request in numpy (:func:`numpy_hill_climb`): the draw, the
  same tables by fancy indexing, the ``S`` restarts vectorised, a Python loop over the ``K``
  steps; ``B`` requests in a Python loop (the suites' convention: a numpy request is one
  request).

Timing, budgets and files: :mod:`prime_science.bench.driver`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.bench.driver import Suite
from prime_science.core.errors import fail
from prime_science.layouts import design, search
from prime_science.layouts.policy import posterior_draw

__all__ = [
    "NAME",
    "VARIANTS",
    "RESTARTS",
    "STEPS",
    "hill_climb_workload",
    "numpy_hill_climb",
    "hill_climb_suite",
]

NAME = "hill_climb"
VARIANTS = 10
RESTARTS = 10
STEPS = 20
REQUEST_CHUNK = 64


def _space(num_components: int) -> design.LayoutSpace:
    return design.layout_space((VARIANTS,) * num_components)


def hill_climb_workload(num_components: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A posterior over the MVT2 weights of ``num_components`` x 10 variants:
    ``(mean, variance)``, float32 ``[M]`` each (module docstring)."""
    if isinstance(num_components, bool) or not isinstance(num_components, int | np.integer):
        fail("num_components", "an integer >= 2", repr(num_components))
    if num_components < 2:
        fail("num_components", "an integer >= 2", repr(num_components))
    size = _space(int(num_components)).num_features
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal(size, dtype=np.float32)
    variance = (10.0 ** rng.uniform(-2.0, 0.0, size)).astype(np.float32)
    return mean, variance


@functools.lru_cache(maxsize=8)
def _table_ids(space: design.LayoutSpace) -> tuple[np.ndarray, np.ndarray]:
    """Weight ids of the ``first`` ``[D, N_max]`` and ``pair`` ``[D, N_max, D, N_max]``
    entries of :class:`~prime_science.layouts.design.ScoreTables` (``-1``: none), for
    numpy's fancy-indexing table build."""
    ids = jnp.arange(space.num_features, dtype=jnp.float32)  # exact below 2^24
    tables = design.score_tables(space, ids)
    first = np.where(np.isfinite(tables.first), np.asarray(tables.first), -1).astype(np.int64)
    pair = np.asarray(tables.pair).astype(np.int64)  # 0 (the intercept's id) marks "none"
    return first, np.where(pair > 0, pair, -1)


def numpy_hill_climb(
    space: design.LayoutSpace,
    weights: np.ndarray,
    rng: np.random.Generator,
    restarts: int = RESTARTS,
    steps: int = STEPS,
) -> tuple[np.ndarray, float]:
    """Hill climbing in numpy: the algorithm of :func:`prime_science.layouts.search.climb`
    (tables, carried pairwise sums ``G``, ``S`` restarts vectorised, a loop over ``K`` steps).

    Returns:
      ``(layout, score)``: int ``[D]`` and its score under ``weights``.
    """
    first_ids, pair_ids = _table_ids(space)
    first = np.where(first_ids >= 0, weights[np.maximum(first_ids, 0)], -np.inf)
    pair = np.where(pair_ids >= 0, weights[np.maximum(pair_ids, 0)], 0.0)
    d = space.num_components
    sizes = np.asarray(space.num_variants)
    layouts = np.minimum((rng.random((restarts, d)) * sizes).astype(np.int64), sizes - 1)
    components = rng.integers(0, d, (restarts, steps))
    rows, others = np.arange(restarts), np.arange(d)
    sums = pair[others[None, :], layouts].sum(axis=1)  # G: [S, D, N_max]
    for k in range(steps):
        c = components[:, k]
        new = np.argmax(first[c] + sums[rows, c], axis=1)
        sums += pair[c, new] - pair[c, layouts[rows, c]]
        layouts[rows, c] = new
    upper = np.triu(np.ones((d, d), bool), 1)
    pairs = pair[others[:, None], layouts[:, :, None], others[None, :], layouts[:, None, :]]
    scores = (
        weights[0]
        + first[others[None, :], layouts].sum(axis=1)
        + np.where(upper, pairs, 0.0).sum(axis=(1, 2))
    )
    best = int(np.argmax(scores))
    return layouts[best], float(scores[best])


def _inputs(num_components: int, seed: int) -> tuple[Any, dict[str, Any]]:
    start = time.perf_counter()
    mean, variance = hill_climb_workload(num_components, seed)
    space = _space(num_components)
    info = {
        "generate_seconds": time.perf_counter() - start,
        "num_variants": VARIANTS,
        "num_layouts": space.num_layouts,
        "num_features": space.num_features,
        "restarts": RESTARTS,
        "steps": STEPS,
    }
    return (mean, variance), info


def _requests_fn(num_components: int, batch: int) -> Callable[..., Any]:
    """``(key, mean, variance) -> int32[B, D]``: ``B`` Thompson draws, each hill-climbed."""
    space = _space(num_components)

    def one(key, mean, variance):
        key_draw, key_search = jax.random.split(key)
        weights = posterior_draw(key_draw, mean, variance)
        tables = design.score_tables(space, weights)
        return search.hill_climb_tables(key_search, space, tables, RESTARTS, STEPS).layout

    def requests(key, mean, variance):
        # Chunks of REQUEST_CHUNK requests are vmapped and run one after the other, so a
        # chunk's tables (40 KB per request at D = N = 10) stay in cache: on the 2-core CPU,
        # B = 1024 took 57 ms in chunks of 64 against 146 ms as one vmap (32: 60 ms, 16: 71 ms).
        keys = jax.random.split(key, batch)
        return jax.lax.map(
            lambda key: one(key, mean, variance), keys, batch_size=min(batch, REQUEST_CHUNK)
        )

    return requests


def hill_climb_suite(factory: Callable[..., Any] | None = None) -> Suite:
    """The ``hill_climb`` suite (module docstring); ``N`` is the number of components.

    Args:
      factory: unused (the suites' builders share the signature ``(factory=None)``).
    """
    del factory

    def plan(config):
        rows = [("ours", n, b) for n in config.sizes for b in config.batches]
        return rows + [("numpy", n, b) for n in config.sizes for b in config.batches]

    def to_device(inputs):
        return jax.block_until_ready(tuple(jnp.asarray(x) for x in inputs))

    def jax_callable(kernel, batch, device_inputs):
        mean = device_inputs[0]
        num_components = _components_of(mean.shape[0])
        return _requests_fn(num_components, batch), device_inputs

    def numpy_request(inputs, rng):
        mean, std = inputs
        space = _space(_components_of(mean.shape[0]))
        _table_ids(space)  # built once (cached) before anything is timed

        def request():
            weights = mean + std * rng.standard_normal(mean.shape[0], dtype=np.float32)
            return numpy_hill_climb(space, weights, rng)

        return request

    def numpy_memory(num_components):
        space = _space(num_components)
        table = space.num_components**2 * VARIANTS**2
        return (
            8 * space.num_features + 16 * table + 8 * RESTARTS * num_components * VARIANTS,
            "formula: float32 draw, int32 ids + float64 pair table, [S, D, N] deltas",
        )

    return Suite(
        name=NAME,
        unit="components",
        floor=None,
        plan=plan,
        make_inputs=_inputs,
        to_device=to_device,
        to_numpy=lambda inputs: (inputs[0], np.sqrt(inputs[1])),
        jax_callable=jax_callable,
        numpy_request=numpy_request,
        numpy_memory=numpy_memory,
        bytes_per_item=4 * VARIANTS**2 * 10,
        host_bytes_per_item=8 * VARIANTS**2 * 10,
        methods={
            "rate_unit": "components",
            "num_variants": VARIANTS,
            "restarts": RESTARTS,
            "steps": STEPS,
            "workload": "hill_climb_workload(D, seed): MVT2 weights of D components x 10 "
            "variants, mu ~ N(0, 1), sigma^2 log-uniform on [0.01, 1]",
            "ours": "per request: w = mu + sigma * normal, design.score_tables, "
            "search.hill_climb_tables(S restarts vmapped, K random-component steps); vmap over "
            "B requests, jitted",
            "numpy": "per request: the same draw, tables and hill climb in numpy (S restarts "
            "vectorised, a Python loop over K steps); B requests in a Python loop",
            "speedup_vs_numpy": "numpy median / row median, same N and B",
        },
    )


def _components_of(num_features: int) -> int:
    """``D`` from ``M = 1 + 10 D + 100 D (D - 1) / 2``."""
    for d in range(2, 1000):
        if _space(d).num_features == num_features:
            return d
    fail("num_features", "the weight count of D x 10 variants", num_features)
    return 0
