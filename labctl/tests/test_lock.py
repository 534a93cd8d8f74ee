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


def test_a_step_still_running_when_make_is_killed_keeps_the_lock(tmp_path):
    """make killed while the gatekeeper moves an alias: the gatekeeper (a command run
    through labctl.runner under the lock) holds it until it ends, not a moment less."""
    import os
    import signal
    import time

    path = tmp_path / "promote.lock"
    step_done = tmp_path / "step-done"
    code = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from labctl import lock
        from labctl.runner import Runner
        with lock.exclusive(Path({str(path)!r}), "make promote TO=production"):
            print("held", flush=True)
            Runner(Path.cwd(), os.environ).run([sys.executable, "-c",
                "import time, pathlib; time.sleep(2); pathlib.Path({str(step_done)!r}).touch()"])
        """
    )
    make = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert make.stdout.readline().strip() == "held"
    time.sleep(0.3)  # the step has started
    os.kill(make.pid, signal.SIGKILL)
    make.wait(timeout=10)
    make.stdout.close()
    with (
        pytest.raises(LabError, match="one promotion or rollback at a time"),
        lock.exclusive(path, "make rollback"),
    ):
        pytest.fail("entered the lock while the step still ran")
    deadline = time.monotonic() + 10
    while not step_done.exists():
        assert time.monotonic() < deadline, "the step never finished"
        time.sleep(0.05)
    time.sleep(0.2)  # the step's process exits right after writing its file
    with lock.exclusive(path, "make rollback"):  # free once the step is done
        pass
