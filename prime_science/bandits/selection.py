"""Selection rules: which ``k`` of ``N`` candidates one request shows, given their scores.

Every rule is a small function of one request's scores ``s: float[N]`` and an optional
availability mask ``available: bool[N]`` (``None``: every row is available); it returns a
:class:`~prime_science.core.types.Selection` of ``k`` rows, best first. What the scores are is
the model's business; the rule says how they are ranked:

* Thompson: :func:`top_k` of **one posterior draw** of the scores (one draw per request): the
  top ``k``, ties to the lower row (exact ties have probability zero under a continuous draw;
  rows with the same features tie exactly and are interchangeable). :func:`top_k` also serves
  any deterministic index whose ties may go to the lower row.
* :func:`greedy` ranks the **posterior-mean** scores; ties are broken uniformly at random by
  ``key``, lexicographically on ``(score, u_row)`` with ``u_row`` uniform on ``(0, 1)`` (not by
  adding noise to the scores: noise small enough not to reorder distinct float scores rounds
  away on most ties). Pass 1 finds the ``k``-th largest score ``s_k``; pass 2 takes the top
  ``k`` of the rank ``2`` (score above ``s_k``: all chosen), ``u_row`` (score equal to ``s_k``:
  a uniform subset of the ties fills the rest) or ``-1`` (below); the ``k`` chosen are then
  sorted by ``(score, u)``.
* :func:`epsilon_greedy`: with probability ``epsilon`` (one coin per request) ``k`` distinct
  available rows uniformly at random (:func:`uniform`), otherwise :func:`greedy`; the reported
  scores are the given (mean) scores of the chosen rows.
* UCB: :func:`greedy` over the upper bounds ``s_c + c sqrt(v_c)`` of :func:`upper_bounds`
  (``v_c`` the posterior variance of the score).
* :func:`uniform`: ``k`` distinct available rows uniformly at random (the top ``k`` of i.i.d.
  uniforms; the A/B/n baseline and the exploring branch of epsilon-greedy).

Randomness. The uniforms are counter-based (:func:`prime_science.core.random.random_bits`,
stream 0 for tie-breaking, stream 1 for :func:`uniform`): ``u_row`` is a pure function of
``(key, stream, row)``, one float32 per row on a 24-bit grid. Two rows share a value with
probability ``2^-24``, and then the lower row wins. :func:`epsilon_greedy` splits ``key`` once
into ``(coin, choice)``.

Availability. Unavailable rows are never selected. When fewer than ``k`` rows are available
the trailing slots hold row ``-1`` and score ``-inf`` (the convention of
:func:`~prime_science.bandits.beta_bernoulli.beta_bernoulli` for inactive arms);
:func:`check_available` refuses that at the boundary when the mask is concrete
(``InvalidArgumentError`` naming ``available``). Scores are assumed finite: an available row
scoring ``-inf`` ties with the masked rows and may lose its slot to one (the slot reads
``-1``).

A model draws (or averages) its scores once per request and hands them to :func:`select` with
its :class:`SelectionRule` (``k`` static under ``jit``); the linear click models go through
:func:`select_linear`, which keeps the Thompson draw fused into the scorer and shardable, and
get their public ``sample`` / ``sample_batch`` from :func:`entry_points`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.bandits.scoring import check_scalar, linear_top_k, materialise
from prime_science.core import errors
from prime_science.core.random import key_words, random_bits, top_k_with_ids, uniform_open
from prime_science.core.types import PRNGKey, Selection

__all__ = [
    "RULES",
    "SelectionRule",
    "selection_rule",
    "top_k",
    "greedy",
    "epsilon_greedy",
    "upper_bounds",
    "uniform",
    "select",
    "fill_empty",
    "check_available",
    "entry_points",
    "select_linear",
]

RULES = ("thompson", "greedy", "epsilon_greedy", "ucb")
"""The selection rules (module docstring)."""

_TIE_STREAM, _UNIFORM_STREAM = 0, 1  # streams of core.random.random_bits


class SelectionRule(NamedTuple):
    """A validated selection rule (static configuration, hashable).

    Attributes:
      name: one of :data:`RULES`.
      epsilon: exploration probability of ``"epsilon_greedy"``, in ``[0, 1]``.
      ucb_scale: ``c >= 0`` of ``"ucb"``.
    """

    name: str
    epsilon: float
    ucb_scale: float

    @property
    def draws(self) -> bool:
        """Whether the rule ranks a posterior draw (Thompson) rather than fixed scores."""
        return self.name == "thompson"


def selection_rule(
    exploration: str = "thompson", *, epsilon: float = 0.05, ucb_scale: float = 1.0
) -> SelectionRule:
    """The :class:`SelectionRule` named ``exploration``; ``InvalidArgumentError`` naming
    ``exploration``, ``epsilon`` (not in ``[0, 1]``) or ``ucb_scale`` (not ``>= 0``)."""
    if exploration not in RULES:
        errors.fail("exploration", f"one of {RULES}", repr(exploration))
    epsilon = check_scalar("epsilon", epsilon, 0.0, 1.0, "in [0, 1]")
    ucb_scale = check_scalar("ucb_scale", ucb_scale, 0.0, np.inf, ">= 0")
    return SelectionRule(exploration, epsilon, ucb_scale)


def _uniforms(key: PRNGKey, stream: int, size: int) -> jax.Array:
    """``size`` float32 uniforms on (0, 1), a pure function of ``(key, stream, row)``. Float,
    not integer: XLA:CPU's top-k on int32 is a full sort (200x slower)."""
    counters = jnp.arange(size, dtype=jnp.uint32)
    return uniform_open(random_bits(key_words(key), stream, counters))


