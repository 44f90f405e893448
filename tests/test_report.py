"""The report: number formatting against thresholds, n/a reasons, labels, and the rebuild of
report.md from every results.json on disk."""

import json
import math

import pytest

from prime_science.report import (
    format_against,
    format_measurement,
    load_records,
    rebuild_report,
    write_report,
)

COMPARE = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}


def test_format_measurement():
    assert format_measurement(0.91234, 0.0041) == "0.9123 ± 0.0041"
    assert format_measurement(3.0, None) == "3"
    assert format_measurement(-3304.155, 0.0) == "-3304.155"  # no longer -3304
    assert format_measurement(-3304.155, None) == "-3304.155"
    assert format_measurement(12345.6, 230.0) == "12346 ± 230"
    assert format_measurement(1.23e-5, 2.1e-6) == "1.23e-5 ± 2.1e-6"
    assert format_measurement(0.5, 0.1) == "0.50 ± 0.10"
    assert format_measurement(None, None) == "n/a"
    assert format_measurement(math.nan, math.nan) == "n/a"


def test_published_value_keeps_its_digits_against_its_threshold():
    assert format_against(-3304.155, 0.0, ">", -3304.16) == ("-3304.155", "-3304.16")
    assert format_against(-3304.1549, None, "<", -3304.155) == ("-3304.1549", "-3304.155")


def test_a_value_below_its_threshold_is_never_shown_at_it():
    """``13.4996 ± 0.1`` against ``>= 13.5`` used to print ``13.5 ± 0.1 fails >= 13.5``."""
    assert format_against(13.4996, 0.1, ">=", 13.5) == ("13.4996 ± 0.10", "13.5")
    assert format_against(13.46, 0.12, ">=", 13.5) == ("13.46 ± 0.12", "13.5")
    assert format_against(13.5, 0.1, ">=", 13.5) == ("13.50 ± 0.10", "13.5")


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
@pytest.mark.parametrize("se", [None, 0.0, 0.1, 3.0])
@pytest.mark.parametrize("offset", [-1e-9, -1e-4, -0.04, 0.0, 1e-6, 0.04, 2.0])
@pytest.mark.parametrize("threshold", [13.5, 0.005, -3304.155, 1e-3, 0.0])
def test_displayed_comparison_reads_like_the_real_one(op, se, offset, threshold):
    """Either side of a threshold: the displayed numbers differ exactly when the values differ,
    and the displayed comparison holds exactly when the real one does."""
    mean = threshold + offset
    shown, shown_threshold = format_against(mean, se, op, threshold)
    a, b = float(shown.split(" ± ")[0]), float(shown_threshold)
    assert (a == b) == (mean == threshold)
    assert COMPARE[op](a, b) == COMPARE[op](mean, threshold)
    if se:
        assert " ± " in shown


def test_not_finite_against_a_threshold():
    assert format_against(None, None, "<", 0.005) == ("n/a", "0.005")
    assert format_against(math.nan, None, ">=", 1.0) == ("n/a", "1")


def _ok_record(name, metrics, targets):
    return {
        "name": name,
        "status": "ok",
        "description": f"The {name} experiment.",
        "scale": "quick",
        "seeds": 3,
        "seeds_per_call": 1,
        "config": {"size": 4},
        "datasets": {"rust_bus": "rust_bus: the copy shipped in the package"},
        "metrics": metrics,
        "targets": targets,
        "plots": ["x.png"],
        "timings": {"compile_s": 1.0, "run_s": 2.0, "run_s_per_seed": 0.7, "total_s": 3.5},
        "device": {
            "platform": "cpu",
            "device_kind": "cpu",
            "device_count": 1,
            "cpu_model": "Test CPU",
            "cpu_count": 2,
            "usable_cores": 2,
            "jax_version": "0.0.test",
            "jaxlib_version": "0.0.test",
            "date": "2025-01-02T03:04:05+00:00",
        },
    }


def _write(folder, record):
    (folder / record["name"]).mkdir(parents=True, exist_ok=True)
    (folder / record["name"] / "results.json").write_text(json.dumps(record, allow_nan=False))


