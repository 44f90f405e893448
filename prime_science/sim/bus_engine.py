"""Simulated bus engine panels: Rust (1987) / Su and Judd (2012) Monte Carlo design.

Su and Judd's design (as in their public Monte Carlo code): ``S = 175`` mileage bins,
increments ``0 .. 4`` with probabilities ``(0.0937, 0.4475, 0.4459, 0.0127, 0.0002)``,
``theta11 = 2.4569``, ``RC = 11.7257``, ``beta = 0.975``, 50 buses observed for 120 months,
250 data sets.

Every bus starts at bin 0. Each month, given bin ``x_t``, the manager draws its decision
``d_t ~ pi(. | x_t)`` (the logit policy at the model's fixed point, :mod:`prime_science.choice`),
then the increment ``j_t ~ theta3``; the next bin is ``min(j_t, S - 1)`` after a replacement and
``min(x_t + j_t, S - 1)`` after keeping (the top bin absorbs, as in
:func:`prime_science.choice.mdp.banded_transition`). The panel records ``(x_t, d_t, j_t)``,
with ``j_t = -1`` in the last month (no next month observed), the layout of
:class:`prime_science.choice.data.ChoiceData`, rows ordered bus by bus.

Precision follows the shocks: the model is solved in the float dtype of the uniforms, which
:func:`draw_shocks` draws in float32 and returns in the dtype asked for, so that one key gives
the same uniforms in either precision.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.choice.data import ChoiceData
from prime_science.choice.mdp import (
    bus_engine_mdp,
    check_count,
    check_discount,
    check_probabilities,
    choice_probabilities,
)
from prime_science.choice.solvers import solve_relative
from prime_science.core import errors
from prime_science.core.types import PRNGKey

__all__ = [
    "SU_JUDD",
    "BusEngineDesign",
    "BusShocks",
    "check_design",
    "draw_shocks",
    "simulate_from_shocks",
    "simulate_bus_panel",
]


class BusEngineDesign(NamedTuple):
    """A Monte Carlo design (static: hashable).

    Attributes:
      replacement_cost: ``RC``.
      theta11: maintenance cost slope (``c(x) = 0.001 theta11 x``).
      increment_probs: ``theta3``.
      num_states: mileage bins.
      discount: ``beta``.
      num_buses, num_months: panel size.
    """

    replacement_cost: float = 11.7257
    theta11: float = 2.4569
    increment_probs: tuple[float, ...] = (0.0937, 0.4475, 0.4459, 0.0127, 0.0002)
    num_states: int = 175
    discount: float = 0.975
    num_buses: int = 50
    num_months: int = 120


SU_JUDD = BusEngineDesign()
"""Su and Judd (2012)'s design at ``beta = 0.975``."""


class BusShocks(NamedTuple):
    """The randomness of one panel (``[num_months, num_buses]``).

    Attributes:
      uniforms: uniforms (float32 draws, in the dtype the model is solved in); bus ``b``
        replaces in month ``t`` iff ``uniforms[t, b] < pi(replace | x_t)``.
      increments: ``int32`` draws from ``theta3``.
    """

    uniforms: jax.Array
    increments: jax.Array


def check_design(design: BusEngineDesign) -> None:
    """Require a :class:`BusEngineDesign` with finite costs, ``increment_probs`` a distribution
    (non-negative, summing to one within 1e-9), ``num_states``, ``num_buses`` and ``num_months``
    ints ``>= 1`` and ``discount`` in ``[0, 1)``; raises
    :class:`~prime_science.core.errors.InvalidArgumentError` naming the field."""
    if not isinstance(design, BusEngineDesign):
        errors.fail("design", "a BusEngineDesign", type(design).__name__)
    for name in ("replacement_cost", "theta11"):
        value = getattr(design, name)
        if not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(value):
            errors.fail(f"design.{name}", "a finite number", value)
    if np.ndim(design.increment_probs) != 1 or not len(design.increment_probs):
        errors.fail("design.increment_probs", "a non-empty sequence", design.increment_probs)
    check_probabilities("design.increment_probs", np.asarray(design.increment_probs, float), 1e-9)
    for name in ("num_states", "num_buses", "num_months"):
        check_count(f"design.{name}", getattr(design, name), 1)
    check_discount(design.discount, "design.discount")


