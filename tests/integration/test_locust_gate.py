"""A short headless Locust run against the real server under gunicorn (integration)."""

import json
import subprocess
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from labctl.processes import ROOT
from tests.support import BIN, job_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server_url(mlflow_server, clone_model, start_gunicorn):
    name, (v,) = clone_model("good")
    MlflowClient(tracking_uri=mlflow_server).set_registered_model_alias(name, "staging", v)
    return start_gunicorn(mlflow_server, name, "staging")


def locust(url: str, report_dir: Path, **thresholds: str) -> subprocess.CompletedProcess:
    env = job_env("unused", LOAD_REPORT_DIR=str(report_dir), **thresholds)
    return subprocess.run(
        [
            str(BIN / "locust"),
            "--config",
            str(ROOT / "loadtests" / "locust.conf"),
            "--host",
            url,
            "--users",
            "4",
            "--spawn-rate",
            "4",
            "--run-time",
            "4s",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def test_loose_thresholds_pass(server_url, tmp_path):
    r = locust(
        server_url,
        tmp_path,
        LOAD_MAX_P95_MS="5000",
        LOAD_MAX_P99_MS="5000",
        LOAD_MAX_FAILURE_RATIO="0.01",
        LOAD_MIN_REQUESTS="20",
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    result = json.loads((tmp_path / "latency_gate.json").read_text())
    assert result["passed"] and result["failures"] == 0 and result["requests"] >= 20
    served = requests.get(f"{server_url}/model", timeout=5).json()
    # The version measured, so that make load can record the verdict on it.
    assert result["version"] == served["version"] and result["alias"] == "staging"
    assert result["model_sha256"] == served["sha256"]


def test_impossible_thresholds_fail(server_url, tmp_path):
    r = locust(server_url, tmp_path, LOAD_MAX_P95_MS="0", LOAD_MAX_P99_MS="0")
    assert r.returncode == 1
    result = json.loads((tmp_path / "latency_gate.json").read_text())
    assert not result["passed"] and any("p99" in v for v in result["violations"])
    assert "latency gate FAILED" in r.stdout + r.stderr


def test_unreachable_server_fails_the_gate(tmp_path):
    r = locust("http://127.0.0.1:9", tmp_path)
    assert r.returncode != 0
