"""Tools for the fault tests: steady load on a server, and ways to hurt the lab's parts.

The docker helpers act on the running Compose project (the same environment `make`
gives the suite); the local helpers act on the supervised processes by their PID files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from tests.e2e.labtools import ROOT


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=3).status_code == 200
    except requests.RequestException:
        return False


# ---------------------------------------------------------------- docker mode
def compose(*args: str, timeout: float = 300) -> str:
    """`docker compose` on the lab's project (the suite runs with the lab's environment)."""
    backend = os.environ.get("S3_BACKEND", "minio")
    files = ["-f", str(ROOT / "compose" / "compose.yaml")]
    if os.environ.get("LAB_AUTH") == "1":  # classroom mode, as make runs it
        files += ["-f", str(ROOT / "compose" / "classroom.yaml")]
    r = subprocess.run(
        [
            "docker",
            "compose",
            "--project-directory",
            str(ROOT),
            *files,
            "--profile",
            backend,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert r.returncode == 0, f"docker compose {' '.join(args)}: {r.stderr[-2000:]}"
    return r.stdout


KILL_ONE_WORKER = """
import os, signal
workers = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        if stat[1] == "1":  # a child of PID 1, the gunicorn master
            workers.append(int(pid))
os.kill(min(workers), signal.SIGTERM)
print(min(workers))
"""


def live_production() -> str:
    """The production colour the proxy sends requests to (docker mode)."""
    state = json.loads((ROOT / ".lab" / "production.json").read_text())
    return f"serving-{state['live']}"


def kill_container_worker(service: str) -> int:
    """SIGTERM one gunicorn worker in a serving container (as gunicorn recycles one)."""
    return int(compose("exec", "-T", service, "python", "-c", KILL_ONE_WORKER).strip())


# ----------------------------------------------------------------- local mode
RUN = ROOT / ".lab" / "run"


def children(pid: int) -> list[int]:
    r = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return sorted(int(p) for p in r.stdout.split())


def supervisor(name: str) -> int:
    return int(Path(RUN / f"{name}.pid").read_text().strip())


def local_server(name: str) -> int:
    """The process a supervisor runs (the gunicorn master, the MLflow server)."""
    kids = children(supervisor(name))
    assert len(kids) == 1, f"{name}: supervisor has children {kids}"
    return kids[0]


def kill_local_worker(name: str) -> int:
    worker = children(local_server(name))[0]
    os.kill(worker, signal.SIGTERM)
    return worker
