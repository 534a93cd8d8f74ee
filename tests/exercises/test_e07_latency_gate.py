"""Exercise 7's check against a recorded lab in a real git repository."""

from __future__ import annotations

import pytest

from tests.exercises.conftest import ROOT, failed

TRAIN_PY = "training/trainer/train.py"
PATCH = ROOT / "exercises" / "07-latency-gate" / "solution" / "forest.patch"
ANSWERS = '[ex7]\nslow_version = "2"\np95_slow_ms = 1900.0\nbudget_ms = 60\n'


def _story(lab):
    """v2: the forest (staging, load failed); v3: the revert (load passed, production)."""
    lab.run_git("apply", str(PATCH))
    forest = lab.commit_all("grid: one big forest")
    lab.run_git("revert", "--no-edit", "HEAD")
    fast = lab.run_git("rev-parse", "--short=12", "HEAD").stdout.strip()
    st = lab.state
    st["versions"]["2"]["tags"] = {
        "git_sha": forest,
        "model_family": "random_forest",
        "gate.verdict": "passed",
        "promoted.staging.at": "2026-11-26T06:00:00+00:00",
        "load.verdict": "failed",
        "load.p95_ms": "1900.0",
    }
    st["versions"]["3"] = {
        "version": "3",
        "run_id": "run3",
        "tags": {
            "git_sha": fast,
            "model_family": "logreg",
            "gate.verdict": "passed",
            "promoted.staging.at": "2026-11-26T06:10:00+00:00",
            "load.verdict": "passed",
            "load.p95_ms": "28.0",
            "promoted.production.at": "2026-11-26T06:12:00+00:00",
        },
    }
    st["runs"]["run2"]["params"] = {"best_family": "random_forest", "best_n_estimators": "300"}
    st["runs"]["run3"] = {"metrics": {}, "params": {"best_family": "logreg", "best_C": "1.0"}}
    st["aliases"].update(staging="3", production="3")
    st["served"].update(staging="3", production="3")
    st["local_reports"]["load/latency_gate.json"] = {
        "passed": True,
        "version": "3",
        "p95_ms": 28,
        "thresholds": {"max_p95_ms": 60.0},
    }
    (lab.root / ".env").write_text("MLFLOW_PORT=5050\nLOAD_MAX_P95_MS=60\n")
    lab.write_answers(ANSWERS)


@pytest.fixture
def lab(git_lab):
    return git_lab([TRAIN_PY])


def test_the_forest_patch_applies_to_the_repository(lab):
    assert lab.git("apply", "--check", str(PATCH)).returncode == 0


def test_fails_on_a_fresh_lab(lab):
    assert (
        "a forest of at least 200 trees, committed, passed the gate and reached staging"
        in failed(lab, 7)
    )


def test_passes_with_the_whole_story(lab):
    _story(lab)
    assert failed(lab, 7) == []


def test_a_forest_that_went_to_production_is_not_stopped(lab):
    _story(lab)
    lab.state["versions"]["2"]["tags"]["promoted.production.at"] = "2026-11-26T06:05:00+00:00"
    assert failed(lab, 7)[0].startswith("the load test failed it")


def test_a_forest_that_passed_the_load_test_is_not_the_lesson(lab):
    _story(lab)
    lab.state["versions"]["2"]["tags"]["load.verdict"] = "passed"
    assert failed(lab, 7)[0].startswith("the load test failed it")


def test_a_forest_of_few_trees_is_not_slow(lab):
    _story(lab)
    lab.state["runs"]["run2"]["params"]["best_n_estimators"] = "50"
    assert failed(lab, 7)[0].startswith("a forest of at least 200 trees")


def test_an_uncommitted_forest_is_refused(lab):
    _story(lab)
    tags = lab.state["versions"]["2"]["tags"]
    tags["git_sha"] += "-dirty-0123456789"
    assert failed(lab, 7)[0].startswith("a forest of at least 200 trees")


def test_production_on_the_forests_commit_is_refused(lab):
    """The version in production must come from a commit where the forest is gone."""
    _story(lab)
    three = lab.state["versions"]["3"]["tags"]
    three["git_sha"] = lab.state["versions"]["2"]["tags"]["git_sha"]
    assert failed(lab, 7)[0].startswith("a later version, not a big forest")


def test_production_that_skipped_the_load_test_is_refused(lab):
    _story(lab)
    lab.state["versions"]["3"]["tags"]["load.verdict"] = "failed"
    assert failed(lab, 7)[0].startswith("a later version, not a big forest")


@pytest.mark.parametrize(
    ("env", "report", "answer"),
    [
        ("LOAD_MAX_P95_MS=80\n", {}, None),  # .env says another budget
        ("", {}, None),  # no budget in .env
        ("LOAD_MAX_P95_MS=60\n", {"passed": False}, None),  # the last load failed
        ("LOAD_MAX_P95_MS=60\n", {"thresholds": {"max_p95_ms": 200.0}}, None),  # default
        ("LOAD_MAX_P95_MS=60\n", {"version": "2"}, None),  # another version's report
        ("LOAD_MAX_P95_MS=250\n", {"thresholds": {"max_p95_ms": 250.0}}, 250),  # not tighter
    ],
)
def test_the_budget_must_be_set_tighter_and_passed(lab, env, report, answer):
    _story(lab)
    (lab.root / ".env").write_text(env)
    lab.state["local_reports"]["load/latency_gate.json"].update(report)
    if answer:
        lab.write_answers(ANSWERS.replace("budget_ms = 60", f"budget_ms = {answer}"))
    assert failed(lab, 7) == [
        "budget_ms is below 200 ms, set in .env, and the last load test passed under it"
    ]


def test_answers_must_name_the_forest_and_its_p95(lab):
    _story(lab)
    lab.write_answers(ANSWERS.replace("1900.0", "28.0"))
    assert failed(lab, 7) == [
        "slow_version and p95_slow_ms are the forest's version and its p95 under load"
    ]
