"""Gate reports: the same verdict as JSON (for machines) and Markdown (for people)."""

from __future__ import annotations

import json
from pathlib import Path

from gatekeeper.decide import Decision


def to_json(model: str, version: str, decision: Decision, checked_at: str, thresholds) -> str:
    from dataclasses import asdict

    return json.dumps(
        {
            "model": model,
            "version": version,
            "verdict": "passed" if decision.passed else "failed",
            "checked_at": checked_at,
            "thresholds": asdict(thresholds),
            **decision.to_dict(),
        },
        indent=2,
    )


def to_markdown(model: str, version: str, decision: Decision, checked_at: str) -> str:
    verdict = "PASSED" if decision.passed else "FAILED"
    lines = [
        f"### Gate report: {model} v{version}: {verdict}",
        "",
        f"Checked at {checked_at}.",
        "",
        "| check | value | threshold | verdict | detail |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in decision.checks:
        value = "missing" if c.value is None else c.value
        mark = "pass" if c.passed else "**FAIL**"
        lines.append(f"| {c.name} | {value} | {c.threshold} | {mark} | {c.detail} |")
    return "\n".join(lines) + "\n"


def write(directory: Path, json_text: str, md_text: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    j, m = directory / "gate_report.json", directory / "gate_report.md"
    j.write_text(json_text)
    m.write_text(md_text)
    return j, m
