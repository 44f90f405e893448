"""Reproductions: one module per experiment, registered with :mod:`prime_science.runner`.

Each module defines ``NAME``, ``Config`` (with ``quick()`` and ``full()``), ``run(key, config)``,
``summarize``, ``targets`` and ``plot``; ``prime-science reproduce`` runs all of ``EXPERIMENTS``.
"""

from experiments import (
    callout_regret,
    cold_start,
    deep_pqr,
    delays,
    irl,
    layout_search,
    layouts,
    meta_prior,
    rust_bus,
)
from prime_science.runner import register

__all__ = ["EXPERIMENTS"]

EXPERIMENTS = (
    callout_regret,
    cold_start,
    delays,
    meta_prior,
    layout_search,
    layouts,
    rust_bus,
    irl,
    deep_pqr,
)

for _experiment in EXPERIMENTS:
    register(_experiment)
