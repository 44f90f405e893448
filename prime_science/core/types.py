"""Types and protocols shared by every policy.

A bandit policy is a NamedTuple of pure functions over a NamedTuple state of arrays, in the
style of optax's ``GradientTransformation``::

    state = policy.init(num_arms)
    selection = policy.sample(key, state, k)     # key first: anything that draws takes it
    state = policy.update(state, arms, rewards)

Each policy family has one record of typed functions: :class:`ArmPolicy` (an arm axis:
Beta–Bernoulli and its baselines) and :class:`ClickPolicy` (click models over candidates given
as lists of feature ids: probit ADF, Laplace logistic); the layout policies'
:class:`~prime_science.layouts.policy.LayoutPolicy` lives with them. Every ``sample`` takes an
optional availability mask; the rules are in :mod:`prime_science.bandits.selection`.

Static configuration (priors, sizes) lives in the factory's closure; everything that changes
lives in the state, so ``jit``, ``vmap``, ``lax.scan`` and sharding apply without ceremony.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax

__all__ = [
    "PRNGKey",
    "Selection",
    "ArmSampleFn",
    "ArmSampleBatchFn",
    "ArmUpdateFn",
    "ArmLifecycleFn",
    "ArmPolicy",
    "CandidateSampleFn",
    "CandidateSampleBatchFn",
    "ClickUpdateFn",
    "PredictFn",
    "ClickPolicy",
    "SolverInfo",
]

PRNGKey = jax.Array
"""A typed key from ``jax.random.key`` (legacy ``uint32[2]`` keys are accepted too)."""


class Selection(NamedTuple):
    """What a policy chose for one request.

    Attributes:
      arms: ``int32[k]`` chosen arm ids, best first. ``-1`` marks a slot left empty because
        fewer than ``k`` arms were active.
      scores: ``float32[k]`` the sampled scores of those arms (for Beta–Bernoulli, the
        posterior draw of the arm's success probability); ``-inf`` for empty slots.
    """

    arms: jax.Array
    scores: jax.Array


class ArmSampleFn(Protocol):
    """``sample(key, state, k=1, available=None) -> Selection``: one request over the arm axis."""

    def __call__(
        self, key: PRNGKey, state: Any, k: int = 1, available: jax.Array | None = None
    ) -> Selection: ...


class ArmSampleBatchFn(Protocol):
    """``sample_batch(key, state, k=1, num_requests=1, available=None) -> Selection`` with a
    leading request axis; request ``j`` uses ``jax.random.split(key, num_requests)[j]``."""

    def __call__(
        self,
        key: PRNGKey,
        state: Any,
        k: int = 1,
        num_requests: int = 1,
        available: jax.Array | None = None,
    ) -> Selection: ...


class ArmUpdateFn(Protocol):
    """``update(state, arms, rewards, weights=None) -> state`` (same tree, shapes, dtypes)."""

    def __call__(
        self, state: Any, arms: jax.Array, rewards: jax.Array, weights: jax.Array | None = None
    ) -> Any: ...


class ArmLifecycleFn(Protocol):
    """``add_arms(state, arm_ids)`` / ``retire_arms(state, arm_ids)`` -> state."""

    def __call__(self, state: Any, arm_ids: jax.Array) -> Any: ...


class ArmPolicy(NamedTuple):
    """A bandit over an arm axis (Beta–Bernoulli Thompson sampling and its baselines).

    ``init(num_arms, num_active=None) -> state``; ``sample`` draws once from the posterior and
    returns the top-``k`` arms; ``update`` folds in a batch of observations; ``add_arms`` /
    ``retire_arms`` change which slots are active.
    """

    init: Callable[..., Any]
    sample: ArmSampleFn
    update: ArmUpdateFn
    sample_batch: ArmSampleBatchFn
    add_arms: ArmLifecycleFn
    retire_arms: ArmLifecycleFn


class CandidateSampleFn(Protocol):
    """``sample(key, state, candidate_ids, k=1, available=None) -> Selection``: one request
    over the rows of ``candidate_ids: int[N, K]`` (lists of feature ids)."""

    def __call__(
        self,
        key: PRNGKey,
        state: Any,
        candidate_ids: jax.Array,
        k: int = 1,
        available: jax.Array | None = None,
    ) -> Selection: ...


class CandidateSampleBatchFn(Protocol):
    """``sample_batch(key, state, candidate_ids, k=1, num_requests=1, available=None)``: a
    ``Selection`` with a leading request axis over the same candidates."""

    def __call__(
        self,
        key: PRNGKey,
        state: Any,
        candidate_ids: jax.Array,
        k: int = 1,
        num_requests: int = 1,
        available: jax.Array | None = None,
    ) -> Selection: ...


class ClickUpdateFn(Protocol):
    """``update(state, feature_ids, clicks, ...) -> state`` (same tree, shapes, dtypes)."""

    def __call__(
        self, state: Any, feature_ids: jax.Array, clicks: jax.Array, *args: Any
    ) -> Any: ...


class PredictFn(Protocol):
    """``predict(state, feature_ids) -> float[n]``: predictive click probabilities."""

    def __call__(self, state: Any, feature_ids: jax.Array) -> jax.Array: ...


class ClickPolicy(NamedTuple):
    """A click model over feature-id candidates with a selection rule (probit ADF, Laplace
    logistic): ``init(dtype=float32) -> state``, ``sample``, ``update``, ``sample_batch``,
    ``predict``, all pure."""

    init: Callable[..., Any]
    sample: CandidateSampleFn
    update: ClickUpdateFn
    sample_batch: CandidateSampleBatchFn
    predict: PredictFn


class SolverInfo(NamedTuple):
    """How an iterative solver or fit ended: iterations used, the final
    residual (e.g. a gradient norm), and whether it fell below the tolerance."""

    num_iters: jax.Array
    residual: jax.Array
    converged: jax.Array