def _records():
    labelled = _ok_record(
        "alpha",
        {
            "regret": {
                "mean": 13.4996,
                "se": 0.1,
                "values": [13.4, 13.5, 13.6],
                "label": "cumulative regret, Thompson sampling (expected clicks)",
            },
            "group4_ll": {
                "mean": -3304.155,
                "se": 0.0,
                "values": [-3304.155] * 3,
                "label": "log-likelihood on group 4 (nats)",
            },
            "young_ctr": {
                "mean": None,
                "se": None,
                "values": [None, 0.1, 0.2],
                "label": "CTR on young items",
                "na_reason": "no impressions on items younger than two days in this seed",
            },
            "old_format": {"mean": None, "se": None, "values": [None, None, 1.0]},
            "pooled_ratio": {"mean": 0.25, "se": 0.01, "pooled": True, "label": "pooled ratio"},
        },
        [
            {
                "metric": "regret",
                "op": ">=",
                "value": 13.5,
                "description": "directional: large | wide",
                "source": "Chapelle and Li (2011)",
                "measured": 13.4996,
                "passed": False,
            },
            {
                "metric": "young_ctr",
                "op": "<",
                "value": 0.5,
                "description": "directional: small",
                "source": "",
                "measured": None,
                "passed": False,
            },
        ],
    )
    crashed = {
        "name": "broken",
        "status": "error",
        "error": "Traceback (most recent call last):\nRuntimeError: simulated crash",
        "scale": "quick",
        "seeds": 3,
        "timings": {"total_s": 0.5},
        "device": labelled["device"],
    }
    return labelled, crashed


def test_report_labels_na_reasons_and_deterministic_values(tmp_path):
    labelled, _ = _records()
    text = write_report({"alpha": labelled}, tmp_path).read_text()
    assert (
        "| cumulative regret, Thompson sampling (expected clicks)<br><sub>`regret`</sub> "
        "| 13.4996 ± 0.10 | ≥ 13.5 | **fail** | directional: large \\| wide "
        "(Chapelle and Li (2011)) |"
    ) in text
    assert (
        "| CTR on young items<br><sub>`young_ctr`</sub> | n/a (no impressions on items younger "
        "than two days in this seed) | < 0.5 | **fail** | directional: small |"
    ) in text
    assert (
        "| log-likelihood on group 4 (nats)<br><sub>`group4_ll`</sub> "
        "| -3304.155 (same in every seed) |"
    ) in text
    assert "| `old_format` | n/a (not finite in 2 of 3 seeds) |" in text
    pooled = "| pooled ratio<br><sub>`pooled_ratio`</sub> | 0.250 ± 0.010 (all seeds pooled) |"
    assert pooled in text and "nan" not in text.lower()
    assert "Data: rust_bus: the copy shipped in the package." in text
    assert "![x](alpha/x.png)" in text and "| alpha | ok | 0/2 | 3.5 |" in text
    for forbidden in ("SCIENCE", "issue", "shared"):
        assert forbidden not in text


def test_rebuild_reads_every_results_json_and_shows_crashes(tmp_path):
    labelled, crashed = _records()
    _write(tmp_path, labelled)
    _write(tmp_path, crashed)
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "results.json").write_text("{not json")
    (tmp_path / "no_results").mkdir()
    assert list(load_records(tmp_path)) == ["alpha", "broken", "garbled"]
    text = rebuild_report(tmp_path).read_text()
    assert "## alpha" in text and "## broken" in text and "## garbled" in text
    assert "| broken | **crashed** | – | 0.5 |" in text
    assert "RuntimeError: simulated crash" in text and "could not be read" in text
    assert text.count("## Machine") == 1 and "Test CPU" in text


def test_records_from_two_machines_get_one_table_each(tmp_path):
    labelled, crashed = _records()
    crashed["device"] = {**crashed["device"], "cpu_model": "Other CPU"}
    text = write_report({"alpha": labelled, "broken": crashed}, tmp_path).read_text()
    assert "## Machine 1" in text and "## Machine 2" in text
    assert "| experiments | alpha |" in text and "| experiments | broken |" in text
