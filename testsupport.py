"""Helpers for the integration tests: start real processes on free ports, run the jobs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, ok=(200,)) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=2).status_code in ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_mlflow(backend_dir: Path, port: int) -> subprocess.Popen:
    # Without the job runner: ~6 processes of ~280 MB each that no test uses.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(backend_dir / f"mlflow-{port}.log", "ab") as log:  # the child keeps its own fd
        return subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{backend_dir / 'mlflow.db'}",
                "--artifacts-destination",
                str(backend_dir / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=backend_dir,
            env=env,
        )


def job_env(tracking_uri: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "GATE_", "LOAD_"))}
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        PYTHONPATH=os.pathsep.join(
            str(ROOT / p) for p in ("training", "gatekeeper", "serving", "loadtests")
        ),
        MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true",
        MLFLOW_DISABLE_TELEMETRY="true",
        GATE_REPORT_DIR=extra.pop("GATE_REPORT_DIR", str(ROOT / "reports" / "test-gate")),
    )
    env.update(extra)
    return env


def run_job(module: str, *args: str, env: dict[str, str], timeout: float = 300):
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@dataclass(frozen=True)
class Trained:
    model_name: str
    good_version: str
    noisy_version: str
