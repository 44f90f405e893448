"""Boundary checks shared by the delayed-feedback modules (times are float32 hours)."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from prime_science.core import errors

__all__ = ["FLOAT32_MAX", "all_concrete", "check_times", "check_scalar", "check_finite"]

FLOAT32_MAX = float(np.finfo(np.float32).max)


def all_concrete(*values: Any) -> bool:
    """Whether every leaf of ``values`` is concrete (not traced), so it can be checked."""
    return all(errors.is_concrete(v) for v in jax.tree_util.tree_leaves(values))


def check_times(name: str, values: Any) -> None:
    """A vector of real times; when concrete, each finite in float32."""
    errors.check_rank(name, values, 1)
    errors.check_dtype_kind(name, values, "iuf", "real-valued times (hours)")
    if all_concrete(values):
        array = np.asarray(values, np.float64)
        bad = ~(np.abs(array) <= FLOAT32_MAX)  # NaN, inf, or inf once in float32
        if bad.any():
            expected = "finite times (no NaN or inf; |t| <= 3.4e38, float32)"
            errors.fail(name, expected, f"{array[bad][:5].tolist()}")


def check_scalar(name: str, value: Any, *, positive: bool = False, allow_inf: bool = False):
    """A real scalar; when concrete, not NaN, finite in float32 (or exactly ``inf`` with
    ``allow_inf``) and, with ``positive``, > 0."""
    dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
    if np.ndim(value) != 0 or np.dtype(dtype).kind not in "iuf":
        errors.fail(name, "a real number (a scalar)", f"{type(value).__name__} {value!r}")
    if all_concrete(value):
        x = float(np.asarray(value))
        too_big = np.isfinite(x) and abs(x) > FLOAT32_MAX
        if np.isnan(x) or (np.isinf(x) and not allow_inf) or (positive and x <= 0) or too_big:
            what = ("a number" if allow_inf else "a finite number") + (" > 0" if positive else "")
            errors.fail(name, f"{what} (finite ones at most 3.4e38, float32)", repr(x))


def check_finite(name: str, values: Any, upper: float = np.inf) -> None:
    """Real values; when concrete, finite (no NaN) and at most ``upper``."""
    errors.check_dtype_kind(name, values, "biuf", "real values")
    if all_concrete(values):
        array = np.asarray(values, np.float64)
        bad = ~(np.isfinite(array) & (array <= upper))
        if bad.any():
            what = "finite values (no NaN)" + (f" <= {upper:.4g}" if np.isfinite(upper) else "")
            errors.fail(name, what, f"{np.atleast_1d(array)[np.atleast_1d(bad)][:5].tolist()}")
