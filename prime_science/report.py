"""The Markdown report of ``prime-science reproduce`` and ``prime-science report``.

``report.md`` in the results folder is always rebuilt from every ``<out_dir>/*/results.json`` on
disk (:func:`rebuild_report`), so running one experiment never drops the others from it. It
holds the machine(s) the results were measured on, a summary table, then per experiment its
targets (``metric | measured | target | result | claim``), its other metrics, timings and plots
embedded by relative path. A crashed experiment (a record ``{"name", "status": "error",
"error"}``) is listed with its traceback.

Numbers are written by :func:`format_measurement` and :func:`format_against`: ``±`` (one
standard error over seeds) only where the value varies across seeds; a value that is the same
in every seed is written without ``±`` and marked so; a value that is not finite is written
``n/a (<reason>)``; and a measured value is never rounded onto, or across, its threshold.
"""

from __future__ import annotations

import datetime
import json
import math
import operator
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "format_against",
    "format_measurement",
    "load_records",
    "rebuild_report",
    "write_report",
]

_EXACT_DIGITS = 7
"""Significant digits (at most) of a value without a standard error: enough for a published
value such as ``-3304.155``."""
_THRESHOLD_DIGITS = 10
"""Significant digits (at most) of a threshold; a threshold is shown in its shortest form."""
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_SYMBOLS = {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}
_MACHINE_KEYS = (
    "platform",
    "device_kind",
    "device_count",
    "cpu_model",
    "cpu_count",
    "usable_cores",
    "jax_version",
    "jaxlib_version",
)


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(value)


def _exponent(x: float) -> int:
    """The decimal exponent of ``x`` (``0`` for zero): ``-3304.155 -> 3``, ``0.0041 -> -3``."""
    return math.floor(math.log10(abs(x))) if x else 0


def _shortest_decimals(x: float, max_digits: int) -> int:
    """Decimal places of the shortest form of ``x`` with at most ``max_digits`` significant
    digits (negative: ``x`` is rounded to tens, hundreds, ...)."""
    for digits in range(1, max_digits + 1):
        if float(f"{x:.{digits - 1}e}") == x:
            break
    return digits - 1 - _exponent(x)


def _format_at(x: float, decimals: int, *, strip: bool) -> str:
    """``x`` rounded to ``decimals`` decimal places: positional for ``1e-4 <= |x| < 1e9`` (the
    integer digits are always all shown), scientific (``1.23e-5``) otherwise. ``strip`` drops
    trailing zeros after the decimal point."""
    if x != 0 and not 1e-4 <= abs(x) < 1e9:
        digits = max(_exponent(x) + decimals + 1, 1)
        mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
        if strip and "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    text = f"{x:.{max(decimals, 0)}f}"
    if strip and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.removeprefix("-") if float(text) == 0 else text


def _decimals(mean: float, se: float | None) -> int:
    """Decimal places of a mean: those of the second significant digit of a positive ``se``,
    else the shortest form of ``mean`` with at most 7 significant digits."""
    if _finite(se) and se > 0:
        return 1 - _exponent(se)
    return _shortest_decimals(mean, _EXACT_DIGITS)


def _with_se(shown_mean: str, mean: float, se: float | None) -> str:
    if _finite(se) and se > 0:
        decimals = _decimals(mean, se)
        return f"{shown_mean} ± {_format_at(se, decimals, strip=False)}"
    return shown_mean


def format_measurement(mean: float | None, se: float | None) -> str:
    """``mean ± se`` with the mean rounded to the second significant digit of ``se``
    (``0.9123 ± 0.0041``); ``mean`` alone, with up to 7 significant digits, when ``se`` is
    ``None``, zero or not finite (``-3304.155``); ``"n/a"`` when ``mean`` is ``None`` or not
    finite."""
    if not _finite(mean):
        return "n/a"
    strip = not (_finite(se) and se > 0)
    return _with_se(_format_at(mean, _decimals(mean, se), strip=strip), mean, se)


