"""The Markdown report of ``prime-science reproduce``.

One ``report.md`` in the results folder: the machine (platform, device kind, CPU model, cores,
JAX version, date), then per experiment a table ``metric | measured (mean ± s.e.) | target |
pass/fail`` for its targets, the other metrics, the timings, and its plots embedded by relative
path. Input records are what :func:`prime_science.runner.run_experiment` returns (and writes to
``results.json``); a crashed experiment is a record ``{"name", "status": "error", "error"}``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prime_science.benchmarking import device_info

__all__ = ["format_measurement", "write_report"]


def format_measurement(mean: float, se: float | None) -> str:
    """``mean ± se`` with 4 significant digits (``mean`` alone when ``se`` is ``None``)."""
    return f"{mean:.4g}" if se is None else f"{mean:.4g} ± {se:.2g}"


def write_report(
    results_by_experiment: Mapping[str, Mapping[str, Any]], out_dir: str | os.PathLike[str]
) -> Path:
    """Write ``<out_dir>/report.md`` and return its path.

    Args:
      results_by_experiment: ``{name: record}``; plots in a record are relative to
        ``out_dir/<name>``, as the runner writes them.
      out_dir: the results folder (the experiments' folders live inside it).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = device_info()
    lines = [
        "# prime_science reproduction report",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| platform | {machine['platform']} ({machine['device_count']} device(s)) |",
        f"| device kind | {machine['device_kind']} |",
        f"| CPU | {machine['cpu_model']} |",
        f"| cores | {machine['cpu_count']} (usable: {machine['usable_cores']}) |",
        f"| jax | {machine['jax_version']} (jaxlib {machine['jaxlib_version']}) |",
        f"| date | {machine['date']} |",
        "",
        "## Summary",
        "",
        "| experiment | status | targets passed | time (s) |",
        "|---|---|---|---|",
    ]
    for name, record in results_by_experiment.items():
        lines.append(_summary_row(name, record))
    for name, record in results_by_experiment.items():
        lines += ["", f"## {name}", ""] + _section(name, record)
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _summary_row(name: str, record: Mapping[str, Any]) -> str:
    if record.get("status") != "ok":
        return f"| {name} | **crashed** | – | – |"
    passed = sum(target["passed"] for target in record["targets"])
    total_s = record["timings"]["total_s"]
    return f"| {name} | ok | {passed}/{len(record['targets'])} | {total_s:.1f} |"


def _section(name: str, record: Mapping[str, Any]) -> list[str]:
    if record.get("status") != "ok":
        return ["**Crashed:**", "", "```", str(record.get("error", "")).rstrip(), "```"]
    metrics = record["metrics"]
    lines = [
        record.get("description", ""),
        "",
        f"Scale `{record['scale']}`, {record['seeds']} seeds; config: "
        + ", ".join(f"`{key}={value}`" for key, value in record["config"].items())
        + ".",
        "",
        "| metric | measured (mean ± s.e.) | target | result | claim |",
        "|---|---|---|---|---|",
    ]
    for target in record["targets"]:
        measured = metrics[target["metric"]]
        lines.append(
            f"| `{target['metric']}` | {format_measurement(measured['mean'], measured['se'])} "
            f"| {target['op']} {target['value']:g} | {'pass' if target['passed'] else '**fail**'} "
            f"| {target['description']} ({target['source']}) |"
        )
    targeted = {target["metric"] for target in record["targets"]}
    others = [key for key in metrics if key not in targeted]
    if others:
        lines += ["", "| other metric | measured (mean ± s.e.) |", "|---|---|"]
        lines += [
            f"| `{key}` | {format_measurement(metrics[key]['mean'], metrics[key]['se'])} |"
            for key in others
        ]
    timings = record["timings"]
    lines += [
        "",
        f"Timings: compile {timings['compile_s']:.1f} s, run {timings['run_s']:.1f} s "
        f"({timings['run_s_per_seed']:.2f} s per seed, {record['seeds_per_call']} seed(s) per "
        f"call), total {timings['total_s']:.1f} s.",
    ]
    for plot in record["plots"]:
        lines += ["", f"![{Path(plot).stem}]({name}/{plot})"]
    return lines
