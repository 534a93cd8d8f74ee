import json
import re

import pytest

from gatekeeper import report
from gatekeeper.decide import Check, Decision, Evidence, Thresholds, decide

CHECKED_AT = "2026-01-01T00:00:00+00:00"


def rows(markdown: str) -> dict[str, list[str]]:
    """Table rows keyed by their first cell, split on unescaped pipes only."""
    out = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            out[cells[0]] = cells[1:]
    return out


def test_reports_carry_every_check_and_the_verdict(tmp_path):
    d = decide(Evidence(metrics={"accuracy": 0.5}, p99_latency_ms=1, model_size_mb=1), Thresholds())
    j = report.to_json("m", "4", d, CHECKED_AT, Thresholds())
    md = report.to_markdown("m", "4", d, CHECKED_AT)
    body = json.loads(j)
    assert body["verdict"] == "failed" and body["version"] == "4"
    assert [c["name"] for c in body["checks"]] == [c.name for c in d.checks]
    assert "### Quality gate: m v4: FAILED" in md
    table = rows(md)
    assert table["check"] == ["value", "threshold", "verdict", "detail"]
    assert list(table)[1:] == [c.name for c in d.checks]
    assert table["accuracy"] == ["0.5", ">= 0.85", "**FAIL**", ""]
    assert table["p99_latency_ms"] == ["1", "<= 50.0", "pass", ""]
    assert table["precision_macro"] == ["missing", ">= 0.8", "**FAIL**", "not measured"]
    jp, mp = report.write(tmp_path / "out", j, md)
    assert jp.read_text() == j and mp.read_text() == md


def test_failed_checks_are_listed_with_the_reason():
    d = decide(
        Evidence(
            metrics={"accuracy": 0.5, "f1_macro": 0.9},
            p99_latency_ms=1,
            model_size_mb=1,
            production_version="3",
            production_metrics={"accuracy": 0.95, "f1_macro": 0.9},
        ),
        Thresholds(),
    )
    md = report.to_markdown("m", "4", d, CHECKED_AT)
    listed = md.split("Failed checks (the candidate stops here):\n", 1)[1].splitlines()
    assert listed == [
        "- `accuracy`: 0.5 does not meet >= 0.85",
        "- `precision_macro`: not measured",
        "- `min_recall_per_class`: not measured",
        "- `regression_accuracy`: 0.45 does not meet <= 0.02 "
        "(production v3 accuracy=0.9500, candidate 0.5000)",
    ]
    assert [line[3:].split("`")[0] for line in listed] == [c.name for c in d.failed]


def test_a_passing_gate_lists_no_failures():
    d = Decision(True, (Check("accuracy", 0.9, ">= 0.85", True),))
    md = report.to_markdown("m", "4", d, CHECKED_AT)
    assert "### Quality gate: m v4: PASSED" in md
    assert "Failed checks" not in md


@pytest.mark.parametrize(
    "check",
    [
        Check("a|b", "x|y", "<= 1", False, "line one\nline two"),
        Check("regression_accuracy", None, None, False, "accuracy not measured"),
    ],
    ids=["pipes-and-newlines", "nothing-measured"],
)
def test_no_value_breaks_the_table(check):
    md = report.to_markdown("m", "4", Decision(False, (check,)), CHECKED_AT)
    header, row = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows(row)[check.name.replace("|", "\\|")]) == len(rows(header)["check"])


def test_the_report_shows_the_runs_own_figures_beside_the_measured_ones_and_flags_a_gap():
    ev = Evidence(
        metrics={"accuracy": 0.61, "f1_macro": 0.6},
        logged_metrics={"accuracy": 0.99, "f1_macro": 0.62},
        p99_latency_ms=1,
        model_size_mb=1,
        holdout={"dataset": "iris", "rows": 39, "sha256": "ab" * 32},
        sha256="cd" * 32,
    )
    d = decide(ev, Thresholds())
    md = report.to_markdown("m", "4", d, CHECKED_AT, ev)
    assert "| accuracy | 0.61 | >= 0.85 | **FAIL** |" in md  # the check decides on 0.61
    assert "39 rows of iris" in md
    assert "| accuracy | 0.61 | 0.99 | n/a |" in md
    assert "The run's own accuracy differ" in md and "f1_macro differ" not in md
    body = json.loads(report.to_json("m", "4", d, CHECKED_AT, Thresholds(), ev))
    assert body["measured"]["accuracy"] == 0.61 and body["logged_by_run"]["accuracy"] == 0.99
    assert body["held_out_set"]["rows"] == 39 and body["model_sha256"] == "cd" * 32