def format_against(
    mean: float | None, se: float | None, op: str, threshold: float
) -> tuple[str, str]:
    """``(measured, threshold)`` as displayed in a target row, with the digits chosen so that
    the display cannot mislead.

    The measured value starts as :func:`format_measurement` writes it and the threshold in its
    shortest form (at most 10 significant digits); both gain one decimal place at a time until
    (a) the displayed mean and threshold differ exactly when the values differ, and (b) the
    displayed comparison ``shown_mean <op> shown_threshold`` holds exactly when ``mean <op>
    threshold`` does. So ``13.4996`` against ``>= 13.5`` is shown ``13.4996``, never ``13.50``.
    The standard error keeps its two significant digits.
    """
    threshold_decimals = _shortest_decimals(threshold, _THRESHOLD_DIGITS)
    if not _finite(mean):
        return "n/a", _format_at(threshold, threshold_decimals, strip=True)
    holds = _OPERATORS[op](mean, threshold)
    strip = not (_finite(se) and se > 0)
    decimals = _decimals(mean, se)
    for extra in range(64):  # at most ~17 significant digits each make both exact
        shown = _format_at(mean, decimals + extra, strip=strip)
        shown_threshold = _format_at(threshold, threshold_decimals + extra, strip=True)
        a, b = float(shown), float(shown_threshold)
        if _OPERATORS[op](a, b) == holds and (a == b) == (mean == threshold):
            break
    return _with_se(shown, mean, se), shown_threshold


