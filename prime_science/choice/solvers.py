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

Solvers (Rust 1987, 2000 "NFXP manual"; STYLE rule 7):

* :func:`successive_approximation`: ``W <- G(W)`` until the residual is below ``tol``.
* :func:`newton_kantorovich`: Rust's polyalgorithm: contraction steps until the residual is
  below ``switch_tol`` (at most ``contraction_steps``), then Newton steps
  ``W <- W - (I - G'(W))^{-1} (W - G(W))`` with
  ``G'(W) = beta (P_pi - 1 P_pi[0, :])`` (``P_pi`` = :func:`.mdp.policy_transition`). Deflating
  the unit eigenvalue of ``P_pi`` keeps ``I - G'`` well conditioned even at ``beta = 0.9999``,
  where ``I - beta P_pi`` has condition number ~1e4.

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

from prime_science.choice.mdp import TabularMDP, policy_transition, soft_bellman
from prime_science.core import errors
from prime_science.core.types import SolverInfo

__all__ = [
    "relative_bellman",
    "newton_matrix",
    "successive_approximation",
    "newton_kantorovich",
    "solve_relative",
]


def relative_bellman(mdp: TabularMDP, relative_value: jax.Array) -> jax.Array:
    """``float[S]``: ``G(W) = T(W) - T(W)[0]``."""
    t = soft_bellman(mdp, relative_value)
    return t - t[0]


def newton_matrix(mdp: TabularMDP, relative_value: jax.Array) -> jax.Array:
    """``float[S, S]``: ``I - G'(W) = I - beta (P_pi - 1 P_pi[0, :])``."""
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
    """``matrix^{-1} rhs`` (linear and transposable in ``rhs``); see :func:`_lu_factor`."""
    if jax.default_backend() == "cpu":
        return _lu_solve(_lu_factor(matrix), rhs)
    return jnp.linalg.solve(matrix, rhs)


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


def _successive_loop(mdp, initial, tol, max_iters):
    w, gw, k = _contract(mdp, initial, jnp.int32(0), tol, max_iters)
    residual = _residual(w, gw)
    return w, SolverInfo(k, residual, residual < tol)


def _newton_loop(mdp, initial, tol, max_iters, contraction_steps, switch_tol):
    w, gw, k = _contract(mdp, initial, jnp.int32(0), switch_tol, contraction_steps)
    newton_start = k

    def cond(carry):
        w, gw, k = carry
        return (_residual(w, gw) >= tol) & (k - newton_start < max_iters)

    def body(carry):
        w, gw, k = carry
        w = w - linear_solve(newton_matrix(mdp, w), w - gw)
        w = w - w[0]
        return w, relative_bellman(mdp, w), k + 1

    w, gw, k = jax.lax.while_loop(cond, body, (w, gw, k))
    residual = _residual(w, gw)
    return w, SolverInfo(k, residual, residual < tol)


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
    w_dot = linear_solve(newton_matrix(mdp, w), g_dot)
    return (w, info), (w_dot, _zero_info_tangent(info))


def _default_tol(dtype) -> float:
    return 1e-10 if jnp.dtype(dtype) == jnp.float64 else 1e-5


def _initial(mdp: TabularMDP, initial_value) -> jax.Array:
    num_states = mdp.rewards.shape[0]
    if initial_value is None:
        return jnp.zeros(num_states, mdp.rewards.dtype)
    initial_value = jnp.asarray(initial_value, mdp.rewards.dtype)
    if initial_value.shape != (num_states,):
        errors.fail("initial_value", f"shape ({num_states},)", initial_value.shape)
    return initial_value - initial_value[0]


def _absolute(mdp: TabularMDP, w: jax.Array) -> jax.Array:
    """``V = W + g / (1 - beta)`` with ``g = T(W)[0]``."""
    return w + soft_bellman(mdp, w)[0] / (1.0 - mdp.discount)


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
    """
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
    return _absolute(mdp, w), info


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
    return _absolute(mdp, w), info
