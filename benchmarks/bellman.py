"""Batched soft-Bellman solves of the 175-state bus model (issue: 10,000 parameter vectors to
1e-10 in one call) against a numpy/scipy Newton–Kantorovich loop over the same vectors.

From the repository root::

    PYTHONPATH=. python benchmarks/bellman.py [--method successive] [--numpy-limit 500]

Writes ``bellman_<method>.json`` and ``.md`` (see :mod:`prime_science.choice.benchmark`).
"""

import argparse
import json
from pathlib import Path

import jax

from prime_science.choice.benchmark import benchmark_bus_solves


def _markdown(record: dict) -> str:
    device = record["device"]
    scaled = " (extrapolated from the first {numpy_timed_params:,})".format(**record)
    return "\n".join(
        [
            f"# bellman ({record['method']})",
            "",
            f"- device: {device['platform']} ({device['cpu_model']}, {device['usable_cores']} "
            f"cores); jax {device['jax_version']}; {device['date']}",
            f"- {record['num_params']:,} parameter vectors, {record['num_states']} states, "
            f"beta = {record['discount']}, tol = {record['tol']:g} (max |G(W) - W|)",
            "",
            "| | time | note |",
            "|---|---:|---|",
            f"| ours (jit(vmap), {record['method']}) | {record['jax_run_s']:.2f} s | best of "
            f"{len(record['jax_run_times_s'])}; compile {record['jax_compile_s']:.2f} s apart |",
            f"| numpy/scipy Newton–Kantorovich loop | {record['numpy_s']:.2f} s |"
            f"{scaled if record['numpy_extrapolated'] else ''} |",
            f"| speed-up | {record['speedup']:.1f}x | all converged: {record['all_converged']}, "
            f"max residual {record['max_residual']:.2g}, max |ours - numpy| "
            f"{record['max_abs_difference']:.2g} |",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="successive", choices=("successive", "newton"))
    parser.add_argument("--num-params", type=int, default=10_000)
    parser.add_argument("--numpy-limit", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=None, help="default benchmarks/results/<platform>")
    args = parser.parse_args()
    out = Path(args.out or Path("benchmarks", "results", jax.devices()[0].platform))
    out.mkdir(parents=True, exist_ok=True)
    record = benchmark_bus_solves(
        args.num_params,
        method=args.method,
        repeats=args.repeats,
        numpy_limit=args.numpy_limit,
    )
    stem = f"bellman_{args.method}"
    (out / f"{stem}.json").write_text(json.dumps(record, indent=2, default=str))
    (out / f"{stem}.md").write_text(_markdown(record))
    print(_markdown(record))


if __name__ == "__main__":
    main()
