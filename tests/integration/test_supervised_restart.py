"""A real gunicorn under labctl.supervise --listen, as local mode runs the model servers
(integration): its master restarts under steady requests, and no client is refused."""

import collections
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from labctl import processes
from labctl.processes import ROOT, free_port, port_in_use, stop, venv_bin, wait_http

pytestmark = pytest.mark.integration

CLIENTS = 4


def children(pid: int) -> list[int]:
    r = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return sorted(int(p) for p in r.stdout.split())


def test_a_restarting_gunicorn_refuses_no_connection(tmp_path):
    """The supervisor holds the listening socket and hands it to each gunicorn it starts
    (GUNICORN_BIND=fd://N): while the master it killed shuts down and the next one boots,
    connections wait in the listen backlog instead of being refused."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "GUNICORN_BIND"}
    env.update(GUNICORN_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    log = tmp_path / "server.log"
    supervisor = subprocess.Popen(
        [
            sys.executable, "-m", "labctl.supervise",
            "--pidfile", str(tmp_path / "server.pid"), "--log", str(log),
            "--listen", f"127.0.0.1:{port}",
            "--", *processes.gunicorn_command(venv_bin(), "bench.floor_app:app"),
        ],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/ready"
    outcomes: collections.Counter[str] = collections.Counter()
    slowest = 0.0
    done = threading.Event()
    lock = threading.Lock()

    def client():
        nonlocal slowest
        with requests.Session() as session:
            while not done.is_set():
                started = time.monotonic()
                try:
                    outcome = str(session.get(url, timeout=30).status_code)
                except requests.RequestException as exc:
                    outcome = type(exc).__name__
                with lock:
                    outcomes[outcome] += 1
                    slowest = max(slowest, time.monotonic() - started)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    try:
        wait_http(url, 60, supervisor)
        [master] = children(supervisor.pid)
        for t in threads:
            t.start()
        time.sleep(1)
        os.kill(master, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while children(supervisor.pid) in ([], [master]):
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        wait_http(url, 60, supervisor)
        time.sleep(1)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=60)
        stop(supervisor)
    text = log.read_text()
    assert text.count("[supervise] starting:") == 2, text[-2000:]
    assert set(outcomes) == {"200"}, (dict(outcomes), text[-2000:])
    # Requests were made while no gunicorn accepted: they waited, and were answered.
    assert slowest > 0.4, (dict(outcomes), slowest)
    assert supervisor.returncode == 0
    assert not port_in_use(port)  # the socket goes with the supervisor


def test_sighup_replaces_a_real_gunicorn_gated_with_no_failed_request(tmp_path):
    """labctl.supervise's replacement with serving/gunicorn.conf.py's gate: the new
    gunicorn's workers report ready and wait; the old master stops; the gate opens. Then
    one whose settings cannot start is refused and the running one serves on."""
    import json

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "GUNICORN_BIND"}
    env.update(GUNICORN_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    env_file = tmp_path / "server.env"
    env_file.write_text("GUNICORN_LOGLEVEL=info\n")
    log = tmp_path / "server.log"
    supervisor = subprocess.Popen(
        [
            sys.executable, "-m", "labctl.supervise",
            "--pidfile", str(tmp_path / "server.pid"), "--log", str(log),
            "--listen", f"127.0.0.1:{port}", "--env-file", str(env_file),
            "--", *processes.gunicorn_command(venv_bin(), "bench.floor_app:app"),
        ],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/ready"
    status = tmp_path / "server.replaced.json"
    outcomes: collections.Counter[str] = collections.Counter()
    done = threading.Event()

    def client():
        with requests.Session() as session:
            while not done.is_set():
                try:
                    outcomes[str(session.get(url, timeout=30).status_code)] += 1
                except requests.RequestException as exc:
                    outcomes[type(exc).__name__] += 1

    def replacement(generation: int) -> dict:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                result = json.loads(status.read_text())
                if result["generation"] == generation:
                    return result
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(log.read_text()[-3000:])

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    try:
        wait_http(url, 60, supervisor)
        [master] = children(supervisor.pid)
        for t in threads:
            t.start()
        time.sleep(1)
        os.kill(supervisor.pid, signal.SIGHUP)
        assert replacement(1)["result"] == "ok"
        [new_master] = children(supervisor.pid)
        assert new_master != master
        reports = list(tmp_path.glob("server.gate1.ready.*"))
        assert len(reports) == 2 and {p.read_text().strip() for p in reports} == {"ok"}
        time.sleep(1)

        env_file.write_text("GUNICORN_WORKER_CLASS=no-such-worker-class\n")
        os.kill(supervisor.pid, signal.SIGHUP)
        result = replacement(2)
        assert result["result"] == "failed" and "exited" in result["reason"], result
        assert children(supervisor.pid) == [new_master]
        time.sleep(1)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=60)
        stop(supervisor)
    assert set(outcomes) == {"200"}, (dict(outcomes), log.read_text()[-2000:])
    assert supervisor.returncode == 0
