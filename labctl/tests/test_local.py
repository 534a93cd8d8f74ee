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

    def start(name, argv, env=None, listen=None, env_file=None):
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
    assert argv.index("--listen") < argv.index("--")
    # production's pinned version, which the supervisor reads again at each start
    assert argv[argv.index("--env-file") + 1] == str(local.production_env_file)
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


def running_production(local, monkeypatch, pinned: str, result: str = "ok", reason: str = ""):
    """A running production supervisor pinned to `pinned` (a fake PID) that answers a
    SIGHUP with `result`, as labctl.supervise does; returns the signals sent."""
    import json
    import signal

    local._pin_production(pinned)
    monkeypatch.setattr(
        local, "running_pid", lambda name: 4242 if name == "serving-production" else None
    )
    sent = []

    def kill(pid, sig):
        assert (pid, sig) == (4242, signal.SIGHUP)
        sent.append(local.pinned_production())  # what the new server will read
        (local.run_dir / "serving-production.replaced.json").write_text(
            json.dumps({"generation": len(sent), "result": result, "reason": reason})
        )

    monkeypatch.setattr("labctl.local.os.kill", kill)
    monkeypatch.setattr(local, "print_log_tail", lambda name: None)
    monkeypatch.setattr(
        "labctl.local.process_command",
        lambda pid: f"python -m labctl.supervise --env-file {local.production_env_file} --",
    )
    monkeypatch.setattr(local, "serving_code", lambda: "code")
    return sent


def test_production_switches_by_replacing_its_server_on_the_new_pin(local, fake, monkeypatch):
    fake.on("status --version-of production", stdout="5\n")
    sent = running_production(local, monkeypatch, pinned="4")
    local.switch_production()
    assert sent == ["5"] and local.pinned_production() == "5"


def test_a_failed_switch_keeps_production_on_its_version(local, fake, monkeypatch):
    fake.on("status --version-of production", stdout="5\n")
    sent = running_production(
        local, monkeypatch, pinned="4", result="failed", reason="error: worker 9 has no model"
    )
    with pytest.raises(LabError, match=r"no model.*serves version 4 as before"):
        local.switch_production()
    assert sent == ["5"] and local.pinned_production() == "4"


def test_production_on_another_version_than_its_alias_is_moved_checked_first(
    local, fake, monkeypatch
):
    """make up with the alias moved behind the lab's back: the version is started and
    smoke-tested on a second server before production changes; a failed check leaves
    production as it was."""
    from labctl.errors import CommandFailed

    fake.on("status --version-of production", stdout="5\n").on("smoke", returncode=1)
    sent = running_production(local, monkeypatch, pinned="4")
    steps = []
    monkeypatch.setattr(
        local, "prepare_production", lambda v, sha: steps.append(f"check {v}") or "http://x"
    )
    monkeypatch.setattr(local, "_stop_checker", lambda: steps.append("stop check"))
    with pytest.raises(CommandFailed):
        local.start_production()
    assert steps == ["check 5", "stop check"]
    assert sent == [] and local.pinned_production() == "4"
    assert fake.ran("smoke --url http://x --alias production --version 5")

    fake.rules.pop(0)  # the smoke test passes now
    steps.clear()
    local.start_production()
    assert steps == ["check 5", "stop check"] and sent == ["5"]


def test_a_stopped_production_server_starts_on_the_alias(local, fake, monkeypatch):
    fake.on("status --version-of production", stdout="6\n")
    started = []
    monkeypatch.setattr(local, "serving_up", started.append)
    local.start_production()
    assert started == ["production"] and local.pinned_production() == "6"


def test_a_server_from_before_pinned_versions_is_restarted_not_signalled(local, fake, monkeypatch):
    """Its supervisor has no SIGHUP handler (SIGHUP would end it and orphan gunicorn)."""
    fake.on("status --version-of production", stdout="5\n")
    sent = running_production(local, monkeypatch, pinned="4")
    monkeypatch.setattr(
        "labctl.local.process_command", lambda pid: "python -m labctl.supervise --pidfile x --"
    )
    stopped, started = [], []
    monkeypatch.setattr("labctl.local.processes.stop_pid", lambda pid, timeout: stopped.append(pid))
    monkeypatch.setattr(local, "serving_up", started.append)
    local.switch_production()
    assert sent == [] and stopped == [4242] and started == ["production"]
    assert local.pinned_production() == "5"


def test_a_switch_keeps_only_the_new_versions_cache_and_records_the_code(local, fake, monkeypatch):
    fake.on("status --version-of production", stdout="5\n")
    running_production(local, monkeypatch, pinned="4")
    for version in ("3", "4", "5"):
        local._production_cache(version).mkdir(parents=True)
    local.switch_production()
    assert sorted(p.name for p in local._production_cache("5").parent.iterdir()) == ["v5"]
    assert local.codefile("serving-production").read_text().strip() == "code"
    assert f"SERVING_CACHE_DIR={local._production_cache('5')}" in (
        local.production_env_file.read_text()
    )
