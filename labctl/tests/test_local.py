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


def test_a_roll_restarts_a_server_whose_serving_code_changed(local, monkeypatch):
    """The servers run the working tree's code as it was when they started: a promotion
    restarts the one it rolls when that code changed since, and only then."""
    code = local.s.root / "serving" / "serving" / "model.py"
    code.parent.mkdir(parents=True)
    code.write_text("ROUND = False\n")
    running: dict[str, int] = {}
    stopped: list[int] = []
    started: list[str] = []

    def start(name, argv, env=None, listen=None):
        if name not in running:
            running[name] = 100 + len(started)
            started.append(name)

    def stop(pid, timeout):
        stopped.append(pid)
        del running[next(n for n, p in running.items() if p == pid)]
        return False

    monkeypatch.setattr(local, "running_pid", lambda name: running.get(name))
    monkeypatch.setattr(local, "start", start)
    monkeypatch.setattr(local, "wait_http", lambda name, url: None)
    monkeypatch.setattr("labctl.local.processes.stop_pid", stop)
    local.roll("staging")
    local.roll("staging")
    assert started == ["serving-staging"] and stopped == []
    code.write_text("ROUND = True\n")
    local.roll("staging")
    assert stopped == [100] and started == ["serving-staging", "serving-staging"]
    local.roll("staging")  # started on the code it has now: left alone
    assert stopped == [100]
    local.codefile("serving-staging").unlink()  # a server started before the lab kept this
    local.roll("staging")
    assert stopped == [100, 101]


@pytest.mark.parametrize(
    ("bind", "listen"),
    [("127.0.0.1", "127.0.0.1:8082"), ("0.0.0.0", "0.0.0.0:8082"), ("::1", "[::1]:8082"),
     ("[::1]", "[::1]:8082")],
)  # fmt: skip
def test_a_model_servers_supervisor_holds_its_socket(settings_for, fake, monkeypatch, bind, listen):
    """The supervisor listens on the server's address and hands the socket to each
    gunicorn it starts: the port stays open while the server restarts."""
    local = LocalBackend(settings_for(LAB_BIND=bind), fake)
    started = []
    monkeypatch.setattr(local, "port_taken", lambda name: False)
    monkeypatch.setattr(local, "wait_http", lambda name, url: None)
    monkeypatch.setattr(
        "labctl.local.subprocess.Popen", lambda argv, env, **kw: started.append((argv, env))
    )
    local.serving_up("production")
    [(argv, env)] = started
    assert argv[argv.index("--listen") + 1] == listen
    assert argv.index("--listen") < argv.index("--") < argv.index("--listen") + 2 + 1
    assert "GUNICORN_BIND" not in env  # the supervisor sets it: fd://N
    assert env["SERVING_MODEL_ALIAS"] == "production"


def test_mlflow_is_started_without_a_socket_of_the_supervisors(local, monkeypatch):
    started = []
    monkeypatch.setattr(local, "port_taken", lambda name: False)
    monkeypatch.setattr(
        "labctl.local.subprocess.Popen", lambda argv, env, **kw: started.append(argv)
    )
    local.start("mlflow", ["mlflow", "server"])
    [argv] = started
    assert "--listen" not in argv
