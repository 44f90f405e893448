"""Membership timings: (a) a counterfactual-style forward simulation of 1e6 customers x 36
months (``simulate.step`` in a ``lax.scan``, shares and revenue kept, no panel) beside a numpy
loop doing the same work; (b) a batch of float64 Bellman solves of the membership model in one
jitted call (``vmap`` over parameter draws) beside a numpy loop of the same solves.

From the repository root::

    PYTHONPATH=. python benchmarks/membership.py                      # CPU defaults
    PYTHONPATH=. python benchmarks/membership.py --solves 10000 --batch-size 500 --numpy-solves 20
    PYTHONPATH=. python benchmarks/membership.py --members 1e5 --solves 100   # a moderate run

Writes ``membership.json`` and ``membership.md`` (see :mod:`prime_science.bench.membership` for
what is timed). numpy's BLAS is limited to one thread (``OPENBLAS_NUM_THREADS=1``, set before
numpy loads) unless the variable is already set, as in ``benchmarks/bellman.py``.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402

from prime_science.bench.membership import (  # noqa: E402
    PLAN_GROUPS,
    batched_solve_timings,
    forward_simulation_timings,
)


def _count(text: str) -> int:
    value = float(text)
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def _load_note() -> str:
    try:
        load = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} (1, 5, 15 min) on {os.cpu_count()} cores"


def _shares(shares: dict) -> str:
    return ", ".join(f"{name} {shares[name]:.3f}" for name in PLAN_GROUPS)


def _markdown(record: dict) -> str:
    device = record["device"]
    lines = [
        "# membership",
        "",
        f"- device: {device['platform']} ({device['cpu_model']}, {device['usable_cores']} "
        f"cores, shared with other jobs: timings are noisy); jax {device['jax_version']}; "
        f"{device['date']}",
        f"- load average at the start: {record['load_before']}; at the end: {record['load_after']}",
        f"- numpy BLAS threads: OPENBLAS_NUM_THREADS={record['openblas_threads']}",
        "- compile: jit(fn).lower().compile(), apart; run: median of the timed calls after a "
        "warm-up",
    ]
    sim = record.get("simulation")
    if sim:
        scaled = f" (timed on the first {sim['numpy_timed_members']:,}, scaled linearly)"
        lines += [
            "",
            f"## (a) forward simulation: {sim['num_members']:,} customers x {sim['months']} months",
            "",
            f"- model: E = {sim['levels']} engagement levels, {sim['lock_months']}-month lock, "
            f"{sim['num_states']:,} states over both segments; solved once in float32 "
            f"({sim['solve_seconds']:.1f} s with compilation, not timed)",
            "- per month: plan shares and revenue per customer; the panel is not stored",
            "",
            "| | time | note |",
            "|---|---:|---|",
            f"| ours (simulate.step in lax.scan, one jit call) | {sim['jax_median_seconds']:.2f} s "
            f"| median of {sim['jax_repeats']}, IQR {sim['jax_iqr_seconds']:.2f} s; compile "
            f"{sim['jax_compile_seconds']:.1f} s apart; "
            f"{sim['member_months_per_second'] / 1e6:.1f}M member-months/s |",
            f"| numpy (vectorised over customers, loop over months) | {sim['numpy_seconds']:.2f} s"
            f" | one run{scaled if sim['numpy_extrapolated'] else ''} |",
            f"| speed-up | {sim['speedup']:.1f}x | |",
            "",
            f"- shares after {sim['months'] - 1} months, ours: {_shares(sim['final_shares'])}; "
            f"numpy: {_shares(sim['numpy_final_shares'])}",
            f"- revenue per customer-month (mean over the months), ours "
            f"{sim['mean_revenue_per_customer_month']:.3f}, numpy "
            f"{sim['numpy_mean_revenue_per_customer_month']:.3f} (dollars)",
        ]
    solves = record.get("solves")
    if solves:
        batching = (
            f"lax.map over vmapped chunks of {solves['batch_size']}"
            if solves["batch_size"]
            else "one vmap"
        )
        scaled = (
            f" (timed on the first {solves['numpy_timed_solves']:,}, scaled by iterations; same "
            f"iterations as ours: {solves['same_iterations']})"
        )
        lines += [
            "",
            f"## (b) {solves['num_solves']:,} Bellman solves in one call",
            "",
            f"- model: E = {solves['levels']}, {solves['lock_months']}-month lock, "
            f"{solves['num_states']:,} states x 3 actions, segment {solves['segment']}, "
            f"beta = 0.99, float64, relative value iteration to max |G(W) - W| <= "
            f"{solves['tol']:g}",
            "- draws: each structural parameter times U(0.8, 1.2)",
            f"- iterations: median {solves['median_iterations']:g}, max "
            f"{solves['max_iterations']} (a vmapped batch runs until its slowest member is done)",
            "",
            "| | time | note |",
            "|---|---:|---|",
            f"| ours ({batching}) | {solves['jax_median_seconds']:.2f} s | median of "
            f"{solves['jax_repeats']}, IQR {solves['jax_iqr_seconds']:.2f} s; compile "
            f"{solves['jax_compile_seconds']:.1f} s apart; {solves['solves_per_second']:.1f} "
            "solves/s |",
            f"| numpy relative value iteration, draw by draw | {solves['numpy_seconds']:.2f} s |"
            f"{scaled if solves['numpy_extrapolated'] else ''} |",
            f"| speed-up | {solves['speedup']:.1f}x | all converged: {solves['all_converged']}, "
            f"max residual {solves['max_residual']:.2g}, max abs value difference "
            f"{solves['max_abs_difference']:.2g} |",
        ]
    return "\n".join(lines + [""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=_count, default=1_000_000)
    parser.add_argument("--months", type=_count, default=36)
    parser.add_argument(
        "--numpy-members", type=_count, default=None, help="time numpy on this many (default all)"
    )
    parser.add_argument(
        "--solves", type=_count, default=200, help="parameter draws (1e4 is the goal; default 200)"
    )
    parser.add_argument("--levels", type=_count, default=3, help="engagement levels in (b)")
    parser.add_argument(
        "--batch-size", type=int, default=0, help="(b): lax.map chunk size; 0: one vmap over all"
    )
    parser.add_argument("--numpy-solves", type=_count, default=10, help="(b): numpy draws timed")
    parser.add_argument("--repeats", type=_count, default=3)
    parser.add_argument("--skip-simulation", action="store_true", help="(b) only")
    parser.add_argument("--skip-solves", action="store_true", help="(a) only")
    parser.add_argument("--out", default=None, help="default benchmarks/results/<platform>")
    args = parser.parse_args()
    if args.skip_simulation and args.skip_solves:
        parser.error("--skip-simulation and --skip-solves leave nothing to time")
    out = Path(args.out or Path("benchmarks", "results", jax.devices()[0].platform))
    out.mkdir(parents=True, exist_ok=True)
    record: dict = {"load_before": _load_note()}
    if not args.skip_simulation:
        record["simulation"] = forward_simulation_timings(
            args.members, args.months, repeats=args.repeats, numpy_members=args.numpy_members
        )
    if not args.skip_solves:
        record["solves"] = batched_solve_timings(
            args.solves,
            levels=args.levels,
            batch_size=args.batch_size or None,
            repeats=args.repeats,
            numpy_limit=args.numpy_solves,
        )
    record["device"] = (record.get("simulation") or record["solves"])["device"]
    record["openblas_threads"] = os.environ.get("OPENBLAS_NUM_THREADS")
    record["load_after"] = _load_note()
    (out / "membership.json").write_text(json.dumps(record, indent=2, default=str))
    (out / "membership.md").write_text(_markdown(record))
    print(_markdown(record))


if __name__ == "__main__":
    main()
