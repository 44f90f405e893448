"""Nested fixed point (NFXP) maximum likelihood for Rust's bus engine model (Rust 1987).

Model: :func:`prime_science.choice.mdp.bus_engine_mdp` with parameters
``theta = (RC, theta11)``, the increment distribution ``theta3 = (p_0 .. p_{J-1})``, known
discount ``beta`` and ``S`` mileage bins. Data (:class:`~prime_science.choice.data.ChoiceData`):
for every bus-month ``t`` the bin ``x_t``, the decision ``d_t`` (0 keep, 1 replace) and the
increment ``j_t`` to the next month (``-1`` in a bus's last month). The full log-likelihood is::

    L(theta, theta3) = sum_t log pi(d_t | x_t; theta, theta3)        (choice part)
                     + sum_{t: j_t >= 0} log p_{j_t}                  (transition part)

with ``pi`` the logit choice probabilities at the fixed point ``V = T(V)`` (inner loop:
:func:`prime_science.choice.solvers.solve_relative`, Newton-Kantorovich, implicit
derivatives, on the banded form of the model, :class:`~prime_science.choice.mdp.BandedMDP`).

Estimation (Rust's stages 1 and 2, "partial likelihood"): ``theta3`` is the MLE of the
transition part alone, the increment frequencies; ``theta`` then maximises the choice part
with ``theta3`` fixed, by BHHH (Berndt, Hall, Hall, Hausman 1974) with step halving::

    s_t = d log pi(d_t | x_t) / d theta,   g = sum_t s_t,   H = sum_t s_t s_t^T,
    theta <- theta + lambda H^{-1} g,      lambda = 1, 1/2, 1/4 ... until L rises,

stopping when ``g^T H^{-1} g < tol``. The scores come from one ``jacfwd`` of the
``S x 2`` table ``log pi`` (two tangents through the implicit solver), gathered at the data.

Standard errors: inverse of the outer product of the full-likelihood scores over the free
parameters ``phi = (RC, theta11, p_0 .. p_{J-2})`` (``p_{J-1} = 1 - sum``), evaluated at the
estimate: the information-matrix (BHHH) standard errors of Rust's stage 3, which account for
the estimation of ``theta3``. The score of bus-month ``t`` is its choice score plus the score of
its own increment ``j_t``.

Everything is pure and jittable; :func:`estimate_bus` vmaps over data sets of equal size
(the Su-Judd Monte Carlo) and over starting values. Precision follows the inputs: the estimate is
computed in the float dtype of ``initial_params`` (Python numbers: JAX's default float, float64
inside ``jax.enable_x64``); float64 is advisable at ``beta`` near 1.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.choice.ascent import halving_ascent
from prime_science.choice.data import ChoiceData, check_choice_data, check_increments
from prime_science.choice.mdp import (
    bus_engine_mdp,
    check_count,
    check_discount,
    check_scalar,
    log_choice_probabilities,
)
from prime_science.choice.solvers import linear_solve, solve_relative
from prime_science.core import errors
from prime_science.core.types import SolverInfo

__all__ = [
    "NFXPResult",
    "check_initial_params",
    "transition_mle",
    "transition_log_likelihood",
    "bus_log_choice_table",
    "choice_log_likelihood",
    "bus_log_likelihood",
    "estimate_bus",
]


class NFXPResult(NamedTuple):
    """An NFXP fit.

    Attributes:
      params: ``float[2]`` ``(RC, theta11)``.
      increment_probs: ``float[J]`` ``theta3``.
      log_likelihood: the full log-likelihood (choice + transition parts).
      choice_log_likelihood: its choice part.
      transition_log_likelihood: its transition part.
      standard_errors: ``float[2 + J - 1]`` for ``(RC, theta11, p_0 .. p_{J-2})``.
      info: the outer BHHH loop (iterations, final ``g^T H^{-1} g``, converged).
      inner_residual: the inner fixed point's residual at the estimate.
    """

    params: jax.Array
    increment_probs: jax.Array
    log_likelihood: jax.Array
    choice_log_likelihood: jax.Array
    transition_log_likelihood: jax.Array
    standard_errors: jax.Array
    info: SolverInfo
    inner_residual: jax.Array


def check_initial_params(initial_params) -> None:
    """Require ``initial_params`` to be a finite ``(RC, theta11)`` (values when concrete)."""
    if np.shape(initial_params) != (2,):
        errors.fail("initial_params", "(RC, theta11), shape (2,)", np.shape(initial_params))
    if errors.is_concrete(initial_params) and not np.all(np.isfinite(np.asarray(initial_params))):
        errors.fail("initial_params", "finite values", "NaN or inf")


def transition_mle(increment: jax.Array, num_increments: int, dtype=None) -> jax.Array:
    """``float[J]``: the increment frequencies (``-1`` entries ignored), in ``dtype`` (default
    JAX's default float). ``increment`` must be ``int[n]`` in ``[-1, J)`` with at least one entry
    ``>= 0`` (checked when concrete)."""
    check_increments(increment, num_increments)
    dtype = jnp.result_type(float) if dtype is None else dtype
    counts = jnp.sum(jax.nn.one_hot(increment, num_increments, dtype=dtype), axis=0)
    return counts / jnp.sum(counts)


def transition_log_likelihood(increment_probs: jax.Array, increment: jax.Array) -> jax.Array:
    """``sum_{t: j_t >= 0} log p_{j_t}``."""
    errors.check_rank("increment_probs", increment_probs, 1)
    check_increments(increment, np.shape(increment_probs)[0], size_name="increment_probs")
    valid = increment >= 0
    logs = jnp.log(increment_probs)[jnp.where(valid, increment, 0)]
    return jnp.sum(jnp.where(valid, logs, 0.0))


def bus_log_choice_table(
    params: jax.Array,
    increment_probs: jax.Array,
    num_states: int,
    discount: float,
    **solver_options,
) -> tuple[jax.Array, SolverInfo]:
    """``(float[S, 2] log pi(d | x), inner SolverInfo)`` at ``params = (RC, theta11)`` (the
    model checked by :func:`~prime_science.choice.mdp.bus_engine_mdp`)."""
    if np.shape(params) != (2,):
        errors.fail("params", "(RC, theta11), shape (2,)", np.shape(params))
    mdp = bus_engine_mdp(params[0], params[1], increment_probs, num_states, discount, banded=True)
    relative_value, info = solve_relative(mdp, **solver_options)
    return log_choice_probabilities(mdp, relative_value), info


def choice_log_likelihood(
    params: jax.Array,
    increment_probs: jax.Array,
    data: ChoiceData,
    num_states: int,
    discount: float,
    **solver_options,
) -> jax.Array:
    """``sum_t log pi(d_t | x_t)`` (``data`` checked by :func:`check_choice_data`)."""
    check_choice_data(data, num_states, None)
    table, _ = bus_log_choice_table(params, increment_probs, num_states, discount, **solver_options)
    return jnp.sum(table[data.state, data.decision])


def bus_log_likelihood(
    params: jax.Array,
    increment_probs: jax.Array,
    data: ChoiceData,
    num_states: int,
    discount: float,
    **solver_options,
) -> tuple[jax.Array, jax.Array]:
    """``(choice part, transition part)`` of the full log-likelihood."""
    choice = choice_log_likelihood(
        params, increment_probs, data, num_states, discount, **solver_options
    )
    return choice, transition_log_likelihood(increment_probs, data.increment)


def _full_scores(params, increment_probs, data, num_states, discount, solver_options):
    """``float[n, 2 + J - 1]``: per-observation scores of the full likelihood in ``phi``."""
    num_free = increment_probs.shape[0] - 1

    def tables(phi):
        free = phi[2:]
        probs = jnp.concatenate([free, 1.0 - jnp.sum(free, keepdims=True)])
        table, _ = bus_log_choice_table(phi[:2], probs, num_states, discount, **solver_options)
        return table, jnp.log(probs)

    phi = jnp.concatenate([params, increment_probs[:num_free]])
    choice_jac, transition_jac = jax.jacfwd(tables)(phi)  # [S, 2, K], [J, K]
    valid = (data.increment >= 0)[:, None]
    transition = jnp.where(valid, transition_jac[jnp.where(valid[:, 0], data.increment, 0)], 0.0)
    return choice_jac[data.state, data.decision] + transition


def estimate_bus(
    data: ChoiceData,
    *,
    num_states: int,
    discount: float,
    num_increments: int,
    initial_params: tuple[float, float] | jax.Array = (5.0, 1.0),
    tol: float = 1e-10,
    max_iters: int = 100,
    max_halvings: int = 20,
    banded: bool = True,
    **solver_options,
) -> NFXPResult:
    """NFXP estimate of Rust's model (module docstring); pure, jittable, vmappable.

    Args:
      data: the panel.
      num_states: mileage bins ``S``.
      discount: ``beta`` (known).
      num_increments: ``J``, categories of ``theta3`` (increments ``0 .. J-1``).
      initial_params: BHHH start ``(RC, theta11)``; its float dtype is the estimate's
        (Python numbers: JAX's default float).
      tol: BHHH stops when ``g^T H^{-1} g < tol``.
      max_iters: BHHH iterations.
      max_halvings: step halvings per iteration before giving up on the step.
      banded: solve the inner fixed point on the banded model (``O(S J)`` per step) rather
        than the dense one (``O(S^3)`` Newton steps); the results agree to ~1e-12.
      solver_options: passed to :func:`~prime_science.choice.solvers.solve_relative`.

    Raises :class:`~prime_science.core.errors.InvalidArgumentError` (value checks only on
    concrete, untraced arguments) for ``data`` that :func:`check_choice_data` rejects (empty,
    mismatched lengths, a state outside ``[0, num_states)``, a decision outside ``{0, 1}``, an
    increment below ``-1``, none observed, or one ``>= num_increments``, which names
    ``num_increments``); ``discount`` outside ``[0, 1)`` (``0`` is the static logit);
    ``initial_params`` not a finite pair; ``tol <= 0``; ``max_iters < 1``; ``max_halvings < 0``.
    """
    check_discount(discount)
    check_choice_data(data, num_states, num_increments)
    check_initial_params(initial_params)
    check_scalar("tol", tol, "a positive tolerance", positive=True)
    check_count("max_iters", max_iters, 1)
    check_count("max_halvings", max_halvings, 0)
    start = jnp.asarray(initial_params)
    dtype = jnp.result_type(start, float)
    increment_probs = transition_mle(data.increment, num_increments, dtype)

    def table_fn(params, warm):
        mdp = bus_engine_mdp(
            params[0], params[1], increment_probs, num_states, discount, banded=banded
        )
        relative_value, info = solve_relative(mdp, initial_value=warm, **solver_options)
        return log_choice_probabilities(mdp, relative_value), (relative_value, info)

    def loglik(params, warm):
        table, (relative_value, _) = table_fn(params, warm)
        return jnp.sum(table[data.state, data.decision]), relative_value

    def direction(params, warm):
        jac = jax.jacfwd(lambda p: table_fn(p, warm)[0])(params)  # [S, 2, 2]
        scores = jac[data.state, data.decision]
        gradient = jnp.sum(scores, axis=0)
        step = linear_solve(scores.T @ scores, gradient)
        return step, gradient @ step

    params, value, warm, info = halving_ascent(
        loglik,
        direction,
        start.astype(dtype),
        jnp.zeros(num_states, dtype),
        tol=tol,
        max_iters=max_iters,
        max_halvings=max_halvings,
    )

    scores = _full_scores(params, increment_probs, data, num_states, discount, solver_options)
    information = scores.T @ scores
    covariance = linear_solve(information, jnp.eye(information.shape[0], dtype=dtype))
    _, (_, inner) = table_fn(params, warm)
    transition = transition_log_likelihood(increment_probs, data.increment)
    return NFXPResult(
        params=params,
        increment_probs=increment_probs,
        log_likelihood=value + transition,
        choice_log_likelihood=value,
        transition_log_likelihood=transition,
        standard_errors=jnp.sqrt(jnp.diag(covariance)),
        info=info,
        inner_residual=inner.residual,
    )
