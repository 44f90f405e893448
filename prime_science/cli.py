"""The ``prime-science`` command.

* ``prime-science reproduce [--full] [--only NAME ...] [--seeds N] [--out DIR] [--data DIR]``:
  run the experiments of ``experiments.EXPERIMENTS`` (quick scale unless ``--full``) and
  write each one's ``results.json`` and plots. Before any work it checks the experiment names
  (an unknown one is a usage error, exit status 2) and the data sets every selected experiment
  reads (a missing one: one line on stderr naming the experiments and data sets, exit status
  2, nothing run). While it runs, stderr gets a line per experiment (``[i/n] name: started``,
  then its time, targets passed, the elapsed time and an estimate of the time left). It ends
  with a summary table and the path of ``report.md`` on stdout; the report is rebuilt from
  every ``results.json`` in the results folder, not just the ones run now. Exit status 1 when
  an experiment crashed (its traceback goes to stderr and into its ``results.json``, hence the
  report); failing targets are reported, not errors.
* ``prime-science report [--out DIR]``: only rebuild ``report.md`` from the results on disk.
* ``prime-science list``: the experiments, one per line.
* ``prime-science bench [args ...]``: the benchmark suites
  (:func:`prime_science.bench.command.main`).
* ``prime-science --version``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prime_science import __version__, runner
from prime_science.bench import command as bench_command
from prime_science.core.errors import fail
from prime_science.core.experiment import check_experiment
from prime_science.datasets import source
from prime_science.report import rebuild_report

__all__ = ["DEFAULT_SEEDS", "known_experiments", "main"]

DEFAULT_SEEDS = {"quick": 5, "full": 10}
"""Seeds per experiment when ``--seeds`` is not given."""


def known_experiments() -> dict[str, Any]:
    """The experiments of ``experiments.EXPERIMENTS`` by ``NAME``, in that order, each checked
    against the contract of :mod:`prime_science.core.experiment`.

    The command line is the one place that loads the ``experiments`` package (the runner takes
    experiment objects); it does so here, on first use, so that ``--help``, ``report`` and
    ``bench`` do not pay for importing every experiment.

    Raises:
      InvalidArgumentError: an experiment that breaks the contract, or two with one ``NAME``.
    """
    import experiments

    table: dict[str, Any] = {}
    for experiment in experiments.EXPERIMENTS:
        check_experiment(experiment)
        if experiment.NAME in table:
            fail("experiments.EXPERIMENTS", "distinct NAMEs", f"{experiment.NAME!r} twice")
        table[experiment.NAME] = experiment
    return table


def _version() -> str:
    """The installed distribution's version, else the package's own ``__version__``."""
    try:
        return importlib.metadata.version("prime-science")
    except importlib.metadata.PackageNotFoundError:
        return f"{__version__} (not installed)"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The command's parser and its ``reproduce`` sub-parser (for usage errors found later)."""
    parser = argparse.ArgumentParser(
        prog="prime-science", description="Reproduce the prime_science experiments."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    reproduce = commands.add_parser(
        "reproduce",
        help="run the experiments and write results and report.md",
        description=(
            "Run the experiments, write results/<name>/results.json and plots, and rebuild "
            "report.md from every results.json in the results folder. Unknown experiment names "
            "and missing data sets are found before anything runs: either stops the command "
            "with exit status 2 (no experiment is skipped silently). Exit status 1 when an "
            "experiment crashed, 0 otherwise (failing targets are reported, not errors)."
        ),
    )
    reproduce.add_argument(
        "--full", action="store_true", help="full scale (default: quick, minutes on a laptop)"
    )
    reproduce.add_argument(
        "--only", action="append", metavar="NAME", help="run only this experiment (repeatable)"
    )
    reproduce.add_argument(
        "--seeds",
        type=_positive_int,
        help=(
            f"seeds per experiment (default: {DEFAULT_SEEDS['quick']} at quick scale, "
            f"{DEFAULT_SEEDS['full']} at full)"
        ),
    )
    reproduce.add_argument(
        "--seeds-per-call",
        type=_positive_int,
        default=1,
        help="seeds vmapped in one compiled call (raise on an accelerator; default 1)",
    )
    reproduce.add_argument("--out", default="results", help="results folder (default results/)")
    reproduce.add_argument(
        "--data",
        help=(
            f"folder overriding the data sets shipped in the package, one sub-folder per data "
            f"set (default ${source.DATA_ENV_VAR}, else the shipped copies); checked before "
            "anything runs"
        ),
    )

    report = commands.add_parser(
        "report", help="rebuild report.md from every results.json in the results folder"
    )
    report.add_argument("--out", default="results", help="results folder (default results/)")
    commands.add_parser("list", help="list the experiments")
    train = commands.add_parser(
        "train-membership",
        help="Deep PQR on a simulated member panel as a checkpointed, resumable training job",
        description=(
            "Train Deep PQR (P, Q and R steps) on member-months simulated from the structural "
            "membership model, streamed block by block, with a checkpoint every 1,000 steps; "
            "run it again with the same folder to resume after an interruption (the result is "
            "the same as an uninterrupted run)."
        ),
    )
    train.add_argument(
        "--checkpoints", required=True, help="checkpoint folder (resumes from its latest step)"
    )
    train.add_argument(
        "--blocks",
        type=_positive_int,
        default=28,
        help="blocks of simulated members (default 28: about 1e6 member-months)",
    )
    train.add_argument("--members-per-block", type=_positive_int, default=1000)
    train.add_argument("--seed", type=int, default=0, help="seed of the panel and the job")
    commands.add_parser(
        "bench", help="run the benchmark suites (arguments go to the benchmark CLI)", add_help=False
    )
    return parser, reproduce


def _clock(seconds: float) -> str:
    """``seconds`` as ``45s``, ``3m10s`` or ``1h05m``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _missing_data(experiments: dict[str, Any], path: str | None) -> str | None:
    """``None`` when every data set of every experiment is found, else one line naming the
    experiments, the data sets they lack and where each was looked for."""
    needs: dict[str, list[str]] = {}
    for name, experiment in experiments.items():
        for dataset in getattr(experiment, "DATASETS", ()):
            needs.setdefault(dataset, []).append(name)
    missing, reasons = {}, []
    for dataset, users in needs.items():
        try:
            source.check_available([dataset], path)
        except source.DataNotFoundError as error:
            missing[dataset] = users
            reasons.append(str(error))
    if not missing:
        return None
    lacking = ", ".join(f"{', '.join(users)} needs {dataset}" for dataset, users in missing.items())
    return f"missing data, nothing was run: {lacking}. " + " ".join(reasons)


def _reproduce(args: argparse.Namespace, usage: argparse.ArgumentParser) -> int:
    known = known_experiments()
    names = list(dict.fromkeys(args.only or sorted(known)))
    unknown = [name for name in names if name not in known]
    if unknown:
        usage.error(
            f"unknown experiment(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    problem = _missing_data({name: known[name] for name in names}, args.data)
    if problem:
        print(f"prime-science reproduce: {problem}", file=sys.stderr)
        return 2
    if args.data:
        os.environ[source.DATA_ENV_VAR] = args.data
    scale = "full" if args.full else "quick"
    seeds = args.seeds or DEFAULT_SEEDS[scale]

    rows, started = [], time.perf_counter()
    for i, name in enumerate(names, start=1):
        step = f"[{i}/{len(names)}] {name}"
        print(f"{step}: started", file=sys.stderr, flush=True)
        tic = time.perf_counter()
        try:
            record = runner.run_experiment(
                known[name],
                seeds=seeds,
                scale=scale,
                out_dir=args.out,
                seeds_per_call=args.seeds_per_call,
            )
        except Exception:  # one crash must not cost the other experiments their results
            error = traceback.format_exc()
            sys.stderr.write(f"experiment {name} crashed:\n{error}")
            record = runner.write_crash_record(
                name,
                error,
                args.out,
                scale=scale,
                seeds=seeds,
                total_s=time.perf_counter() - tic,
                description=runner.describe(known[name]),
            )
        rows.append((name, record, time.perf_counter() - tic))
        elapsed = time.perf_counter() - started
        left = len(names) - i
        estimate = f", about {_clock(left * elapsed / i)} left" if left else ""
        outcome = (
            f"targets {_targets_passed(record)} passed" if record["status"] == "ok" else "crashed"
        )
        print(
            f"{step}: done in {rows[-1][2]:.1f} s, {outcome}; elapsed {_clock(elapsed)}{estimate}",
            file=sys.stderr,
            flush=True,
        )
    report = rebuild_report(args.out)
    _print_summary(rows)
    print(report)
    return int(any(record["status"] != "ok" for _, record, _ in rows))


def _targets_passed(record: dict[str, Any]) -> str:
    """``passed/total`` for a finished experiment, ``–`` for a crashed one."""
    if record["status"] != "ok":
        return "–"
    return f"{sum(target['passed'] for target in record['targets'])}/{len(record['targets'])}"


def _print_summary(rows: list[tuple[str, dict[str, Any], float]]) -> None:
    """The table ``experiment | targets passed | time | status`` of this run, on stdout."""
    table = [("experiment", "targets passed", "time", "status")]
    for name, record, seconds in rows:
        status = "ok" if record["status"] == "ok" else "crashed"
        table.append((name, _targets_passed(record), f"{seconds:.1f} s", status))
    widths = [max(len(row[column]) for row in table) for column in range(4)]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def _report(args: argparse.Namespace) -> int:
    if not any(Path(args.out).glob("*/results.json")):
        print(
            f"prime-science report: no results under {args.out!r} "
            "(run `prime-science reproduce` first, or pass --out)",
            file=sys.stderr,
        )
        return 2
    print(rebuild_report(args.out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``prime-science``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # every argument after it belongs to the benchmark CLI
        return bench_command.main(argv[1:]) or 0
    parser, reproduce = _parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, experiment in sorted(known_experiments().items()):
            print(f"{name}\t{runner.describe(experiment)}")
        return 0
    if args.command == "report":
        return _report(args)
    if args.command == "train-membership":
        return _train_membership(args)
    return _reproduce(args, reproduce)


def _train_membership(args: argparse.Namespace) -> int:
    """``prime-science train-membership``: exit status 0 once every step is done."""
    import jax

    from prime_science.membership import model, training

    key = jax.random.key(args.seed)
    panel = training.simulated_source(
        jax.random.fold_in(key, 0),
        model.true_params(),
        num_blocks=args.blocks,
        members_per_block=args.members_per_block,
    )
    result = training.train(
        training.TrainingConfig(), panel, args.checkpoints, key=jax.random.fold_in(key, 1)
    )
    start = "a fresh start" if result.resumed_from is None else f"step {result.resumed_from}"
    print(
        f"train-membership: from {start}; finished: {result.finished}; checkpoints in "
        f"{args.checkpoints}"
    )
    return 0 if result.finished else 1
