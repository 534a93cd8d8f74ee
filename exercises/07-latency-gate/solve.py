"""The latency gate: a slow forest stopped at staging, the revert, a fast version to
production under a budget of twice its p95."""

from labctl.book import answers
from labctl.book.solving import apply_patch, commit, make, revert, set_env


def solve(lab):
    touched = apply_patch(lab, lab.exercise_dir(7) / "solution" / "forest.patch")
    forest = commit(lab, "grid: one big forest", touched)
    make(lab, "train")
    slow = lab.aliases()["candidate"]
    make(lab, "gate", "GATE_MAX_P99_LATENCY_MS=1000", "GATE_MAX_REGRESSION=0.05")
    make(lab, "promote", "TO=staging")
    make(lab, "load", "LOCUST_RUN_TIME=10s", expect_failure=True)
    make(lab, "promote", "TO=production", expect_failure=True)

    revert(lab, forest)
    make(lab, "train")
    make(lab, "gate")
    make(lab, "promote", "TO=staging")
    make(lab, "load", "LOCUST_RUN_TIME=10s")
    p95 = float((lab.report("load/latency_gate.json") or {})["p95_ms"])
    budget = min(199, round(2 * p95 + 20))
    set_env(lab, "LOAD_MAX_P95_MS", str(budget))
    make(lab, "load", "LOCUST_RUN_TIME=10s", f"LOAD_MAX_P95_MS={budget}")
    make(lab, "promote", "TO=production")

    values = {
        "slow_version": slow,
        "p95_slow_ms": float(lab.version(slow)["tags"]["load.p95_ms"]),
        "budget_ms": budget,
    }
    answers.update(lab.root, "ex7", values)
    for key, value in values.items():
        print(f"  {key} = {value!r}")
