"""Tabular dynamic discrete choice model: logit (Gumbel-shock) soft Bellman operator.

An agent in state ``s in {0 .. S-1}`` picks an action ``a in {0 .. A-1}`` with flow utility
``u(s, a)`` plus an i.i.d. type-I extreme-value shock of scale ``alpha``; the state moves by
``P[a, s, s']``; the discount is ``beta in [0, 1)``. The (ex-ante) value function ``V`` is the
fixed point of the soft Bellman operator (Rust 1987)::

    Q(s, a) = u(s, a) + beta sum_s' P[a, s, s'] V(s'),
    T(V)(s) = alpha log sum_a exp(Q(s, a) / alpha),
    pi(a | s) = exp((Q(s, a) - T(V)(s)) / alpha).

``V`` leaves out the Gumbel mean ``alpha * 0.5772...`` per period (it adds the constant
``alpha gamma / (1 - beta)`` to ``V`` and changes no choice probability). The log-sum-exp
subtracts the row maximum, so it is finite for any finite ``Q``.

``T`` is a ``beta``-contraction and its Jacobian is ``dT/dV = beta P_pi`` with
``P_pi[s, s'] = sum_a pi(a | s) P[a, s, s']``, the matrix the Newton-Kantorovich solver and
the implicit derivatives of :mod:`prime_science.choice.solvers` invert.

The bus engine model (Rust 1987; Su and Judd 2012): ``S`` mileage bins, actions 0 = keep,
1 = replace; ``u(x, keep) = -c(x)``, ``u(x, replace) = -RC - c(0)`` with
``c(x) = cost_scale * theta11 * x`` (``cost_scale = 0.001``); the monthly bin increment is
``j`` with probability ``theta3_j`` (:func:`banded_transition`: the last bin absorbs the mass
that would leave the grid); replacing restarts at bin 0, so ``P[replace, x, :] = P[keep, 0, :]``.

Banded transitions (:class:`BandedMDP`). Renewal models like the bus move from ``s`` up by a
few bins or restart at state 0 and move up from there. :class:`BandedMDP` stores exactly that:
``increment_probs[a, s, j]`` (``J`` increments) and ``resets[a, s]``: action ``a`` in state ``s``
moves to ``min(s + j, S - 1)`` with probability ``increment_probs[a, s, j]`` (moves past the last
state stay there, as in :func:`banded_transition`), except that where ``resets[a, s]`` it moves as
the same action does in state 0 (to ``min(j, S - 1)`` with probability
``increment_probs[a, 0, j]``; ``increment_probs[a, s]`` is then unused). ``E[V(s') | s, a]`` costs
``O(S J A)`` instead of ``O(S^2 A)``, and the Newton system of :mod:`.solvers` is an
upper-triangular band plus a rank-``A`` correction (solved in ``O(S J A)``). Every function of
this module takes either kind; :func:`to_dense` gives the equivalent :class:`TabularMDP`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.core import errors

__all__ = [
    "KEEP",
    "REPLACE",
    "TabularMDP",
    "BandedMDP",
    "make_mdp",
    "make_banded_mdp",
    "check_mdp",
    "check_discount",
    "check_probabilities",
    "check_count",
    "check_scalar",
    "to_dense",
    "band_columns",
    "expected_next_values",
    "choice_values",
    "soft_bellman",
    "log_choice_probabilities",
    "choice_probabilities",
    "policy_transition",
    "banded_transition",
    "bus_utilities",
    "bus_engine_mdp",
]

KEEP, REPLACE = 0, 1
"""Action indices of the bus engine model."""


class TabularMDP(NamedTuple):
    """A tabular logit dynamic discrete choice model (arrays only: jit- and vmap-friendly).

    Attributes:
      rewards: ``float[S, A]`` flow utilities ``u(s, a)``.
      transitions: ``float[A, S, S]`` ``P[a, s, s']``; every row sums to one.
      discount: ``float[]`` ``beta in [0, 1)``.
      scale: ``float[]`` the shock scale ``alpha > 0``.
    """

    rewards: jax.Array
    transitions: jax.Array
    discount: jax.Array
    scale: jax.Array


class BandedMDP(NamedTuple):
    """A tabular logit model with banded (increment) transitions (module docstring).

    Attributes:
      rewards: ``float[S, A]`` flow utilities ``u(s, a)``.
      increment_probs: ``float[A, S, J]`` probability of moving up ``j`` states; every
        ``[a, s, :]`` sums to one.
      resets: ``bool[A, S]`` whether action ``a`` in state ``s`` moves as it does in state 0.
      discount: ``float[]`` ``beta in [0, 1)``.
      scale: ``float[]`` the shock scale ``alpha > 0``.
    """

    rewards: jax.Array
    increment_probs: jax.Array
    resets: jax.Array
    discount: jax.Array
    scale: jax.Array


def check_discount(discount, name: str = "discount") -> None:
    """Require ``discount`` (a number or a concrete scalar; tracers pass) to be in ``[0, 1)``.
    ``0`` is allowed: the model is then a static logit (``Q = u``)."""
    if np.ndim(discount) != 0:
        errors.fail(name, "a scalar in [0, 1)", f"shape {np.shape(discount)}")
    if errors.is_concrete(discount) and not 0.0 <= float(discount) < 1.0:
        errors.fail(name, "a number in [0, 1)", float(discount))


def check_probabilities(name: str, p, tol: float) -> None:
    """Require the concrete array ``p`` to hold finite non-negative rows (last axis) summing to
    one within ``tol``."""
    p = np.asarray(p)
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        errors.fail(name, "finite non-negative probabilities", "a negative or NaN")
    row_error = np.abs(p.sum(-1) - 1.0)
    if np.any(row_error > tol):
        index = np.unravel_index(np.argmax(row_error), row_error.shape)
        where = f"row (action {index[0]}, state {index[1]})" if len(index) == 2 else "row"
        errors.fail(
            name,
            f"rows summing to one (within {tol:g})",
            f"{where} summing to {p[index].sum()!r}",
        )


def check_count(name: str, value, low: int) -> None:
    """Require ``value`` to be a Python or numpy integer ``>= low`` (a static size)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        errors.fail(name, f"an int >= {low}", repr(value))
    if value < low:
        errors.fail(name, f"an int >= {low}", value)


def check_scalar(name: str, value, what: str = "a finite number", positive: bool = False) -> None:
    """Require a scalar; when concrete, finite (and ``> 0`` with ``positive``)."""
    if np.ndim(value) != 0:
        errors.fail(name, f"a scalar ({what})", f"shape {np.shape(value)}")
    if errors.is_concrete(value):
        number = float(value)
        if not np.isfinite(number) or (positive and not number > 0.0):
            errors.fail(name, what, number)


def _tolerance(dtype, atol: float | None) -> float:
    if atol is not None:
        return atol
    return 1e-10 if jnp.dtype(dtype) == jnp.float64 else 1e-5


def check_mdp(mdp: TabularMDP | BandedMDP, *, atol: float | None = None) -> None:
    """Require ``mdp`` to be a valid model; the solvers call it on their way in.

    Shapes always; values when every field is concrete (not traced): finite rewards, transition
    (or increment) rows non-negative and summing to one within ``atol`` (default 1e-10 in
    float64, 1e-5 otherwise), ``discount`` in ``[0, 1)``, ``scale > 0``. Raises
    :class:`~prime_science.core.errors.InvalidArgumentError` naming the field.
    """
    if not isinstance(mdp, (TabularMDP, BandedMDP)):
        errors.fail("mdp", "a TabularMDP or BandedMDP", type(mdp).__name__)
    errors.check_rank("rewards", mdp.rewards, 2)
    num_states, num_actions = np.shape(mdp.rewards)
    if isinstance(mdp, TabularMDP):
        name, probs, expected = "transitions", mdp.transitions, (num_actions, num_states)
        if np.shape(probs) != (num_actions, num_states, num_states):
            errors.fail(
                name,
                f"shape (A, S, S) = {(num_actions, num_states, num_states)} to match rewards",
                np.shape(probs),
            )
    else:
        name, probs, expected = "increment_probs", mdp.increment_probs, (num_actions, num_states)
        if np.ndim(probs) != 3 or np.shape(probs)[:2] != expected:
            errors.fail(
                name,
                f"shape (A, S, J) with (A, S) = {expected} to match rewards",
                np.shape(probs),
            )
        if np.shape(mdp.resets) != expected:
            errors.fail("resets", f"shape (A, S) = {expected}", np.shape(mdp.resets))
    errors.check_rank("discount", mdp.discount, 0)
    errors.check_rank("scale", mdp.scale, 0)
    if not all(errors.is_concrete(x) for x in mdp):
        return
    if not np.all(np.isfinite(np.asarray(mdp.rewards))):
        errors.fail("rewards", "finite utilities", "NaN or inf")
    check_probabilities(name, probs, _tolerance(np.asarray(mdp.rewards).dtype, atol))
    check_discount(mdp.discount)
    if not float(mdp.scale) > 0.0:
        errors.fail("scale", "a positive shock scale", float(mdp.scale))


def make_mdp(rewards, transitions, discount, scale=1.0, *, atol: float | None = None) -> TabularMDP:
    """A checked :class:`TabularMDP` (checks on values run only on concrete arrays).

    Raises :class:`~prime_science.core.errors.InvalidArgumentError` for wrong shapes, negative
    or non-finite transition entries, a transition row that does not sum to one (within
    ``atol``: 1e-10 in float64, 1e-5 in float32), ``discount`` outside ``[0, 1)`` or a
    non-positive ``scale``.
    """
    rewards = jnp.asarray(rewards)
    dtype = rewards.dtype if jnp.issubdtype(rewards.dtype, jnp.floating) else jnp.float32
    rewards = rewards.astype(dtype)
    transitions = jnp.asarray(transitions, dtype)
    discount = jnp.asarray(discount, dtype)
    scale = jnp.asarray(scale, dtype)
    model = TabularMDP(rewards, transitions, discount, scale)
    check_mdp(model, atol=atol)
    return model


def make_banded_mdp(
    rewards, increment_probs, resets, discount, scale=1.0, *, atol: float | None = None
) -> BandedMDP:
    """A checked :class:`BandedMDP` (checks on values run only on concrete arrays).

    ``increment_probs`` is ``[A, S, J]``, or ``[J]`` for one distribution shared by every action
    and state; ``resets`` is ``[A, S]`` or ``[A]`` (per action). Raises
    :class:`~prime_science.core.errors.InvalidArgumentError` as :func:`make_mdp` does.
    """
    rewards = jnp.asarray(rewards)
    dtype = rewards.dtype if jnp.issubdtype(rewards.dtype, jnp.floating) else jnp.float32
    rewards = rewards.astype(dtype)
    errors.check_rank("rewards", rewards, 2)
    num_states, num_actions = rewards.shape
    increment_probs = jnp.asarray(increment_probs, dtype)
    if increment_probs.ndim == 1:
        increment_probs = jnp.broadcast_to(
            increment_probs, (num_actions, num_states, increment_probs.shape[0])
        )
    resets = jnp.asarray(resets, bool)
    if resets.ndim == 1:
        if resets.shape[0] != num_actions:
            errors.fail("resets", f"shape (A,) = ({num_actions},) or (A, S)", resets.shape)
        resets = jnp.broadcast_to(resets[:, None], (num_actions, num_states))
    discount = jnp.asarray(discount, dtype)
    scale = jnp.asarray(scale, dtype)
    model = BandedMDP(rewards, increment_probs, resets, discount, scale)
    check_mdp(model, atol=atol)
    return model


def band_columns(mdp: BandedMDP) -> jax.Array:
    """``int32[A, S, J]``: the state that increment ``j`` of ``(a, s)`` reaches."""
    num_actions, num_states, num_increments = mdp.increment_probs.shape
    origin = jnp.where(mdp.resets, 0, jnp.arange(num_states))
    return jnp.minimum(origin[..., None] + jnp.arange(num_increments), num_states - 1)


def to_dense(mdp: TabularMDP | BandedMDP) -> TabularMDP:
    """The same model with dense ``[A, S, S]`` transitions (``O(A S^2)`` memory)."""
    if isinstance(mdp, TabularMDP):
        return mdp
    num_states = mdp.rewards.shape[0]
    onehot = jax.nn.one_hot(band_columns(mdp), num_states, dtype=mdp.increment_probs.dtype)
    probs = jnp.where(mdp.resets[..., None], mdp.increment_probs[:, :1], mdp.increment_probs)
    transitions = jnp.einsum("asj,asjt->ast", probs, onehot)
    return TabularMDP(mdp.rewards, transitions, mdp.discount, mdp.scale)


def expected_next_values(mdp: TabularMDP | BandedMDP, value: jax.Array) -> jax.Array:
    """``float[S, A]``: ``E[V(s') | s, a] = sum_s' P[a, s, s'] V(s')`` (banded: ``O(S J A)``).
    The operators of this module do not check the model (:func:`check_mdp` does), only that
    ``value`` is ``[S]``."""
    if np.shape(value) != mdp.rewards.shape[:1]:
        errors.fail("value", f"shape {mdp.rewards.shape[:1]} (one per state)", np.shape(value))
    if isinstance(mdp, TabularMDP):
        return jnp.einsum("ast,t->sa", mdp.transitions, value)
    num_increments = mdp.increment_probs.shape[-1]
    num_states = value.shape[0]
    padded = jnp.concatenate([value, jnp.broadcast_to(value[-1:], (num_increments - 1,))])
    # a sum of J shifted slices, not a [.., J] contraction: ~10x faster on XLA:CPU under vmap
    probs = mdp.increment_probs
    forward = sum(probs[..., j] * padded[j : j + num_states] for j in range(num_increments))
    restart = sum(probs[:, :1, j] * padded[j] for j in range(num_increments))  # [A, 1]
    return jnp.where(mdp.resets, restart, forward).T


def choice_values(mdp: TabularMDP, value: jax.Array) -> jax.Array:
    """``float[S, A]``: ``Q(s, a) = u(s, a) + beta E[V(s') | s, a]``."""
    return mdp.rewards + mdp.discount * expected_next_values(mdp, value)


def soft_bellman(mdp: TabularMDP, value: jax.Array) -> jax.Array:
    """``float[S]``: ``T(V)(s) = alpha logsumexp_a(Q(s, a) / alpha)`` (max subtracted)."""
    q = choice_values(mdp, value) / mdp.scale
    return mdp.scale * jax.nn.logsumexp(q, axis=-1)


def log_choice_probabilities(mdp: TabularMDP, value: jax.Array) -> jax.Array:
    """``float[S, A]``: ``log pi(a | s)`` given ``V`` (usually the fixed point)."""
    return jax.nn.log_softmax(choice_values(mdp, value) / mdp.scale, axis=-1)


def choice_probabilities(mdp: TabularMDP, value: jax.Array) -> jax.Array:
    """``float[S, A]``: ``pi(a | s)`` given ``V``."""
    return jnp.exp(log_choice_probabilities(mdp, value))


def policy_transition(mdp: TabularMDP, value: jax.Array) -> jax.Array:
    """``float[S, S]``: ``P_pi[s, s'] = sum_a pi(a | s) P[a, s, s']``; ``dT/dV = beta P_pi``
    (dense for either kind of model)."""
    probs = choice_probabilities(mdp, value)
    return jnp.einsum("sa,ast->st", probs, to_dense(mdp).transitions)


def banded_transition(increment_probs: jax.Array, num_states: int) -> jax.Array:
    """``float[S, S]``: move up ``j`` states with probability ``increment_probs[j]``; the mass
    that would leave the grid stays in the last state (so every row sums to one). Checked as
    :func:`bus_engine_mdp` checks it."""
    check_count("num_states", num_states, 1)
    probs = jnp.asarray(increment_probs)
    _check_increment_probs(probs, probs.dtype)
    num_increments = probs.shape[0]
    source = jnp.arange(num_states)[:, None]
    target = jnp.arange(num_states)[None, :]
    steps = target - source
    inside = jnp.where((steps >= 0) & (steps < num_increments), probs[jnp.clip(steps, 0)], 0.0)
    # the last column gets every jump that reaches it or beyond: sum_{j >= S-1-s} p_j
    tail = jnp.cumsum(probs[::-1])[::-1]  # tail[j] = sum_{k >= j} p_k
    reach = num_states - 1 - jnp.arange(num_states)
    last = jnp.where(reach < num_increments, tail[jnp.clip(reach, 0, num_increments - 1)], 0.0)
    return inside.at[:, -1].set(last)


def _check_increment_probs(probs, dtype) -> None:
    errors.check_rank("increment_probs", probs, 1)
    if probs.shape[0] < 1:
        errors.fail("increment_probs", "at least one increment probability", "none")
    if errors.is_concrete(probs):
        check_probabilities("increment_probs", probs, _tolerance(dtype, None))


def bus_utilities(
    replacement_cost: jax.Array, theta11: jax.Array, num_states: int, cost_scale: float = 0.001
) -> jax.Array:
    """``float[S, 2]``: ``u(x, keep) = -c(x)``, ``u(x, replace) = -RC - c(0)``,
    ``c(x) = cost_scale * theta11 * x`` for ``x = 0 .. S-1``. ``num_states`` must be an int
    ``>= 1``; the parameters scalars, finite when concrete."""
    check_count("num_states", num_states, 1)
    check_scalar("replacement_cost", replacement_cost)
    check_scalar("theta11", theta11)
    check_scalar("cost_scale", cost_scale)
    x = jnp.arange(num_states, dtype=jnp.result_type(replacement_cost, theta11, float))
    cost = cost_scale * theta11 * x
    return jnp.stack([-cost, jnp.broadcast_to(-replacement_cost - cost[0], cost.shape)], -1)


def bus_engine_mdp(
    replacement_cost: jax.Array,
    theta11: jax.Array,
    increment_probs: jax.Array,
    num_states: int,
    discount: float | jax.Array,
    cost_scale: float = 0.001,
    *,
    banded: bool = False,
) -> TabularMDP | BandedMDP:
    """Rust's bus engine model (module docstring) as a dense :class:`TabularMDP`, or with
    ``banded=True`` as the equivalent :class:`BandedMDP` (keep: up ``j`` from ``x``; replace: up
    ``j`` from 0). Differentiable in ``replacement_cost``, ``theta11`` and ``increment_probs``.

    Checked as far as the arguments are concrete (traced ones pass): ``num_states`` an int
    ``>= 1``; finite scalar parameters; ``increment_probs`` a non-empty ``[J]`` distribution
    (non-negative, summing to one within 1e-10 in float64, 1e-5 otherwise); ``discount`` in
    ``[0, 1)``. Raises :class:`~prime_science.core.errors.InvalidArgumentError`.
    """
    rewards = bus_utilities(replacement_cost, theta11, num_states, cost_scale)
    check_discount(discount)
    probs = jnp.asarray(increment_probs, rewards.dtype)
    _check_increment_probs(probs, rewards.dtype)
    if banded:
        band = jnp.broadcast_to(probs, (2, num_states, probs.shape[0]))
        resets = jnp.broadcast_to(jnp.array([False, True])[:, None], (2, num_states))
        return BandedMDP(
            rewards,
            band,
            resets,
            jnp.asarray(discount, rewards.dtype),
            jnp.ones((), rewards.dtype),
        )
    keep = banded_transition(probs, num_states)
    replace = jnp.broadcast_to(keep[0], keep.shape)
    transitions = jnp.stack([keep, replace])
    return TabularMDP(
        rewards, transitions, jnp.asarray(discount, rewards.dtype), jnp.ones((), rewards.dtype)
    )
