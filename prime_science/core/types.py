"""Types and protocols shared by every policy.

A bandit policy is a NamedTuple of pure functions over a NamedTuple state of arrays, in the
style of optax's ``GradientTransformation``::

    state = policy.init(num_arms)
    selection = policy.sample(key, state, k)     # key first: anything that draws takes it
    state = policy.update(state, arms, rewards)

Static configuration (priors, sizes) lives in the factory's closure; everything that changes
lives in the state, so ``jit``, ``vmap``, ``lax.scan`` and sharding apply without ceremony.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax

__all__ = [
    "PRNGKey",
    "Selection",
    "BanditPolicy",
    "SolverInfo",
    "InitFn",
    "SampleFn",
    "UpdateFn",
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


class InitFn(Protocol):
    def __call__(self, num_arms: int, *args: Any, **kwargs: Any) -> Any: ...


class SampleFn(Protocol):
    def __call__(self, key: PRNGKey, state: Any, k: int = 1) -> Selection: ...


class UpdateFn(Protocol):
    def __call__(self, state: Any, arms: jax.Array, rewards: jax.Array, *args: Any) -> Any: ...


class BanditPolicy(NamedTuple):
    """The policy protocol: three pure functions.

    ``init(num_arms) -> state``; ``sample(key, state, k) -> Selection`` draws once from the
    posterior and returns the top-``k`` arms; ``update(state, arms, rewards) -> state`` folds in
    a batch of observations and returns a state with the same tree, shapes and dtypes.
    """

    init: InitFn
    sample: SampleFn
    update: UpdateFn


class SolverInfo(NamedTuple):
    """How an iterative solver or fit ended: iterations used, the final
    residual (e.g. a gradient norm), and whether it fell below the tolerance."""

    num_iters: jax.Array
    residual: jax.Array
    converged: jax.Array
