from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from labctl.errors import LabError
from labctl.local import LocalBackend


@pytest.fixture
def local(settings_for, fake):
    return LocalBackend(settings_for(), fake)


def start_supervisor(pidfile, log):
    """A real supervisor around a sleeping child; returns once its PID file exists."""
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "labctl.supervise",
            "--pidfile", str(pidfile), "--log", str(log),
            "--", sys.executable, "-c", "import time; time.sleep(60)",
        ]
    )  # fmt: skip
    for _ in range(100):
        if pidfile.exists():
            break
        time.sleep(0.05)
    return proc


def test_a_pid_file_of_a_dead_process_is_stale(local):
    local.run_dir.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    local.pidfile("mlflow").write_text(f"{proc.pid}\n")
    assert local.running_pid("mlflow") is None
    local.clear_stale("mlflow")
    assert not local.pidfile("mlflow").exists()


def test_a_pid_reused_by_another_program_is_not_ours(local):
    local.run_dir.mkdir(parents=True)
    local.pidfile("mlflow").write_text(f"{os.getpid()}\n")  # pytest, not a supervisor
    assert local.running_pid("mlflow") is None


def test_a_live_supervisor_is_found_by_its_pid_file(local, tmp_path):
    local.run_dir.mkdir(parents=True)
    pidfile = local.pidfile("mlflow")
    proc = start_supervisor(pidfile, tmp_path / "x.log")
    try:
        assert local.running_pid("mlflow") == proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not pidfile.exists()  # the supervisor removes it on the way out


def test_a_port_taken_by_another_program_refuses_up_before_starting(local, monkeypatch):
    monkeypatch.setattr(local, "port_taken", lambda name: local.port(name) == 8081)
    (local.bin).mkdir(parents=True)
    (local.bin / "python").touch()
    with pytest.raises(LabError, match="port 8081 for serving-staging is already in use"):
        local.prepare()
    assert not any("supervise" in " ".join(c) for c in local.runner.calls)


def test_jobs_talk_to_the_local_tracking_server_and_no_registry(settings_for, fake):
    b = LocalBackend(settings_for(MLFLOW_PORT="15050"), fake)
    assert b.runner.env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:15050"
    assert b.runner.env["GATE_REGISTRY_URL"] == ""


def test_another_services_supervisor_is_not_this_ones(local, tmp_path):
    local.run_dir.mkdir(parents=True)
    proc = start_supervisor(local.pidfile("serving-staging"), tmp_path / "x.log")
    try:
        local.pidfile("mlflow").write_text(f"{proc.pid}\n")
        assert local.running_pid("serving-staging") == proc.pid
        assert local.running_pid("mlflow") is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
