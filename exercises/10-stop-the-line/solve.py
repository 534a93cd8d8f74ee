"""The smoke test that really tests: the instructor's smoke and its test, committed; the
colleague's serving change committed and stopped at staging; the revert, promoted."""

import subprocess

from labctl.book.solving import BOOK_IDENTITY, apply_patch, commit, make
from labctl.errors import LabError


def _revert(lab, sha: str) -> None:
    cmd = ["git", "-C", str(lab.root)]
    if not lab.git("config", "user.email").stdout.strip():
        cmd += ["-c", f"user.name={BOOK_IDENTITY[0]}", "-c", f"user.email={BOOK_IDENTITY[1]}"]
    done = subprocess.run(
        [*cmd, "revert", "--no-edit", sha], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise LabError(f"git revert {sha}: {(done.stderr or done.stdout).strip()}")
    print(f"  reverted {sha}")


def solve(lab):
    folder = lab.exercise_dir(10)
    touched = apply_patch(lab, folder / "solution" / "smoke.patch")
    commit(lab, "gatekeeper: the smoke compares the server with the model it serves", touched)
    touched = apply_patch(lab, folder / "break-serving.patch")
    broken = commit(lab, "serving: quantize inputs before predict", touched)
    make(lab, "train")
    make(lab, "gate")
    make(lab, "promote", "TO=staging", expect_failure=True)  # the smoke stops the line
    _revert(lab, broken)
    make(lab, "train")
    make(lab, "gate")
    make(lab, "promote", "TO=staging")
