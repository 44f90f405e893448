"""Tabular maximum causal entropy IRL with a state-only linear reward (Ziebart et al. 2008,
2010): the baseline that PQR is compared with (Geng et al. 2020 compare Deep PQR with
MaxEnt-IRL-style baselines, not checked against the paper's text; a soft target of
``experiments/irl.py``).

Model. The reward depends on the state only, ``r(s) = phi(s)^T theta`` (``phi = features``,
``float[S, K]``), the same for every action; the agent is the soft-optimal (maximum causal
entropy) policy of that reward under known transitions ``P[a, s, s']``, discount ``beta`` and
temperature ``alpha``, i.e. the logit model of :mod:`.mdp` with ``u(s, a) = r(s)``::

    Q(s, a) = r(s) + beta E_{s'|s,a}[V(s')],   V(s) = alpha log sum_a exp(Q(s, a) / alpha),
    pi_theta(a | s) = exp((Q(s, a) - V(s)) / alpha).

Fit. ``theta`` maximises the log-likelihood of observed state-action pairs, summarised by
their counts ``n(s, a)`` (:func:`choice_counts`)::

    L(theta) = sum_{s, a} n(s, a) log pi_theta(a | s)

(the likelihood of whole trajectories adds transition terms that do not depend on
``theta``). Its gradient is the maximum-entropy "observed minus expected feature counts":
with ``D = (I - beta P_pi)^{-1} Phi`` the expected discounted feature counts from each state
under ``pi_theta`` (``P_pi[s, s'] = sum_a pi(a | s) P[a, s, s']``; ``dV / dtheta = D``)::

    g(s, a) = d log pi_theta(a | s) / d theta
            = (beta / alpha) (P[a, s, :] - sum_b pi(b | s) P[b, s, :]) D,
    grad L  = (beta / alpha) sum_s (sum_a n(s, a) P[a, s, :] - n(s) sum_a pi(a | s) P[a, s, :]) D,

the discounted feature counts after the observed actions minus those after the model's. The
``phi(s)`` term cancels: the reward of the current state never changes a choice. For the same
reason a constant feature (and anything whose ``D``-rows agree after every action) is not
identified: it only adds a constant to ``V``.

``theta`` is found by a modified Newton method with step halving: with the Hessian
``H = d grad L / d theta`` (forward-mode derivative of the closed-form gradient) and the
eigendecomposition ``-H = U diag(lambda) U^T``, the step is ``U diag(1 / max(|lambda|, delta))
U^T grad L`` (an ascent direction even where ``L`` is not concave; ``delta = damping * (max
|lambda| + 1)``, so unidentified directions, whose gradient is zero, do not move), halved until
``L`` does not fall; stop when ``grad^T step < tol``. (Fisher scoring, the expected
information ``sum_s n(s) sum_a pi g g^T``, converges slowly here: the model is misspecified
whenever the reward depends on the action, and then the information is far from ``-H``.) The inner
fixed point is :func:`prime_science.choice.solvers.solve_relative` (Newton-Kantorovich, warm
started from the previous iterate).

What it cannot do: ``r(s, a) - r(s, b) = 0`` for every model in the class, so an
action-dependent reward (a replacement cost, a membership fee) can only be mimicked through
the values of the states the actions lead to. The rewards of different models are compared in
one normalisation (anchor reward known) by applying
:func:`prime_science.choice.pqr.tabular_pqr` to the fitted policy.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.choice.ascent import halving_ascent
from prime_science.choice.mdp import (
    TabularMDP,
    check_count,
    check_discount,
    check_mdp,
    check_scalar,
    log_choice_probabilities,
    policy_transition,
)
from prime_science.choice.solvers import linear_solve, solve_relative
from prime_science.core import errors
from prime_science.core.types import SolverInfo

__all__ = [
    "MaxEntResult",
    "choice_counts",
    "maxent_mdp",
    "maxent_log_policy",
    "maxent_log_likelihood",
    "maxent_scores",
    "maxent_irl",
]


class MaxEntResult(NamedTuple):
    """A MaxEnt IRL fit.

    Attributes:
      params: ``float[K]`` ``theta``.
      reward: ``float[S]`` ``r(s) = phi(s)^T theta`` (every action's reward).
      log_policy: ``float[S, A]`` the fitted ``log pi_theta(a | s)``.
      log_likelihood: ``L(theta)``.
      info: the Newton loop: iterations, the final ``grad^T step`` (module docstring), converged.
      inner_residual: the soft Bellman residual at the estimate.
    """

    params: jax.Array
    reward: jax.Array
    log_policy: jax.Array
    log_likelihood: jax.Array
    info: SolverInfo
    inner_residual: jax.Array


def choice_counts(
    states: jax.Array,
    actions: jax.Array,
    num_states: int,
    num_actions: int,
    dtype=None,
    weights: jax.Array | None = None,
) -> jax.Array:
    """``float[S, A]`` ``n(s, a) = sum_i weights_i 1[(s_i, a_i) = (s, a)]`` (``weights``
    default ones: the number of observed pairs; a 0/1 mask selects a sub-sample; non-negative).
    Empty data give zero counts. ``dtype`` defaults to the float dtype of ``weights`` (integer or
    absent weights: JAX's default float)."""
    check_count("num_states", num_states, 1)
    check_count("num_actions", num_actions, 1)
    states, actions = jnp.asarray(states), jnp.asarray(actions)
    for name, x, high in (("states", states, num_states), ("actions", actions, num_actions)):
        errors.check_rank(name, x, 1)
        errors.check_dtype_kind(name, x, "iu", "integer indices")
        if errors.is_concrete(x) and x.size and (np.min(x) < 0 or np.max(x) >= high):
            errors.fail(name, f"indices in [0, {high})", f"range [{np.min(x)}, {np.max(x)}]")
    errors.check_same_length(("states", "actions"), states, actions)
    if dtype is None:
        dtype = jnp.result_type(float if weights is None else jnp.asarray(weights), float)
    weights = jnp.ones(states.shape, dtype) if weights is None else jnp.asarray(weights, dtype)
    errors.check_rank("weights", weights, 1)
    errors.check_same_length(("states", "weights"), states, weights)
    if errors.is_concrete(weights) and np.any(~(np.asarray(weights) >= 0)):
        errors.fail("weights", "non-negative finite weights", "a negative or NaN weight")
    return jnp.zeros((num_states, num_actions), dtype).at[states, actions].add(weights)


def maxent_mdp(params, features, transitions, discount, scale=1.0) -> TabularMDP:
    """The logit model of ``r(s) = phi(s)^T theta`` (the same reward for every action), checked
    by :func:`~prime_science.choice.mdp.check_mdp` (values only when concrete); ``features`` is
    ``[S, K]``, ``params`` ``[K]``."""
    errors.check_rank("features", features, 2)
    if np.shape(params) != np.shape(features)[1:]:
        errors.fail("params", f"shape {np.shape(features)[1:]} (one per feature)", np.shape(params))
    if errors.is_concrete(features) and not np.all(np.isfinite(np.asarray(features))):
        errors.fail("features", "finite values", "NaN or inf")
    errors.check_rank("transitions", transitions, 3)
    reward = features @ params
    num_actions = transitions.shape[0]
    rewards = jnp.broadcast_to(reward[:, None], (reward.shape[0], num_actions))
    dtype = rewards.dtype
    model = TabularMDP(
        rewards,
        jnp.asarray(transitions, dtype),
        jnp.asarray(discount, dtype),
        jnp.asarray(scale, dtype),
    )
    check_mdp(model)
    return model


def maxent_log_policy(
    params, features, transitions, discount, scale=1.0, initial_value=None
) -> tuple[jax.Array, jax.Array, SolverInfo]:
    """``(log pi_theta [S, A], relative value W [S], inner SolverInfo)``; differentiable in
    ``params`` through the implicit derivative of the solver."""
    mdp = maxent_mdp(params, features, transitions, discount, scale)
    relative_value, info = solve_relative(mdp, initial_value=initial_value)
    return log_choice_probabilities(mdp, relative_value), relative_value, info


def maxent_log_likelihood(params, features, transitions, discount, counts, scale=1.0):
    """``L(theta) = sum_{s, a} n(s, a) log pi_theta(a | s)``."""
    log_policy, _, _ = maxent_log_policy(params, features, transitions, discount, scale)
    return jnp.sum(counts * log_policy)


def maxent_scores(
    params, features, transitions, discount, scale=1.0, initial_value=None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(g [S, A, K], log pi_theta [S, A], W [S])``: the closed-form scores
    ``d log pi_theta(a | s) / d theta`` of the module docstring."""
    log_policy, relative_value, _ = maxent_log_policy(
        params, features, transitions, discount, scale, initial_value
    )
    mdp = maxent_mdp(params, features, transitions, discount, scale)
    num_states = features.shape[0]
    system = jnp.eye(num_states, dtype=log_policy.dtype) - mdp.discount * policy_transition(
        mdp, relative_value
    )
    expected_features = linear_solve(system, features.astype(log_policy.dtype))  # D [S, K]
    next_features = jnp.einsum("ast,tk->sak", mdp.transitions, expected_features)
    policy = jnp.exp(log_policy)
    mean = jnp.einsum("sa,sak->sk", policy, next_features)
    scores = (mdp.discount / mdp.scale) * (next_features - mean[:, None, :])
    return scores, log_policy, relative_value


def maxent_irl(
    features: jax.Array,
    transitions: jax.Array,
    discount: float | jax.Array,
    counts: jax.Array,
    *,
    scale: float = 1.0,
    initial_params: jax.Array | None = None,
    tol: float | None = None,
    max_iters: int = 100,
    max_halvings: int = 30,
    damping: float = 1e-8,
) -> MaxEntResult:
    """Maximum-likelihood ``theta`` of the state-only MaxEnt model (module docstring); pure and
    jittable; vmapped fits run in lock step to the slowest member. Open report: inside the
    :mod:`experiments.irl` pipeline (sampled bus counts, jax 0.10.2 on XLA:CPU) a ``jax.vmap``
    of this fit over 3 or more problems once did not return; it was not reproduced on random
    MDPs or on the bus with expected counts (batches of 2, 3 and 8 return), and the cause is not
    known, so that experiment maps over problems with ``jax.lax.map``.

    Args:
      features: ``float[S, K]`` ``phi``.
      transitions: ``float[A, S, S]`` (known, or estimated beforehand).
      discount: ``beta in [0, 1)``.
      counts: ``float[S, A]`` ``n(s, a)`` (:func:`choice_counts`).
      scale: ``alpha``.
      initial_params: start (default zeros).
      tol: stop when ``grad^T step < tol`` (default 1e-10 in float64, 1e-4 in float32).
      max_iters, max_halvings: Newton iterations and step halvings per iteration.
      damping: relative eigenvalue floor ``delta`` (module docstring).

    Raises :class:`~prime_science.core.errors.InvalidArgumentError` (value checks only on
    concrete arguments) for wrong shapes, non-finite ``features``, transition rows that are
    negative or do not sum to one, ``discount`` outside ``[0, 1)``, ``scale <= 0``, negative,
    non-finite or all-zero ``counts`` (no data), ``initial_params`` not finite ``[K]``,
    ``tol <= 0``, ``max_iters < 1``, ``max_halvings < 0`` or ``damping <= 0``.
    """
    features = jnp.asarray(features)
    dtype = features.dtype if jnp.issubdtype(features.dtype, jnp.floating) else jnp.float32
    features = features.astype(dtype)
    counts = jnp.asarray(counts, dtype)
    transitions = jnp.asarray(transitions, dtype)
    errors.check_rank("features", features, 2)
    errors.check_rank("transitions", transitions, 3)
    errors.check_rank("counts", counts, 2)
    num_states, num_features = features.shape
    num_actions = transitions.shape[0]
    if transitions.shape[1:] != (num_states, num_states):
        errors.fail("transitions", f"shape (A, {num_states}, {num_states})", transitions.shape)
    if counts.shape != (num_states, num_actions):
        errors.fail("counts", f"shape {(num_states, num_actions)}", counts.shape)
    check_discount(discount)
    if errors.is_concrete(counts):
        values = np.asarray(counts)
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            errors.fail("counts", "finite non-negative counts", "a negative or NaN")
        if not values.sum() > 0:
            errors.fail("counts", "at least one observed choice (a positive total)", "all zeros")
    if tol is not None:
        check_scalar("tol", tol, "a positive tolerance", positive=True)
    check_count("max_iters", max_iters, 1)
    check_count("max_halvings", max_halvings, 0)
    check_scalar("damping", damping, "a positive eigenvalue floor", positive=True)
    if tol is None:
        tol = 1e-10 if dtype == jnp.float64 else 1e-4

    def loglik(params, warm):
        log_policy, relative_value, _ = maxent_log_policy(
            params, features, transitions, discount, scale, warm
        )
        return jnp.sum(counts * log_policy), relative_value

    def gradient_fn(params, warm):
        scores, _, _ = maxent_scores(params, features, transitions, discount, scale, warm)
        return jnp.einsum("sa,sak->k", counts, scores)

    def direction(params, warm):
        gradient = gradient_fn(params, warm)
        hessian = jax.jacfwd(gradient_fn)(params, warm)
        # LAPACK's eigh may not return on a NaN matrix; a non-finite point gets a zero step
        finite = jnp.all(jnp.isfinite(hessian)) & jnp.all(jnp.isfinite(gradient))
        gradient = jnp.where(finite, gradient, 0.0)
        hessian = jnp.where(finite, hessian, 0.0)
        eigenvalues, eigenvectors = jnp.linalg.eigh(-(hessian + hessian.T) / 2)
        floor = damping * (jnp.max(jnp.abs(eigenvalues)) + 1.0)
        curvature = jnp.maximum(jnp.abs(eigenvalues), floor)
        step = eigenvectors @ ((eigenvectors.T @ gradient) / curvature)
        return step, gradient @ step

    start = (
        jnp.zeros(num_features, dtype)
        if initial_params is None
        else jnp.asarray(initial_params, dtype)
    )
    if start.shape != (num_features,):
        errors.fail("initial_params", f"shape ({num_features},)", start.shape)
    if errors.is_concrete(start) and not np.all(np.isfinite(np.asarray(start))):
        errors.fail("initial_params", "finite values", "NaN or inf")
    maxent_mdp(start, features, transitions, discount, scale)  # checks the model
    params, value, warm, info = halving_ascent(
        loglik, direction, start, None, tol=tol, max_iters=max_iters, max_halvings=max_halvings
    )
    log_policy, _, inner = maxent_log_policy(params, features, transitions, discount, scale, warm)
    return MaxEntResult(
        params=params,
        reward=features @ params,
        log_policy=log_policy,
        log_likelihood=value,
        info=info,
        inner_residual=inner.residual,
    )
