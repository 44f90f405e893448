"""Fixed-point solvers for the soft Bellman equation ``V = T(V)`` (:mod:`.mdp`).

Relative-value form. Every transition row sums to one, so ``T(V + c 1) = T(V) + beta c 1``:
the fixed point is large (``|V| ~ |u| / (1 - beta)``, 1e5 at ``beta = 0.9999``) but the choice
probabilities depend only on differences of ``V``. Both solvers therefore iterate on the
relative operator (reference state ``0``)::

    G(W) = T(W) - T(W)[0] 1,      W* = G(W*)  (so W*[0] = 0),
    V* = W* + g / (1 - beta) 1,   g = T(W*)[0],

which is exact (``T(V*) = V*``) and keeps the iterate ``O(|u| / (1 - lambda_2))`` instead of
``O(|u| / (1 - beta))``. ``G(W + c 1) = G(W)``, so successive approximation on ``G`` contracts at
least at rate ``beta`` in the span seminorm. The residual reported is ``max_s |G(W) - W|``,
which equals ``max_s |T(V) - V|`` for ``V = W + g / (1 - beta)``.

Solvers (Rust 1987, 2000 "NFXP manual"):

* :func:`successive_approximation`: ``W <- G(W)`` until the residual is below ``tol``.
* :func:`newton_kantorovich`: Rust's polyalgorithm: contraction steps until the residual is
  below ``switch_tol`` (at most ``contraction_steps``), then Newton steps
  ``W <- W - (I - G'(W))^{-1} (W - G(W))`` with
  ``G'(W) = beta (P_pi - 1 P_pi[0, :])`` (``P_pi`` = :func:`.mdp.policy_transition`). Deflating
  the unit eigenvalue of ``P_pi`` keeps ``I - G'`` well conditioned even at ``beta = 0.9999``,
  where ``I - beta P_pi`` has condition number ~1e4.

Banded models (:class:`~.mdp.BandedMDP`). Every solve with ``I - G'(W)`` (the Newton step,
the implicit derivatives) goes through :func:`policy_solve`, which for a banded model writes
``P_pi = F + sum_a c_a P[a, 0, :]`` with ``F`` the moves up from ``s`` (an upper-triangular band
of width ``J``) and ``c_a[s] = pi(a | s) resets[a, s]`` the restarts (a restarting row is the
action's row at state 0). Since ``P_pi[0, :] = sum_a pi(a | 0) P[a, 0, :]`` as well::

    I - G'(W) = U + X Y^T,   U = I - beta F,
    X[:, a] = beta (pi(a | 0) 1 - c_a),   Y^T[a, :] = P[a, 0, :],

an upper-triangular band plus a rank-``A`` term (without the deflation, ``X = -beta c``):
Woodbury's identity ``M^{-1} r = z - Z (I + Y^T Z)^{-1} Y^T z`` with ``z = U^{-1} r``,
``Z = U^{-1} X``, ``U^{-1}`` by banded back substitution (``O(S J)`` per right-hand side, ``A + 1``
of them). The diagonal of ``U`` is at least ``1 - beta``, so ``U`` is never singular.

Derivatives are implicit (implicit function theorem, not through the loop): with
``W* = G(W*; theta)``, ``dW* = (I - G'(W*))^{-1} dG/dtheta``. The rule is a ``jax.custom_jvp``,
so forward mode (``jacfwd``), reverse mode (``grad``; JAX transposes the linear solve) and
``vmap`` over parameter vectors all work; derivatives flow to every field of the
:class:`~.mdp.TabularMDP` (utilities, transitions, discount, scale).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.choice.mdp import (
    BandedMDP,
    TabularMDP,
    check_count,
    check_mdp,
    choice_probabilities,
    policy_transition,
    soft_bellman,
)
from prime_science.core import errors
from prime_science.core.types import SolverInfo

__all__ = [
    "relative_bellman",
    "newton_matrix",
    "policy_solve",
    "newton_solve",
    "successive_approximation",
    "newton_kantorovich",
    "solve_relative",
    "linear_solve",
]


def relative_bellman(mdp: TabularMDP, relative_value: jax.Array) -> jax.Array:
    """``float[S]``: ``G(W) = T(W) - T(W)[0]``."""
    t = soft_bellman(mdp, relative_value)
    return t - t[0]


def newton_matrix(mdp: TabularMDP, relative_value: jax.Array) -> jax.Array:
    """``float[S, S]``: ``I - G'(W) = I - beta (P_pi - 1 P_pi[0, :])`` (dense for either kind)."""
    p_pi = policy_transition(mdp, relative_value)
    deflated = p_pi - p_pi[:1, :]
    return jnp.eye(p_pi.shape[0], dtype=p_pi.dtype) - mdp.discount * deflated


