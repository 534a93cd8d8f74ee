"""Gate reports: the same verdict as JSON (for machines) and Markdown (for people)."""

from __future__ import annotations

import json
from pathlib import Path

from gatekeeper.decide import Check, Decision


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


def _text(value: object) -> str:
    """Text that cannot break a table row: pipes escaped, one line."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _cell(value: object) -> str:
    """A measured value or threshold as a table cell; a missing one says so."""
    return "missing" if value is None or value == "" else _text(value)


def _why(check: Check) -> str:
    """Why a check failed, in one line."""
    if check.value is None:
        return check.detail or "not measured"
    why = f"{_cell(check.value)} does not meet {_cell(check.threshold)}"
    return f"{why} ({check.detail})" if check.detail else why


def to_markdown(model: str, version: str, decision: Decision, checked_at: str) -> str:
    """The verdict for people: every check with its value, threshold and verdict, and
    the failed ones listed with the reason (this is what `make summary` shows)."""
    verdict = "PASSED" if decision.passed else "FAILED"
    lines = [
        f"### Quality gate: {model} v{version}: {verdict}",
        "",
        f"Checked at {checked_at}.",
        "",
        "| check | value | threshold | verdict | detail |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in decision.checks:
        mark = "pass" if c.passed else "**FAIL**"
        lines.append(
            f"| {_text(c.name)} | {_cell(c.value)} | {_cell(c.threshold)} | {mark} "
            f"| {_text(c.detail)} |"
        )
    if decision.failed:
        lines += ["", "Failed checks (the candidate stops here):"]
        lines += [f"- `{c.name}`: {_why(c)}" for c in decision.failed]
    return "\n".join(lines) + "\n"


def write(directory: Path, json_text: str, md_text: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    j, m = directory / "gate_report.json", directory / "gate_report.md"
    j.write_text(json_text)
    m.write_text(md_text)
    return j, m
