"""Self-check of the quality-gate exercise: the answers against the gate's own report,
and the student's script run against versions and thresholds chosen now."""

import json
import os
import subprocess
import sys

from labctl.book.runner import criterion

SCRIPT = "validate_quality.py"


def _row(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


def _run(lab, script, **env):
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MLFLOW_TRACKING_URI": lab.mlflow_url,
        "MLFLOW_MODEL_NAME": lab.model_name,
    }
    if lab.s.auth:
        base.update(
            MLFLOW_TRACKING_USERNAME="admin",
            MLFLOW_TRACKING_PASSWORD=lab.s.get("MLFLOW_ADMIN_PASSWORD"),
        )
    python = lab.root / ".venv" / "bin" / "python"
    argv = [str(python if python.exists() else sys.executable), str(script)]
    try:
        r = subprocess.run(
            argv, env={**base, **env}, capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        return "no answer within 60 s", {}
    line = next((x for x in reversed(r.stdout.splitlines()) if x.strip().startswith("{")), "")
    try:
        return r.returncode, (json.loads(line) if line else {})
    except ValueError:
        return r.returncode, {}


def criteria(lab):
    a = lab.answers("ex3")
    facts: dict = {}

    def report_is_the_gates():
        version = lab.aliases()["candidate"]
        mv = lab.version(version)
        report = json.loads(lab.artifact(mv["run_id"], "gate/gate_report.json"))
        local = lab.report("gate/gate_report.json") or {}
        facts.update(version=version, report=report)
        same = report["checked_at"] == mv["tags"].get("gate.checked_at") == local.get("checked_at")
        compared = report.get("production", {}).get("version")
        return {"version": version, "compared_with": compared} if same and compared else False

    yield criterion(
        "@candidate was gated against a production model (make gate wrote its report)",
        report_is_the_gates,
        "make train && make gate: the new candidate is compared with production",
    )

    def answers_match():
        report = facts["report"]
        p99 = _row(report, "p99_latency_ms")["value"]
        drop = _row(report, "regression_accuracy")["value"]
        ok = (
            abs(float(a["p99_latency_ms"]) - p99) < 1e-3
            and str(a["compared_with_version"]) == str(report["production"]["version"])
            and abs(float(a["accuracy_drop"]) - drop) < 1e-6
        )
        return {"p99_latency_ms": p99, "accuracy_drop": drop} if ok else False

    yield criterion(
        "[ex3] p99_latency_ms, compared_with_version and accuracy_drop are the report's",
        answers_match,
        "read the rows p99_latency_ms and regression_accuracy of reports/gate/gate_report.md",
    )
    script = lab.exercise_dir(3) / SCRIPT
    yield criterion(
        f"exercises/03-quality-gate/{SCRIPT} exists",
        script.is_file,
        "write it: the README gives its contract",
    )
    if not script.is_file():
        return

    def metrics_of(version):
        return lab.run(lab.version(version)["run_id"])["metrics"]

    def production_case():
        version = lab.aliases()["production"]
        m = metrics_of(version)
        expected = 0 if m["accuracy"] >= 0.90 and m["precision_macro"] >= 0.85 else 1
        code, out = _run(lab, script, MODEL_ALIAS="production")
        ok = (
            code == expected
            and str(out.get("version")) == version
            and abs(out["accuracy"] - m["accuracy"]) < 1e-6
            and abs(out["precision_macro"] - m["precision_macro"]) < 1e-6
        )
        return {"exit": code, "expected": expected} if ok else False

    yield criterion(
        "MODEL_ALIAS=production: the run's metrics, and the verdict they give",
        production_case,
        "look the alias up, then read the metrics of the version's run",
    )
    candidate = facts.get("version") or lab.aliases()["candidate"]
    # Thresholds chosen now, just above or below the candidate's own figures: a script
    # with fixed thresholds or exit codes cannot meet all three.
    cases = [
        ("a MIN_ACCURACY just above the candidate's accuracy fails", 1, "accuracy", +1),
        ("a MIN_PRECISION just above its precision fails (precision is read)", 1, "precision", +1),
        ("thresholds just below both figures pass", 0, "both", -1),
    ]
    for text, expected, which, sign in cases:

        def case(expected=expected, which=which, sign=sign):
            m = metrics_of(candidate)
            acc, prec = m["accuracy"] + sign * 1e-3, m["precision_macro"] + sign * 1e-3
            env = {
                "accuracy": {"MIN_ACCURACY": f"{acc:.6f}", "MIN_PRECISION": "0"},
                "precision": {"MIN_ACCURACY": "0", "MIN_PRECISION": f"{prec:.6f}"},
                "both": {"MIN_ACCURACY": f"{acc:.6f}", "MIN_PRECISION": f"{prec:.6f}"},
            }[which]
            code, out = _run(lab, script, MODEL_VERSION=candidate, **env)
            same = (
                str(out.get("version")) == candidate and abs(out["accuracy"] - m["accuracy"]) < 1e-6
            )
            return {"exit": code, **env} if code == expected and same else False

        yield criterion(text, case, "the thresholds come from MIN_ACCURACY and MIN_PRECISION")

    yield criterion(
        "an unknown version exits 2",
        lambda: _run(lab, script, MODEL_VERSION="99999")[0] == 2,
        "MLflow answers 404: the script cannot say pass or fail",
    )
