"""A tiny process supervisor for the lab's local mode (standard library only).

    python -m labctl.supervise --pidfile .lab/run/mlflow.pid --log .lab/logs/mlflow.log -- CMD...

Runs CMD in the background, restarts it when it dies (with backoff, at most 5 times a
minute), and on SIGTERM/SIGINT stops it and exits. The pidfile holds this supervisor's
PID, which is what `make down` signals: by recorded PID, never by process name.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

MAX_RESTARTS_PER_MINUTE = 5


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to supervise")

    pidfile = Path(args.pidfile)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    Path(args.log).parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{os.getpid()}\n")

    stopping = False
    child: subprocess.Popen | None = None

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    restarts: list[float] = []
    with open(args.log, "ab", buffering=0) as log:
        while not stopping:
            log.write(f"[supervise] starting: {' '.join(command)}\n".encode())
            child = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
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
            time.sleep(min(2 ** len(restarts), 10))
        if child is not None and child.poll() is None:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
