"""The quality-gate exercise's solution: a new candidate gated against production, the
answers read from its report, and the script copied into place."""

import json
import shutil

from labctl.book import answers
from labctl.book.solving import make
from labctl.book.view import Unanswered


def solve(lab):
    candidate = lab.aliases()["candidate"]
    try:
        report = json.loads(lab.artifact(lab.version(candidate)["run_id"], "gate/gate_report.json"))
    except Unanswered:  # a candidate that was never gated
        report = {}
    if not report.get("production", {}).get("version"):
        make(lab, "train")
        make(lab, "gate")
        candidate = lab.aliases()["candidate"]
    report = json.loads(lab.artifact(lab.version(candidate)["run_id"], "gate/gate_report.json"))
    rows = {c["name"]: c["value"] for c in report["checks"]}
    values = {
        "p99_latency_ms": rows["p99_latency_ms"],
        "compared_with_version": str(report["production"]["version"]),
        "accuracy_drop": rows["regression_accuracy"],
    }
    answers.update(lab.root, "ex3", values)
    for key, value in values.items():
        print(f"  {key} = {value!r}")
    folder = lab.exercise_dir(3)
    shutil.copy(folder / "solution" / "validate_quality.py", folder / "validate_quality.py")
    print("  copied solution/validate_quality.py into place")
