"""Exercise 5's check against a recorded lab in a real git repository: the colleague's
patch and the solution applied as commits, the student's tests run against the planted
bug, and the gate reports the pipeline records."""

from __future__ import annotations

import ast
import json
import os
import random
import subprocess
from pathlib import Path

import pytest

from labctl.book.copies import python_argv
from tests.exercises.conftest import ROOT, GitLab, recorded_lab, results

FOLDER = ROOT / "exercises" / "05-fix-the-gate"
PLANTED = FOLDER / "0001-simplify-recall.patch"
FIX = FOLDER / "solution" / "fix.patch"
PYTHON = str(ROOT / ".venv" / "bin" / "python")

# The product files the patches touch and the check reads; the gatekeeper's tests are the
# two that exercise decide() and the configuration (the rest need MLflow and take longer).
FILES = [
    *(f"gatekeeper/gatekeeper/{p.name}" for p in (ROOT / "gatekeeper" / "gatekeeper").glob("*.py")),
    "gatekeeper/tests/test_decide.py",
    "gatekeeper/tests/test_config.py",
    "compose/compose.yaml",
    ".env.example",
    "docs/configuration.md",
    "pyproject.toml",
]

WEAK = "the fixed gate stopped a version whose weakest class is below the threshold"
F1_CHECK = "decide() has a check named f1_macro"
CONFIG = "GateConfig.from_env reads GATE_MIN_F1_MACRO"
PLUMBING = "the gatekeeper's environment in compose/compose.yaml and .env.example"
DECIDES = "decide() stops a model whose weakest class is below GATE_MIN_RECALL_PER_CLASS"
TESTS = "gatekeeper/tests pass on your tree"
PASSED = "a version (@candidate first) passed a gate whose report has an f1_macro row"
COMMIT = "that version was trained from a clean commit"
STRICT = "a GATE_MIN_F1_MACRO set on the command line reached the gate"
IMAGE = "the registry holds the gatekeeper image built from that commit"


def _patch(lab: GitLab, patch: Path) -> None:
    lab.run_git("apply", str(patch))


def _failed(lab) -> list[str]:
    return [c.text for c in results(lab, 5) if c.ok is False]


def _starts(texts: list[str]) -> set[str]:
    prefixes = (WEAK, F1_CHECK, CONFIG, PLUMBING, DECIDES, TESTS, PASSED, COMMIT, STRICT, IMAGE)
    return {next(p for p in prefixes if t.startswith(p)) for t in texts}


def _report(version, checked_at, verdict, thresholds, rows, measured):
    return {
        "model": "lab-classifier",
        "version": version,
        "verdict": verdict,
        "checked_at": checked_at,
        "thresholds": thresholds,
        "passed": verdict == "passed",
        "checks": [
            {"name": n, "value": v, "threshold": t, "passed": p, "detail": ""}
            for n, v, t, p in rows
        ],
        "measured": measured,
    }


THRESHOLDS = {
    "min_accuracy": 0.85,
    "min_precision_macro": 0.8,
    "min_recall_per_class": 0.7,
    "min_f1_macro": 0.8,
    "max_p99_latency_ms": 50.0,
    "max_model_size_mb": 20.0,
    "max_regression": 0.02,
}


def _version(state, n, sha, verdict, failed, thresholds, report):
    checked_at = f"2026-11-26T03:0{n}:00+00:00"
    report["checked_at"] = checked_at
    state["versions"][n] = {
        "version": n,
        "run_id": f"run{n}",
        "tags": {
            "git_sha": sha,
            "gate.verdict": verdict,
            "gate.failed_checks": ",".join(failed) or "none",
            "gate.thresholds": json.dumps(thresholds, separators=(",", ":")),
            "gate.checked_at": checked_at,
        },
    }
    state["runs"][f"run{n}"] = {"metrics": {}, "params": {}}
    state["artifacts"][(f"run{n}", "gate/gate_report.json")] = report


def solved_state(fix_sha: str, planted_sha: str) -> dict:
    """The gates the solution records: the weak class stopped (v3), a strict F1 threshold
    stopping a model (v4), a new candidate passing with the f1_macro row (v5)."""
    state = recorded_lab()
    weak = {"accuracy": 0.897436, "recall_macro": 0.897436, "f1_macro": 0.900178}
    weak.update(recall_class_0=1.0, recall_class_1=1.0, recall_class_2=0.692308)
    t3 = {**THRESHOLDS, "min_recall_per_class": 0.8, "max_regression": 0.15}
    rows3 = [
        ("min_recall_per_class", 0.692308, ">= 0.8", False),
        ("f1_macro", 0.900178, ">= 0.8", True),
    ]
    _version(
        state, "3", planted_sha, "failed", ["min_recall_per_class"], t3,
        _report("3", "", "failed", t3, rows3, weak),
    )  # fmt: skip
    t4 = {**THRESHOLDS, "min_f1_macro": 0.99, "max_regression": 0.03}
    rows4 = [("f1_macro", 0.975914, ">= 0.99", False)]
    _version(
        state, "4", fix_sha, "failed", ["f1_macro"], t4,
        _report("4", "", "failed", t4, rows4, {"f1_macro": 0.975914}),
    )  # fmt: skip
    rows5 = [("min_recall_per_class", 1.0, ">= 0.7", True), ("f1_macro", 1.0, ">= 0.8", True)]
    _version(
        state, "5", fix_sha, "passed", [], THRESHOLDS,
        _report("5", "", "passed", THRESHOLDS, rows5, {"f1_macro": 1.0}),
    )  # fmt: skip
    state["aliases"]["candidate"] = "5"
    state["digests"][fix_sha] = "sha256:gk"
    return state


