"""The ``prime-science`` command.

* ``prime-science reproduce [--full] [--only NAME ...] [--seeds N] [--out DIR]``: run the
  registered experiments (quick scale unless ``--full``), write each one's ``results.json`` and
  plots, then ``report.md``, and print the report's path. Exit status 1 when an experiment
  crashed (its traceback goes to stderr and into the report); failing targets are reported, not
  errors.
* ``prime-science list``: the registered experiments, one per line.
* ``prime-science bench [args ...]``: the benchmark suite, :func:`prime_science.benchmarking.main`.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from prime_science import benchmarking, runner
from prime_science.report import write_report

__all__ = ["DEFAULT_SEEDS", "main"]

DEFAULT_SEEDS = {"quick": 5, "full": 10}
"""Seeds per experiment when ``--seeds`` is not given."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prime-science", description="Reproduce the prime_science experiments."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    reproduce = commands.add_parser(
        "reproduce", help="run the experiments and write results and report.md"
    )
    reproduce.add_argument(
        "--full", action="store_true", help="full scale (default: quick, minutes on a laptop)"
    )
    reproduce.add_argument(
        "--only", action="append", metavar="NAME", help="run only this experiment (repeatable)"
    )
    reproduce.add_argument(
        "--seeds", type=int, help=f"seeds per experiment (default {DEFAULT_SEEDS})"
    )
    reproduce.add_argument(
        "--seeds-per-call",
        type=int,
        default=1,
        help="seeds vmapped in one compiled call (raise on an accelerator; default 1)",
    )
    reproduce.add_argument("--out", default="results", help="results folder (default results/)")
    reproduce.add_argument(
        "--data", help=f"real-data folder (default ${runner.DATA_ENV_VAR} or ../shared/data)"
    )

    commands.add_parser("list", help="list the registered experiments")
    commands.add_parser(
        "bench", help="run the benchmark suite (arguments go to the benchmark CLI)", add_help=False
    )
    return parser


def _reproduce(args: argparse.Namespace) -> int:
    if args.data:
        os.environ[runner.DATA_ENV_VAR] = args.data
    scale = "full" if args.full else "quick"
    seeds = args.seeds or DEFAULT_SEEDS[scale]
    names = args.only or sorted(runner.registry())
    records = {}
    for name in names:
        try:
            records[name] = runner.run_experiment(
                name, seeds=seeds, scale=scale, out_dir=args.out, seeds_per_call=args.seeds_per_call
            )
        except Exception:  # one crash must not cost the other experiments their results
            error = traceback.format_exc()
            sys.stderr.write(f"experiment {name} crashed:\n{error}")
            records[name] = {"name": name, "status": "error", "error": error}
    print(write_report(records, args.out))
    return int(any(record["status"] != "ok" for record in records.values()))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``prime-science``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # every argument after it belongs to the benchmark CLI
        return benchmarking.main(argv[1:]) or 0
    args = _parser().parse_args(argv)
    if args.command == "list":
        for name, experiment in sorted(runner.registry().items()):
            print(f"{name}\t{runner.describe(experiment)}")
        return 0
    return _reproduce(args)
