"""The tracking server's process (services/mlflow/serve.py, in the image and in local mode).

`mlflow server` builds the web server's command and then waits for it as a parent process
holding all of MLflow; serve.py hands its process over to the web server instead.
"""

from __future__ import annotations

import signal
from pathlib import Path

import requests

from labctl.processes import free_port, start_mlflow, stop, wait_http


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(c) for c in text]
    return found


def test_the_started_process_is_the_web_server_itself_and_it_answers(tmp_path):
    port = free_port()
    proc = start_mlflow(tmp_path, port)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc)
        # No `mlflow server` parent waiting on a child: the process started is uvicorn,
        # and with one worker it has no MLflow child process at all.
        assert "uvicorn" in cmdline(proc.pid)
        assert "mlflow.server.fastapi_app:app" in cmdline(proc.pid)
        assert [c for c in children(proc.pid) if "mlflow" in cmdline(c)] == []
        r = requests.post(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/registered-models/create",
            json={"name": "serve-py"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
    finally:
        stop(proc)
    # SIGTERM reaches uvicorn directly: it shuts down (and exits by the signal, as uvicorn
    # does after a graceful shutdown), not killed after stop()'s timeout.
    assert proc.returncode in (0, -signal.SIGTERM)
