"""Gate reports: the same verdict as JSON (for machines) and Markdown (for people)."""

from __future__ import annotations

import json
from pathlib import Path

from gatekeeper.decide import Check, Decision, Evidence

# The metrics shown side by side: measured by the gate, and as the training run logged them.
COMPARED = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
# A logged figure further than this from the measured one is pointed out in the report.
DISAGREEMENT = 0.05


def to_json(
    model: str,
    version: str,
    decision: Decision,
    checked_at: str,
    thresholds,
    evidence: Evidence | None = None,
) -> str:
    from dataclasses import asdict

    doc = {
        "model": model,
        "version": version,
        "verdict": "passed" if decision.passed else "failed",
        "checked_at": checked_at,
        "thresholds": asdict(thresholds),
        **decision.to_dict(),
    }
    if evidence is not None:
        doc.update(
            model_sha256=evidence.sha256,
            held_out_set=evidence.holdout,
            measured=evidence.metrics,
            logged_by_run=evidence.logged_metrics,
            production={
                "version": evidence.production_version,
                "measured": evidence.production_metrics,
            },
        )
    return json.dumps(doc, indent=2)


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


def _comparison(evidence: Evidence) -> list[str]:
    """The gate's measurements beside the run's own figures (which decide nothing)."""
    held = evidence.holdout
    lines = [
        "",
        f"Measured by the gate on the held-out set ({held.get('rows', '?')} rows of "
        f"{held.get('dataset', '?')}, sha256 `{str(held.get('sha256', ''))[:12]}`), beside "
        "what the training run logged about itself (shown, never trusted):",
        "",
        "| metric | measured | logged by the run | production (measured) |",
        "| --- | --- | --- | --- |",
    ]
    disagree = []
    for name in COMPARED:
        measured = evidence.metrics.get(name)
        logged = evidence.logged_metrics.get(name)
        prod = evidence.production_metrics.get(name)
        lines.append(
            f"| {name} | {_cell(measured)} | {_cell(logged)} | "
            f"{_cell(prod) if evidence.production_version else 'n/a'} |"
        )
        if measured is not None and logged is not None and abs(measured - logged) > DISAGREEMENT:
            disagree.append(name)
    if disagree:
        lines += [
            "",
            f"The run's own {', '.join(disagree)} differ from the gate's by more than "
            f"{DISAGREEMENT}: the logged figures were overwritten or measured on other data.",
        ]
    return lines


def to_markdown(
    model: str,
    version: str,
    decision: Decision,
    checked_at: str,
    evidence: Evidence | None = None,
) -> str:
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
    if evidence is not None:
        lines += _comparison(evidence)
    return "\n".join(lines) + "\n"


def write(directory: Path, json_text: str, md_text: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    j, m = directory / "gate_report.json", directory / "gate_report.md"
    j.write_text(json_text)
    m.write_text(md_text)
    return j, m


def history_name(version: str, checked_at: str) -> str:
    """The folder an earlier verdict is kept in, so that the next gate does not overwrite
    it: `2026-11-26T05-59-01Z-v7` (sortable by time, safe in a path and an artifact URI)."""
    stamp = checked_at.replace("+00:00", "Z").replace(":", "-")
    return f"{stamp}-v{version}"
