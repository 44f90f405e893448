"""The membership model on its free states (annual as a semi-Markov macro-action), and tabular
PQR with the anchor ``none`` (Geng et al. 2020) on it.

**Free states and the annual macro-action.** A choice is revealed only at a free state, plan 0
(none) or 1 (a member free to choose): ``2 x 6 x E^2 x 2 x 3`` states ``s = (plan, z)`` with
``z = (tenure, engagement, content, regime)``. A locked month has one feasible action, so its
shock-free value is ``V(L) = u(L) + beta E[V(next)]`` and the annual term can be folded into a
``(1 + L)``-month action (``L = lock_months``): from a free state ``s``, ``annual`` reaches the
free state ``(plan 1, z_{L+1})`` ``L + 1`` months later, with discount ``beta^{L+1}``, and::

    Q(s, annual) = R(s, annual) + beta^{L+1} E[V(1, z_{L+1}) | z],
    R(s, annual) = u(s, annual) + sum_{j=1..L} beta^j E[u(L_j) | z]       (the package reward)

with ``L_j`` the ``j``-th locked month (no payment: ``u(L_j)`` depends on tenure and engagement
only). ``none`` and ``monthly`` reach plan 0 and plan 1 a month later with discount ``beta``.
Everything member-side runs on the member chain ``M_1 = T_1 (x) EC_1 (x) P_regime`` over ``z``
(``EC_m[(e, c), (e', c')] = P_{m, c}[e, e'] C[c, c']``: engagement moves given this month's
content, content by its own chain); the macro-action's chain is ``M_1^{L+1}``, one power per
Kronecker factor. ``R`` is linear in ``theta`` with the *package features*
``F(s, annual) + sum_j beta^j M_1^j F_locked``, computed by the backward recursion
``A <- F_locked + beta M_1 A`` (``L`` times from 0), ``R = F(s, annual) + beta M_1 A``.

**PQR** (anchor ``none``, ``r(s, none) = 0``). Hotz and Miller: ``V(s) = Q(s, a) - log pi(a | s)``
for every action, so with ``Q_A(s) = Q(s, none)``:

1. Q-step. ``Q_A(s) = beta E[V(0, z') | z, none]``. ``none`` resets tenure to bucket 0
   (:func:`~.model.tenure_transition`) and plan to 0, so the next state ranges over the
   ``E^2 x 2 x 3`` states ``x = (0, 0, e, c, r)`` whatever ``s``; with ``K = EC_0 (x) P_regime``
   and ``X(x) = V(x) = Q_A(x) - log pi(none | x)``::

       (I - beta K) X = -log pi(none | (0, 0, .)),      Q_A(s) = beta (K X)(e, c, r),

   one linear system of ``2 E^2 3`` unknowns (``I - beta K`` is a ``beta``-contraction away
   from singular: unique solution).
2. ``Q(s, a) = Q_A(s) + log pi(a | s) - log pi(none | s)``, ``V(s) = Q_A(s) - log pi(none | s)``.
3. R-step. ``r(s, monthly) = Q(s, monthly) - beta E[V(1, z') | z]``,
   ``R(s, annual) = Q(s, annual) - beta^{L+1} E[V(1, z_{L+1}) | z]`` (:func:`continuation`).

From the true ``pi`` and transitions this returns ``r(s, monthly) = u(s, monthly)`` and the
package reward exactly (up to rounding and the tolerance of the solve that produced ``pi``).
Counterfactual prices need ``theta``: :func:`project` regresses the recovered rewards on the
(package) features by weighted least squares.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.choice.solvers import linear_solve
from prime_science.core import errors
from prime_science.membership import model

__all__ = [
    "DESTINATION_PLAN",
    "PQRRewards",
    "Projection",
    "SemiMarkov",
    "continuation",
    "free_shape",
    "membership_pqr",
    "policy_operator",
    "project",
    "semi_markov",
]

DESTINATION_PLAN = (model.PLAN_NONE, model.PLAN_FREE, model.PLAN_FREE)
"""The free plan each action leads to: ``none`` -> 0, ``monthly`` -> 1, ``annual`` -> 1 (after
the lock)."""


def free_shape(levels: int = 5) -> tuple[int, ...]:
    """``(2 free plans, 6 tenure buckets, E^2, 2 content, 3 regimes)``."""
    return (2, len(model.TENURE_WIDTHS), levels**2, 2, len(model.REGIMES))


class SemiMarkov(NamedTuple):
    """The model of one segment on its free states (module docstring).

    Attributes:
      features: ``float[2, 6, E^2, 2, 3, 3 actions, 6]``: ``d u / d theta`` for ``none`` (0)
        and ``monthly``, the package features for ``annual`` (:data:`~.model.STRUCTURAL`).
      offset: ``float[2, 6, E^2, 2, 3, 3]``: the reward's known part, ``benefit_shift`` times
        the member feature (package-summed for ``annual``).
      tenure: ``float[3 actions, 6, 6]``: ``T_0``, ``T_1``, ``T_1^{L+1}``.
      exogenous: ``float[3, 2 E^2, 2 E^2]``: ``EC_0``, ``EC_1``, ``EC_1^{L+1}`` over
        ``(engagement, content)``.
      regime: ``float[3, 3, 3]``: ``P_regime``, ``P_regime``, ``P_regime^{L+1}``.
      discounts: ``float[3]``: ``beta, beta, beta^{L+1}``.
    """

    features: jax.Array
    offset: jax.Array
    tenure: jax.Array
    exogenous: jax.Array
    regime: jax.Array
    discounts: jax.Array


def _joint_exogenous(params: model.MembershipParams, segment, levels: int) -> jax.Array:
    """``float[2 member?, 2 E^2, 2 E^2]``: ``EC_m[(e, c), (e', c')] = P_{m, c}[e, e'] C[c, c']``."""
    engagement = model.engagement_transition(params, segment, levels)  # [m, c, e, e']
    content = model.content_transition(params)  # [c, c']
    joint = jnp.einsum("mcxy,cd->mxcyd", engagement, content)
    return joint.reshape(2, 2 * levels**2, 2 * levels**2)


def _apply_chain(tenure, exogenous, regime, values):
    """``(T (x) EC (x) R) values`` on a table ``[6, E^2, 2, 3, ...]`` (trailing axes ride along)."""
    shape = values.shape
    grid = values.reshape(shape[0], exogenous.shape[0], shape[3], *shape[4:])
    moved = jnp.einsum("tT,xX,rR,TXR...->txr...", tenure, exogenous, regime, grid)
    return moved.reshape(shape)


def _check_reset(lapsed_tenure: np.ndarray) -> None:
    """The Q-step of :func:`membership_pqr` uses that ``none`` resets tenure to bucket 0."""
    reset = np.zeros_like(lapsed_tenure)
    reset[:, 0] = 1.0
    if not np.array_equal(lapsed_tenure, reset):
        errors.fail("model.tenure_transition", "non-members reset to tenure bucket 0", "other")


def semi_markov(
    params: model.MembershipParams, segment, *, levels: int = 5, lock_months: int = 11
) -> SemiMarkov:
    """The free-state form of the model for customers of ``segment`` (module docstring);
    pure and jittable (``segment`` may be traced)."""
    model.check_params(params, levels)
    dtype = params.theta_ship.dtype
    tenure = model.tenure_transition(dtype)
    with jax.ensure_compile_time_eval():
        _check_reset(np.asarray(model.tenure_transition(jnp.float32))[0])
    exogenous = _joint_exogenous(params, segment, levels)
    steps = lock_months + 1
    power = jnp.linalg.matrix_power
    features = model.utility_features(params, levels, lock_months)
    free_features = features[:2]
    locked = features[2, ..., model.ANNUAL, :] if lock_months else None
    member = (tenure[1], exogenous[1], params.regime_transition)
    beta = params.discount
    if lock_months:
        accumulated = jnp.zeros_like(locked)
        for _ in range(lock_months):
            accumulated = locked + beta * _apply_chain(*member, accumulated)
        package = free_features[..., model.ANNUAL, :] + beta * _apply_chain(*member, accumulated)
        free_features = free_features.at[..., model.ANNUAL, :].set(package)
    offset = params.benefit_shift * free_features[..., 0]
    return SemiMarkov(
        features=free_features,
        offset=offset,
        tenure=jnp.stack([tenure[0], tenure[1], power(tenure[1], steps)]),
        exogenous=jnp.stack([exogenous[0], exogenous[1], power(exogenous[1], steps)]),
        regime=jnp.stack([params.regime_transition] * 2 + [power(params.regime_transition, steps)]),
        discounts=jnp.stack([beta, beta, beta**steps]),
    )


def continuation(chain: SemiMarkov, free_values: jax.Array) -> jax.Array:
    """``float[2, 6, E^2, 2, 3, 3, ...]``: ``D_a E[V(plan_a, z') | z, a]`` for a table of free-state
    values ``free_values[2, 6, E^2, 2, 3, ...]`` (trailing axes, e.g. features, ride along):
    ``plan_a`` is :data:`DESTINATION_PLAN`, ``D_a`` and the chain of ``a`` are from ``chain``.
    Linear in ``free_values``; the same for both free plans of ``s``."""
    per_action = [
        chain.discounts[a]
        * _apply_chain(chain.tenure[a], chain.exogenous[a], chain.regime[a], free_values[plan])
        for a, plan in enumerate(DESTINATION_PLAN)
    ]
    stacked = jnp.stack(per_action, axis=4)  # [6, E^2, 2, 3, 3 actions, ...]
    return jnp.broadcast_to(stacked[None], (2, *stacked.shape))


def policy_operator(chain: SemiMarkov, policy: jax.Array) -> jax.Array:
    """``float[S, S]`` (``S = 2 x 6 x E^2 x 2 x 3`` free states, row-major):
    ``B_pi = sum_a diag(pi_a) D_a P_a``, the discounted free-state transition under
    ``policy[2, 6, E^2, 2, 3, 3]``, so that ``V = (I - B_pi)^{-1} sum_a pi_a (r_a - log pi_a)``
    (Hotz and Miller 1993; the semi-Markov discount ``beta^{L+1}`` inside ``B_pi``)."""
    num_z = policy[0, ..., 0].size
    blocks = [
        chain.discounts[a]
        * jnp.kron(jnp.kron(chain.tenure[a], chain.exogenous[a]), chain.regime[a])
        for a in range(len(model.ACTIONS))
    ]
    rows = policy.reshape(2 * num_z, len(model.ACTIONS))
    columns = []
    for plan in range(2):
        block = sum(
            rows[:, a, None] * jnp.tile(blocks[a], (2, 1))
            for a, destination in enumerate(DESTINATION_PLAN)
            if destination == plan
        )
        columns.append(block)
    return jnp.concatenate(columns, axis=1)


class PQRRewards(NamedTuple):
    """The output of :func:`membership_pqr` (axes ``[2, 6, E^2, 2, 3]`` of the free states, then
    3 actions).

    Attributes:
      reward: ``r(s, none)`` (0 up to rounding), ``r(s, monthly)``, ``R(s, annual)`` (package).
      q: ``Q(s, a)``.
      value: ``V(s) = Q_A(s) - log pi(none | s)``.
      residual: ``max_x |X - (-log pi(none | x) + beta K X)|`` of the Q-step's solve.
    """

    reward: jax.Array
    q: jax.Array
    value: jax.Array
    residual: jax.Array


def membership_pqr(chain: SemiMarkov, log_policy: jax.Array) -> PQRRewards:
    """Tabular PQR with anchor ``none`` on the free states of one segment (module docstring).

    Args:
      chain: :func:`semi_markov` of the segment.
      log_policy: ``float[2, 6, E^2, 2, 3, 3]`` ``log pi(a | s)`` at the free states; every
        entry finite (a frequency estimate must be smoothed).

    Raises :class:`~prime_science.core.errors.InvalidArgumentError` for a wrong shape or (when
    concrete) a non-finite entry or rows not summing to one."""
    shape = (*chain.features.shape[:5], len(model.ACTIONS))
    if log_policy.shape != shape:
        errors.fail("log_policy", f"shape {shape} (free states x actions)", log_policy.shape)
    if errors.is_concrete(log_policy):
        values = np.asarray(log_policy, np.float64)
        if not np.all(np.isfinite(values)):
            errors.fail("log_policy", "finite log-probabilities (smoothed)", "NaN or inf")
        tol = 1e-8 if log_policy.dtype == jnp.float64 else 1e-4
        worst = float(np.max(np.abs(np.exp(values).sum(-1) - 1.0)))
        if worst > tol:
            errors.fail("log_policy", f"rows summing to one within {tol:g}", worst)
    log_policy = log_policy.astype(chain.features.dtype)
    log_anchor = log_policy[..., model.NONE]
    kernel = jnp.kron(chain.exogenous[model.NONE], chain.regime[model.NONE])
    beta = chain.discounts[model.NONE]
    system = jnp.eye(kernel.shape[0], dtype=kernel.dtype) - beta * kernel
    rhs = -log_anchor[model.PLAN_NONE, 0].reshape(-1)
    restart_value = linear_solve(system, rhs)
    residual = jnp.max(jnp.abs(system @ restart_value - rhs))
    anchor_q = beta * (kernel @ restart_value).reshape(log_anchor.shape[2:])
    anchor_q = jnp.broadcast_to(anchor_q, log_anchor.shape)
    q = anchor_q[..., None] + log_policy - log_anchor[..., None]
    value = anchor_q - log_anchor
    reward = q - continuation(chain, value)
    return PQRRewards(reward, q, value, residual)


class Projection(NamedTuple):
    """A weighted least-squares fit ``r(s, a) - offset(s, a) ~ features(s, a) . theta`` over
    the member actions at free states (:func:`project`).

    Attributes:
      theta: ``float[6]`` in :data:`~.model.STRUCTURAL` order.
      r_squared: ``1 - SS_res / SS_tot`` (weighted; ``SS_tot`` about the weighted mean).
      rmse: ``sqrt(SS_res / sum w)`` in utils.
    """

    theta: jax.Array
    r_squared: jax.Array
    rmse: jax.Array


def project(
    features: jax.Array, offset: jax.Array, reward: jax.Array, weights: jax.Array | None = None
) -> Projection:
    """Regress recovered rewards on the utility's (package) features.

    ``theta^ = argmin sum_{s, a in {monthly, annual}} w(s, a) (r(s, a) - offset(s, a) -
    features(s, a) . theta)^2`` by the normal equations (``none`` is left out: its reward is
    the normalisation, not data).

    Args:
      features: ``float[..., 3, 6]`` (:attr:`SemiMarkov.features`, any leading axes, e.g.
        segments).
      offset: ``float[..., 3]``.
      reward: ``float[..., 3]`` (:attr:`PQRRewards.reward`).
      weights: ``float[..., 3] >= 0`` (e.g. visit counts), default ones.
    """
    if features.shape[:-1] != reward.shape or offset.shape != reward.shape:
        errors.fail(
            "reward", f"shape {features.shape[:-1]} to match features and offset", reward.shape
        )
    weights = jnp.ones_like(reward) if weights is None else jnp.asarray(weights, reward.dtype)
    if weights.shape != reward.shape:
        errors.fail("weights", f"shape {reward.shape}", weights.shape)
    if errors.is_concrete(weights) and not np.all(np.asarray(weights) >= 0):
        errors.fail("weights", "non-negative weights", "a negative or NaN weight")
    member = slice(model.MONTHLY, None)
    x = features[..., member, :].reshape(-1, features.shape[-1])
    y = (reward - offset)[..., member].reshape(-1)
    w = weights[..., member].reshape(-1)
    theta = jnp.linalg.solve(x.T @ (w[:, None] * x), x.T @ (w * y))
    residual = y - x @ theta
    total = jnp.sum(w)
    mean = jnp.sum(w * y) / total
    ss_res = jnp.sum(w * residual**2)
    r_squared = 1.0 - ss_res / jnp.sum(w * (y - mean) ** 2)
    return Projection(theta, r_squared, jnp.sqrt(ss_res / total))