def fill_empty(top: jax.Array, rows: jax.Array, available: jax.Array | None) -> Selection:
    """``Selection(rows, top)`` with row ``-1`` and score ``-inf`` in every slot whose row is
    not available (the slots left over when fewer than ``k`` rows are available)."""
    rows = rows.astype(jnp.int32)
    if available is None:
        return Selection(arms=rows, scores=top)
    taken = available[rows]
    return Selection(
        arms=jnp.where(taken, rows, -1), scores=jnp.where(taken, top, -jnp.inf).astype(top.dtype)
    )


def _masked(values: jax.Array, available: jax.Array | None) -> jax.Array:
    return values if available is None else jnp.where(available, values, -jnp.inf)


def top_k(scores: jax.Array, k: int, available: jax.Array | None = None) -> Selection:
    """The top ``k`` available rows of ``scores: float[N]`` (for Thompson sampling, one
    posterior draw), best first; ties to the lower row."""
    rows = jnp.arange(scores.shape[0], dtype=jnp.int32)
    top, chosen = top_k_with_ids(_masked(scores, available), rows, k)
    return fill_empty(top, chosen, available)


def greedy(
    key: PRNGKey, scores: jax.Array, k: int, available: jax.Array | None = None
) -> Selection:
    """The top ``k`` available rows of ``scores: float[N]``, ties broken uniformly at random
    by ``key`` (module docstring: two passes, then a sort of the ``k``)."""
    scores = _masked(scores, available)
    rows = jnp.arange(scores.shape[0], dtype=jnp.int32)
    tie_keys = _uniforms(key, _TIE_STREAM, scores.shape[0])
    # Read s_k through the top-k's row ids: with its values alone XLA:CPU lowers the top-k to
    # a full sort (100x slower).
    kth_score = scores[top_k_with_ids(scores, rows, k)[1][-1]]
    rank = jnp.where(scores > kth_score, 2.0, jnp.where(scores == kth_score, tie_keys, -1.0))
    _, chosen = top_k_with_ids(rank, rows, k)
    negated_scores, _, chosen = jax.lax.sort(
        (-scores[chosen], -tie_keys[chosen], chosen), num_keys=2
    )
    return fill_empty(-negated_scores, chosen, available)


def uniform(key: PRNGKey, num_rows: int, k: int, available: jax.Array | None = None) -> Selection:
    """``k`` distinct available rows of ``num_rows`` uniformly at random; the scores are the
    rows' uniforms (the top ``k`` of i.i.d. uniforms on ``(0, 1)``)."""
    return top_k(_uniforms(key, _UNIFORM_STREAM, num_rows), k, available)


def epsilon_greedy(
    key: PRNGKey,
    scores: jax.Array,
    k: int,
    epsilon: float,
    available: jax.Array | None = None,
) -> Selection:
    """With probability ``epsilon`` :func:`uniform` (reporting ``scores`` of its rows), else
    :func:`greedy`; ``key`` splits into the coin's key and the choice's key."""
    coin_key, choice_key = jax.random.split(key)

    def explore(choice_key):
        picked = uniform(choice_key, scores.shape[0], k, available)
        return picked._replace(scores=jnp.where(picked.arms >= 0, scores[picked.arms], -jnp.inf))

    def exploit(choice_key):
        return greedy(choice_key, scores, k, available)

    explores = jax.random.uniform(coin_key) < epsilon
    return jax.lax.cond(explores, explore, exploit, choice_key)


def upper_bounds(mean_scores: jax.Array, score_variance: jax.Array, scale: float) -> jax.Array:
    """The UCB index ``s_c + scale * sqrt(v_c)`` of posterior-mean scores ``s`` and their
    posterior variances ``v``."""
    return mean_scores + scale * jnp.sqrt(score_variance)


def select(
    rule: SelectionRule,
    key: PRNGKey,
    scores: jax.Array,
    k: int,
    available: jax.Array | None = None,
) -> Selection:
    """One request under ``rule``: ``scores`` are a posterior draw (``"thompson"``), the
    posterior-mean scores (``"greedy"``, ``"epsilon_greedy"``) or :func:`upper_bounds`
    (``"ucb"``). ``key`` is unused by Thompson (the draw carries the randomness)."""
    if rule.draws:
        return top_k(scores, k, available)
    if rule.name == "epsilon_greedy":
        return epsilon_greedy(key, scores, k, rule.epsilon, available)
    return greedy(key, scores, k, available)