class Lab05(GitLab):
    """A lab at the start, with the lab's .venv to run the student's code."""

    def __init__(self, tmp_path: Path, mode: str = "local"):
        super().__init__(tmp_path, recorded_lab(), mode, FILES)
        (tmp_path / ".git" / "info" / "exclude").write_text(".venv\n")
        os.symlink(ROOT / ".venv", tmp_path / ".venv")
        self.start = self.run_git("rev-parse", "--short=12", "HEAD").stdout.strip()

    def digest(self, repository, tag):
        return self.state["digests"].get(tag) if repository == "gatekeeper" else None

    def planted(self) -> str:
        _patch(self, PLANTED)
        return self.commit_all("gatekeeper: simplify the recall check")

    def solved(self) -> tuple[str, str]:
        planted = self.planted()
        _patch(self, FIX)
        fix = self.commit_all("gatekeeper: the weakest class decides again; GATE_MIN_F1_MACRO")
        self.state = solved_state(fix, planted)
        return planted, fix


needs_venv = pytest.mark.skipif(
    not (ROOT / ".venv" / "bin" / "python").exists(), reason="needs .venv (make venv)"
)
pytestmark = needs_venv


def test_both_patches_apply_to_the_product_in_order(tmp_path):
    """The colleague's patch applies to the tree; the solution applies on top of it."""
    index = tmp_path / "index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], env=env, capture_output=True, text=True, check=False
        )

    assert git("read-tree", "HEAD").returncode == 0
    planted = git("apply", "--cached", str(PLANTED))
    assert planted.returncode == 0, planted.stderr
    fix = git("apply", "--cached", "--check", str(FIX))
    assert fix.returncode == 0, fix.stderr
    # The solution does not apply to the tree without the colleague's patch.
    assert git("read-tree", "HEAD").returncode == 0
    assert git("apply", "--cached", "--check", str(FIX)).returncode != 0


def test_a_fresh_lab_fails_and_its_tests_catch_the_bug_already(tmp_path):
    lab = Lab05(tmp_path)
    # The start's decide() and tests are right; the new check and the gates are missing.
    assert _starts(_failed(lab)) == {F1_CHECK, CONFIG, PLUMBING, WEAK, PASSED, COMMIT, STRICT}


def test_the_colleagues_patch_passes_every_test_and_the_check_sees_the_bug(tmp_path):
    lab = Lab05(tmp_path)
    lab.planted()
    argv = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "gatekeeper/tests"]
    r = subprocess.run(
        python_argv(PYTHON, [tmp_path / "gatekeeper"], *argv),  # not the installed one
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-2000:]
    failed = _starts(_failed(lab))
    assert {DECIDES, TESTS} <= failed


def test_the_solution_passes_and_docker_mode_wants_the_image(tmp_path):
    lab = Lab05(tmp_path, mode="docker")
    _, fix = lab.solved()
    by_text = {c.text: c for c in results(lab, 5)}
    assert [t for t, c in by_text.items() if c.ok is False] == []
    (image,) = [c for t, c in by_text.items() if t.startswith(IMAGE)]
    assert image.evidence["image"] == f"mlops-lab/gatekeeper:{fix}"
    del lab.state["digests"][fix]
    assert _starts(_failed(lab)) == {IMAGE}
    lab.mode = "local"
    assert _failed(lab) == []
    assert [c.text for c in results(lab, 5) if c.ok is None] == [IMAGE]


def _without_tests(text: str, *names: str) -> str:
    """A test module without the named test functions."""
    tree = ast.parse(text)
    kept = [n for n in tree.body if getattr(n, "name", None) not in names]
    assert len(kept) == len(tree.body) - len(names)
    tree.body = kept
    return ast.unparse(tree)


def test_a_fix_whose_recall_tests_were_deleted_does_not_catch_the_bug(tmp_path):
    lab = Lab05(tmp_path)
    lab.solved()
    tests = tmp_path / "gatekeeper" / "tests" / "test_decide.py"
    text = tests.read_text()
    for row in ('("recall_class_1", 0.7, True),', '("recall_class_1", 0.6999, False),'):
        assert row in text
        text = text.replace(row, "")
    tests.write_text(
        _without_tests(
            text,
            "test_one_weak_class_fails_even_if_macro_recall_is_high",
            "test_no_per_class_recall_fails",
        )
    )
    # Green on the tree, and green with the bug planted again: nothing pins the behaviour.
    (bad,) = [c for c in results(lab, 5) if c.ok is False]
    assert bad.text.startswith(TESTS) and "all pass" in bad.hint


