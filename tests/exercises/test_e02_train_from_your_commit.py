"""Exercise 2's check against a recorded lab in a real git repository."""

from __future__ import annotations

import pytest

from tests.exercises.conftest import ROOT, failed, results

TRAIN_PY = "training/trainer/train.py"
PATCH = ROOT / "exercises" / "02-train-from-your-commit" / "solution" / "grid.patch"


def _grid(cs):
    return [
        {"run_id": f"c{c}", "metrics": {}, "params": {"family": "logreg", "C": str(c)}} for c in cs
    ] + [{"run_id": "rf", "metrics": {}, "params": {"family": "random_forest", "max_depth": "3"}}]


def _trained(lab, sha, cs=(0.5, 5.0, 50.0), best=("logreg", {"best_C": "0.5"})):
    """Version 2 trained at `sha` with a logistic-regression grid of `cs`."""
    state = lab.state
    state["versions"]["1"]["tags"]["dataset_fingerprint"] = "fp-iris"
    state["versions"]["2"]["tags"].update(git_sha=sha, dataset_fingerprint="fp-iris")
    state["runs"]["run2"]["params"] = {"best_family": best[0], **best[1]}
    grids = {"run1": _grid((0.1, 1.0, 10.0)), "run2": _grid(cs)}
    lab.child_runs = lambda run_id: grids[run_id]


def _commit_new_grid(lab, values="(0.5, 5.0, 50.0)") -> str:
    path = lab.root / TRAIN_PY
    path.write_text(path.read_text().replace("(0.1, 1.0, 10.0)", values, 1))
    return lab.commit_all("grid: new C values")


ANSWERS = '[ex2]\nnew_version = "2"\nsame_data = true\nwinner = "logreg C=0.5"\n'


def test_the_solution_patch_applies_to_the_repository(git_lab):
    lab = git_lab([TRAIN_PY])
    assert lab.git("apply", "--check", str(PATCH)).returncode == 0


def test_fails_on_a_fresh_lab(git_lab):
    lab = git_lab([TRAIN_PY])
    _trained(lab, lab.run_git("rev-parse", "--short=12", "HEAD").stdout.strip(), (0.1, 1.0, 10.0))
    assert "a version trained from your commit has a new logistic-regression grid" in failed(lab, 2)


def test_passes_with_a_committed_grid_and_true_answers(git_lab):
    lab = git_lab([TRAIN_PY])
    _trained(lab, _commit_new_grid(lab))
    lab.write_answers(ANSWERS)
    assert failed(lab, 2) == []


def test_a_dirty_sha_is_refused(git_lab):
    lab = git_lab([TRAIN_PY])
    sha = _commit_new_grid(lab)
    _trained(lab, f"{sha}-dirty-0123456789")
    lab.write_answers(ANSWERS)
    assert "a version trained from your commit has a new logistic-regression grid" in failed(lab, 2)


def test_a_grid_the_commit_does_not_hold_is_refused(git_lab):
    """A run logged by hand with other C values than the commit's code."""
    lab = git_lab([TRAIN_PY])
    _trained(lab, _commit_new_grid(lab), cs=(0.5, 5.0, 77.0))
    lab.write_answers(ANSWERS)
    assert failed(lab, 2) == ["every C of the recorded grid is in that commit's train.py"]


def test_a_commit_that_did_not_change_train_py_is_refused(git_lab):
    lab = git_lab([TRAIN_PY])
    (lab.root / "notes.txt").write_text("nothing to do with training\n")
    _trained(lab, lab.commit_all("notes"))
    lab.write_answers(ANSWERS)
    assert "a version trained from your commit has a new logistic-regression grid" in failed(lab, 2)


@pytest.mark.parametrize(
    ("answers", "criterion"),
    [
        (ANSWERS.replace('"2"', '"1"'), "new_version is that version"),
        (ANSWERS.replace("true", "false"), "same_data says whether its dataset fingerprint is"),
        (ANSWERS.replace("C=0.5", "C=5.0"), "winner names the family and parameters the run"),
        (ANSWERS.replace("logreg C", "random_forest C"), "winner names the family and param"),
    ],
)
def test_each_wrong_answer_is_caught(git_lab, answers, criterion):
    lab = git_lab([TRAIN_PY])
    _trained(lab, _commit_new_grid(lab))
    lab.write_answers(answers)
    assert [c for c in failed(lab, 2) if c.startswith(criterion)], failed(lab, 2)


def test_docker_mode_wants_the_commits_images(git_lab):
    lab = git_lab([TRAIN_PY], mode="docker")
    sha = _commit_new_grid(lab)
    _trained(lab, sha)
    lab.write_answers(ANSWERS)
    assert failed(lab, 2) == ["the registry holds training:<sha> and serving:<sha> of that commit"]
    lab.state["digests"][sha] = "sha256:bbb"
    assert failed(lab, 2) == []
    assert [c.ok for c in results(lab, 2)].count(None) == 0
