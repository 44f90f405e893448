"""The worker of the concurrent-save test: run in a spawned process, it waits at a barrier
and then saves checkpoint ``step`` with ``overwrite=False``, reporting how the save ended."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class Written(NamedTuple):
    """The state each writer saves: its own index everywhere, so the winner is visible."""

    writer: np.ndarray


def save_when_released(directory: str, step: int, writer: int, barrier: Any, results: Any):
    """Save ``Written(writer)`` as ``step`` once every writer is ready; put
    ``(writer, error class name or "ok", message)`` on ``results``."""
    from prime_science.core.checkpoint import save_checkpoint

    state = Written(np.full(16, writer, np.int32))
    barrier.wait(timeout=60)
    try:
        save_checkpoint(directory, state, step=step)
    except Exception as error:  # reported to the test, which checks the class
        results.put((writer, type(error).__name__, str(error)))
    else:
        results.put((writer, "ok", ""))
