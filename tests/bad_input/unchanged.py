"""The bad-input suites' case record and check: a failed call raises the named error and leaves
state, inputs and files as they were (a deep host copy taken before the call equals one taken
after)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import pytest


def files(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (and ``root`` itself) with its bytes; ``None`` for folders."""
    listing: dict[str, bytes | None] = {".": None}
    for path in sorted(root.rglob("*")):
        listing[str(path.relative_to(root))] = None if path.is_dir() else path.read_bytes()
    return listing


def snapshot(value: Any) -> Any:
    """A deep host copy of ``value`` (a pytree of arrays, or a directory's files)."""
    if isinstance(value, Path):
        return files(value) if value.is_dir() else value.read_bytes()

    def copy(leaf):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        return np.array(leaf, copy=True) if hasattr(leaf, "shape") else leaf

    return jax.tree.map(copy, value)


def same(before: Any, after: Any) -> bool:
    leaves_b, tree_b = jax.tree.flatten(before)
    leaves_a, tree_a = jax.tree.flatten(after)
    if tree_b != tree_a:
        return False
    for b, a in zip(leaves_b, leaves_a, strict=True):
        if isinstance(b, np.ndarray):
            if b.dtype != a.dtype or not np.array_equal(b, a, equal_nan=b.dtype.kind == "f"):
                return False
        elif b != a:
            return False
    return True


class Case(NamedTuple):
    id: str
    call: Any  # env -> anything; must raise
    error: type[Exception]
    match: str  # a substring of the message: the argument's name and what was expected
    watch: Any  # env -> what must not change (arrays, a state, or a directory's files)


def check_case(env: Any, case: Case) -> None:
    """``case.call(env)`` raises ``case.error`` in the house format (``<name>: expected ...,
    got ...``) with ``case.match`` in the message, and ``case.watch(env)`` is unchanged."""
    before = snapshot(case.watch(env))
    with pytest.raises(case.error) as raised:
        case.call(env)
    message = str(raised.value)
    assert case.match in message, message
    assert ": expected " in message and ", got " in message  # the house format
    assert same(before, snapshot(case.watch(env)))
