"""labctl.supervise with real processes: restarts, and the listening socket it holds."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from labctl.processes import free_port
from labctl.settings import ROOT
from labctl.supervise import MAX_RESTARTS_PER_MINUTE, backoff, wait_replaced

# A tiny HTTP server that answers every request with its own PID. It serves on the socket
# named in GUNICORN_BIND=fd://N (as gunicorn does), else binds PORT itself.
SERVER = """
import os, signal, socket, threading
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = str(os.getpid()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

bind = os.environ.get("GUNICORN_BIND", "")
if bind.startswith("fd://"):
    server = HTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = socket.socket(fileno=int(bind[len("fd://"):]))
else:
    server = HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
# As gunicorn does on SIGTERM: stop taking connections, finish the request in hand.
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
server.server_close()
"""


def supervise(tmp_path, *options: str, command=None, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable, "-m", "labctl.supervise",
            "--pidfile", str(tmp_path / "server.pid"), "--log", str(tmp_path / "server.log"),
            *options,
            "--", *(command or [sys.executable, "-c", SERVER]),
        ],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def get_pid(port: int, timeout: float = 10) -> int:
    """The PID that answers a request on the port (raises what the connection raised)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/")
        return int(conn.getresponse().read())
    finally:
        conn.close()


def wait_answer(port: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return get_pid(port, timeout=2)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_the_backoff_starts_at_half_a_second_and_doubles_up_to_ten():
    assert [backoff(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]
    assert MAX_RESTARTS_PER_MINUTE == 5


def test_a_restarting_server_costs_no_refused_connection(tmp_path):
    """With --listen the supervisor holds the socket: requests that arrive while the
    server restarts wait in the listen backlog and the next server answers them."""
    port = free_port()
    proc = supervise(tmp_path, "--listen", f"127.0.0.1:{port}")
    try:
        first = wait_answer(port)
        assert first != proc.pid
        os.kill(first, signal.SIGTERM)
        answers: list[tuple[float, int | str]] = []

        def requests_during_the_restart():
            for _ in range(20):
                started = time.monotonic()
                try:
                    answer: int | str = get_pid(port)
                except OSError as exc:
                    answer = repr(exc)
                answers.append((time.monotonic() - started, answer))

        client = threading.Thread(target=requests_during_the_restart)
        client.start()
        client.join(timeout=60)
        assert len(answers) == 20
        assert all(isinstance(pid, int) for _, pid in answers), answers
        assert first not in {pid for _, pid in answers}
        # The first request was made while no server ran (the supervisor waits 0.5 s
        # before the restart): it waited in the backlog rather than being refused.
        assert answers[0][0] >= 0.4, answers[:3]
        log = (tmp_path / "server.log").read_text()
        assert log.count("[supervise] starting:") == 2, log
    finally:
        stop(proc)
    assert proc.returncode == 0
    assert refused(port)  # the socket closes with the supervisor
    assert not (tmp_path / "server.pid").exists()


def test_without_listen_a_restarting_server_refuses_connections(tmp_path):
    """The contrast: a server that binds its port itself closes it when it dies, and
    requests until the next one has bound it again are refused."""
    port = free_port()
    proc = supervise(tmp_path, env={"PORT": str(port)})
    try:
        first = wait_answer(port)
        os.kill(first, signal.SIGTERM)
        deadline = time.monotonic() + 5
        failures: list[OSError] = []  # one already queued as the server died is reset
        while time.monotonic() < deadline:
            try:
                get_pid(port)
            except ConnectionError as exc:
                failures.append(exc)
                if isinstance(exc, ConnectionRefusedError):
                    break
        assert any(isinstance(f, ConnectionRefusedError) for f in failures), failures
        assert wait_answer(port) != first  # and the next server does come
    finally:
        stop(proc)


def test_a_port_in_use_stops_the_supervisor_before_it_starts_anything(tmp_path):
    marker = tmp_path / "started"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = supervise(
            tmp_path,
            "--listen",
            f"127.0.0.1:{port}",
            command=[sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
        )
        assert proc.wait(timeout=30) == 1
    log = (tmp_path / "server.log").read_text()
    assert f"[supervise] cannot listen on 127.0.0.1:{port}: " in log, log
    assert "starting" not in log
    assert not marker.exists()
    assert not (tmp_path / "server.pid").exists()


@pytest.mark.parametrize("address", ["8080", "127.0.0.1:http", "::1:8080", "127.0.0.1:0"])
def test_an_address_that_is_not_host_and_port_is_refused(tmp_path, address):
    proc = supervise(tmp_path, "--listen", address, command=[sys.executable, "-c", "pass"])
    assert proc.wait(timeout=30) == 1
    log = (tmp_path / "server.log").read_text()
    assert f"[supervise] cannot listen on {address}: " in log, log


def test_an_ipv6_address_goes_in_brackets(tmp_path):
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            port = s.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback")
    code = (
        "import os, socket; "
        "s = socket.socket(fileno=int(os.environ['GUNICORN_BIND'][5:])); "
        "print('bound', s.getsockname()[:2], flush=True); "
        "import time; time.sleep(60)"
    )
    proc = supervise(tmp_path, "--listen", f"[::1]:{port}", command=[sys.executable, "-c", code])
    try:
        log = tmp_path / "server.log"
        deadline = time.monotonic() + 20
        while "\nbound (" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert f"bound ('::1', {port})" in log.read_text()
    finally:
        stop(proc)


# The gate protocol of serving/gunicorn.conf.py, in a toy server that answers with its
# VERSION and PID: a gated start reports in <gate>.ready.<pid> ("ok", or an error when
# FAIL is set), then waits for <gate> before it takes a connection.
GATED_SERVER = """
import os, signal, socket, threading, time
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{os.environ['VERSION']} {os.getpid()}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

time.sleep(0.3)  # loading its model
gate = os.environ.get("SERVING_START_GATE")
if gate:
    with open(f"{gate}.ready.{os.getpid()}", "w") as f:
        f.write("error: no model" if os.environ.get("FAIL") else "ok")
    while not os.path.exists(gate):
        time.sleep(0.01)
server = HTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
server.socket.close()
server.socket = socket.socket(fileno=int(os.environ["GUNICORN_BIND"][len("fd://"):]))
# As gunicorn does on SIGTERM: stop taking connections, finish the request in hand.
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
"""


def get_version(port: int) -> tuple[str, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        version, pid = conn.getresponse().read().decode().split()
        return version, int(pid)
    finally:
        conn.close()


def replaced(tmp_path, generation: int) -> dict:
    outcome = wait_replaced(tmp_path / "server.pid", generation - 1, timeout=30)
    assert outcome.get("generation") == generation, outcome
    return outcome


def gated_supervisor(tmp_path, port: int, env_file) -> subprocess.Popen:
    """The gated toy server under a supervisor holding its socket, one worker."""
    return supervise(
        tmp_path,
        "--listen", f"127.0.0.1:{port}", "--env-file", str(env_file),
        command=[sys.executable, "-c", GATED_SERVER],
        env={"GUNICORN_WORKERS": "1"},
    )  # fmt: skip


def test_sighup_replaces_the_server_in_one_event_with_no_failed_request(tmp_path):
    """The new server starts beside the old, gated; the old one stops, then the gate
    opens: every request is answered, and no client gets the old version after the new."""
    port = free_port()
    env_file = tmp_path / "server.env"
    env_file.write_text("# pinned\nVERSION=1\n")
    proc = gated_supervisor(tmp_path, port, env_file)
    try:
        version, old_pid = wait_until_version(port, "1")
        env_file.write_text("VERSION=2\n")
        seen: list[list[str]] = [[], [], []]
        failures: list[str] = []
        done = threading.Event()

        def client(out: list[str]) -> None:
            while not done.is_set():
                try:
                    out.append(get_version(port)[0])
                except (OSError, http.client.HTTPException) as exc:
                    failures.append(repr(exc))

        threads = [threading.Thread(target=client, args=(out,)) for out in seen]
        for t in threads:
            t.start()
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGHUP)
        assert replaced(tmp_path, 1) == {"generation": 1, "result": "ok", "reason": ""}
        time.sleep(0.3)
        done.set()
        for t in threads:
            t.join(timeout=30)
        assert failures == []
        for out in seen:
            assert out[0] == "1" and out[-1] == "2", out
            assert "1" not in out[out.index("2") :], out  # never back to the old one
        version, new_pid = get_version(port)
        assert (version, new_pid != old_pid) == ("2", True)
        with pytest.raises(ProcessLookupError):
            os.kill(old_pid, 0)
    finally:
        stop(proc)
    assert not list(tmp_path.glob("server.gate*"))


def test_a_replacement_that_fails_leaves_the_running_server_as_it_was(tmp_path):
    port = free_port()
    env_file = tmp_path / "server.env"
    env_file.write_text("VERSION=1\n")
    proc = gated_supervisor(tmp_path, port, env_file)
    try:
        _, old_pid = wait_until_version(port, "1")
        env_file.write_text("VERSION=2\nFAIL=1\n")
        os.kill(proc.pid, signal.SIGHUP)
        result = replaced(tmp_path, 1)
        assert result["result"] == "failed" and "no model" in result["reason"], result
        assert get_version(port) == ("1", old_pid)
        assert "replacement failed (error: no model)" in (tmp_path / "server.log").read_text()
    finally:
        stop(proc)


def wait_until_version(port: int, version: str, timeout: float = 20) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = get_version(port)
            if answer[0] == version:
                return answer
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"version {version} never answered on {port}")
        time.sleep(0.05)
