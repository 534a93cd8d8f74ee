"""The data-validation report: every rule's verdict on the data a job was asked to train
on, as JSON (for machines) and Markdown (for people).

The job writes it before anything else happens, whether the data passes or not: a job
stopped by bad data leaves the report naming the rule that stopped it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from trainer.data import Check, Dataset, fingerprint

JSON_NAME = "validation.json"
MD_NAME = "validation.md"


def build(
    ds: Dataset,
    checks: Sequence[Check],
    *,
    knobs: dict[str, object],
    git_sha: str,
    checked_at: str,
) -> dict:
    """The report as a JSON-ready dict. `knobs` are the degradations the job applied."""
    failed = [c for c in checks if c.passed is False]
    return {
        "verdict": "failed" if failed else "passed",
        "dataset": ds.name,
        "rows": len(ds.y),
        "columns": int(ds.X.shape[1]),
        "fingerprint": fingerprint(ds),
        "knobs": dict(knobs),
        "git_sha": git_sha,
        "checked_at": checked_at,
        "failed_checks": [c.name for c in failed],
        "checks": [asdict(c) for c in checks],
    }


def _text(value: object) -> str:
    """Text that cannot break a table row: pipes escaped, one line."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: dict) -> str:
    mark = {True: "passed", False: "**FAILED**", None: "not run"}
    knobs = ", ".join(f"{k}={v}" for k, v in doc["knobs"].items()) or "none"
    lines = [
        f"# Data validation: {doc['verdict'].upper()}",
        "",
        f"Dataset `{doc['dataset']}`: {doc['rows']} rows, {doc['columns']} feature columns, "
        f"fingerprint `{doc['fingerprint']}`.",
        f"Degradations: {knobs}. Code: `{doc['git_sha']}`. Checked at {doc['checked_at']}.",
        "",
        "| rule | verdict | detail |",
        "| --- | --- | --- |",
    ]
    for c in doc["checks"]:
        lines.append(f"| {_text(c['name'])} | {mark[c['passed']]} | {_text(c['detail'])} |")
    lines.append("")
    if doc["failed_checks"]:
        lines.append(
            f"Training stopped before any run was logged: {', '.join(doc['failed_checks'])} failed."
        )
    else:
        lines.append("Every rule passed: training went ahead on this data.")
    return "\n".join(lines) + "\n"


def write(directory: Path, doc: dict) -> tuple[Path, Path]:
    """Write validation.json and validation.md into `directory` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    j, m = directory / JSON_NAME, directory / MD_NAME
    j.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    m.write_text(to_markdown(doc), encoding="utf-8")
    return j, m
