"""The exercise book's round trip on the running lab: each check says "not yet" on a lab
where the exercise was not done, and "done" after the instructor's solution."""

from __future__ import annotations

import time

import pytest

from labctl.book import runner
from tests.e2e.labtools import ROOT

pytestmark = pytest.mark.e2e

EXERCISES = runner.exercises(ROOT)
# What the solutions write into the working tree, put back as it was after each test.
WRITTEN = [ROOT / "answers.toml", ROOT / "exercises" / "03-quality-gate" / "validate_quality.py"]


@pytest.fixture
def clean_tree():
    saved = {p: p.read_bytes() for p in WRITTEN if p.exists()}
    for p in WRITTEN:
        p.unlink(missing_ok=True)
    try:
        yield
    finally:
        for p in WRITTEN:
            p.unlink(missing_ok=True)
        for p, data in saved.items():
            p.write_bytes(data)


@pytest.mark.parametrize("ex", EXERCISES, ids=[e.slug for e in EXERCISES])
def test_the_check_fails_before_and_passes_after_the_solution(lab, clean_tree, ex):
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
