"""Tabular PQR: the reward of a logit dynamic discrete choice model from its policy, its
transitions and one anchor action of known reward (Geng et al. 2020, ICML).

Model (:mod:`.mdp`): ``Q(s, a) = r(s, a) + beta E_{s'|s,a}[V(s')]``,
``V(s) = alpha log sum_a exp(Q(s, a) / alpha)``, ``pi(a | s) = exp((Q(s, a) - V(s)) / alpha)``.
Inverting the policy (Hotz and Miller 1993) gives, for every action, ``V(s) = Q(s, a) - alpha
log pi(a | s)``. With an anchor action ``a_A`` whose reward ``r_A(s) = r(s, a_A)`` is known:

1. Q-step. ``Q_A(s) = Q(s, a_A)`` solves the linear equation::

       Q_A = r_A + beta P_A (Q_A - alpha log pi_A),     P_A = P[a_A],  log pi_A = log pi(a_A | .),

   a ``beta``-contraction in the sup norm, so its solution is unique:
   ``Q_A = (I - beta P_A)^{-1} (r_A - alpha beta P_A log pi_A)`` (``method="solve"``, exact up
   to rounding: ``I - beta P_A`` has condition number at most ``(1 + beta) / (1 - beta)``), or
   successive approximation ``Q_A <- r_A + beta P_A (Q_A - alpha log pi_A)`` from zero
   (``method="successive"``, error ``<= beta^k |r_A - alpha beta P_A log pi_A| / (1 - beta)``).
2. ``Q(s, a) = Q_A(s) + alpha [log pi(a | s) - log pi(a_A | s)]``.
3. R-step. ``r(s, a) = Q(s, a) - beta E_{s'|s,a}[Q_A(s') - alpha log pi(a_A | s')]``
   (the bracket is ``V(s')``).

With the true ``pi`` and ``P`` this returns the true reward exactly (Geng et al.'s
identification result). Only the anchor's transitions enter the Q-step; the R-step uses the
transitions of every action. Facts used by the tests (they follow from the equations above):
shifting ``r_A`` by a constant ``delta`` shifts ``Q_A`` by ``delta / (1 - beta)`` and every
recovered reward by exactly ``delta``; the policy implied by the recovered reward is ``pi``
whatever ``r_A``.

Estimators from data (transitions ``(s_i, a_i, s'_i)``; ``s'_i = -1`` where no next state was
observed, e.g. the last month of a panel): smoothed frequencies with ``lambda`` pseudo-
observations per row spread uniformly (a symmetric Dirichlet prior of total mass ``lambda``)::

    pi^(a | s)     = (n(s, a) + lambda / A) / (n(s) + lambda),
    P^[a, s, s']   = (n(s, a, s') + lambda q(s')) / (n(s, a) + lambda),   q = 1 / S by default,

so every entry is positive (``log pi^`` is finite) and an unvisited row is the prior. Both are
consistent as the counts grow (the prior's weight is ``lambda / (n + lambda)``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.choice.mdp import check_count, check_scalar
from prime_science.choice.solvers import linear_solve
from prime_science.core import errors
from prime_science.core.types import SolverInfo

__all__ = [
    "PQRResult",
    "anchor_bellman",
    "tabular_pqr",
    "frequency_log_policy",
    "frequency_transitions",
]


class PQRResult(NamedTuple):
    """The output of :func:`tabular_pqr`.

    Attributes:
      reward: ``float[S, A]`` the recovered ``r(s, a)`` (its anchor column equals ``r_A``).
      q: ``float[S, A]`` the recovered ``Q(s, a)``.
      anchor_q: ``float[S]`` ``Q_A(s) = Q(s, a_A)``.
      info: the Q-step: iterations (1 for the linear solve), the residual
        ``max_s |Q_A - r_A - beta P_A (Q_A - alpha log pi_A)|`` and whether it is below ``tol``.
    """

    reward: jax.Array
    q: jax.Array
    anchor_q: jax.Array
    info: SolverInfo


def anchor_bellman(
    anchor_q: jax.Array,
    anchor_reward: jax.Array,
    anchor_transitions: jax.Array,
    anchor_log_policy: jax.Array,
    discount: jax.Array,
    scale: jax.Array,
) -> jax.Array:
    """``float[S]``: ``T_A(Q_A) = r_A + beta P_A (Q_A - alpha log pi_A)``."""
    return anchor_reward + discount * anchor_transitions @ (anchor_q - scale * anchor_log_policy)


def _default_tol(dtype) -> float:
    return 1e-10 if jnp.dtype(dtype) == jnp.float64 else 1e-4


def _check_pqr_inputs(log_policy, transitions, discount, anchor, anchor_reward, scale, atol):
    """Shape checks always; value checks on concrete arrays only (module docstring of
    :mod:`prime_science.core.errors`)."""
    errors.check_rank("log_policy", log_policy, 2)
    errors.check_rank("transitions", transitions, 3)
    num_states, num_actions = log_policy.shape
    if transitions.shape != (num_actions, num_states, num_states):
        errors.fail(
            "transitions",
            f"shape (A, S, S) = {(num_actions, num_states, num_states)} to match log_policy",
            transitions.shape,
        )
    errors.check_rank("discount", discount, 0)
    errors.check_rank("scale", scale, 0)
    if anchor_reward.shape not in ((), (num_states,)):
        errors.fail("anchor_reward", f"a scalar or shape ({num_states},)", anchor_reward.shape)
    if np.ndim(anchor) != 0 or not jnp.issubdtype(jnp.asarray(anchor).dtype, jnp.integer):
        errors.fail("anchor", "an integer action index", repr(anchor))
    arrays = (log_policy, transitions, discount, anchor, anchor_reward, scale)
    if not all(errors.is_concrete(x) for x in arrays):
        return
    if not 0 <= int(anchor) < num_actions:
        errors.fail("anchor", f"an action index in [0, {num_actions})", int(anchor))
    tol = atol if atol is not None else (1e-10 if log_policy.dtype == jnp.float64 else 1e-5)
    log_p = np.asarray(log_policy)
    if not np.all(np.isfinite(log_p)):
        errors.fail("log_policy", "finite log-probabilities (every pi(a | s) > 0)", "NaN or inf")
    policy_error = np.abs(np.exp(log_p).sum(-1) - 1.0)
    if np.any(policy_error > tol):
        s = int(np.argmax(policy_error))
        errors.fail(
            "log_policy",
            f"rows whose probabilities sum to one (within {tol:g})",
            f"state {s} summing to {np.exp(log_p[s]).sum()!r}",
        )
    p = np.asarray(transitions)
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        errors.fail("transitions", "finite non-negative probabilities", "a negative or NaN")
    row_error = np.abs(p.sum(-1) - 1.0)
    if np.any(row_error > tol):
        a, s = np.unravel_index(np.argmax(row_error), row_error.shape)
        errors.fail(
            "transitions",
            f"rows summing to one (within {tol:g})",
            f"row (action {a}, state {s}) summing to {p[a, s].sum()!r}",
        )
    if not 0.0 <= float(discount) < 1.0:
        errors.fail("discount", "a number in [0, 1)", float(discount))
    if not float(scale) > 0.0:
        errors.fail("scale", "a positive shock scale", float(scale))
    if not np.all(np.isfinite(np.asarray(anchor_reward))):
        errors.fail("anchor_reward", "finite rewards", "NaN or inf")


def tabular_pqr(
    log_policy: jax.Array,
    transitions: jax.Array,
    discount: float | jax.Array,
    anchor: int | jax.Array = 0,
    anchor_reward: float | jax.Array = 0.0,
    scale: float | jax.Array = 1.0,
    *,
    method: str = "solve",
    tol: float | None = None,
    max_iters: int = 100_000,
    atol: float | None = None,
) -> PQRResult:
    """The reward, Q and anchor Q of a tabular logit model (module docstring); pure, jittable
    and vmappable (over policies, transitions, anchor rewards ...).

    Args:
      log_policy: ``float[S, A]`` ``log pi(a | s)``; every entry finite.
      transitions: ``float[A, S, S]`` ``P[a, s, s']``; rows sum to one.
      discount: ``beta in [0, 1)`` (not identified from data: it must be given).
      anchor: the anchor action ``a_A``.
      anchor_reward: ``r_A``, a scalar or ``float[S]``.
      scale: the shock scale ``alpha > 0`` (only ``r / alpha`` is identified).
      method: ``"solve"`` (one linear solve) or ``"successive"`` (contraction from zero).
      tol: the Q-step is flagged converged (and successive approximation stops) when
        ``max_s |T_A(Q_A) - Q_A| < tol``; default 1e-10 in float64, 1e-4 in float32.
      max_iters: successive approximation steps at most.
      atol: tolerance of the row-sum checks (default 1e-10 in float64, 1e-5 in float32).

    Raises:
      InvalidArgumentError: wrong shapes, an anchor out of range, a non-finite ``log_policy``,
        policy or transition rows that do not sum to one, ``discount`` outside ``[0, 1)``, a
        non-positive ``scale``, ``tol <= 0``, ``max_iters < 1`` (value checks run only on
        concrete, untraced arguments).
    """
    log_policy = jnp.asarray(log_policy)
    dtype = log_policy.dtype if jnp.issubdtype(log_policy.dtype, jnp.floating) else jnp.float32
    log_policy = log_policy.astype(dtype)
    transitions = jnp.asarray(transitions, dtype)
    discount = jnp.asarray(discount, dtype)
    scale = jnp.asarray(scale, dtype)
    anchor_reward = jnp.asarray(anchor_reward, dtype)
    _check_pqr_inputs(log_policy, transitions, discount, anchor, anchor_reward, scale, atol)
    if method not in ("solve", "successive"):
        errors.fail("method", "'solve' or 'successive'", repr(method))
    if tol is not None:
        check_scalar("tol", tol, "a positive tolerance", positive=True)
    check_count("max_iters", max_iters, 1)
    tol = _default_tol(dtype) if tol is None else tol

    num_states = log_policy.shape[0]
    anchor_log_policy = jnp.take(log_policy, anchor, axis=1)
    anchor_transitions = transitions[anchor]
    anchor_reward = jnp.broadcast_to(anchor_reward, (num_states,))

    def bellman(q):
        return anchor_bellman(
            q, anchor_reward, anchor_transitions, anchor_log_policy, discount, scale
        )

    if method == "solve":
        system = jnp.eye(num_states, dtype=dtype) - discount * anchor_transitions
        rhs = anchor_reward - scale * discount * anchor_transitions @ anchor_log_policy
        anchor_q = linear_solve(system, rhs)
        num_iters = jnp.int32(1)
    else:

        def cond(carry):
            q, tq, k = carry
            return (jnp.max(jnp.abs(tq - q)) >= tol) & (k < max_iters)

        def body(carry):
            _, tq, k = carry
            return tq, bellman(tq), k + 1

        zeros = jnp.zeros(num_states, dtype)
        _, anchor_q, num_iters = jax.lax.while_loop(
            cond, body, (zeros, bellman(zeros), jnp.int32(1))
        )
    residual = jnp.max(jnp.abs(bellman(anchor_q) - anchor_q))
    info = SolverInfo(num_iters, residual, residual < tol)

    q = anchor_q[:, None] + scale * (log_policy - anchor_log_policy[:, None])
    next_value = anchor_q - scale * anchor_log_policy  # V(s')
    reward = q - discount * jnp.einsum("ast,t->sa", transitions, next_value)
    return PQRResult(reward, q, anchor_q, info)


def _float_dtype(dtype, weights):
    """``dtype``, else the float dtype of ``weights``, else JAX's default float."""
    if dtype is not None:
        return dtype
    return jnp.result_type(float if weights is None else jnp.asarray(weights), float)


def _check_indices(name: str, x: jax.Array, low: int, high: int) -> None:
    errors.check_rank(name, x, 1)
    errors.check_dtype_kind(name, x, "iu", "integer indices")
    if errors.is_concrete(x) and x.size:
        values = np.asarray(x)
        if values.min() < low or values.max() >= high:
            errors.fail(
                name, f"indices in [{low}, {high})", f"range [{values.min()}, {values.max()}]"
            )


def _observation_weights(weights, states, dtype) -> jax.Array:
    """``float[n]``: ones, or ``weights`` checked (non-negative, one per observation)."""
    if weights is None:
        return jnp.ones(states.shape, dtype)
    weights = jnp.asarray(weights, dtype)
    errors.check_rank("weights", weights, 1)
    errors.check_same_length(("states", "weights"), states, weights)
    if errors.is_concrete(weights) and np.any(~(np.asarray(weights) >= 0)):
        errors.fail("weights", "non-negative finite weights", "a negative or NaN weight")
    return weights


def _check_pseudo_count(pseudo_count) -> None:
    if errors.is_concrete(pseudo_count) and not float(pseudo_count) > 0.0:
        errors.fail("pseudo_count", "a positive number of pseudo-observations", pseudo_count)


def frequency_log_policy(
    states: jax.Array,
    actions: jax.Array,
    num_states: int,
    num_actions: int,
    pseudo_count: float = 1.0,
    dtype=None,
    weights: jax.Array | None = None,
) -> jax.Array:
    """``float[S, A]`` ``log pi^(a | s) = log (n(s, a) + lambda / A) - log (n(s) + lambda)``
    with ``lambda = pseudo_count > 0`` (module docstring); ``dtype`` defaults to the float dtype
    of ``weights`` (integer or absent weights: JAX's default float). ``weights`` (``float[n] >=
    0``, default ones) counts observation ``i`` ``weights[i]`` times (0/1 masks select a
    sub-sample at a fixed shape)."""
    check_count("num_states", num_states, 1)
    check_count("num_actions", num_actions, 1)
    states, actions = jnp.asarray(states), jnp.asarray(actions)
    _check_indices("states", states, 0, num_states)
    _check_indices("actions", actions, 0, num_actions)
    errors.check_same_length(("states", "actions"), states, actions)
    _check_pseudo_count(pseudo_count)
    dtype = _float_dtype(dtype, weights)
    weights = _observation_weights(weights, states, dtype)
    counts = jnp.zeros((num_states, num_actions), dtype).at[states, actions].add(weights)
    smoothed = counts + pseudo_count / num_actions
    return jnp.log(smoothed) - jnp.log(jnp.sum(smoothed, axis=1, keepdims=True))


def frequency_transitions(
    states: jax.Array,
    actions: jax.Array,
    next_states: jax.Array,
    num_states: int,
    num_actions: int,
    pseudo_count: float = 1.0,
    prior: jax.Array | None = None,
    dtype=None,
    weights: jax.Array | None = None,
) -> jax.Array:
    """``float[A, S, S]`` ``P^[a, s, s'] = (n(s, a, s') + lambda q(s')) / (n(s, a) + lambda)``
    (module docstring); transitions with ``next_states < 0`` are ignored.

    Args:
      states, actions, next_states: ``int[n]``; ``next_states`` in ``[-1, S)``.
      num_states, num_actions: ``S`` and ``A``.
      pseudo_count: ``lambda > 0``, pseudo-observations per ``(s, a)`` row.
      prior: ``q``: ``float[S]`` (one distribution for every row) or ``float[A, S, S]`` (one per
        row); default uniform ``1 / S``. Rows must sum to one.
      dtype: default the float dtype of ``weights`` (integer or absent weights: JAX's default
        float).
      weights: ``float[n] >= 0``, observation ``i`` counts ``weights[i]`` times (default 1).
    """
    check_count("num_states", num_states, 1)
    check_count("num_actions", num_actions, 1)
    states, actions = jnp.asarray(states), jnp.asarray(actions)
    next_states = jnp.asarray(next_states)
    _check_indices("states", states, 0, num_states)
    _check_indices("actions", actions, 0, num_actions)
    _check_indices("next_states", next_states, -1, num_states)
    errors.check_same_length(("states", "actions"), states, actions)
    errors.check_same_length(("states", "next_states"), states, next_states)
    _check_pseudo_count(pseudo_count)
    dtype = _float_dtype(dtype, weights)
    if prior is None:
        prior = jnp.full((num_states,), 1.0 / num_states, dtype)
    prior = jnp.asarray(prior, dtype)
    if prior.shape not in ((num_states,), (num_actions, num_states, num_states)):
        errors.fail(
            "prior",
            f"shape ({num_states},) or {(num_actions, num_states, num_states)}",
            prior.shape,
        )
    if errors.is_concrete(prior):
        if np.any(np.abs(np.asarray(prior).sum(-1) - 1.0) > 1e-5) or np.any(np.asarray(prior) < 0):
            errors.fail("prior", "non-negative rows summing to one", "another array")
    weights = _observation_weights(weights, states, dtype)
    observed = next_states >= 0
    counts = jnp.zeros((num_actions, num_states, num_states), dtype)
    counts = counts.at[actions, states, jnp.where(observed, next_states, 0)].add(
        jnp.where(observed, weights, 0.0)
    )
    row_counts = jnp.sum(counts, axis=-1, keepdims=True)
    return (counts + pseudo_count * prior) / (row_counts + pseudo_count)
