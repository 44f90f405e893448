"""Time fitting an empirical-Bayes meta-prior (issue: 1e6 weights in 100 groups): the
closed-form method of moments against type-II maximum likelihood by SVI (1,000 steps).

From the repository root::

    PYTHONPATH=. python benchmarks/meta_prior_fit.py [--out benchmarks/results/cpu]

Writes ``meta_prior_fit.json`` and ``meta_prior_fit.md`` (see
:func:`prime_science.bench.meta_prior_fit.meta_prior_fit_timings` for what is timed).
"""

import argparse
import json
from pathlib import Path

import jax

from prime_science.bench.meta_prior_fit import meta_prior_fit_timings


def _markdown(record: dict) -> str:
    device = record["device"]
    lines = [
        "# meta_prior_fit",
        "",
        f"- device: {device['platform']} ({device['cpu_model']}, {device['usable_cores']} "
        f"cores); jax {device['jax_version']}; {device['date']}",
        f"- {record['num_weights']:,} weight estimates in {record['num_groups']} groups; "
        f"SVI: {record['svi_steps']:,} Adam steps on the full data",
        "- compile: jit(fn).lower().compile(); steady state: median of the timed calls after a "
        "warm-up",
        "",
        "| fit | median | min | repeats | compile | max abs scale gap (tau) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("moments", "svi"):
        row = record[name]
        median, low = row["median_seconds"] * 1e3, row["min_seconds"] * 1e3
        lines.append(
            f"| {name} | {median:.3g} ms | {low:.3g} ms | {row['repeats']} "
            f"| {row['compile_seconds']:.2f} s | {row['max_abs_scale_gap']:.3g} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="default benchmarks/results/<platform>")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    out = Path(args.out or Path("benchmarks", "results", jax.devices()[0].platform))
    out.mkdir(parents=True, exist_ok=True)
    record = meta_prior_fit_timings(repeats=args.repeats)
    (out / "meta_prior_fit.json").write_text(json.dumps(record, indent=2, default=str))
    (out / "meta_prior_fit.md").write_text(_markdown(record))
    print(_markdown(record))


if __name__ == "__main__":
    main()