def _check_shocks(shocks: BusShocks, design: BusEngineDesign) -> None:
    shape = (design.num_months, design.num_buses)
    if not isinstance(shocks, BusShocks):
        errors.fail("shocks", "a BusShocks", type(shocks).__name__)
    for name, x in zip(("shocks.uniforms", "shocks.increments"), shocks, strict=True):
        if np.shape(x) != shape:
            errors.fail(name, f"shape (num_months, num_buses) = {shape}", np.shape(x))
    errors.check_dtype_kind("shocks.uniforms", shocks.uniforms, "f", "float uniforms")
    errors.check_dtype_kind("shocks.increments", shocks.increments, "iu", "integer increments")
    if errors.is_concrete(shocks.increments):
        values = np.asarray(shocks.increments)
        if values.min() < 0 or values.max() >= len(design.increment_probs):
            errors.fail(
                "shocks.increments",
                f"increments in [0, {len(design.increment_probs)})",
                f"range [{values.min()}, {values.max()}]",
            )


def draw_shocks(key: PRNGKey, design: BusEngineDesign, dtype=None) -> BusShocks:
    """The uniforms and ``int32`` increments of one panel. The uniforms are drawn in float32
    and returned in ``dtype`` (default JAX's default float), the dtype the model will be solved
    in: one key gives the same uniforms, and the same increments, in either precision. ``key``
    must be one PRNG key and ``design`` pass :func:`check_design`."""
    errors.check_key("key", key)
    check_design(design)
    dtype = jnp.result_type(float) if dtype is None else dtype
    key_decisions, key_increments = jax.random.split(key)
    shape = (design.num_months, design.num_buses)
    uniforms = jax.random.uniform(key_decisions, shape, jnp.float32)
    log_probs = jnp.log(jnp.asarray(design.increment_probs, jnp.float32))
    increments = jax.random.categorical(key_increments, log_probs, shape=shape)
    return BusShocks(uniforms.astype(dtype), increments.astype(jnp.int32))


def simulate_from_shocks(shocks: BusShocks, design: BusEngineDesign) -> ChoiceData:
    """The panel that ``shocks`` give under ``design`` (module docstring); the model is solved
    in the dtype of ``shocks.uniforms``. ``design`` must pass :func:`check_design` and ``shocks``
    have shape ``(num_months, num_buses)``, float uniforms and increments in ``[0, J)`` (when
    concrete)."""
    check_design(design)
    _check_shocks(shocks, design)
    dtype = shocks.uniforms.dtype
    mdp = bus_engine_mdp(
        jnp.asarray(design.replacement_cost, dtype),
        jnp.asarray(design.theta11, dtype),
        jnp.asarray(design.increment_probs, dtype),
        design.num_states,
        design.discount,
        banded=True,
    )
    relative_value, _ = solve_relative(mdp)
    replace_prob = choice_probabilities(mdp, relative_value)[:, 1]
    top = design.num_states - 1

    def month(state, inputs):
        uniform, increment = inputs
        decision = (uniform < replace_prob[state]).astype(jnp.int32)
        next_state = jnp.minimum(jnp.where(decision == 1, 0, state) + increment, top)
        return next_state, (state, decision)

    start = jnp.zeros(design.num_buses, jnp.int32)
    _, (states, decisions) = jax.lax.scan(month, start, (shocks.uniforms, shocks.increments))
    increments = shocks.increments.at[-1].set(-1)
    # [months, buses] -> bus by bus
    return ChoiceData(states.T.reshape(-1), decisions.T.reshape(-1), increments.T.reshape(-1))


def simulate_bus_panel(key: PRNGKey, design: BusEngineDesign, dtype=None) -> ChoiceData:
    """One simulated panel of ``num_buses * num_months`` bus-months (module docstring), the
    model solved in ``dtype`` (default JAX's default float); checked as :func:`draw_shocks`
    checks its arguments."""
    return simulate_from_shocks(draw_shocks(key, design, dtype), design)
