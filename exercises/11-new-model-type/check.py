"""Self-check of a new model family: tried in a grid, registered, gated and served by
staging from a clean commit, with the training tests pinning it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from labctl.book.copies import python_argv
from labctl.book.runner import criterion

# The families the lab's grid starts with.
BASE_FAMILIES = frozenset({"logreg", "random_forest"})
TRAIN_PY = "training/trainer/train.py"

# Appended to a copy of train.py: the same grid without the student's family. Their
# tests must notice (the test that pins the families).
MUTANT = """

_lab_check_candidates = candidates


def candidates(seed):
    return [c for c in _lab_check_candidates(seed) if c[0] != {family!r}]
"""


def _start_time_ms(lab) -> int:
    start = lab.start_commit()
    out = lab.git("show", "-s", "--format=%ct", start).stdout.strip()
    return int(out) * 1000 if out.isdigit() else 0


def run_training_tests(root: Path, family: str | None = None, timeout: int = 600):
    """The training tests of `root`'s working tree, run in a temporary copy (with the
    grid's `family` removed from that copy's train.py when given). Returns (exit code,
    last lines of the output); exit code None when they did not finish in time."""
    python = root / ".venv" / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="ex11-") as tmp:
        copy = Path(tmp)
        shutil.copytree(
            root / "training",
            copy / "training",
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
        )
        if (root / "pyproject.toml").is_file():
            shutil.copy(root / "pyproject.toml", copy / "pyproject.toml")
        if family is not None:
            with open(copy / TRAIN_PY, "a", encoding="utf-8") as f:
                f.write(MUTANT.format(family=family))
        pytest = ["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "training/tests"]
        # The copy's trainer is imported, not the lab's own.
        argv = python_argv(
            python if python.exists() else sys.executable, [copy / "training"], *pytest
        )
        try:
            r = subprocess.run(
                argv,
                cwd=copy,
                env={"PATH": "/usr/bin:/bin"},
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, f"no result within {timeout} s"
    tail = " | ".join((r.stdout + r.stderr).strip().splitlines()[-3:])
    return r.returncode, tail


def criteria(lab):
    facts: dict = {}

    def tried():
        since = _start_time_ms(lab)
        for mv in lab.versions():
            run = lab.run(mv["run_id"])
            if int(run["info"].get("start_time", 0) or 0) < since:
                continue
            for child in lab.child_runs(mv["run_id"]):
                family = child["params"].get("family")
                if family and family not in BASE_FAMILIES and "cv_f1_macro" in child["metrics"]:
                    return {
                        "version": mv["version"],
                        "family": family,
                        "cv_f1_macro": child["metrics"]["cv_f1_macro"],
                    }
        return False

    yield criterion(
        "a training run since the start tried a new model family (a child run with cv_f1_macro)",
        tried,
        "add a family to candidates() in training/trainer/train.py, commit, make train",
    )

    def gated_and_staged():
        for mv in lab.versions():
            t = mv["tags"]
            family = t.get("model_family", "")
            if family in BASE_FAMILIES or not family:
                continue
            if t.get("gate.verdict") != "passed" or not t.get("promoted.staging.at"):
                continue
            # The run that made it says the same: its grid's winner was that family.
            if lab.run(mv["run_id"])["params"].get("best_family") != family:
                continue
            facts.update(version=mv["version"], family=family, sha=t.get("git_sha", ""))
            return {"version": mv["version"], "family": family}
        return False

    yield criterion(
        "a version of a new family passed the gate and was promoted to staging",
        gated_and_staged,
        "the grid must pick your family (it wins on cv_f1_macro), then "
        "make gate && make promote TO=staging; make status shows the aliases",
    )

    def from_a_clean_commit():
        sha = facts["sha"]
        if not lab.clean_commit(sha):
            return False
        if TRAIN_PY not in lab.changed_since_start(sha, TRAIN_PY):
            return False
        # The family is in the grid of the commit it was trained from.
        if f'"{facts["family"]}"' not in lab.show(sha, TRAIN_PY):
            return False
        return {"git_sha": sha}

    yield criterion(
        "that version's git_sha is a clean commit whose train.py adds the family",
        from_a_clean_commit,
        "commit train.py before make train: a model trained from a dirty tree traces to no commit",
    )

    def answers_are_what_staging_serves():
        a = lab.answers("ex11")
        served = lab.served_settled("staging", facts["version"])
        if served["version"] != facts["version"]:
            return False
        if served.get("git_sha") != facts["sha"]:
            return False
        ok = a["family"] == facts["family"] and a["predict_path"] == served["predict_path"]
        return {"family": a["family"], "predict_path": served["predict_path"]} if ok else False

    yield criterion(
        "[ex11] family and predict_path are what the staging server says it serves",
        answers_are_what_staging_serves,
        "staging must serve that version: curl its /model (make urls) and copy predict_path",
    )

    def tests_pass():
        code, tail = run_training_tests(lab.root)
        facts["tests"] = code == 0
        if code != 0:
            raise ValueError(f"exit {code}: {tail}")
        return {"exit": code}

    yield criterion(
        "the training tests pass on your working tree",
        tests_pass,
        ".venv/bin/pytest -q training/tests",
    )

    def mutant_caught():
        if not facts.get("tests"):
            return False
        code, tail = run_training_tests(lab.root, facts["family"])
        return {"exit": code, "output": tail} if code == 1 else False

    yield criterion(
        "the training tests fail on a grid that lost your family",
        mutant_caught,
        "update the test that pins the families in training/tests/test_train.py",
    )
