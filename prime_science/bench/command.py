"""``prime-science bench`` (also ``benchmarks/run.py``): run the suites of
:data:`prime_science.bench.registry.SUITES` and write ``<suite>.json`` and ``.md`` after every
row, so that an interrupted run keeps the rows it finished.

``--suite NAME`` runs one suite, ``--suite all`` (the default) every one in registry order.
Sizes ``N`` and request counts ``B`` default to each suite's own (one size more on an
accelerator or with ``--gpu``); ``--quick`` is the smoke test (``N`` in 1e5 1e6, ``B`` in 1 16,
3 repeats; a suite whose ``N`` counts components keeps its sizes).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import jax

from prime_science.bench.driver import (
    DEFAULT_MAX_SECONDS,
    DEFAULT_REPEATS,
    SuiteConfig,
    run_suite,
    write_results,
)
from prime_science.bench.registry import SUITES

__all__ = ["main"]

QUICK_SIZES = (100_000, 1_000_000)
QUICK_BATCHES = (1, 16)
QUICK_REPEATS = 3


def _count(text: str) -> int:
    """A positive integer count from the command line; ``1e6`` is accepted."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def _positive_seconds(text: str) -> float:
    """A positive number of seconds from the command line."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    """The ``bench`` command's parser (suite names from the registry)."""
    parser = argparse.ArgumentParser(
        prog="prime-science bench",
        description="Time Beta-Bernoulli Thompson sampling (k = 1) against numpy and a "
        "normal-draw floor (beta_bernoulli_sample), probit Thompson scoring + top-10 "
        "against numpy (probit_scoring), layout hill climbing against numpy (hill_climb), "
        "off-policy evaluation with bootstrap intervals against numpy (ope) and a year of a "
        "member population under B offerings against numpy (membership_counterfactual); "
        "write <suite>.json and .md.",
    )
    parser.add_argument(
        "--suite",
        choices=(*SUITES, "all"),
        default="all",
        help="which benchmark to run (default %(default)s)",
    )
    parser.add_argument(
        "--sizes",
        type=_count,
        nargs="+",
        help="numbers of arms / candidates N (default beta_bernoulli_sample: 1e5 1e6 1e7, "
        "probit_scoring: 1e5 1e6; one size more with --gpu or on a GPU); for ope the number "
        "of logged rows (default 1e5 1e6; --suite ope --sizes 1e7 for the full size); for "
        "membership_counterfactual the number of customers (default 1e5 1e6); for "
        "hill_climb the number of components (default 10), taken from --sizes only with "
        "--suite hill_climb",
    )
    parser.add_argument(
        "--batches",
        type=_count,
        nargs="+",
        help="requests per call B (default 1 256; hill_climb: 1 1024; ope: bootstrap "
        "resamples, 1000; membership_counterfactual: offerings, 1 8)",
    )
    parser.add_argument(
        "--repeats",
        type=_count,
        help="timed calls per row (default 7; fewer when a row would exceed --max-seconds)",
    )
    parser.add_argument("--out", help="output directory (default benchmarks/results/<platform>)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: N in 1e5 1e6, B in 1 16, 3 repeats"
    )
    parser.add_argument(
        "--gpu", action="store_true", help="add the largest size (automatic on a GPU)"
    )
    parser.add_argument(
        "--max-seconds",
        type=_positive_seconds,
        default=DEFAULT_MAX_SECONDS,
        help="wall-time budget per row (default %(default)g)",
    )
    parser.add_argument(
        "--total-seconds",
        type=_positive_seconds,
        help="budget of each suite; later rows are skipped",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``prime-science bench``: run the suite(s), write JSON and Markdown after every row.

    Returns:
      The exit status (0).
    """
    args = _parser().parse_args(argv)
    accelerator = args.gpu or jax.default_backend() != "cpu"
    names = tuple(SUITES) if args.suite == "all" else (args.suite,)
    out_dir = Path(args.out or Path("benchmarks", "results", jax.devices()[0].platform))
    for name in names:
        entry = SUITES[name]
        sizes, batches, repeats = entry.sizes(accelerator), entry.batches, DEFAULT_REPEATS
        if args.quick:
            sizes = QUICK_SIZES if entry.counts_items else sizes
            batches, repeats = QUICK_BATCHES, QUICK_REPEATS
        if args.sizes and (entry.counts_items or args.suite == name):
            sizes = args.sizes
        config = SuiteConfig(
            sizes=tuple(sizes),
            batches=tuple(args.batches or batches),
            repeats=args.repeats or repeats,
            max_seconds=args.max_seconds,
            total_seconds=args.total_seconds,
            seed=args.seed,
        )
        results = run_suite(
            entry.build(),
            config,
            progress=True,
            on_row=lambda partial: write_results(partial, out_dir),
        )
        for path in write_results(results, out_dir):
            print(path)
    return 0