def check_available(available: Any, num_rows: int, k: int) -> None:
    """``available``: ``None`` or a ``bool[num_rows]`` mask; when concrete, with at least
    ``k`` rows available. ``InvalidArgumentError`` naming ``available`` otherwise."""
    if available is None:
        return
    errors.check_rank("available", available, 1)
    errors.check_dtype_kind("available", available, "b", "a bool mask")
    if np.shape(available)[0] != num_rows:
        errors.fail("available", f"one entry per candidate ({num_rows})", np.shape(available))
    if errors.is_concrete(available):
        count = int(np.sum(np.asarray(available)))
        if count < k:
            errors.fail("available", f"at least k = {k} available candidates", count)


def entry_points(check_sample: Any, sample_core: Any, sample_batch_core: Any) -> tuple[Any, Any]:
    """The public ``sample`` and ``sample_batch`` of a model that selects among candidate rows:
    the boundary checks (``check_sample(state, candidate_ids, k)``, the key, the mask, a
    positive integer ``num_requests``), then the jitted cores
    ``sample_core(key, state, ids, k, available)`` and
    ``sample_batch_core(key, state, ids, k, num_requests, available)`` (``k``,
    ``num_requests`` static). Used by :func:`~prime_science.bandits.probit.probit_adf` and
    :func:`~prime_science.bandits.logistic.logistic_laplace`.
    """

    def sample(
        key: PRNGKey,
        state: Any,
        candidate_ids: jax.Array,
        k: int = 1,
        available: jax.Array | None = None,
    ) -> Selection:
        """The top ``k`` of ``N`` candidates for one request under the model's rule, best first.

        Args:
          key: one PRNG key (``jax.random.key`` or legacy ``uint32[2]``); drives the posterior
            draw / tie-breaking / exploration.
          state: the posterior.
          candidate_ids: ``int[N, K]`` active ids of each candidate, ``-1`` = padding.
          k: how many to return, ``1 <= k <= N``; static under ``jit``.
          available: optional ``bool[N]``: which candidates may be shown (default all).

        Returns:
          ``Selection(arms=int32[k] candidate rows, scores=float[k])``; the scores are what was
          ranked (sampled linear scores, posterior-mean scores, or upper bounds). Unavailable
          rows are never chosen; a concrete mask with fewer than ``k`` available rows raises
          ``InvalidArgumentError`` (under ``jit``: the spare slots hold ``-1`` / ``-inf``).
        """
        errors.check_key("key", key)
        check_sample(state, candidate_ids, k)
        check_available(available, np.shape(candidate_ids)[0], k)
        return sample_core(key, state, candidate_ids, int(k), available)

    def sample_batch(
        key: PRNGKey,
        state: Any,
        candidate_ids: jax.Array,
        k: int = 1,
        num_requests: int = 1,
        available: jax.Array | None = None,
    ) -> Selection:
        """``num_requests`` independent requests over the same candidates and mask: a
        ``Selection`` with a leading request axis (``arms: int32[num_requests, k]``); request
        ``j`` equals ``sample(jax.random.split(key, num_requests)[j], ...)``."""
        errors.check_key("key", key)
        check_sample(state, candidate_ids, k)
        if isinstance(num_requests, bool) or not isinstance(num_requests, int | np.integer):
            errors.fail("num_requests", "a positive integer", repr(num_requests))
        if num_requests < 1:
            errors.fail("num_requests", "a positive integer", repr(num_requests))
        check_available(available, np.shape(candidate_ids)[0], k)
        return sample_batch_core(key, state, candidate_ids, int(k), int(num_requests), available)

    return sample, sample_batch


def select_linear(
    rule: SelectionRule,
    key: PRNGKey,
    candidate_ids: jax.Array,
    k: int,
    available: jax.Array | None = None,
    *,
    weights: jax.Array | None = None,
    scores: jax.Array | None = None,
    mesh: Any = None,
) -> Selection:
    """One request of a linear click model under ``rule``.

    Thompson ranks ``x_c^T w~`` for the request's weight draw ``weights: float[M]`` over the
    rows of ``candidate_ids: int[N, K]`` (:func:`~prime_science.bandits.scoring.linear_top_k`,
    the candidate axis split over ``mesh`` if given; the draw is materialised first, or XLA
    redraws it per gather). The other rules rank the key-independent ``scores: float[N]``
    (posterior-mean scores or :func:`upper_bounds`) with :func:`select`.
    """
    if rule.draws:
        top, rows = linear_top_k(materialise(weights), candidate_ids, k, available, mesh)
        return fill_empty(top, rows, available)
    return select(rule, key, scores, k, available)
