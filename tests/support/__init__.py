"""Helpers for the integration tests: run the lab's jobs as the real processes do.

Starting servers, waiting for them and stopping them lives in `labctl.processes`, the
code the local backend and the serving benchmark use too; this adds what only tests need.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from labctl.processes import ROOT, venv_bin

BIN = venv_bin()


def job_env(tracking_uri: str, **extra: str) -> dict[str, str]:
    """This environment without the lab's own settings, pointed at `tracking_uri`."""
    # A developer's shell may carry the lab's .env values: a test sets what it needs.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "GATE_", "LOAD_"))}
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true",
        MLFLOW_DISABLE_TELEMETRY="true",
        GATE_REPORT_DIR=extra.pop("GATE_REPORT_DIR", str(ROOT / "reports" / "test-gate")),
        TRAIN_REPORT_DIR=extra.pop("TRAIN_REPORT_DIR", str(ROOT / "reports" / "test-data")),
    )
    env.update(extra)
    return env


def run_job(
    module: str, *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` from the repository root, as the local backend runs it."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


@dataclass(frozen=True)
class Trained:
    """The two versions the real training job registered: one clean, one label-noisy."""

    model_name: str
    good_version: str
    noisy_version: str


@contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (`mlflow.start_run`, `log_model`) at `uri` for a block.

    Afterwards the URI is left exactly as it was, unset included: restoring it with
    `set_tracking_uri(get_tracking_uri())` would pin MLflow's default store for every
    later test in the process, which then ignores MLFLOW_TRACKING_URI.
    """
    import mlflow
    from mlflow.tracking._tracking_service import utils

    previous = utils._tracking_uri  # None while unset: MLFLOW_TRACKING_URI applies
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
