"""Reproductions: one module per experiment, each keeping the contract of
:mod:`prime_science.core.experiment`.

Each module defines ``NAME``, ``Config`` (with ``quick()`` and ``full()``), ``run(key, config)``,
``summarize``, ``targets`` and ``plot``. ``EXPERIMENTS`` lists them in the order
``prime-science reproduce`` runs them; the command line, not this package, builds the
name -> experiment table and hands each one to :func:`prime_science.runner.run_experiment`.
"""

from experiments import (
    callout_regret,
    cold_start,
    deep_pqr,
    delays,
    irl,
    layout_search,
    layouts,
    membership,
    meta_prior,
    ope_obd,
    retention,
    rust_bus,
)

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
    membership,
    retention,
    ope_obd,
)
