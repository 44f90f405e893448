"""Issue 6 timings: (a) soft-Bellman solves of the 175-state bus model to 1e-10 for 10,000
parameter vectors in one call, beside a numpy/scipy Newton–Kantorovich loop over the same
vectors and QuantEcon's ``DiscreteDP`` (hard-max value iteration, same size); (b) the Table IX
estimation; (c) the 250-panel Su–Judd Monte Carlo (NFXP and NPL in one jitted call).

From the repository root::

    PYTHONPATH=. python benchmarks/bellman.py [--contraction-steps 0] [--sweep 10,50]
    PYTHONPATH=. python benchmarks/bellman.py --method successive --numpy-limit 1000
    PYTHONPATH=. python benchmarks/bellman.py --skip-estimation   # (a) only

Writes ``bellman_<method>.json`` and ``.md`` (see :mod:`prime_science.bench.bellman`).
numpy's BLAS is limited to one thread (``OPENBLAS_NUM_THREADS=1``, set before numpy loads)
unless the variable is already set: on this 2-core machine, shared with other jobs, the
multithreaded OpenBLAS made the numpy loop ~7x slower (25 ms vs 3.6 ms per solve), which would
flatter the speed-up.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from prime_science.bench.bellman import benchmark_bus_solves  # noqa: E402


def _load_note() -> str:
    try:
        load = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} (1, 5, 15 min) on {os.cpu_count()} cores"


def _time(fn, *args, repeats: int = 1) -> tuple[float, list[float], object]:
    """``(compile seconds, run seconds, output)`` of the jitted ``fn``."""
    tic = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - tic
    runs = []
    for _ in range(repeats):
        tic = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - tic)
    return compile_s, runs, out


def table_ix_timings(repeats: int = 3) -> dict:
    """(b): compile and run time of the NFXP estimate on each Table IX sample."""
    from experiments import rust_bus
    from prime_science.datasets.rust_bus import sample_name
    from prime_science.datasets.source import DataNotFoundError

    config = rust_bus.Config()
    record = {}
    with jax.enable_x64(True):
        for groups in config.samples:
            name = sample_name(groups)
            try:
                data, num_increments = rust_bus.table_ix_data(groups, config)
            except DataNotFoundError as error:
                record[name] = {"skipped": str(error)}
                continue
            data = jax.tree.map(jnp.asarray, data)
            estimator = rust_bus.table_ix_estimator(config, num_increments)
            compile_s, runs, fit = _time(estimator, data, repeats=repeats)
            record[name] = {
                "num_obs": int(data.state.shape[0]),
                "compile_s": compile_s,
                "run_s": statistics.median(runs),
                "run_times_s": runs,
                "bhhh_iters": int(fit.info.num_iters),
                "rc": float(fit.params[0]),
                "theta11": float(fit.params[1]),
                "log_likelihood": float(fit.log_likelihood),
            }
    return record


def monte_carlo_timings(num_datasets: int = 250, seed: int = 0) -> dict:
    """(c): the Su–Judd Monte Carlo (``rust_bus.Config.full()``) in one vmapped call."""
    from experiments import rust_bus

    config = rust_bus.Config.full()._replace(mc_num_datasets=num_datasets)
    keys = jax.random.key_data(jax.random.split(jax.random.key(seed), num_datasets))
    with jax.enable_x64(True):
        compile_s, runs, out = _time(rust_bus.monte_carlo_fn(config), keys)
    params, _, converged, iters, npl_params, npl_step = jax.device_get(out)
    truth = np.array([11.7257, 2.4569])
    summary = {}
    for prefix, fits in (("nfxp", params), ("npl", npl_params)):
        for column, name in enumerate(("rc", "theta11")):
            values = fits[:, column]
            summary[f"{prefix}_{name}_mean"] = float(values.mean())
            summary[f"{prefix}_{name}_sd"] = float(values.std(ddof=1))
            summary[f"{prefix}_{name}_rmse"] = float(
                np.sqrt(np.mean((values - truth[column]) ** 2))
            )
    return {
        "num_datasets": num_datasets,
        "panel": f"{config.mc_num_buses} buses x {config.mc_num_months} months",
        "discount": config.mc_discount,
        "bhhh_tol": config.mc_tol,
        "npl_iters": config.mc_npl_iters,
        "batch_size": config.mc_batch_size,
        "compile_s": compile_s,
        "run_s": runs[0],
        "converged_share": float(np.mean(converged)),
        "bhhh_iters_max": int(np.max(iters)),
        "bhhh_iters_mean": float(np.mean(iters)),
        "npl_nfxp_max_abs_diff": float(np.max(np.abs(npl_params - params))),
        "npl_max_step": float(np.max(npl_step)),
        **summary,
    }


def _floor(record: dict) -> str:
    """A back-of-the-envelope floor for (a), from the measured iteration counts."""
    s, j, a = record["num_states"], 5, 2
    contraction = min(record["contraction_steps"], record["median_iters"] - 1)
    newton = record["median_iters"] - contraction
    # per state: expectation 2 J A flops + log-sum-exp ~4 A flops and A + 1 exp/log
    bellman_flops, bellman_special = s * (2 * j * a + 4 * a), s * (a + 1)
    # Newton: Bellman + band build ~4 J A + back substitution (A + 1 rhs) 2 J (A + 1) + Woodbury
    newton_flops = bellman_flops + s * (4 * j * a + 2 * j * (a + 1) + 4 * a * (a + 1))
    flops = contraction * bellman_flops + newton * newton_flops
    special = (contraction + newton) * bellman_special
    total_flops, total_special = flops * record["num_params"], special * record["num_params"]
    seconds = total_flops / 8e9 + total_special / 1e9
    # vmapped op-by-op execution streams [N, S] float64 arrays: ~30 arrays per iteration
    streamed = 30 * 8 * s * record["num_params"] * record["median_iters"]
    return (
        f"Per solve (median {contraction:g} contraction + {newton:g} Newton steps): "
        f"~{flops / 1e3:.0f} kflop and ~{special / 1e3:.0f}k exp/log; for "
        f"{record['num_params']:,} solves {total_flops / 1e9:.1f} Gflop + "
        f"{total_special / 1e6:.0f}M exp/log, i.e. ~{seconds:.2f} s "
        "on 2 cores at ~4 Gflop/s and ~2 ns per exp/log each (compute floor). One vmap over all "
        "vectors runs op by op over [N, S] arrays that do not fit in cache: "
        f"~{streamed / 1e9:.0f} GB of memory traffic (~{streamed / 1e10:.1f} s at ~10 GB/s; "
        f"measured {record.get('plain_vmap_run_s', float('nan')):.2f} s). Chunks of "
        f"{record.get('batch_size')} keep [chunk, S] arrays in cache: measured "
        f"{record['jax_run_s']:.2f} s, {record['jax_run_s'] / seconds:.0f}x the compute floor. "
        "The rest is XLA:CPU's op-by-op execution (the back substitution is a 175-step scan "
        "per Newton step, each step a handful of tiny kernels) and the lock step inside a chunk "
        f"(every member runs its chunk's largest iteration count; largest {record['max_iters']}, "
        f"median {record['median_iters']:g}). A fused per-solve kernel (each solve's ~10 kB "
        "working set in registers/L1) would approach the floor."
    )


def _markdown(record: dict) -> str:
    device = record["device"]
    scaled = " (extrapolated from the first {numpy_timed_params:,})".format(**record)
    batch_size = record.get("batch_size")
    batching = f"lax.map over vmapped chunks of {batch_size}" if batch_size else "one vmap"
    lines = [
        f"# bellman ({record['method']}, {'banded' if record['banded'] else 'dense'})",
        "",
        f"- device: {device['platform']} ({device['cpu_model']}, {device['usable_cores']} "
        f"cores, shared with other jobs: timings are noisy); jax {device['jax_version']}; "
        f"{device['date']}",
        f"- load average at the start: {record['load_before']}; at the end: {record['load_after']}",
        f"- numpy BLAS threads: OPENBLAS_NUM_THREADS={record['openblas_threads']}",
        "",
        "## (a) batched soft-Bellman solves",
        "",
        f"- {record['num_params']:,} parameter vectors (RC ~ U(5, 20), theta11 ~ U(0.5, 5)), "
        f"{record['num_states']} states, 2 actions, beta = {record['discount']}, "
        f"tol = {record['tol']:g} on max |G(W) - W| = max |T(V) - V|, float64",
        f"- both Newton–Kantorovich sides: at most {record['contraction_steps']} contraction "
        f"steps until the residual < {record['switch_tol']:g}, then Newton steps (0: Newton "
        f"from W = 0); iterations (median) ours {record['median_iters']:g}, numpy "
        f"{record['numpy_median_iters']:g}",
        "",
        "| | time | note |",
        "|---|---:|---|",
        f"| ours (one jit call: {batching}, {record['method']}, "
        f"{'banded' if record['banded'] else 'dense'}) | {record['jax_run_s']:.2f} s | median "
        f"of {len(record['jax_run_times_s'])}; compile {record['jax_compile_s']:.2f} s apart |",
        f"| numpy/scipy Newton–Kantorovich loop (dense) | {record['numpy_s']:.2f} s |"
        f"{scaled if record['numpy_extrapolated'] else ''} |",
        f"| speed-up | {record['speedup']:.1f}x | all converged: {record['all_converged']}, "
        f"max residual {record['max_residual']:.2g}, max |ours - numpy| "
        f"{record['max_abs_difference']:.2g} |",
    ]
    if record.get("quantecon_available"):
        lines.append(
            f"| quantecon DiscreteDP value iteration (hard max) | {record['quantecon_s']:.2f} s |"
            f" extrapolated from the first {record['quantecon_timed_params']:,}; median "
            f"{record['quantecon_median_iters']:g} iterations; ours is "
            f"{record['speedup_vs_quantecon']:.0f}x faster |"
        )
    elif record.get("quantecon_available") is None:
        lines.append("| quantecon DiscreteDP | — | not timed in this run (--quantecon-limit 0) |")
    else:
        lines.append("| quantecon DiscreteDP | — | not installed (the `bench` extra): skipped |")
    if "plain_vmap_run_s" in record:
        lines.append(
            f"| ours, one vmap over all vectors | {record['plain_vmap_run_s']:.2f} s | same "
            "solves, no chunking (for reference) |"
        )
    for key, value in record.get("sweep", {}).items():
        lines.append(
            f"| ours / numpy, contraction_steps = {key} | {value['jax_run_s']:.2f} s / "
            f"{value['numpy_s']:.2f} s | {value['speedup']:.1f}x; iterations "
            f"{value['median_iters']:g} / {value['numpy_median_iters']:g}; all converged "
            f"{value['all_converged']}, max |ours - numpy| {value['max_abs_difference']:.2g} |"
        )
    floor = record.get("floor")
    if floor:
        lines += ["", "### How far from the floor", "", floor]
    table = record.get("table_ix")
    if table:
        lines += ["", "## (b) Table IX estimation (NFXP, beta = 0.9999, 90 bins, float64)", ""]
        lines += ["| sample | obs | run | compile | BHHH iterations |", "|---|---:|---:|---:|---:|"]
        for name, fit in table.items():
            if "skipped" in fit:
                lines.append(f"| {name} | — | skipped: {fit['skipped']} | | |")
                continue
            lines.append(
                f"| {name} | {fit['num_obs']:,} | {fit['run_s'] * 1e3:.1f} ms (median of "
                f"{len(fit['run_times_s'])}) | {fit['compile_s']:.1f} s | {fit['bhhh_iters']} |"
            )
    mc = record.get("monte_carlo")
    if mc:
        lines += [
            "",
            f"## (c) Su–Judd Monte Carlo: {mc['num_datasets']} panels of {mc['panel']}, "
            f"beta = {mc['discount']}, NFXP (BHHH tol {mc['bhhh_tol']:g}) and NPL "
            f"({mc['npl_iters']} iterations) in one jitted call (lax.map over the panels, vmap "
            f"over chunks of {mc['batch_size']})",
            "",
            f"- run {mc['run_s']:.1f} s (compile {mc['compile_s']:.1f} s apart); BHHH "
            f"iterations max {mc['bhhh_iters_max']}, mean {mc['bhhh_iters_mean']:.1f}; "
            f"converged share {mc['converged_share']:.3f}; max |NPL - NFXP| "
            f"{mc['npl_nfxp_max_abs_diff']:.2g}",
            "",
            "| | mean | s.d. | RMSE | truth |",
            "|---|---:|---:|---:|---:|",
        ]
        for prefix in ("nfxp", "npl"):
            for name, truth in (("rc", 11.7257), ("theta11", 2.4569)):
                lines.append(
                    f"| {prefix.upper()} {name} | {mc[f'{prefix}_{name}_mean']:.4f} | "
                    f"{mc[f'{prefix}_{name}_sd']:.4f} | {mc[f'{prefix}_{name}_rmse']:.4f} | "
                    f"{truth} |"
                )
    return "\n".join(lines + [""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="newton", choices=("successive", "newton"))
    parser.add_argument("--dense", action="store_true", help="dense transitions (default banded)")
    parser.add_argument("--num-params", type=int, default=10_000)
    parser.add_argument("--numpy-limit", type=int, default=None)
    parser.add_argument("--quantecon-limit", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    # 0: Newton from W = 0 (7 steps here) is the fastest setting for both sides
    parser.add_argument("--contraction-steps", type=int, default=0)
    parser.add_argument(
        "--sweep", default="10,50", help="comma-separated extra contraction_steps values to time"
    )
    parser.add_argument(
        "--batch-size", type=int, default=500, help="lax.map chunk size; 0: one vmap over all"
    )
    parser.add_argument("--mc-datasets", type=int, default=250)
    parser.add_argument("--skip-estimation", action="store_true", help="(a) only")
    parser.add_argument("--out", default=None, help="default benchmarks/results/<platform>")
    args = parser.parse_args()
    out = Path(args.out or Path("benchmarks", "results", jax.devices()[0].platform))
    out.mkdir(parents=True, exist_ok=True)
    load_before = _load_note()
    common = dict(
        method=args.method,
        banded=not args.dense,
        repeats=args.repeats,
        batch_size=args.batch_size or None,
    )
    record = benchmark_bus_solves(
        args.num_params,
        numpy_limit=args.numpy_limit,
        quantecon_limit=args.quantecon_limit,
        contraction_steps=args.contraction_steps,
        **common,
    )
    record["openblas_threads"] = os.environ.get("OPENBLAS_NUM_THREADS")
    sweep = {}
    for steps in filter(None, args.sweep.split(",")):
        extra = benchmark_bus_solves(
            args.num_params,
            numpy_limit=args.numpy_limit or 1000,
            quantecon_limit=0,
            contraction_steps=int(steps),
            **common,
        )
        sweep[steps] = {
            k: extra[k]
            for k in (
                "jax_run_s",
                "numpy_s",
                "speedup",
                "median_iters",
                "numpy_median_iters",
                "all_converged",
                "max_abs_difference",
            )
        }
    record["sweep"] = sweep
    if args.batch_size:  # the same solves as one vmap over all vectors, for reference
        plain = benchmark_bus_solves(
            args.num_params,
            numpy_limit=10,
            quantecon_limit=0,
            contraction_steps=args.contraction_steps,
            **(common | {"batch_size": None}),
        )
        record["plain_vmap_run_s"] = plain["jax_run_s"]
    if args.method == "newton":
        record["floor"] = _floor(record)
    if not args.skip_estimation:
        record["table_ix"] = table_ix_timings()
        record["monte_carlo"] = monte_carlo_timings(args.mc_datasets)
    record["load_before"], record["load_after"] = load_before, _load_note()
    stem = f"bellman_{args.method}"
    (out / f"{stem}.json").write_text(json.dumps(record, indent=2, default=str))
    (out / f"{stem}.md").write_text(_markdown(record))
    print(_markdown(record))


if __name__ == "__main__":
    main()
