"""scripts/summary.py: the job summary's gate and latency tables (plain unit tests)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("lab_summary", ROOT / "scripts" / "summary.py")
summary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(summary)

GATE = {
    "model": "lab-classifier",
    "version": "2",
    "verdict": "failed",
    "checked_at": "2026-11-23T18:07:34+00:00",
    "thresholds": {"min_accuracy": 0.99},
    "passed": False,
    "checks": [
        {"name": "accuracy", "value": 0.921053, "threshold": ">= 0.99", "passed": False},
        {"name": "p99_latency_ms", "value": 3.5, "threshold": "<= 50.0", "passed": True},
        {"name": "schema_compatible", "value": "yes", "threshold": "= v1", "passed": True},
        {
            "name": "regression_accuracy",
            "value": None,
            "threshold": "<= 0.02",
            "passed": False,
            "detail": "not measured",
        },
    ],
}
LOAD = {
    "passed": False,
    "violations": ["p95 253 ms > 200 ms"],
    "requests": 1178,
    "failures": 2,
    "p50_ms": 14,
    "p95_ms": 253,
    "p99_ms": 400,
    "rps": 250.019,
    "failure_ratio": 2 / 1178,
    "thresholds": {
        "max_p95_ms": 200.0,
        "max_p99_ms": 500.0,
        "max_failure_ratio": 0.01,
        "min_requests": 100,
    },
}


def write_reports(root: Path, gate: dict | None = GATE, load: dict | None = LOAD) -> Path:
    if gate is not None:
        (root / "reports/gate").mkdir(parents=True)
        (root / "reports/gate/gate_report.json").write_text(json.dumps(gate))
    if load is not None:
        (root / "reports/load").mkdir(parents=True)
        (root / "reports/load/latency_gate.json").write_text(json.dumps(load))
    return root


def rows(markdown: str) -> dict[str, list[str]]:
    """Table rows keyed by their first cell."""
    out = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            out[cells[0]] = cells[1:]
    return out


def test_the_gate_table_has_check_value_threshold_verdict():
    md = summary.gate_markdown(GATE)
    assert "lab-classifier v2: FAILED" in md
    table = rows(md)
    assert table["check"] == ["value", "threshold", "verdict"]
    assert table["accuracy"] == ["0.921053", ">= 0.99", summary.FAIL]
    assert table["p99_latency_ms"] == ["3.5", "<= 50.0", summary.PASS]
    assert table["regression_accuracy"][0] == "missing"
    assert "- `regression_accuracy`: not measured" in md
    assert "- `accuracy`: 0.921053 does not meet >= 0.99" in md


def test_the_latency_table_has_percentiles_rps_and_failures():
    md = summary.load_markdown(LOAD)
    assert "Latency gate (Locust): FAILED" in md
    table = rows(md)
    assert table["p50 (ms)"][0] == "14"
    assert table["p95 (ms)"] == ["253", "<= 200", summary.FAIL]
    assert table["p99 (ms)"] == ["400", "<= 500", summary.PASS]
    assert table["requests/s"][0] == "250.0"
    assert table["failures"] == ["2 (0.17%)", "<= 1.00%", summary.PASS]
    assert "- p95 253 ms > 200 ms" in md


def test_it_appends_to_the_github_step_summary(tmp_path, monkeypatch, capsys):
    root = write_reports(tmp_path / "lab")
    target = tmp_path / "step_summary.md"
    target.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    assert summary.main([str(root)]) == 0
    text = target.read_text()
    assert text.startswith("earlier step\n")
    assert "Quality gate" in text and "Latency gate" in text
    assert capsys.readouterr().out == ""


def test_without_github_it_prints(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert summary.main([str(write_reports(tmp_path, load=None))]) == 0
    out = capsys.readouterr().out
    assert "Quality gate" in out and "Latency gate" not in out


@pytest.mark.parametrize("broken", ["{not json", "[]"])
def test_missing_or_unreadable_reports_never_fail_the_step(tmp_path, monkeypatch, capsys, broken):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert summary.main([str(tmp_path)]) == 0
    assert "no gate or latency report" in capsys.readouterr().err
    (tmp_path / "reports/gate").mkdir(parents=True)
    (tmp_path / "reports/gate/gate_report.json").write_text(broken)
    assert summary.main([str(tmp_path)]) == 0
    assert "Could not read this report" in capsys.readouterr().out