def load_records(out_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Every ``<out_dir>/*/results.json``, by folder name (sorted). A file that cannot be read
    becomes a crashed record whose error says why."""
    records = {}
    for path in sorted(Path(out_dir).glob("*/results.json")):
        name = path.parent.name
        try:
            records[name] = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            records[name] = {
                "name": name,
                "status": "error",
                "error": f"{path} could not be read: {error}",
            }
    return records


def rebuild_report(out_dir: str | os.PathLike[str]) -> Path:
    """Rewrite ``<out_dir>/report.md`` from every ``results.json`` under ``out_dir`` and return
    its path."""
    return write_report(load_records(out_dir), out_dir)


def write_report(
    results_by_experiment: Mapping[str, Mapping[str, Any]], out_dir: str | os.PathLike[str]
) -> Path:
    """Write ``<out_dir>/report.md`` from the given records and return its path.

    Args:
      results_by_experiment: ``{name: record}`` as :func:`prime_science.runner.run_experiment`
        returns it or ``results.json`` holds it (non-finite numbers as ``nan`` or ``null``);
        plots in a record are relative to ``out_dir/<name>``.
      out_dir: the results folder (the experiments' folders live inside it).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    lines = [
        "# prime_science reproduction report",
        "",
        f"Built {now} from the results of {len(results_by_experiment)} experiment(s) in this "
        "folder (`prime-science report` rebuilds it). Measured values are the mean over seeds "
        "± one standard error; a value without ± is the same in every seed (or comes from one "
        "seed); a target holds when the mean satisfies it.",
        *_machines(results_by_experiment),
        "",
        "## Summary",
        "",
        "| experiment | status | targets passed | time (s) | run (UTC) |",
        "|---|---|---|---|---|",
    ]
    for name, record in results_by_experiment.items():
        lines.append(_summary_row(name, record))
    for name, record in results_by_experiment.items():
        lines += ["", f"## {name}", ""] + _section(name, record)
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _machines(records: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One table per distinct machine the records were measured on (none without records)."""
    machines: dict[tuple, list[str]] = {}
    for name, record in records.items():
        if "device" in record:
            device = record["device"]
            machines.setdefault(tuple(device.get(key) for key in _MACHINE_KEYS), []).append(name)
    lines = []
    for number, (values, names) in enumerate(machines.items(), start=1):
        machine = dict(zip(_MACHINE_KEYS, values, strict=True))
        title = "## Machine" if len(machines) == 1 else f"## Machine {number}"
        lines += [
            "",
            title,
            "",
            "| | |",
            "|---|---|",
            f"| platform | {machine['platform']} ({machine['device_count']} device(s)) |",
            f"| device kind | {machine['device_kind']} |",
            f"| CPU | {machine['cpu_model']} |",
            f"| cores | {machine['cpu_count']} (usable: {machine['usable_cores']}) |",
            f"| jax | {machine['jax_version']} (jaxlib {machine['jaxlib_version']}) |",
        ]
        if len(machines) > 1:
            lines.append(f"| experiments | {', '.join(names)} |")
    return lines


def _run_date(record: Mapping[str, Any]) -> str:
    return str(record.get("device", {}).get("date", "–"))


def _seeds(record: Mapping[str, Any]) -> str:
    return f"{record['seeds']} seed{'' if record['seeds'] == 1 else 's'}"


def _summary_row(name: str, record: Mapping[str, Any]) -> str:
    total_s = record.get("timings", {}).get("total_s")
    time_s = f"{total_s:.1f}" if _finite(total_s) else "–"
    if record.get("status") != "ok":
        return f"| {name} | **crashed** | – | {time_s} | {_run_date(record)} |"
    passed = sum(target["passed"] for target in record["targets"])
    targets = f"{passed}/{len(record['targets'])}"
    return f"| {name} | ok | {targets} | {time_s} | {_run_date(record)} |"


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _metric_name(key: str, metric: Mapping[str, Any]) -> str:
    """The metric's label in words with its key in small type (the key alone if unlabelled)."""
    label = metric.get("label", key)
    if label == key:
        return f"`{key}`"
    return f"{_cell(label)}<br><sub>`{key}`</sub>"


def _na_reason(metric: Mapping[str, Any]) -> str:
    if metric.get("na_reason"):
        return metric["na_reason"]
    values = metric.get("values")
    if values:
        bad = sum(not _finite(value) for value in values)
        return f"not finite in {bad} of {len(values)} seeds"
    return "not finite"


def _note(metric: Mapping[str, Any]) -> str:
    """What a measured value needs said beside it: why it is n/a, that it is the same in every
    seed, or that it was computed from all seeds pooled."""
    if not _finite(metric.get("mean")):
        return f" ({_cell(_na_reason(metric))})"
    if metric.get("pooled"):
        return " (all seeds pooled)"
    if metric.get("se") == 0:
        return " (same in every seed)"
    return ""


def _section(name: str, record: Mapping[str, Any]) -> list[str]:
    if record.get("status") != "ok":
        context = ""
        if "scale" in record:
            context = f" (scale `{record['scale']}`, {_seeds(record)}, {_run_date(record)})"
        return [
            f"**Crashed**{context}:",
            "",
            "```",
            str(record.get("error", "")).rstrip(),
            "```",
        ]
    metrics = record["metrics"]
    lines = [
        record.get("description", ""),
        "",
        f"Scale `{record['scale']}`, {_seeds(record)}, run {_run_date(record)}; config: "
        + ", ".join(f"`{key}={value}`" for key, value in record["config"].items())
        + ".",
    ]
    if record.get("datasets"):
        lines += ["", "Data: " + "; ".join(record["datasets"].values()) + "."]
    lines += [
        "",
        "| metric | measured | target | result | claim |",
        "|---|---|---|---|---|",
    ]
    for target in record["targets"]:
        metric = metrics[target["metric"]]
        measured, threshold = format_against(
            metric.get("mean"), metric.get("se"), target["op"], target["value"]
        )
        claim = _cell(target["description"])
        if target.get("source"):
            claim += f" ({_cell(target['source'])})"
        lines.append(
            f"| {_metric_name(target['metric'], metric)} | {measured}{_note(metric)} "
            f"| {_SYMBOLS[target['op']]} {threshold} "
            f"| {'pass' if target['passed'] else '**fail**'} | {claim} |"
        )
    if record.get("targets_not_checked"):
        names = ", ".join(f"`{name}`" for name in record["targets_not_checked"])
        lines += ["", f"Not checked (this configuration does not compute them): {names}."]
    targeted = {target["metric"] for target in record["targets"]}
    others = [key for key in metrics if key not in targeted]
    if others:
        lines += ["", "| other metric | measured |", "|---|---|"]
        lines += [
            f"| {_metric_name(key, metrics[key])} "
            f"| {format_measurement(metrics[key].get('mean'), metrics[key].get('se'))}"
            f"{_note(metrics[key])} |"
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
