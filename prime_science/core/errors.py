"""One error family for everything that enters the library from outside.

Rule: data from users, files and flags is checked once, eagerly, at the
boundary; inside ``jit`` nothing is re-checked. Every check raises :class:`InvalidArgumentError`
(a ``ValueError``) whose message names the argument, what was expected and what came.

Checks on *values* (ranges, NaN, membership) need concrete arrays. When a function is traced
(someone ``jit``s a policy's ``update``), the arguments are tracers and only the static checks
(shape, dtype) run; this is what "nothing is re-checked inside jit" means in practice.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

__all__ = [
    "InvalidArgumentError",
    "CheckpointError",
    "is_concrete",
    "fail",
    "check_rank",
    "check_dtype_kind",
    "check_same_length",
    "check_key",
]


class InvalidArgumentError(ValueError):
    """A bad argument: the message reads ``<name>: expected <what>, got <what came>``."""


class CheckpointError(InvalidArgumentError):
    """A checkpoint that is missing, corrupt, or does not match what the caller expects."""


def fail(name: str, expected: str, got: Any) -> None:
    """Raise :class:`InvalidArgumentError` with the house message format."""
    raise InvalidArgumentError(f"{name}: expected {expected}, got {got}")


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds values this process can inspect: not a tracer inside a transform,
    and not a global array with shards on other processes' devices (a multi-process job checks
    such inputs where they are built, on each process's own shards)."""
    if isinstance(x, jax.core.Tracer):
        return False
    return bool(getattr(x, "is_fully_addressable", True))


def check_rank(name: str, x: Any, rank: int) -> None:
    """Require ``x`` to have exactly ``rank`` dimensions."""
    ndim = np.ndim(x)
    if ndim != rank:
        fail(name, f"an array of rank {rank}", f"rank {ndim} (shape {np.shape(x)})")


def check_dtype_kind(name: str, x: Any, kinds: str, what: str) -> None:
    """Require the dtype kind of ``x`` to be one of ``kinds`` (numpy kind letters)."""
    dtype = np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype
    if dtype.kind not in kinds:
        fail(name, what, f"dtype {dtype}")


def check_same_length(names: tuple[str, str], a: Any, b: Any) -> None:
    """Require two 1-D arguments to have the same length."""
    la, lb = np.shape(a)[0], np.shape(b)[0]
    if la != lb:
        fail(names[1], f"the same length as {names[0]} ({la})", f"length {lb}")


def check_key(name: str, key: Any) -> None:
    """Require one PRNG key: a typed key of shape ``()`` from ``jax.random.key`` or a legacy
    ``uint32[2]`` key from ``jax.random.PRNGKey``.

    Only the dtype and shape are read, so the check also runs on tracers (under ``jit``).
    """
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if np.shape(key) != ():
            fail(name, "a single PRNG key (shape ())", f"a key array of shape {np.shape(key)}")
        return
    if dtype is not None and np.dtype(dtype) == np.uint32 and np.shape(key) == (2,):
        return
    got = f"dtype {dtype}, shape {np.shape(key)}" if dtype is not None else None
    got = got or f"{type(key).__name__} {key!r}"
    fail(name, "a PRNG key (jax.random.key(seed), or a legacy uint32[2] PRNGKey)", got)
