"""Conditional choice probability (CCP) estimators for the bus engine model: Hotz-Miller
two-step and nested pseudo-likelihood (NPL, Aguirregabiria and Mira 2002).

CCP inversion (Hotz and Miller 1993). With logit shocks of scale 1 and the value convention of
:mod:`prime_science.choice.mdp` (no Euler constant), ``T(V)(x) = Q(x, a) - log pi(a | x)`` for
every action, so averaging over ``a`` with weights ``pi``::

    V = sum_a pi_a (u_a - log pi_a) + beta P_pi V
      = (I - beta P_pi)^{-1} sum_a pi_a (u_a - log pi_a).

The bus utilities are linear in ``theta = (RC, theta11)``: ``u(x, a) = Z(x, a) theta`` with
``Z(x, keep) = (0, -0.001 x)``, ``Z(x, replace) = (-1, 0)``. Hence for fixed ``pi`` the
choice-specific values ``v(x, a; theta) = u(x, a) + beta P_a V`` are affine in ``theta``,
``v = Z~(x, a) theta + e~(x, a)``, and the pseudo-likelihood
``sum_t log softmax_a v(x_t, a)[d_t]`` is a concave logit likelihood, maximised by Newton's
method (:func:`_fit_logit`).

* Two-step: ``pi`` = smoothed frequencies by state, ``(n_replace + 1/2) / (n + 1)`` (0.5 in
  unvisited states); one pseudo-likelihood maximisation.
* NPL: iterate ``pi <- Psi(pi, theta_hat)`` (the logit policy of the values above) and
  re-maximise, ``num_npl_iters`` times; for single-agent models its fixed point is the MLE
  (Aguirregabiria and Mira 2002), so it converges to NFXP's estimate.

``theta3`` is the increment frequencies, as in :mod:`.nfxp`. The fit runs in the float dtype of
``initial_params`` (Python numbers: JAX's default float, float64 inside ``jax.enable_x64``);
float64 is advisable at ``beta = 0.9999`` (``I - beta P_pi`` has condition number ~1e4).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from prime_science.choice.data import ChoiceData, check_choice_data
from prime_science.choice.mdp import (
    bus_engine_mdp,
    check_count,
    check_discount,
    check_scalar,
    expected_next_values,
)
from prime_science.choice.nfxp import check_initial_params, transition_mle
from prime_science.choice.solvers import linear_solve, policy_solve

__all__ = ["CCPResult", "frequency_ccp", "estimate_bus_ccp"]


class CCPResult(NamedTuple):
    """A CCP fit.

    Attributes:
      params: ``float[2]`` ``(RC, theta11)``.
      increment_probs: ``float[J]`` ``theta3``.
      ccp: ``float[S]`` the final ``pi(replace | x)`` (the policy implied by ``params`` for NPL).
      pseudo_log_likelihood: the last pseudo-likelihood maximum (choice part).
      npl_step: ``max |theta_k - theta_{k-1}|`` of the last NPL iteration (0 for two-step).
    """

    params: jax.Array
    increment_probs: jax.Array
    ccp: jax.Array
    pseudo_log_likelihood: jax.Array
    npl_step: jax.Array


def frequency_ccp(data: ChoiceData, num_states: int, dtype=None) -> jax.Array:
    """``float[S]``: ``(n_replace(x) + 1/2) / (n(x) + 1)`` in ``dtype`` (default JAX's default
    float). ``data`` is checked by :func:`.data.check_choice_data` (the increments only for
    ``>= -1``)."""
    check_choice_data(data, num_states, None)
    dtype = jnp.result_type(float) if dtype is None else dtype
    visits = jnp.zeros(num_states, dtype).at[data.state].add(1.0)
    replacements = jnp.zeros(num_states, dtype).at[data.state].add(data.decision.astype(dtype))
    return (replacements + 0.5) / (visits + 1.0)


def _linear_values(replace_prob, increment_probs, num_states, discount, cost_scale):
    """``(Z~ [S, 2, 2], e~ [S, 2])``: ``v(x, a; theta) = Z~[x, a] @ theta + e~[x, a]`` (the
    banded bus model: ``O(S J)`` solves with ``I - beta P_pi``, :func:`.solvers.policy_solve`)."""
    dtype = replace_prob.dtype
    zero = jnp.zeros((), dtype)
    model = bus_engine_mdp(zero, zero, increment_probs, num_states, discount, banded=True)
    probs = jnp.stack([1.0 - replace_prob, replace_prob], -1)  # [S, 2]
    x = jnp.arange(num_states, dtype=dtype)
    zeros = jnp.zeros(num_states, dtype)
    z = jnp.stack(
        [jnp.stack([zeros, -cost_scale * x], -1), jnp.stack([-jnp.ones_like(x), zeros], -1)], 1
    )  # [S, A, 2]
    # V = A theta + b
    flow_z = jnp.einsum("sa,sak->sk", probs, z)
    flow_e = -jnp.sum(probs * jnp.log(probs), -1)
    values = policy_solve(model, probs, jnp.concatenate([flow_z, flow_e[:, None]], 1))
    expected = jax.vmap(lambda v: expected_next_values(model, v), 1, 2)(values)  # [S, A, 3]
    z_tilde = z + discount * expected[..., :2]
    e_tilde = discount * expected[..., 2]
    return z_tilde, e_tilde


def _fit_logit(z, e, data, start, num_newton_iters):
    """Maximise ``sum_t log softmax(z[x_t] theta + e[x_t])[d_t]`` by Newton's method."""

    def loglik(theta):
        v = jnp.einsum("sak,k->sa", z, theta) + e
        return jnp.sum(jax.nn.log_softmax(v, -1)[data.state, data.decision])

    def step(theta, _):
        gradient = jax.grad(loglik)(theta)
        hessian = jax.hessian(loglik)(theta)
        return theta - linear_solve(hessian, gradient), None

    theta, _ = jax.lax.scan(step, start, None, length=num_newton_iters)
    return theta, loglik(theta)


