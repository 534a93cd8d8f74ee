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
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

MAX_RESTARTS_PER_MINUTE = 5
LISTEN_BACKLOG = 2048  # gunicorn's own default: it calls listen() again with its setting


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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help="own this listening socket, pass it to CMD"
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
    env = None  # the children inherit this process's environment
    pass_fds: tuple[int, ...] = ()
    if args.listen:
        try:
            listener = open_listener(args.listen)
        except (OSError, ValueError) as exc:  # before the pidfile: nothing was started
            with open(args.log, "ab") as log:
                log.write(f"[supervise] cannot listen on {args.listen}: {exc}\n".encode())
            return 1
        pass_fds = (listener.fileno(),)
        env = {**os.environ, "GUNICORN_BIND": f"fd://{listener.fileno()}"}

    pidfile.write_text(f"{os.getpid()}\n")

    stopping = False
    child: subprocess.Popen | None = None

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            # No more starts: new connections are refused again as soon as the child has
            # closed its copies, instead of queueing for a server that will not come.
            # (Only with a child running: the fd number is then no longer needed for a
            # start, and cannot be reused by one.)
            if listener is not None:
                listener.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    restarts: list[float] = []
    try:
        with open(args.log, "ab", buffering=0) as log:
            while not stopping:
                log.write(f"[supervise] starting: {' '.join(command)}\n".encode())
                child = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    pass_fds=pass_fds,
                )
                if stopping:  # a signal that arrived while the child was being started
                    child.terminate()
                child.wait()  # signal handlers still run: waitpid is retried after them (PEP 475)
                if stopping:
                    break
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < 60] + [now]
                log.write(f"[supervise] exited with {child.returncode}\n".encode())
                if len(restarts) > MAX_RESTARTS_PER_MINUTE:
                    log.write(b"[supervise] crashing repeatedly: giving up\n")
                    break
                time.sleep(backoff(len(restarts)))
            if child is not None and child.poll() is None:
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
    finally:
        if listener is not None:
            listener.close()
        pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