def _lu_factor(matrix: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Gaussian elimination with partial pivoting as a ``fori_loop`` of rank-one updates:
    ``(packed L\\U, row permutation)``. On XLA:CPU in this jax, ``jnp.linalg.solve`` in float64
    takes ~0.1 s for a 175 x 175 system (~10x slower than this loop); other backends use it."""
    n = matrix.shape[0]
    rows = jnp.arange(n)

    def step(k, carry):
        a, perm = carry
        pivot = jnp.argmax(jnp.where(rows >= k, jnp.abs(a[:, k]), -1.0))
        row_k, row_pivot = a[k], a[pivot]
        a = a.at[k].set(row_pivot).at[pivot].set(row_k)
        perm_k, perm_pivot = perm[k], perm[pivot]
        perm = perm.at[k].set(perm_pivot).at[pivot].set(perm_k)
        below = rows > k
        factors = jnp.where(below, a[:, k] / a[k, k], 0.0)
        a = a - factors[:, None] * jnp.where(below, a[k], 0.0)[None, :]
        return a.at[:, k].set(jnp.where(below, factors, a[:, k])), perm

    return jax.lax.fori_loop(0, n, step, (matrix, rows))


def _lu_solve(factors: tuple[jax.Array, jax.Array], rhs: jax.Array) -> jax.Array:
    lu, perm = factors
    y = jax.scipy.linalg.solve_triangular(lu, rhs[perm], lower=True, unit_diagonal=True)
    return jax.scipy.linalg.solve_triangular(lu, y, lower=False)


def linear_solve(matrix: jax.Array, rhs: jax.Array) -> jax.Array:
    """``matrix^{-1} rhs`` (linear and transposable in ``rhs``); see :func:`_lu_factor`.
    ``matrix`` is ``[n, n]``, ``rhs`` ``[n]`` or ``[n, K]``."""
    errors.check_rank("matrix", matrix, 2)
    n = matrix.shape[0]
    if matrix.shape != (n, n):
        errors.fail("matrix", "a square matrix", f"shape {matrix.shape}")
    _check_rhs(rhs, n)
    if jax.default_backend() == "cpu":
        return _lu_solve(_lu_factor(matrix), rhs)
    return jnp.linalg.solve(matrix, rhs)


def _check_rhs(rhs, num_states: int) -> None:
    if np.ndim(rhs) not in (1, 2) or np.shape(rhs)[0] != num_states:
        errors.fail("rhs", f"shape ({num_states},) or ({num_states}, K)", np.shape(rhs))


def _check_vector(name: str, x, num_states: int) -> None:
    if np.shape(x) != (num_states,):
        errors.fail(name, f"shape ({num_states},)", np.shape(x))


def _banded_back_substitution(upper: jax.Array, rhs: jax.Array) -> jax.Array:
    """``U^{-1} rhs`` for an upper-triangular band ``U[s, s + k] = upper[s, k]``
    (``upper[S, J]``, ``rhs[S, K]``): a reverse ``scan`` carrying the last ``J - 1`` solutions."""
    num_bands = upper.shape[1]
    if num_bands == 1:
        return rhs / upper

    def step(window, inputs):
        row, b = inputs
        for k in range(1, num_bands):
            b = b - row[k] * window[k - 1]
        x = b / row[0]
        return (x, *window[:-1]), x

    window = tuple(jnp.zeros(rhs.shape[1], rhs.dtype) for _ in range(num_bands - 1))
    _, solution = jax.lax.scan(step, window, (upper, rhs), reverse=True)
    return solution


def _banded_policy_solve(mdp: BandedMDP, probs, rhs, deflate, transposable=True):
    """:func:`policy_solve` for a :class:`~.mdp.BandedMDP` (module docstring)."""
    num_states = mdp.rewards.shape[0]
    num_increments = mdp.increment_probs.shape[-1]
    beta = mdp.discount
    moving = jnp.where(mdp.resets, 0.0, probs.T)  # [A, S]: pi(a | s) where a moves from s
    forward = jnp.sum(moving[..., None] * mdp.increment_probs, 0)  # [S, J]
    # move j from s lands in band k = min(j, S - 1 - s): the band's last entry takes the tail
    reach = num_states - 1 - jnp.arange(num_states)[:, None]
    bands = jnp.arange(num_increments)
    tail = jnp.cumsum(forward[:, ::-1], 1)[:, ::-1]
    band = jnp.where(bands < reach, forward, jnp.where(bands == reach, tail, 0.0))
    upper = jnp.where(bands == 0, 1.0, 0.0) - beta * band
    # X[:, a] = beta (pi_a(0) [deflate] - pi_a(s) resets[a, s]);  Y^T[a] = P[a, 0, :]
    left = -beta * jnp.where(mdp.resets, probs.T, 0.0).T  # [S, A]
    if deflate:
        left = left + beta * probs[0]
    first_rows = mdp.increment_probs[:, 0, :]  # [A, J]
    targets = [min(j, num_states - 1) for j in range(num_increments)]
    vector = rhs.ndim == 1
    rhs = rhs[:, None] if vector else rhs
    if transposable:  # rhs alone in its scan, so that JAX can transpose the solve in rhs
        z, big_z = _banded_back_substitution(upper, rhs), _banded_back_substitution(upper, left)
    else:  # one scan for all right-hand sides: faster, but not transposable
        solved = _banded_back_substitution(upper, jnp.concatenate([rhs, left], 1))
        z, big_z = solved[:, : rhs.shape[1]], solved[:, rhs.shape[1] :]

    def project(x):  # Y^T x: [A, K]
        return sum(first_rows[:, j, None] * x[t] for j, t in enumerate(targets))

    capacitance = jnp.eye(left.shape[1], dtype=rhs.dtype) + project(big_z)
    # small (A x A) systems: LAPACK through jnp.linalg.solve is fast enough here
    small = jnp.linalg.solve(capacitance, project(z))  # [A, K]
    solution = z - sum(big_z[:, a, None] * small[a] for a in range(left.shape[1]))
    return solution[:, 0] if vector else solution


def policy_solve(
    mdp: TabularMDP | BandedMDP,
    probs: jax.Array,
    rhs: jax.Array,
    *,
    deflate: bool = False,
) -> jax.Array:
    """``M^{-1} rhs`` with ``M = I - beta P_pi`` (``deflate=False``) or the Newton matrix
    ``M = I - beta (P_pi - 1 P_pi[0, :])`` (``deflate=True``), ``P_pi[s] = sum_a probs[s, a]
    P[a, s]``; ``probs`` is ``float[S, A]``, ``rhs`` ``float[S]`` or ``float[S, K]``. Dense models:
    LU; banded models: back substitution and Woodbury (module docstring). Linear in ``rhs``.
    The model is checked (:func:`.mdp.check_mdp`) and so are the shapes."""
    check_mdp(mdp)
    num_states, num_actions = mdp.rewards.shape
    if np.shape(probs) != (num_states, num_actions):
        errors.fail("probs", f"shape {(num_states, num_actions)}", np.shape(probs))
    _check_rhs(rhs, num_states)
    return _policy_solve(mdp, probs, rhs, deflate)


def _policy_solve(mdp, probs, rhs, deflate, transposable=True):
    """:func:`policy_solve` unchecked (the solvers' inner loops and derivatives)."""
    if isinstance(mdp, BandedMDP):
        return _banded_policy_solve(mdp, probs, rhs, deflate, transposable)
    p_pi = jnp.einsum("sa,ast->st", probs, mdp.transitions)
    if deflate:
        p_pi = p_pi - p_pi[:1, :]
    matrix = jnp.eye(p_pi.shape[0], dtype=p_pi.dtype) - mdp.discount * p_pi
    return linear_solve(matrix, rhs)


def newton_solve(
    mdp: TabularMDP | BandedMDP,
    relative_value: jax.Array,
    rhs: jax.Array,
    *,
    transposable: bool = True,
):
    """``(I - G'(W))^{-1} rhs`` (:func:`policy_solve` with the policy of ``W``).
    ``transposable=False`` (banded models) solves every right-hand side of the Woodbury
    formula in one scan: faster, but reverse mode cannot transpose it (the Newton loop, which
    is never differentiated, uses it). The model is checked (:func:`.mdp.check_mdp`) and so are
    the shapes."""
    check_mdp(mdp)
    num_states = mdp.rewards.shape[0]
    _check_vector("relative_value", relative_value, num_states)
    _check_rhs(rhs, num_states)
    return _newton_solve(mdp, relative_value, rhs, transposable)


def _newton_solve(mdp, relative_value, rhs, transposable=True):
    """:func:`newton_solve` unchecked (the solvers' inner loops and derivatives)."""
    probs = choice_probabilities(mdp, relative_value)
    return _policy_solve(mdp, probs, rhs, True, transposable)


def _residual(w: jax.Array, gw: jax.Array) -> jax.Array:
    return jnp.max(jnp.abs(gw - w))


def _contract(mdp, w, num_iters, tol, max_iters):
    """``W <- G(W)`` while the residual is ``>= tol`` and fewer than ``max_iters`` steps ran."""
    gw = relative_bellman(mdp, w)

    def cond(carry):
        _, gw, k, w = carry
        return (_residual(w, gw) >= tol) & (k < max_iters)

    def body(carry):
        _, gw, k, _ = carry
        return gw, relative_bellman(mdp, gw), k + 1, gw

    w, gw, k, _ = jax.lax.while_loop(cond, body, (w, gw, num_iters, w))
    return w, gw, k


def _info(w, gw, k, tol) -> SolverInfo:
    """Converged: the residual is below ``tol`` and every ``W`` is finite."""
    residual = _residual(w, gw)
    return SolverInfo(k, residual, (residual < tol) & jnp.all(jnp.isfinite(w)))


def _successive_loop(mdp, initial, tol, max_iters):
    w, gw, k = _contract(mdp, initial, jnp.int32(0), tol, max_iters)
    return w, _info(w, gw, k, tol)


def _newton_loop(mdp, initial, tol, max_iters, contraction_steps, switch_tol):
    w, gw, k = _contract(mdp, initial, jnp.int32(0), switch_tol, contraction_steps)
    newton_start = k

    def cond(carry):
        w, gw, k = carry
        return (_residual(w, gw) >= tol) & (k - newton_start < max_iters)

    def body(carry):
        w, gw, k = carry
        w = w - _newton_solve(mdp, w, w - gw, transposable=False)
        w = w - w[0]
        return w, relative_bellman(mdp, w), k + 1

    w, gw, k = jax.lax.while_loop(cond, body, (w, gw, k))
    return w, _info(w, gw, k, tol)


def _zero_info_tangent(info: SolverInfo) -> SolverInfo:
    return SolverInfo(
        np.zeros(np.shape(info.num_iters), jax.dtypes.float0),
        jnp.zeros_like(info.residual),
        np.zeros(np.shape(info.converged), jax.dtypes.float0),
    )


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _implicit(loop: Callable, mdp: TabularMDP, initial: jax.Array):
    return loop(mdp, initial)


@_implicit.defjvp
def _implicit_jvp(loop, primals, tangents):
    mdp, initial = primals
    mdp_dot, _ = tangents
    w, info = _implicit(loop, mdp, initial)
    _, g_dot = jax.jvp(lambda m: relative_bellman(m, w), (mdp,), (mdp_dot,))
    w_dot = _newton_solve(mdp, w, g_dot)
    return (w, info), (w_dot, _zero_info_tangent(info))


def _default_tol(dtype) -> float:
    return 1e-10 if jnp.dtype(dtype) == jnp.float64 else 1e-5


def _initial(mdp: TabularMDP, initial_value) -> jax.Array:
    num_states = mdp.rewards.shape[0]
    if initial_value is None:
        return jnp.zeros(num_states, mdp.rewards.dtype)
    initial_value = jnp.asarray(initial_value, mdp.rewards.dtype)
    _check_vector("initial_value", initial_value, num_states)
    if errors.is_concrete(initial_value) and not np.all(np.isfinite(np.asarray(initial_value))):
        errors.fail("initial_value", "finite values", "NaN or inf")
    return initial_value - initial_value[0]


def _check_tolerance(name: str, value, strict: bool) -> None:
    """``value > 0`` (``strict``) or ``>= 0``, not NaN (a number or a concrete scalar)."""
    if np.ndim(value) != 0:
        errors.fail(name, "a scalar tolerance", f"shape {np.shape(value)}")
    if errors.is_concrete(value):
        number = float(value)
        if not (number > 0.0 if strict else number >= 0.0):
            errors.fail(name, "a positive tolerance" if strict else "a tolerance >= 0", number)


def _absolute(mdp: TabularMDP, w: jax.Array, info: SolverInfo) -> tuple[jax.Array, SolverInfo]:
    """``(V, info)``: ``V = W + g / (1 - beta)`` with ``g = T(W)[0]``; not converged unless
    every ``V`` is finite (``beta = 1`` under ``jit``, where nothing is checked, gives
    ``V = +-inf`` from a finite ``W``)."""
    value = w + soft_bellman(mdp, w)[0] / (1.0 - mdp.discount)
    return value, info._replace(converged=info.converged & jnp.all(jnp.isfinite(value)))


def solve_relative(
    mdp: TabularMDP,
    *,
    method: str = "newton",
    tol: float | None = None,
    max_iters: int | None = None,
    contraction_steps: int = 50,
    switch_tol: float = 1e-3,
    initial_value: jax.Array | None = None,
) -> tuple[jax.Array, SolverInfo]:
    """``(W*, info)``: the relative value ``W* = V* - V*[0]`` (module docstring).

    Args:
      mdp: the model (build it with :func:`.mdp.make_mdp` to check it).
      method: ``"newton"`` (Rust's polyalgorithm) or ``"successive"``.
      tol: stop when ``max_s |G(W) - W| < tol`` (default 1e-10 in float64, 1e-5 in float32).
      max_iters: Newton steps (default 50) or contraction steps (default 100,000).
      contraction_steps, switch_tol: the contraction phase of the polyalgorithm.
      initial_value: a starting ``V`` (shifted so that its state 0 is 0); default zeros.

    ``info.converged`` is true only when the residual is below ``tol`` and ``W*`` is finite.
    Raises :class:`~prime_science.core.errors.InvalidArgumentError` for an invalid model
    (:func:`.mdp.check_mdp`: ``discount`` outside ``[0, 1)``, non-finite rewards, transition rows
    that are negative or do not sum to one; value checks only when not traced), ``tol <= 0``,
    ``max_iters < 1``, ``contraction_steps < 0``, ``switch_tol < 0``, an unknown ``method``, or an
    ``initial_value`` of the wrong shape or not finite.
    """
    check_mdp(mdp)
    if tol is not None:
        _check_tolerance("tol", tol, strict=True)
    if max_iters is not None:
        check_count("max_iters", max_iters, 1)
    check_count("contraction_steps", contraction_steps, 0)
    _check_tolerance("switch_tol", switch_tol, strict=False)
    tol = _default_tol(mdp.rewards.dtype) if tol is None else tol
    if method == "newton":
        loop = partial(
            _newton_loop,
            tol=tol,
            max_iters=50 if max_iters is None else max_iters,
            contraction_steps=contraction_steps,
            switch_tol=switch_tol,
        )
    elif method == "successive":
        loop = partial(
            _successive_loop, tol=tol, max_iters=100_000 if max_iters is None else max_iters
        )
    else:
        errors.fail("method", "'newton' or 'successive'", repr(method))
    return _implicit(loop, mdp, _initial(mdp, initial_value))


def successive_approximation(
    mdp: TabularMDP,
    *,
    tol: float | None = None,
    max_iters: int = 100_000,
    initial_value: jax.Array | None = None,
) -> tuple[jax.Array, SolverInfo]:
    """``(V*, info)`` by successive approximation on the relative operator."""
    w, info = solve_relative(
        mdp, method="successive", tol=tol, max_iters=max_iters, initial_value=initial_value
    )
    return _absolute(mdp, w, info)


def newton_kantorovich(
    mdp: TabularMDP,
    *,
    tol: float | None = None,
    max_iters: int = 50,
    contraction_steps: int = 50,
    switch_tol: float = 1e-3,
    initial_value: jax.Array | None = None,
) -> tuple[jax.Array, SolverInfo]:
    """``(V*, info)`` by Rust's polyalgorithm (contraction steps, then Newton-Kantorovich).

    ``info.num_iters`` counts contraction and Newton steps together.
    """
    w, info = solve_relative(
        mdp,
        method="newton",
        tol=tol,
        max_iters=max_iters,
        contraction_steps=contraction_steps,
        switch_tol=switch_tol,
        initial_value=initial_value,
    )
    return _absolute(mdp, w, info)
