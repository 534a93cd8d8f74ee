"""What the instructor's solutions do to a lab: run make targets, apply a patch, commit it.

Solutions change the student's lab on purpose (that is what `make solve` is for); checks
never import this module.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from labctl.errors import LabError

# A solution's commit when the student has no git identity configured yet.
BOOK_IDENTITY = ("mlops-lab exercise book", "exercises@mlops-lab.invalid")


def make(lab, *args: str, expect_failure: bool = False) -> None:
    """Run `make ARGS` in the lab as a student would; stop when it does not end as expected
    (a gate that should stop the line and passes is as wrong as one that fails)."""
    print(f"  make {' '.join(args)}", flush=True)
    # The commit is the tree's as it is now (a solution may just have committed), never
    # one inherited from the process that started the solution.
    env = {k: v for k, v in os.environ.items() if k != "GIT_SHA"}
    r = subprocess.run(["make", "--no-print-directory", *args], cwd=lab.root, env=env, check=False)
    if (r.returncode == 0) == expect_failure:
        expected = "to fail" if expect_failure else "to pass"
        raise LabError(f"make {' '.join(args)} exited {r.returncode}, expected it {expected}")


def _git(lab, *args: str, identity: bool = False) -> subprocess.CompletedProcess:
    cmd = ["git", "-C", str(lab.root)]
    if identity and not lab.git("config", "user.email").stdout.strip():
        cmd += ["-c", f"user.name={BOOK_IDENTITY[0]}", "-c", f"user.email={BOOK_IDENTITY[1]}"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, check=False)


def apply_patch(lab, patch: Path) -> list[str]:
    """Apply a patch to the working tree; return the files it touches. A patch that does not
    apply (the student changed those lines) is refused with what to do, and changes nothing."""
    files = _git(lab, "apply", "--numstat", str(patch))
    checked = _git(lab, "apply", "--check", str(patch))
    if checked.returncode != 0:
        raise LabError(
            f"{patch.name} does not apply to your working tree ({checked.stderr.strip()}): "
            "commit or stash your own edits of those files first (git stash), then solve again"
        )
    applied = _git(lab, "apply", str(patch))
    if applied.returncode != 0:
        raise LabError(f"git apply {patch.name}: {applied.stderr.strip()}")
    touched = [line.split("\t", 2)[2] for line in files.stdout.splitlines() if "\t" in line]
    print(f"  applied {patch.name}: {', '.join(touched)}")
    return touched


def commit(lab, message: str, paths: list[str]) -> str:
    """Commit exactly `paths` (the student's other edits stay uncommitted); return the sha."""
    _git(lab, "add", "--", *paths)
    done = _git(lab, "commit", "--quiet", "-m", message, "--", *paths, identity=True)
    if done.returncode != 0:
        raise LabError(f"git commit: {(done.stderr or done.stdout).strip()}")
    sha = lab.git("rev-parse", "--short=12", "HEAD").stdout.strip()
    print(f"  committed {sha}: {message}")
    return sha


def revert(lab, sha: str) -> str:
    """`git revert` a commit (a new commit that undoes it); return the new sha."""
    done = _git(lab, "revert", "--no-edit", sha, identity=True)
    if done.returncode != 0:
        raise LabError(f"git revert {sha}: {(done.stderr or done.stdout).strip()}")
    new = lab.git("rev-parse", "--short=12", "HEAD").stdout.strip()
    print(f"  reverted {sha}: {new}")
    return new


def set_env(lab, key: str, value: str) -> None:
    """Set KEY=value in the lab's .env, keeping every other line as it is."""
    path = lab.root / ".env"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [ln for ln in lines if ln.split("=", 1)[0].strip() != key]
    path.write_text("\n".join([*kept, f"{key}={value}"]) + "\n", encoding="utf-8")
    print(f"  .env: {key}={value}")
