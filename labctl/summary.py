"""The gate reports as one Markdown summary: `make summary` (`python -m labctl summary`).

Each gate renders its own Markdown next to its JSON, so this only puts them together:

    reports/gate/gate_report.md    written by `make gate`  (gatekeeper/gatekeeper/report.py)
    reports/load/latency_gate.md   written by `make load`  (loadtests/loadgate/thresholds.py)
    reports/drift/drift.md         written by `make drift` (gatekeeper/gatekeeper/monitor.py)

On GitHub Actions the summary is appended to $GITHUB_STEP_SUMMARY, so it shows on the
run's page; anywhere else it is printed. A missing report (that step did not run in this
job) is skipped with a note; one that cannot be read is named in the summary. Neither is
fatal: the exit code of the gate itself is what stops the line.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

# The make target that writes each report, and the report, relative to the lab's root.
REPORTS: dict[str, Path] = {
    "gate": Path("reports/gate/gate_report.md"),
    "load": Path("reports/load/latency_gate.md"),
    "drift": Path("reports/drift/drift.md"),
}


def _note(message: str) -> None:
    print(f"summary: {message}", file=sys.stderr)


def render(root: Path) -> str:
    """Every report found under `root`, in REPORTS order; empty when there is none."""
    parts = []
    for target, rel in REPORTS.items():
        try:
            text = (root / rel).read_text(encoding="utf-8")
        except FileNotFoundError:
            _note(f"no {rel} (make {target} did not run here): skipped")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            parts.append(f"### {rel}\n\nCould not read this report: {exc}\n")
            continue
        if not text.strip():
            _note(f"{rel} is empty: skipped")
            continue
        parts.append(text.rstrip("\n") + "\n")
    return "\n".join(parts)


def summary(root: Path, env: Mapping[str, str]) -> int:
    """Print the reports' Markdown, or append it to $GITHUB_STEP_SUMMARY when set."""
    markdown = render(root)
    if not markdown:
        _note("no gate, latency or drift report to summarise")
        return 0
    target = env.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(markdown + "\n")
        _note(f"appended to $GITHUB_STEP_SUMMARY ({target})")
    else:
        print(markdown)
    return 0
