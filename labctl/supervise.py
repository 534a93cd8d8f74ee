"""A tiny process supervisor for the lab's local mode (standard library only).

    python -m labctl.supervise --pidfile .lab/run/mlflow.pid --log .lab/logs/mlflow.log -- CMD...
    python -m labctl.supervise --pidfile ... --log ... --listen 127.0.0.1:8082 -- gunicorn ...

Runs CMD in the background, restarts it when it dies (after 0.5 s, then 1, 2, 4, 8 and
at most 10 s; at most 5 restarts a minute), and on SIGTERM/SIGINT stops it and exits.
The pidfile holds this supervisor's PID, which is what `make down` signals: by recorded
PID, never by process name.

--listen HOST:PORT (HOST an IPv4 address, 0.0.0.0, or an IPv6 address in brackets):
the supervisor opens the listening socket itself, before the first start, and hands it
to every CMD it starts as an inherited file descriptor named in GUNICORN_BIND=fd://N.
The socket stays open for as long as the supervisor lives, so while CMD restarts, new
connections wait in the kernel's listen backlog and the next CMD answers them, instead
of being refused. It is closed when the supervisor is told to stop.

--env-file PATH: KEY=VALUE lines added to CMD's environment, read again at each start.

SIGHUP replaces CMD without a gap and without mixing the two: a new CMD starts beside
the running one with SERVING_START_GATE=<file> (serving/gunicorn.conf.py: each worker
loads its model, reports in `<file>.ready.<pid>`, and waits for <file>); once all its
workers (GUNICORN_WORKERS) reported ready, the old CMD stops and finishes its requests,
then the gate opens. A new CMD that fails is stopped and the old one serves on. The
outcome is written to `<pidfile stem>.replaced.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

MAX_RESTARTS_PER_MINUTE = 5
LISTEN_BACKLOG = 2048  # gunicorn's own default: it calls listen() again with its setting
# How long a replacement may take to report every worker ready (a model load from MLflow).
REPLACE_TIMEOUT_S = 120.0


def replace_status_file(pidfile: Path) -> Path:
    """Where the outcome of the last replacement (SIGHUP) is written, as JSON."""
    return pidfile.with_name(f"{pidfile.stem}.replaced.json")


def replace_outcome(pidfile: Path) -> dict:
    """The last replacement's outcome ({"generation", "result", "reason"}), {} before any."""
    try:
        outcome = json.loads(replace_status_file(pidfile).read_text())
    except (OSError, ValueError):
        return {}
    return outcome if isinstance(outcome, dict) else {}


