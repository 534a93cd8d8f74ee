from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from labctl import lock, pipeline
from labctl.errors import EXIT_FAILED, LabError
from labctl.settings import ROOT


def hold_lock_in_another_process(path):
    """A second command holding the lock, as another terminal would."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from labctl import lock
        with lock.exclusive(Path({str(path)!r}), "make promote TO=production"):
            print("held", flush=True)
            sys.stdin.read()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def release(holder) -> None:
    holder.stdin.close()
    holder.wait(timeout=10)
    holder.stdout.close()


def test_a_second_promotion_is_refused_while_one_runs(tmp_path):
    path = tmp_path / ".lab" / "promote.lock"
    holder = hold_lock_in_another_process(path)
    try:
        with pytest.raises(LabError) as exc, lock.exclusive(path, "make rollback"):
            pytest.fail("entered a held lock")
        assert exc.value.code == EXIT_FAILED
        message = str(exc.value)
        assert f"make promote TO=production (PID {holder.pid}" in message
        assert "run make rollback again (nothing moved)" in message
    finally:
        release(holder)
    with lock.exclusive(path, "make rollback"):  # free again once the holder exits
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    path = tmp_path / "promote.lock"
    holder = hold_lock_in_another_process(path)
    holder.kill()
    release(holder)
    with lock.exclusive(path, "make promote TO=staging"):
        pass


def test_promote_and_rollback_take_the_lock_before_moving_anything(settings_for, tmp_path):
    from labctl.runner import Result
    from labctl.tests.test_pipeline import StepBackend

    b = StepBackend(settings_for(), Result(0, ""))
    holder = hold_lock_in_another_process(b.s.lab_dir / "promote.lock")
    try:
        for run in (lambda: pipeline.promote(b, "production"), lambda: pipeline.rollback(b)):
            with pytest.raises(LabError, match="one promotion or rollback at a time"):
                run()
        assert b.steps == []
    finally:
        release(holder)
