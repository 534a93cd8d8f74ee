"""The exercise book's round trip on the running lab: each check says "not yet" on a lab
where the exercise was not done, and "done" after the instructor's solution.

Each exercise's round trip runs in one mode, so that the suite stays within CI's time:
those whose criteria read the image registry (`READS_IMAGES` in their check.py) in docker
mode, where those criteria apply, unless their check names another exercise that takes
the same image criterion (`DOCKER_ROUND_TRIP = False`, with the reason); every other one
in local mode, which runs the same checks against the same MLflow REST API and servers.
`EXERCISE_MODES=both` runs every exercise in the mode the lab runs in.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from labctl.book import runner
from tests.e2e.labtools import ROOT

pytestmark = pytest.mark.e2e

EXERCISES = runner.exercises(ROOT)
# What the solutions write outside git's view, put back as it was after each test.
WRITTEN = [ROOT / "answers.toml", ROOT / "exercises" / "03-quality-gate" / "validate_quality.py"]
# What the solutions may edit and the lab needs: put back as it was.
KEPT = [ROOT / ".env"]


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def round_trip_mode(check) -> str:
    """The mode in which an exercise's round trip runs (see the module's docstring)."""
    images = getattr(check, "READS_IMAGES", False) and getattr(check, "DOCKER_ROUND_TRIP", True)
    return "docker" if images else "local"


@pytest.fixture
def clean_tree():
    """Solutions write answers and commit patches: the tree and HEAD are put back after.
    A solution that commits needs a tree with nothing uncommitted (it is never reset)."""
    if _git("status", "--porcelain", "--untracked-files=no"):
        pytest.skip("the working tree has uncommitted changes: the round trip commits")
    head = _git("rev-parse", "HEAD")
    saved = {p: p.read_bytes() for p in [*WRITTEN, *KEPT] if p.exists()}
    for p in WRITTEN:
        p.unlink(missing_ok=True)
    try:
        yield
    finally:
        _git("reset", "--quiet", "--hard", head)
        for p in WRITTEN:
            p.unlink(missing_ok=True)
        for p, data in saved.items():
            p.write_bytes(data)


@pytest.mark.parametrize("ex", EXERCISES, ids=[e.slug for e in EXERCISES])
def test_the_check_fails_before_and_passes_after_the_solution(lab, clean_tree, ex):
    check = ex.module("check")
    if getattr(check, "WAITS_FOR", None):
        pytest.skip(f"exercise {ex.number} waits for {check.WAITS_FOR}")
    mode = round_trip_mode(check)
    if lab.mode != mode and os.environ.get("EXERCISE_MODES") != "both":
        pytest.skip(f"its round trip runs in {mode} mode (EXERCISE_MODES=both: here too)")
    before = lab.make("check", f"EX={ex.number}")
    assert before.returncode != 0, before.stdout
    assert "not yet" in before.stdout and "Error 1" in before.stderr, before.stdout
    t0 = time.monotonic()
    solved = lab.make("solve", f"EX={ex.number}")
    assert solved.returncode == 0, solved.stdout[-3000:] + solved.stderr[-3000:]
    after = lab.make("check", f"EX={ex.number}")
    took = time.monotonic() - t0
    assert after.returncode == 0, after.stdout[-3000:] + after.stderr[-2000:]
    assert "done:" in after.stdout and "✗" not in after.stdout
    print(f"exercise {ex.number} ({lab.mode}): solve + check {took:.1f} s")
