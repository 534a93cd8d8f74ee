"""Self-check of the latency gate: a slow forest stopped at staging by the load test, a
fast version after it in production, and a budget of your own on the record."""

from labctl.book.runner import criterion
from labctl.settings import read_dotenv

TRAIN_PY = "training/trainer/train.py"
MIN_TREES = 200
DEFAULT_P95_MS = 200.0


def _stamp(mv: dict, key: str) -> str:
    return mv["tags"].get(key, "")


def _is_forest(lab, mv: dict) -> bool:
    trees = lab.run(mv["run_id"])["params"].get("best_n_estimators", "0")
    return mv["tags"].get("model_family") == "random_forest" and int(float(trees)) >= MIN_TREES


def criteria(lab):
    a = lab.answers("ex7")
    found: dict = {}

    def slow_forest():
        for mv in lab.versions():
            tags = mv["tags"]
            if not _stamp(mv, "promoted.staging.at") or not _is_forest(lab, mv):
                continue
            sha = tags.get("git_sha", "")
            if (
                tags.get("gate.verdict") == "passed"
                and lab.clean_commit(sha)
                and lab.changed_since_start(sha, TRAIN_PY)
            ):
                found["slow"] = mv
                return {"version": mv["version"], "git_sha": sha}
        return False

    yield criterion(
        f"a forest of at least {MIN_TREES} trees, committed, passed the gate and reached staging",
        slow_forest,
        "commit the forest in candidates(), make train, make gate (override the offline "
        "threshold if it stops), make promote TO=staging",
    )

    def stopped_by_load():
        mv = found["slow"]
        tags = mv["tags"]
        production = [k for k in tags if k.startswith("promoted.production.")]
        ok = tags.get("load.verdict") == "failed" and not production
        return {"load.p95_ms": tags.get("load.p95_ms")} if ok else False

    yield criterion(
        "the load test failed it (load.verdict=failed) and it never reached production",
        stopped_by_load,
        "make load against staging while the forest is there; do not promote it",
    )

    def fast_in_production():
        version = lab.aliases()["production"]
        mv = lab.version(version)
        tags = mv["tags"]
        slow = found["slow"]
        sha = tags.get("git_sha", "")
        ok = (
            int(version) > int(slow["version"])
            and _stamp(mv, "promoted.staging.at") > _stamp(slow, "promoted.staging.at")
            and tags.get("load.verdict") == "passed"
            and _stamp(mv, "promoted.production.at") > _stamp(mv, "promoted.staging.at")
            and lab.clean_commit(sha)
            and lab.git("diff", "--quiet", slow["tags"]["git_sha"], sha, "--", TRAIN_PY).returncode
            == 1
            and not _is_forest(lab, mv)
            and lab.served_settled("production", version)["version"] == version
        )
        found["fast"] = mv
        return {"version": version, "git_sha": sha} if ok else False

    yield criterion(
        "a later version, not a big forest and from a commit that changed train.py again, "
        "passed the load test and serves in production",
        fast_in_production,
        "git revert the forest, then train, gate, promote to staging, make load, promote "
        "to production",
    )

    def budget():
        budget_ms = float(a["budget_ms"])
        in_env = read_dotenv(lab.root / ".env").values.get("LOAD_MAX_P95_MS", "")
        report = lab.report("load/latency_gate.json") or {}
        fast = found["fast"]
        ok = (
            0 < budget_ms < DEFAULT_P95_MS
            and in_env != ""
            and float(in_env) == budget_ms
            and report.get("passed") is True
            and str(report.get("version")) == fast["version"]
            and float(report["thresholds"]["max_p95_ms"]) == budget_ms
            and float(report["p95_ms"]) <= budget_ms
            and abs(float(fast["tags"]["load.p95_ms"]) - float(report["p95_ms"])) < 0.5
        )
        return {"budget_ms": budget_ms, "p95_ms": report.get("p95_ms")} if ok else False

    yield criterion(
        "budget_ms is below 200 ms, set in .env, and the last load test passed under it",
        budget,
        "LOAD_MAX_P95_MS=<about twice the passing p95> in .env, make load, then promote; "
        "budget_ms in answers.toml is that number",
    )

    def answers():
        slow = found["slow"]
        said = float(a["p95_slow_ms"])
        return (
            str(a["slow_version"]) == slow["version"]
            and abs(said - float(slow["tags"]["load.p95_ms"])) <= 1.0
        )

    yield criterion(
        "slow_version and p95_slow_ms are the forest's version and its p95 under load",
        answers,
        "the forest's tags load.p95_ms in MLflow (or reports/load/ right after its load test)",
    )
