"""Render the lab's gate and latency reports as Markdown: `make summary`.

    reports/gate/gate_report.json   written by `make gate`  (gatekeeper/gatekeeper/report.py)
    reports/load/latency_gate.json  written by `make load`  (loadtests/locustfile.py)

On GitHub Actions the Markdown is appended to $GITHUB_STEP_SUMMARY, so it shows on the
run's page; anywhere else it is printed. A report that is missing (the step did not run in
this job) is skipped; one that cannot be read is named, never fatal: the exit code of the
gate itself is what stops the line. Standard library only, so any python3 can run it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GATE_REPORT = Path("reports/gate/gate_report.json")
LOAD_REPORT = Path("reports/load/latency_gate.json")
PASS, FAIL = "✅ pass", "❌ FAIL"


def _cell(value: object) -> str:
    """A value as a table cell: missing says so, pipes cannot break the table."""
    if value is None or value == "":
        return "missing"
    if isinstance(value, float):
        value = f"{value:g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def gate_markdown(report: dict) -> str:
    verdict = "PASSED" if report.get("passed") else "FAILED"
    lines = [
        f"### Quality gate: {report.get('model', '?')} v{report.get('version', '?')}: {verdict}",
        "",
        f"Checked at {report.get('checked_at', '?')}.",
        "",
        "| check | value | threshold | verdict |",
        "| --- | --- | --- | --- |",
    ]
    failed = []
    for check in report.get("checks", []):
        ok = bool(check.get("passed"))
        lines.append(
            f"| {_cell(check.get('name'))} | {_cell(check.get('value'))} "
            f"| {_cell(check.get('threshold'))} | {PASS if ok else FAIL} |"
        )
        if not ok:
            detail = check.get("detail") or (
                f"{_cell(check.get('value'))} does not meet {_cell(check.get('threshold'))}"
            )
            failed.append(f"- `{check.get('name')}`: {detail}")
    if failed:
        lines += ["", "Failed checks (nothing was promoted):", *failed]
    return "\n".join(lines) + "\n"


def load_markdown(report: dict) -> str:
    t = report.get("thresholds", {})
    requests = int(report.get("requests", 0))
    failures = int(report.get("failures", 0))
    ratio = report.get("failure_ratio", failures / requests if requests else 0.0)

    def at_most(value: float, limit: float | None) -> str:
        return "" if limit is None else (PASS if value <= limit else FAIL)

    def ms(key: str) -> str:
        return f"{float(report.get(key, 0)):.0f}"

    p95_max, p99_max = t.get("max_p95_ms"), t.get("max_p99_ms")
    ratio_max, min_requests = t.get("max_failure_ratio"), t.get("min_requests")
    rows = [
        ("p50 (ms)", ms("p50_ms"), "-", ""),
        (
            "p95 (ms)",
            ms("p95_ms"),
            f"<= {p95_max:g}" if p95_max is not None else "",
            at_most(float(report.get("p95_ms", 0)), p95_max),
        ),
        (
            "p99 (ms)",
            ms("p99_ms"),
            f"<= {p99_max:g}" if p99_max is not None else "",
            at_most(float(report.get("p99_ms", 0)), p99_max),
        ),
        ("requests/s", f"{float(report.get('rps', 0)):.1f}", "-", ""),
        (
            "requests",
            str(requests),
            f">= {min_requests}" if min_requests is not None else "",
            "" if min_requests is None else (PASS if requests >= min_requests else FAIL),
        ),
        (
            "failures",
            f"{failures} ({ratio:.2%})",
            f"<= {ratio_max:.2%}" if ratio_max is not None else "",
            at_most(ratio, ratio_max),
        ),
    ]
    verdict = "PASSED" if report.get("passed") else "FAILED"
    lines = [
        f"### Latency gate (Locust): {verdict}",
        "",
        "| metric | value | threshold | verdict |",
        "| --- | --- | --- | --- |",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
    ]
    if report.get("violations"):
        lines += ["", *[f"- {v}" for v in report["violations"]]]
    return "\n".join(lines) + "\n"


def render(root: Path) -> str:
    """Markdown for every report found under `root`; a note when there is none."""
    parts = []
    for rel, to_markdown in ((GATE_REPORT, gate_markdown), (LOAD_REPORT, load_markdown)):
        path = root / rel
        if not path.is_file():
            print(f"summary: no {rel} (that step did not run here): skipped", file=sys.stderr)
            continue
        try:
            parts.append(to_markdown(json.loads(path.read_text())))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            parts.append(f"### {rel}\n\nCould not read this report: {exc}\n")
    if not parts:
        return ""
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    root = Path(argv[0]) if argv else ROOT
    markdown = render(root)
    if not markdown:
        print("summary: no gate or latency report to summarise", file=sys.stderr)
        return 0
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(markdown + "\n")
        print(f"summary: appended to $GITHUB_STEP_SUMMARY ({target})", file=sys.stderr)
    else:
        print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
