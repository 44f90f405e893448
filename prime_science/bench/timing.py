"""Timing helpers shared by every benchmark: steady-state calls and compile time.

* :func:`compile_jitted`: wall time of ``jax.jit(fn).lower(*args).compile()`` (trace, lower and
  XLA compile); the first execution is not part of it.
* :func:`time_calls`: one warm-up call (timed, excluded), then ``repeats`` calls, each timed
  with ``time.perf_counter`` around the call and ``jax.block_until_ready``; the median, the
  minimum and the inter-quartile range (:class:`Timing`). The number of calls shrinks to fit a
  wall-time budget, never below one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from prime_science.core.errors import fail

__all__ = ["Timing", "compile_jitted", "time_calls"]


class Timing(NamedTuple):
    """Steady-state timing of one callable, in seconds.

    Attributes:
      median_seconds: median over the timed calls.
      min_seconds: fastest timed call.
      iqr_seconds: 75th minus 25th percentile of the timed calls.
      repeats: number of timed calls.
      first_call_seconds: the warm-up call (excluded), or ``None`` without one.
    """

    median_seconds: float
    min_seconds: float
    iqr_seconds: float
    repeats: int
    first_call_seconds: float | None


def time_calls(
    fn: Callable[[], Any],
    repeats: int,
    *,
    budget_seconds: float = math.inf,
    warmup: bool = True,
    estimate_seconds: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Time ``repeats`` calls of ``fn()``, each until ``jax.block_until_ready`` of its result.

    With ``warmup`` one call runs first, timed but excluded. Its time (or ``estimate_seconds``)
    predicts a call; the number of timed calls shrinks so that they fit in what is left of
    ``budget_seconds``, but never below one.

    Args:
      fn: the call to time; anything it returns is blocked on.
      repeats: the most timed calls (at least one).
      budget_seconds: wall time available for warm-up plus timed calls.
      warmup: run one excluded call first.
      estimate_seconds: predicted seconds per call when there is no warm-up.
      clock: the clock, ``time.perf_counter`` unless a test fakes it.

    Returns:
      A :class:`Timing`.
    """
    if repeats < 1:
        fail("repeats", "at least 1", repeats)
    start = clock()
    first_call_seconds = None
    if warmup:
        jax.block_until_ready(fn())
        first_call_seconds = clock() - start
        estimate_seconds = first_call_seconds
    if estimate_seconds and math.isfinite(budget_seconds):
        left = budget_seconds - (clock() - start)
        repeats = max(1, min(repeats, int(left // estimate_seconds)))
    times = []
    for _ in range(repeats):
        begin = clock()
        jax.block_until_ready(fn())
        times.append(clock() - begin)
    q25, median, q75 = np.percentile(times, [25, 50, 75])
    return Timing(float(median), float(min(times)), float(q75 - q25), repeats, first_call_seconds)


def compile_jitted(
    fn: Callable[..., Any], *args: Any, clock: Callable[[], float] = time.perf_counter
) -> tuple[Any, float]:
    """``jax.jit(fn).lower(*args).compile()`` and the wall seconds it took.

    Returns:
      ``(compiled, compile_seconds)``; call ``compiled(*args)`` with arguments of the same
      shapes, dtypes and tree structure.
    """
    start = clock()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, clock() - start
