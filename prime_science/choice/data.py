"""Choice panels: the record every bus-engine estimator and simulator shares, and its checks.

A panel (:class:`ChoiceData`) lists bus-months ``t`` bus by bus: the mileage bin ``x_t``, the
decision ``d_t`` (0 keep, 1 replace) and the increment ``j_t`` to the next month's bin, ``-1`` in
a bus's last month (no next month observed). :mod:`.nfxp` and :mod:`.ccp` estimate from it,
:mod:`prime_science.sim.bus_engine` simulates it, and :mod:`prime_science.datasets.rust_bus`
discretises Rust's data into the same three columns.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from prime_science.choice.mdp import check_count
from prime_science.core import errors

__all__ = ["ChoiceData", "check_choice_data", "check_increments"]


class ChoiceData(NamedTuple):
    """A bus panel as arrays (length ``n``; module docstring).

    Attributes:
      state: ``int32[n]`` mileage bin.
      decision: ``int32[n]`` 0 keep, 1 replace.
      increment: ``int32[n]`` bins moved to the next month, ``-1`` when there is none.
    """

    state: jax.Array
    decision: jax.Array
    increment: jax.Array


def check_increments(
    increment,
    num_increments: int | None,
    name: str = "increment",
    size_name: str = "num_increments",
) -> None:
    """``increment`` an ``int[n]``; when concrete, entries ``>= -1`` and, unless
    ``num_increments`` is None, at least one ``>= 0`` and all ``< num_increments`` (a larger
    one is blamed on ``size_name``, the argument that set ``num_increments``)."""
    if num_increments is not None:
        check_count(size_name, num_increments, 1)
    errors.check_rank(name, increment, 1)
    errors.check_dtype_kind(name, increment, "iu", "integer increments")
    if not errors.is_concrete(increment):
        return
    values = np.asarray(increment)
    if values.size and values.min() < -1:
        errors.fail(name, "increments >= 0, or -1 where there is no next month", values.min())
    if num_increments is None:
        return
    observed = values[values >= 0]
    if observed.size == 0:
        errors.fail(name, "at least one observed increment (>= 0)", "none")
    if observed.max() >= num_increments:
        errors.fail(
            size_name,
            f"more categories than the largest observed increment ({observed.max()})",
            num_increments,
        )


def check_choice_data(
    data: ChoiceData, num_states: int, num_increments: int | None, num_actions: int = 2
) -> None:
    """Require ``data`` to be a non-empty :class:`ChoiceData` of ``int[n]`` fields of one length
    with (when concrete) ``state`` in ``[0, num_states)``, ``decision`` in
    ``[0, num_actions)`` and ``increment >= -1``; unless ``num_increments`` is None, also at least
    one observed (``>= 0``) increment and every increment ``< num_increments`` (one at or above
    it is reported as a too small ``num_increments``). Raises
    :class:`~prime_science.core.errors.InvalidArgumentError`."""
    if not isinstance(data, ChoiceData):
        errors.fail("data", "a ChoiceData(state, decision, increment)", type(data).__name__)
    check_count("num_states", num_states, 1)
    for name, x in zip(("data.state", "data.decision", "data.increment"), data, strict=True):
        errors.check_rank(name, x, 1)
        errors.check_dtype_kind(name, x, "iu", "integer values")
    errors.check_same_length(("data.state", "data.decision"), data.state, data.decision)
    errors.check_same_length(("data.state", "data.increment"), data.state, data.increment)
    if np.shape(data.state)[0] == 0:
        errors.fail("data", "at least one bus-month", "0 rows")
    for name, x, high in (
        ("data.state", data.state, num_states),
        ("data.decision", data.decision, num_actions),
    ):
        if errors.is_concrete(x):
            values = np.asarray(x)
            if values.min() < 0 or values.max() >= high:
                errors.fail(
                    name, f"values in [0, {high})", f"range [{values.min()}, {values.max()}]"
                )
    check_increments(data.increment, num_increments, "data.increment")
