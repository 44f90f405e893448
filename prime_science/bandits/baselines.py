"""Baseline selection over a Beta–Bernoulli state: greedy on the posterior mean, and uniform.

Both have the signature of :class:`~prime_science.core.types.ArmSampleFn`
(``sample(key, state, k, available=None) -> Selection``), so an experiment can run them in
place of :func:`~prime_science.bandits.beta_bernoulli.beta_bernoulli`'s Thompson ``sample``
on the same :class:`~prime_science.bandits.beta_bernoulli.BetaBernoulliState` and ``update``:

* :func:`greedy_sample`: the top ``k`` arms by posterior mean ``alpha_i / (alpha_i + beta_i)``,
  ties broken uniformly at random (:func:`prime_science.bandits.selection.greedy`);
* :func:`uniform_sample`: ``k`` distinct arms uniformly at random, i.e. an A/B/n test
  (:func:`prime_science.bandits.selection.uniform`).

Only active arms (and, with ``available``, available ones) are chosen; fewer than ``k`` leave
slots with arm ``-1`` and score ``-inf``, as in ``beta_bernoulli``. Both are pure and
jittable (``k`` static) and check their arguments as ``beta_bernoulli``'s ``sample`` does
(``InvalidArgumentError`` naming ``key``, ``k`` or ``available``).
"""

from __future__ import annotations

import jax
import numpy as np

from prime_science.bandits import selection
from prime_science.bandits.beta_bernoulli import BetaBernoulliState
from prime_science.core import errors
from prime_science.core.types import PRNGKey, Selection

__all__ = ["greedy_sample", "uniform_sample"]


def _eligible(
    key: PRNGKey, state: BetaBernoulliState, k: int, available: jax.Array | None
) -> jax.Array:
    """The boundary checks of ``beta_bernoulli``'s ``sample``, then the mask of arms that may
    be chosen: active and available."""
    errors.check_key("key", key)
    capacity = np.shape(state.alpha)[0]
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= capacity:
        errors.fail("k", f"an integer in [1, {capacity}]", repr(k))
    selection.check_available(available, capacity, k)
    return state.active if available is None else state.active & available


def greedy_sample(
    key: PRNGKey, state: BetaBernoulliState, k: int, available: jax.Array | None = None
) -> Selection:
    """The top ``k`` eligible arms by posterior mean ``alpha / (alpha + beta)``, ties at random;
    the scores are the posterior means."""
    mean = state.alpha / (state.alpha + state.beta)
    return selection.greedy(key, mean, k, _eligible(key, state, k, available))


def uniform_sample(
    key: PRNGKey, state: BetaBernoulliState, k: int, available: jax.Array | None = None
) -> Selection:
    """``k`` distinct eligible arms uniformly at random; the scores are their uniforms."""
    eligible = _eligible(key, state, k, available)
    return selection.uniform(key, state.alpha.shape[0], k, eligible)
