"""A real gunicorn under labctl.supervise --listen, as local mode runs the model servers
(integration): its master restarts, or is replaced on SIGHUP, under steady requests, and
no client is refused."""

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
from labctl.supervise import wait_replaced

pytestmark = pytest.mark.integration

CLIENTS = 4


def children(pid: int) -> list[int]:
    r = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return sorted(int(p) for p in r.stdout.split())


def start_supervisor(tmp_path, port: int, *options: str) -> subprocess.Popen:
    """gunicorn with the lab's settings on bench's floor app (no model needed), two
    workers, under a supervisor that holds 127.0.0.1:port."""
    env = {k: v for k, v in os.environ.items() if k != "GUNICORN_BIND"}
    env.update(GUNICORN_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    return subprocess.Popen(
        [
            sys.executable, "-m", "labctl.supervise",
            "--pidfile", str(tmp_path / "server.pid"), "--log", str(tmp_path / "server.log"),
            "--listen", f"127.0.0.1:{port}", *options,
            "--", *processes.gunicorn_command(venv_bin(), "bench.floor_app:app"),
        ],
        cwd=ROOT,
        env=env,
    )  # fmt: skip


class Clients:
    """CLIENTS threads calling `url` until stopped; each outcome counted, the slowest kept."""

    def __init__(self, url: str):
        self.url = url
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.slowest = 0.0
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(CLIENTS)]

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._done.is_set():
                started = time.monotonic()
                try:
                    outcome = str(session.get(self.url, timeout=30).status_code)
                except requests.RequestException as exc:
                    outcome = type(exc).__name__
                with self._lock:
                    self.outcomes[outcome] += 1
                    self.slowest = max(self.slowest, time.monotonic() - started)

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._done.set()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout=60)


def test_a_restarting_gunicorn_refuses_no_connection(tmp_path):
    """The supervisor holds the listening socket and hands it to each gunicorn it starts
    (GUNICORN_BIND=fd://N): while the master it killed shuts down and the next one boots,
    connections wait in the listen backlog instead of being refused."""
    port = free_port()
    supervisor = start_supervisor(tmp_path, port)
    log = tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}/ready"
    clients = Clients(url)
    try:
        wait_http(url, 60, supervisor)
        [master] = children(supervisor.pid)
        clients.start()
        time.sleep(1)
        os.kill(master, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while children(supervisor.pid) in ([], [master]):
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        wait_http(url, 60, supervisor)
        time.sleep(1)
    finally:
        clients.stop()
        stop(supervisor)
    text = log.read_text()
    assert text.count("[supervise] starting:") == 2, text[-2000:]
    assert set(clients.outcomes) == {"200"}, (dict(clients.outcomes), text[-2000:])
    # Requests were made while no gunicorn accepted: they waited, and were answered.
    assert clients.slowest > 0.4, (dict(clients.outcomes), clients.slowest)
    assert supervisor.returncode == 0
    assert not port_in_use(port)  # the socket goes with the supervisor


def test_sighup_replaces_a_real_gunicorn_gated_with_no_failed_request(tmp_path):
    """labctl.supervise's replacement with serving/gunicorn.conf.py's gate: the new
    gunicorn's workers report ready and wait; the old master stops; the gate opens. Then
    one whose settings cannot start is refused and the running one serves on."""
    port = free_port()
    env_file = tmp_path / "server.env"
    env_file.write_text("GUNICORN_LOGLEVEL=info\n")
    supervisor = start_supervisor(tmp_path, port, "--env-file", str(env_file))
    pidfile, log = tmp_path / "server.pid", tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}/ready"
    clients = Clients(url)
    try:
        wait_http(url, 60, supervisor)
        [master] = children(supervisor.pid)
        clients.start()
        time.sleep(1)
        os.kill(supervisor.pid, signal.SIGHUP)
        assert wait_replaced(pidfile, None, 90)["result"] == "ok", log.read_text()[-3000:]
        [new_master] = children(supervisor.pid)
        assert new_master != master
        reports = list(tmp_path.glob("server.gate1.ready.*"))
        assert len(reports) == 2 and {p.read_text().strip() for p in reports} == {"ok"}
        time.sleep(1)

        env_file.write_text("GUNICORN_WORKER_CLASS=no-such-worker-class\n")
        os.kill(supervisor.pid, signal.SIGHUP)
        result = wait_replaced(pidfile, 1, 90)
        assert result["result"] == "failed" and "exited" in result["reason"], result
        assert children(supervisor.pid) == [new_master]
        time.sleep(1)
    finally:
        clients.stop()
        stop(supervisor)
    assert set(clients.outcomes) == {"200"}, (dict(clients.outcomes), log.read_text()[-2000:])
    assert supervisor.returncode == 0