def wait_replaced(pidfile: Path, after: object, timeout: float, alive=lambda: True) -> dict:
    """The outcome of the replacement that follows generation `after`; a failed one when
    none is reported within `timeout` seconds or `alive()` turns false."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = replace_outcome(pidfile)
        if outcome.get("generation") != after and outcome.get("result"):
            return outcome
        if time.monotonic() > deadline or not alive():
            return {"result": "failed", "reason": "the supervisor did not report a replacement"}
        time.sleep(0.05)


def write_status(path: Path, generation: int, result: str, reason: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"generation": generation, "result": result, "reason": reason}))
    os.replace(tmp, path)


def backoff(restarts: int) -> float:
    """Seconds to wait before a restart, `restarts` being how many happened in the last
    minute, this one included: 0.5 s for the first (a server killed once is back
    quickly), then doubling, at most 10 s (a crashing one does not spin)."""
    return min(0.5 * 2 ** max(restarts - 1, 0), 10.0)


def open_listener(address: str) -> socket.socket:
    """A TCP socket listening on HOST:PORT (`[v6]:PORT` for IPv6), inheritable by children.

    Raises ValueError for an address that is not HOST:PORT, OSError when it cannot bind.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not HOST:PORT: {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address goes in brackets: [{host}]:{port}")
    family, kind, proto, _, sockaddr = socket.getaddrinfo(
        host or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(LISTEN_BACKLOG)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def read_env_file(path: Path | None) -> dict[str, str]:
    """KEY=VALUE lines (blank lines and # comments skipped); nothing when there is no file."""
    if path is None:
        return {}
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def gate_markers(gate: Path) -> dict[int, str]:
    """What the workers of a gated CMD reported: {pid: "ok" or "error: ..."}."""
    out = {}
    for marker in gate.parent.glob(f"{gate.name}.ready.*"):
        pid = marker.name.rsplit(".", 1)[1]
        try:
            out[int(pid)] = marker.read_text().strip() or "ok"
        except (OSError, ValueError):
            continue
    return out


def remove_gate(gate: Path) -> None:
    gate.unlink(missing_ok=True)
    for marker in gate.parent.glob(f"{gate.name}.ready.*"):
        marker.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help="own this listening socket, pass it to CMD"
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        help="KEY=VALUE lines added to CMD's environment, read at each start",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to supervise")

    pidfile = Path(args.pidfile)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    Path(args.log).parent.mkdir(parents=True, exist_ok=True)

    listener: socket.socket | None = None
    base_env = dict(os.environ)
    pass_fds: tuple[int, ...] = ()
    if args.listen:
        try:
            listener = open_listener(args.listen)
        except (OSError, ValueError) as exc:  # before the pidfile: nothing was started
            with open(args.log, "ab") as log:
                log.write(f"[supervise] cannot listen on {args.listen}: {exc}\n".encode())
            return 1
        pass_fds = (listener.fileno(),)
        base_env["GUNICORN_BIND"] = f"fd://{listener.fileno()}"

    status_file = replace_status_file(pidfile)
    status_file.unlink(missing_ok=True)

    stopping = False
    replace_asked = False
    children: list[subprocess.Popen] = []  # the running CMD, and its replacement while it starts

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True
        for c in children:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)

    def ask_replace(signum, _frame):
        nonlocal replace_asked
        replace_asked = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, ask_replace)
    pidfile.write_text(f"{os.getpid()}\n")  # signals to it are handled from here on

    def start(log, extra: dict[str, str] | None = None) -> subprocess.Popen:
        env = {**base_env, **read_env_file(args.env_file), **(extra or {})}
        log.write(f"[supervise] starting: {' '.join(command)}\n".encode())
        child = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            pass_fds=pass_fds,
        )
        children.append(child)
        if stopping:  # a signal that arrived while the child was being started
            child.terminate()
        return child, int(env.get("GUNICORN_WORKERS") or 2)  # gunicorn.conf.py's default

    def end(child: subprocess.Popen, timeout: float = 30) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if child in children:
            children.remove(child)

    def replace(log, old: subprocess.Popen, generation: int) -> subprocess.Popen:
        """Start a new CMD beside `old`, gated: its workers load, report, and wait. When
        every one reported ready, `old` stops taking connections and finishes what it
        has; then the gate opens. Connections in between wait in the listen queue, so a
        client never gets the new CMD's answer and then the old one's. If the new CMD
        fails, it is stopped and `old` serves on, untouched."""
        gate = pidfile.with_name(f"{pidfile.stem}.gate{generation}")
        remove_gate(gate)
        new, workers = start(log, {"SERVING_START_GATE": str(gate)})
        deadline = time.monotonic() + REPLACE_TIMEOUT_S
        failure = ""
        while not stopping:
            reports = gate_markers(gate)
            errors = [r for r in reports.values() if r != "ok"]
            if errors:
                failure = errors[0]
            elif len(reports) >= workers:
                break
            elif new.poll() is not None:
                failure = f"exited with {new.returncode} before it was ready"
            elif time.monotonic() > deadline:
                failure = f"not ready within {REPLACE_TIMEOUT_S:.0f} s"
            if failure:
                break
            time.sleep(0.05)
        if stopping:
            failure = "stopped"
        if failure:
            log.write(
                f"[supervise] replacement failed ({failure}): the running one stays\n".encode()
            )
            end(new)
            remove_gate(gate)
            write_status(status_file, generation, "failed", failure)
            return old
        end(old)
        gate.touch()
        for stale in pidfile.parent.glob(f"{pidfile.stem}.gate*"):  # earlier generations'
            if stale.name != gate.name and not stale.name.startswith(f"{gate.name}."):
                stale.unlink(missing_ok=True)
        log.write(f"[supervise] replaced: PID {new.pid} serves\n".encode())
        write_status(status_file, generation, "ok", "")
        return new

    restarts: list[float] = []
    generation = 0
    try:
        with open(args.log, "ab", buffering=0) as log:
            while not stopping:
                child, _ = start(log)
                while True:
                    try:
                        child.wait(timeout=0.2)
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    if stopping:
                        break  # the child was sent SIGTERM; it is waited for below
                    if replace_asked:
                        replace_asked = False
                        generation += 1
                        child = replace(log, child, generation)
                if stopping:
                    break
                children.remove(child)
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < 60] + [now]
                log.write(f"[supervise] exited with {child.returncode}\n".encode())
                if len(restarts) > MAX_RESTARTS_PER_MINUTE:
                    log.write(b"[supervise] crashing repeatedly: giving up\n")
                    break
                time.sleep(backoff(len(restarts)))
            # No more starts: new connections are refused from now on, instead of
            # queueing for a server that will not come, while the children finish.
            if listener is not None:
                listener.close()
            for child in list(children):
                end(child, timeout=20)
    finally:
        if listener is not None:
            listener.close()
        for gate in pidfile.parent.glob(f"{pidfile.stem}.gate*"):
            gate.unlink(missing_ok=True)
        pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
