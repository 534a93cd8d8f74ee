"""Exercise 11's check against a recorded lab in a real git repository: a new family in
staging from a clean commit passes; a fresh lab and each shortcut fail.

The lab's training code is stood in for by a tiny grid and the test that pins it, so the
check's runs of the training tests (and of the mutant without the family) take a second.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.exercises.conftest import ROOT, GitLab, failed, recorded_lab, results

START_GRID = """
def candidates(seed):
    return [("logreg", {"C": 1.0}, None), ("random_forest", {"max_depth": 3}, None)]
"""
NEW_GRID = START_GRID.replace("None)]", 'None), ("svc", {"C": 10.0}, None)]')
PIN_TEST = """
from trainer import train


def test_grid_families():
    assert {{f for f, _, _ in train.candidates(0)}} == {families}
"""
PINNED_START = PIN_TEST.format(families='{"logreg", "random_forest"}')
PINNED_NEW = PIN_TEST.format(families='{"logreg", "random_forest", "svc"}')
LOOSE_TEST = """
from trainer import train


def test_grid_is_not_empty():
    assert train.candidates(0)
"""
ANSWERS = '[ex11]\nfamily = "svc"\npredict_path = "sklearn-native"\n'
LATER = 4_102_444_800_000  # 2100-01-01 in ms: after any commit


class RunsLab(GitLab):
    """GitLab with the run details this check reads: start times, child runs and what the
    staging server says it serves."""

    def run(self, run_id):
        r = super().run(run_id)
        r["info"]["start_time"] = self.state["runs"][run_id].get("start_time", LATER)
        return r

    def child_runs(self, run_id):
        return self.state.get("child_runs", {}).get(run_id, [])

    def served(self, alias):
        version = self.state["served"][alias]
        tags = self.state["versions"][version]["tags"]
        return {
            "version": version,
            "git_sha": tags.get("git_sha", ""),
            "predict_path": self.state.get("predict_path", {}).get(alias, "numpy-native"),
        }

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _write_grid(lab: RunsLab, grid: str, test: str) -> None:
    lab.write("training/trainer/__init__.py", "")
    lab.write("training/trainer/train.py", grid)
    lab.write("training/tests/test_train.py", test)


@pytest.fixture
def ex11_lab(tmp_path):
    """A lab whose start commit has the two-family grid, and a function that commits a
    new grid and records the version trained from it (the solution's evidence)."""
    lab = RunsLab(tmp_path, recorded_lab(), "local", [])
    _write_grid(lab, START_GRID, PINNED_START)
    lab.commit_all("the lab's grid")
    lab.run_git("tag", "-f", "workshop-start")

    def solved(grid=NEW_GRID, test=PINNED_NEW, *, answers=ANSWERS, **tags):
        _write_grid(lab, grid, test)
        sha = lab.commit_all("add an svc family")
        st = lab.state
        st["versions"]["3"] = {
            "version": "3",
            "run_id": "run3",
            "tags": {
                "git_sha": sha,
                "model_family": "svc",
                "gate.verdict": "passed",
                "promoted.staging.at": "2026-11-26T03:00:00+00:00",
                **tags,
            },
        }
        st["runs"]["run3"] = {"metrics": {}, "params": {"best_family": "svc"}}
        st["child_runs"] = {
            "run3": [
                {"run_id": "c1", "metrics": {"cv_f1_macro": 0.92}, "params": {"family": "logreg"}},
                {"run_id": "c2", "metrics": {"cv_f1_macro": 0.94}, "params": {"family": "svc"}},
            ]
        }
        st["aliases"].update(candidate="3", staging="3")
        st["served"]["staging"] = "3"
        st["predict_path"] = {"staging": "sklearn-native"}
        lab.write_answers(answers)
        return lab

    return lab, solved


def test_fails_on_a_fresh_lab(fake_lab):
    lab = fake_lab()
    bad = failed(lab, 11)
    assert len(bad) == 6, bad  # the fresh lab has no training tests at its root either


def test_passes_with_the_solutions_evidence(ex11_lab):
    lab, solved = ex11_lab
    assert len(failed(lab, 11)) == 5  # the tests pass, nothing else
    solved()
    assert failed(lab, 11) == []
    evidence = {c.text: c.evidence for c in results(lab, 11)}
    assert any(e.get("family") == "svc" for e in evidence.values())


@pytest.mark.parametrize(
    ("tags", "criterion"),
    [
        ({"gate.verdict": "failed"}, "a version of a new family passed the gate"),
        ({"promoted.staging.at": ""}, "a version of a new family passed the gate"),
        ({"model_family": "random_forest"}, "a version of a new family passed the gate"),
        # Trained from uncommitted changes.
        ({"git_sha": "0123456789ab-dirty-5f1c"}, "that version's git_sha is a clean commit"),
        ({"git_sha": "not-a-commit"}, "that version's git_sha is a clean commit"),
    ],
)
def test_a_version_that_did_not_go_through_the_line_fails(ex11_lab, tags, criterion):
    lab, solved = ex11_lab
    solved(**tags)
    assert any(text.startswith(criterion) for text in failed(lab, 11)), failed(lab, 11)


def test_a_family_tag_the_run_does_not_back_fails(ex11_lab):
    lab, solved = ex11_lab
    solved()
    lab.state["runs"]["run3"]["params"]["best_family"] = "logreg"  # tagged by hand
    assert "a version of a new family passed the gate and was promoted to staging" in failed(
        lab, 11
    )


def test_a_model_from_the_start_commit_fails(ex11_lab):
    lab, solved = ex11_lab
    solved()
    start = lab.git("rev-parse", "--short=12", "workshop-start").stdout.strip()
    lab.state["versions"]["3"]["tags"]["git_sha"] = start
    assert failed(lab, 11) == [
        "that version's git_sha is a clean commit whose train.py adds the family"
    ]


def test_runs_from_before_the_start_do_not_count(ex11_lab):
    lab, solved = ex11_lab
    solved()
    lab.state["runs"]["run3"]["start_time"] = 1000
    assert failed(lab, 11) == [
        "a training run since the start tried a new model family (a child run with cv_f1_macro)"
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"answers": '[ex11]\nfamily = "svc"\npredict_path = "numpy-native"\n'},
        {"answers": '[ex11]\nfamily = "SVC"\npredict_path = "sklearn-native"\n'},
        {"served": "1"},  # staging moved on: its /model says nothing about version 3
    ],
)
def test_answers_must_be_what_staging_serves(ex11_lab, change):
    lab, solved = ex11_lab
    solved(answers=change.get("answers", ANSWERS))
    if "served" in change:
        lab.state["served"]["staging"] = change["served"]
    assert failed(lab, 11) == [
        "[ex11] family and predict_path are what the staging server says it serves"
    ]


def test_a_failing_training_test_fails_and_is_named(ex11_lab):
    lab, solved = ex11_lab
    solved(test=PINNED_START)  # the grid grew, the pinning test was not updated
    bad = [c for c in results(lab, 11) if c.ok is False]
    assert [c.text for c in bad] == [
        "the training tests pass on your working tree",
        "the training tests fail on a grid that lost your family",  # not run: nothing to catch
    ]
    assert "exit 1" in bad[0].hint and "failed" in bad[0].hint


def test_tests_that_do_not_pin_the_family_fail(ex11_lab):
    lab, solved = ex11_lab
    solved(test=LOOSE_TEST)  # the pinning test was deleted, a vaguer one left
    assert failed(lab, 11) == ["the training tests fail on a grid that lost your family"]


def test_the_solution_patch_applies_to_the_repository():
    patch = ROOT / "exercises" / "11-new-model-type" / "solution" / "svc.patch"
    r = subprocess.run(
        ["git", "-C", str(ROOT), "apply", "--check", str(patch)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