def test_the_colleagues_tests_on_the_fixed_code_are_red(tmp_path):
    lab = Lab05(tmp_path)
    lab.solved()
    planted_tests = lab.run_git("show", "HEAD~1:gatekeeper/tests/test_decide.py").stdout
    (tmp_path / "gatekeeper" / "tests" / "test_decide.py").write_text(planted_tests)
    (bad,) = [c for c in results(lab, 5) if c.ok is False]
    assert bad.text.startswith(TESTS) and "do not pass on your tree" in bad.hint


def test_a_test_that_always_fails_is_no_catch(tmp_path):
    lab = Lab05(tmp_path)
    lab.solved()
    with (tmp_path / "gatekeeper" / "tests" / "test_decide.py").open("a") as f:
        f.write("\n\ndef test_always():\n    assert False\n")
    (bad,) = [c for c in results(lab, 5) if c.ok is False]
    assert bad.text.startswith(TESTS) and "do not pass on your tree" in bad.hint


class _FirstWeakClassIsOne(random.Random):
    """The check's figures, with the first weak class at index 1 (the README's example)."""

    def sample(self, population, k):
        return [1, 0][:k]


def test_a_fix_for_one_class_only_fails(tmp_path, monkeypatch):
    # Even when the first weak model's weak class is the one the fix looks at.
    monkeypatch.setattr(random, "SystemRandom", lambda: _FirstWeakClassIsOne(5))
    lab = Lab05(tmp_path)
    lab.solved()
    decide = tmp_path / "gatekeeper" / "gatekeeper" / "decide.py"
    text = decide.read_text()
    # Only the class of the README's example is looked at.
    hard_coded = 'per_class = [m["recall_class_1"]] if "recall_class_1" in m else []'
    old = 'per_class = [v for k, v in m.items() if k.startswith("recall_class_")]'
    assert old in text
    decide.write_text(text.replace(old, hard_coded))
    assert DECIDES in _starts(_failed(lab))


def test_a_threshold_compose_does_not_pass_on_fails(tmp_path):
    lab = Lab05(tmp_path)
    lab.solved()
    compose = tmp_path / "compose" / "compose.yaml"
    compose.write_text(
        "\n".join(x for x in compose.read_text().splitlines() if "GATE_MIN_F1_MACRO" not in x)
    )
    assert _starts(_failed(lab)) == {PLUMBING}


def _dirty(state, fix, start):
    state["versions"]["5"]["tags"]["git_sha"] = f"{fix}-dirty-1a2b3c4d5e"


def _from_start(state, fix, start):
    state["versions"]["5"]["tags"]["git_sha"] = start


def _copied_report(state, fix, start):
    state["artifacts"][("run5", "gate/gate_report.json")]["checked_at"] = "2026-11-26T09:00:00Z"


def _default_threshold(state, fix, start):
    state["versions"]["4"]["tags"]["gate.thresholds"] = json.dumps(THRESHOLDS)
    state["artifacts"][("run4", "gate/gate_report.json")].update(
        thresholds=THRESHOLDS,
        checks=[{"name": "f1_macro", "value": 0.7, "threshold": ">= 0.8", "passed": False}],
    )


def _colleagues_gate(state, fix, start):
    row = state["artifacts"][("run3", "gate/gate_report.json")]["checks"][0]
    row.update(value=0.897436, passed=True)


@pytest.mark.parametrize(
    ("change", "criteria", "why"),
    [
        # Trained from uncommitted edits.
        (_dirty, {COMMIT}, "not a clean commit"),
        # Trained from the start: its gatekeeper has no fix and no f1 check.
        (_from_start, {COMMIT}, "has the start's gatekeeper"),
        # A report from another judgement than the one the version's tags record.
        (_copied_report, {PASSED, COMMIT}, ""),
        # The threshold on the command line never reached the gate: the default stopped a
        # bad model (what docker mode does when compose.yaml does not pass the variable).
        (_default_threshold, {STRICT}, ""),
        # The weak-class model judged by the colleague's gate: the row shows the macro recall.
        (_colleagues_gate, {WEAK}, ""),
    ],
    ids=["dirty-sha", "start-commit", "copied-report", "default-threshold", "colleagues-gate"],
)
def test_the_pipeline_evidence_must_be_the_gates_own(tmp_path, change, criteria, why):
    lab = Lab05(tmp_path)
    _, fix = lab.solved()
    change(lab.state, fix, lab.start)
    failed = [c for c in results(lab, 5) if c.ok is False]
    assert _starts([c.text for c in failed]) == criteria
    assert why in failed[0].hint


def test_without_a_venv_the_code_criteria_say_so(tmp_path):
    lab = Lab05(tmp_path)
    lab.solved()
    (tmp_path / ".venv").unlink()
    by_text = {c.text: c for c in results(lab, 5)}
    failed = [c for c in by_text.values() if c.ok is False]
    assert _starts([c.text for c in failed]) == {
        DECIDES, F1_CHECK, CONFIG, PLUMBING, TESTS, COMMIT, STRICT
    }  # fmt: skip
    assert all("make venv" in c.hint for c in failed)