def estimate_bus_ccp(
    data: ChoiceData,
    *,
    num_states: int,
    discount: float,
    num_increments: int,
    num_npl_iters: int = 0,
    initial_params: tuple[float, float] = (5.0, 1.0),
    num_newton_iters: int = 30,
    cost_scale: float = 0.001,
) -> CCPResult:
    """Hotz-Miller two-step (``num_npl_iters = 0``) or NPL with ``num_npl_iters`` policy
    iterations after it (module docstring); pure, jittable, vmappable.

    Raises :class:`~prime_science.core.errors.InvalidArgumentError` (value checks only on
    concrete arguments) for ``data`` that :func:`.data.check_choice_data` rejects, ``discount``
    outside ``[0, 1)`` (``beta = 1`` would make ``I - beta P_pi`` singular: NaN estimates),
    ``num_npl_iters < 0``, ``num_newton_iters < 1``, ``initial_params`` not a finite pair or a
    non-finite ``cost_scale``.
    """
    check_discount(discount)
    check_choice_data(data, num_states, num_increments)
    check_initial_params(initial_params)
    check_count("num_newton_iters", num_newton_iters, 1)
    check_count("num_npl_iters", num_npl_iters, 0)
    check_scalar("cost_scale", cost_scale)
    start = jnp.asarray(initial_params)
    dtype = jnp.result_type(start, float)
    increment_probs = transition_mle(data.increment, num_increments, dtype)
    replace_prob = frequency_ccp(data, num_states, dtype)

    def fit(replace_prob, start):
        z, e = _linear_values(replace_prob, increment_probs, num_states, discount, cost_scale)
        theta, value = _fit_logit(z, e, data, start, num_newton_iters)
        v = jnp.einsum("sak,k->sa", z, theta) + e
        return theta, value, jax.nn.softmax(v, -1)[:, 1]

    theta, value, policy = fit(replace_prob, start.astype(dtype))

    def npl(carry, _):
        theta, _, policy, _ = carry
        new_theta, value, new_policy = fit(policy, theta)
        return (new_theta, value, new_policy, jnp.max(jnp.abs(new_theta - theta))), None

    initial = (theta, value, policy, jnp.zeros((), dtype))
    (theta, value, policy, npl_step), _ = jax.lax.scan(npl, initial, None, length=num_npl_iters)
    return CCPResult(
        theta, increment_probs, policy if num_npl_iters else replace_prob, value, npl_step
    )
