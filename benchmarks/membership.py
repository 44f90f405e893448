"""Membership timings: (a) a counterfactual-style forward simulation of 1e6 customers x 36
months (``simulate.step`` in a ``lax.scan``, shares and revenue kept, no panel) beside a numpy
loop doing the same work; (b) a batch of float64 Bellman solves of the membership model in one
jitted call (``model.solve_batch``) beside numpy loops of the same solves; (c) tabular PQR's
anchor-Q solve and R-step (``pqr.membership_pqr``) vmapped over replicate log-policies beside a
numpy loop; and the machine's DRAM bandwidth (numpy copy / triad, jitted triad), in the header.

From the repository root::

    PYTHONPATH=. python benchmarks/membership.py                      # CPU defaults
    PYTHONPATH=. python benchmarks/membership.py --skip-simulation --solves 10000 \
        --numpy-solves 20 --numpy-full-solves 4 --pqr-replicates 1000 10000   # the issue's size
    PYTHONPATH=. python benchmarks/membership.py --members 1e5 --solves 100   # a moderate run

Writes ``membership.json`` and ``membership.md`` (``--name`` changes the stem; see
:mod:`prime_science.bench.membership` for what is timed). numpy's BLAS is limited to one
thread (``OPENBLAS_NUM_THREADS=1``, set before numpy loads) unless the variable is already set,
as in ``benchmarks/bellman.py``.
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
    dram_bandwidth,
    forward_simulation_timings,
    pqr_timings,
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


def _solves_markdown(solves: dict) -> list[str]:
    def scaled(timed, same):
        if timed >= solves["num_solves"]:
            return "all draws"
        return (
            f"timed on the first {timed:,}, scaled by iterations (total "
            f"{solves['total_iterations']:,}); same iterations as ours: {same}"
        )

    lines = [
        "",
        f"## (b) {solves['num_solves']:,} Bellman solves in one call",
        "",
        f"- model: E = {solves['levels']}, {solves['lock_months']}-month lock, "
        f"{solves['num_states']:,} states x 3 actions, segment {solves['segment']}, "
        f"beta = 0.99, float64, relative value iteration to max |G(W) - W| <= {solves['tol']:g} "
        "(each solve its own iteration count, on every side)",
        "- draws: each structural parameter times U(0.8, 1.2)",
        f"- iterations: median {solves['median_iterations']:g}, mean "
        f"{solves['mean_iterations']:.1f}, max {solves['max_iterations']}",
        f"- ours: `model.solve_batch`, {solves['lanes']} solves side by side in the lane layout "
        f"(solve axis last), finished solves replaced by queued ones every "
        f"{solves['refill_every']} steps (no lane waits for the slowest solve of a group)",
        "- numpy, same step: `numpy_reduced_value_iteration`, the lane-layout step of "
        "`solve_batch` (only the expectations some action reads, log-sum-exp on the free plans, "
        "the locked plans' single choice value) draw by draw; numpy, full operator: "
        "`numpy_relative_value_iteration` (the baseline before, every plan x both member "
        "states, log-sum-exp with -inf on infeasible actions)",
        "",
        "| | time | note |",
        "|---|---:|---|",
        f"| ours (`solve_batch`, one jit call) | {solves['jax_median_seconds']:.2f} s | median of "
        f"{solves['jax_repeats']}, IQR {solves['jax_iqr_seconds']:.2f} s; compile "
        f"{solves['jax_compile_seconds']:.1f} s apart; {solves['solves_per_second']:.0f} "
        f"solves/s; {solves['microseconds_per_solve_step']:.1f} us per solve-step |",
        f"| numpy, same step, draw by draw | {solves['numpy_seconds']:.2f} s | "
        f"{scaled(solves['numpy_timed_solves'], solves['same_iterations'])} |",
        f"| numpy, full operator, draw by draw | {solves['numpy_full_seconds']:.2f} s | "
        f"{scaled(solves['numpy_full_timed_solves'], solves['numpy_full_same_iterations'])} |",
        f"| speed-up over numpy, same step | {solves['speedup']:.1f}x | all converged: "
        f"{solves['all_converged']}, max residual {solves['max_residual']:.2g}, max abs value "
        f"difference {solves['max_abs_difference']:.2g} |",
        f"| speed-up over numpy, full operator | {solves['speedup_full']:.1f}x | max abs value "
        f"difference {solves['numpy_full_max_abs_difference']:.2g} |",
    ]
    vmapped = solves.get("vmap_solve")
    if vmapped:
        lines += [
            "",
            f"- the first {vmapped['solves']:,} draws as one `jax.vmap(model.solve)` (the "
            f"previous benchmark): {vmapped['median_seconds']:.2f} s against "
            f"{vmapped['solve_batch_median_seconds']:.2f} s for `solve_batch` on the same draws "
            f"(vmap runs all to the slowest draw's {vmapped['max_iterations']} iterations); same "
            f"iterations: {vmapped['same_iterations']}, max abs value difference "
            f"{vmapped['max_abs_difference']:.2g}",
        ]
    return lines


def _pqr_markdown(run: dict, bandwidth: dict | None) -> list[str]:
    n = run["unknowns"]
    flops = run["shared_factor_flops_per_replicate"] + run["continuation_flops_per_replicate"]
    scaled = (
        f"timed on the first {run['numpy_timed_replicates']:,}, scaled linearly"
        if run["numpy_extrapolated"]
        else "all replicates"
    )
    per = run["jax_median_seconds"] / run["replicates"]
    floor = ""
    if bandwidth:
        bytes_floor = run["bytes_per_replicate"] / (bandwidth["best_gbps"] * 1e9)
        floor = (
            f"; memory floor at the measured {bandwidth['best_gbps']:.1f} GB/s: "
            f"{bytes_floor * 1e6:.1f} us per replicate ({per / bytes_floor:.0f}x above it)"
        )
    return [
        "",
        f"## (c) tabular PQR's anchor-Q solve, {run['replicates']:,} replicates in one call",
        "",
        f"- model: E = {run['levels']}, {run['lock_months']}-month lock, segment "
        f"{run['segment']}, float64; {run['free_states']:,} free states x 3 actions; the "
        f"anchor-Q system has {n} unknowns (`I - beta K`, K = EC_0 (x) P_regime)",
        f"- replicates: the solved policy's log-probabilities plus N(0, {run['noise']:g}^2) "
        "noise, renormalised (log-softmax); every side runs `pqr.membership_pqr`'s steps: the "
        "linear solve, the Q-step and the R-step (rewards of every free state and action)",
        "",
        "| | time | note |",
        "|---|---:|---|",
        f"| ours (`jax.vmap(lambda lp: pqr.membership_pqr(chain, lp))`, one jit call) | "
        f"{run['jax_median_seconds'] * 1e3:.0f} ms | median of {run['jax_repeats']}, IQR "
        f"{run['jax_iqr_seconds'] * 1e3:.0f} ms; compile {run['jax_compile_seconds']:.1f} s "
        f"apart; {per * 1e6:.0f} us per replicate |",
        f"| numpy loop (`np.linalg.solve` per replicate, the same steps) | "
        f"{run['numpy_seconds']:.2f} s | {scaled} |",
        f"| speed-up | {run['speedup']:.1f}x | max abs reward difference "
        f"{run['max_abs_difference']:.2g}; max solve residual {run['max_residual']:.2g} "
        f"(numpy {run['numpy_max_residual']:.2g}) |",
        "",
        f"- floor per replicate: an LU solve of the system is {run['lu_flops_per_replicate']:,.0f}"
        f" flop (2/3 n^3 + 2 n^2, what the numpy loop does); the system does not depend on the "
        f"replicate, so under `vmap` it is factorised once and a replicate needs the two "
        f"triangular solves and the kernel product ({run['shared_factor_flops_per_replicate']:,}"
        f" flop) plus the R-step's continuation ({run['continuation_flops_per_replicate']:,} "
        f"flop): {flops / 1e3:,.0f} kflop and {run['bytes_per_replicate'] / 1e3:.1f} kB "
        f"(log-policy in, rewards out, float64){floor}",
    ]


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
    bandwidth = record.get("bandwidth")
    if bandwidth:
        lines.append(
            f"- DRAM bandwidth, measured (best of {bandwidth['repeats']}, arrays of "
            f"{bandwidth['array_mib']:,} MiB): numpy copy {bandwidth['numpy_copy_gbps']:.1f} GB/s,"
            f" numpy triad in two passes {bandwidth['numpy_triad_gbps']:.1f} GB/s (one thread), "
            f"jitted triad {bandwidth['jax_triad_gbps']:.1f} GB/s (XLA, every core); bytes read "
            "+ written, write-allocate not counted"
        )
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
        lines += _solves_markdown(solves)
    for run in record.get("pqr", []):
        lines += _pqr_markdown(run, record.get("bandwidth"))
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
        "--lanes", type=_count, default=32, help="(b): solves side by side in solve_batch"
    )
    parser.add_argument(
        "--vmap-solves",
        type=int,
        default=64,
        help="(b): also time jax.vmap(model.solve) on this many draws (0: skip)",
    )
    parser.add_argument(
        "--numpy-solves", type=_count, default=10, help="(b): draws timed for numpy, same step"
    )
    parser.add_argument(
        "--numpy-full-solves",
        type=_count,
        default=None,
        help="(b): draws timed for numpy, full operator (default: --numpy-solves)",
    )
    parser.add_argument(
        "--pqr-replicates",
        type=_count,
        nargs="*",
        default=[1000],
        help="(c): replicate counts, one run each (none: skip)",
    )
    parser.add_argument("--pqr-levels", type=_count, default=5, help="(c): engagement levels")
    parser.add_argument("--pqr-numpy", type=_count, default=200, help="(c): numpy replicates timed")
    parser.add_argument(
        "--bandwidth-mib", type=int, default=1024, help="DRAM test array size (0: skip)"
    )
    parser.add_argument("--repeats", type=_count, default=3)
    parser.add_argument("--skip-simulation", action="store_true", help="(b) only")
    parser.add_argument("--skip-solves", action="store_true", help="(a) only")
    parser.add_argument("--out", default=None, help="default benchmarks/results/<platform>")
    parser.add_argument("--name", default="membership", help="file stem of the results")
    args = parser.parse_args()
    if args.skip_simulation and args.skip_solves and not args.pqr_replicates:
        parser.error("--skip-simulation, --skip-solves and no --pqr-replicates: nothing to time")
    out = Path(args.out or Path("benchmarks", "results", jax.devices()[0].platform))
    out.mkdir(parents=True, exist_ok=True)
    record: dict = {"load_before": _load_note()}
    if args.bandwidth_mib:
        record["bandwidth"] = dram_bandwidth(args.bandwidth_mib)
    if not args.skip_simulation:
        record["simulation"] = forward_simulation_timings(
            args.members, args.months, repeats=args.repeats, numpy_members=args.numpy_members
        )
    if not args.skip_solves:
        record["solves"] = batched_solve_timings(
            args.solves,
            levels=args.levels,
            lanes=args.lanes,
            vmap_limit=args.vmap_solves,
            repeats=args.repeats,
            numpy_limit=args.numpy_solves,
            full_numpy_limit=args.numpy_full_solves,
        )
    record["pqr"] = [
        pqr_timings(
            replicates, levels=args.pqr_levels, repeats=args.repeats, numpy_limit=args.pqr_numpy
        )
        for replicates in args.pqr_replicates
    ]
    timed = [record.get("simulation"), record.get("solves"), *record["pqr"]]
    record["device"] = next(part for part in timed if part)["device"]
    record["openblas_threads"] = os.environ.get("OPENBLAS_NUM_THREADS")
    record["load_after"] = _load_note()
    (out / f"{args.name}.json").write_text(json.dumps(record, indent=2, default=str))
    (out / f"{args.name}.md").write_text(_markdown(record))
    print(_markdown(record))


if __name__ == "__main__":
    main()
