"""Crafted model versions against a real MLflow server and a real model server.

Each crafted version carries a payload that creates a marker folder if anything in it
runs. Aliased to the alias a server follows, it is refused: the server keeps serving the
version it had, says why on /ready and /model, and the marker never appears. The real
gatekeeper fails such a candidate, and records the fingerprint of a good one, which the
server then checks.
"""

from __future__ import annotations

import os
import time

import pytest
import requests
from mlflow import MlflowClient

from tests.support import job_env, run_job
from tests.support import tracking_uri as use_tracking_uri

pytestmark = pytest.mark.integration

ROW = [5.1, 3.5, 1.4, 0.2]


class Payload:
    """Unpickling this runs os.makedirs(marker): proof that loading ran the model's code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def _register(tracking_uri: str, name: str, log) -> str:
    """Log a crafted model in a run of its own and register it; returns its version."""
    import mlflow

    with use_tracking_uri(tracking_uri), mlflow.start_run():
        info = log(name)
    return str(info.registered_model_version)


def _cloudpickle(marker: str):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    def log(name):
        import mlflow.sklearn

        X, y = load_iris(return_X_y=True, as_frame=True)
        model = LogisticRegression(max_iter=500).fit(X, y)
        model.payload = Payload(marker)  # unpickled along with the estimator
        return mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=name,
            serialization_format="cloudpickle",
            # No input example and stated requirements: MLflow would otherwise load the
            # model here (to check the example, to infer requirements) and run the payload
            # in this test's own process.
            pip_requirements=["scikit-learn"],
        )

    return log


def _loader_module(marker: str, tmp_path):
    def log(name):
        import mlflow.pyfunc

        module = tmp_path / "planted_loader.py"
        module.write_text(
            f"import os\nos.makedirs({marker!r})\ndef _load_pyfunc(path):\n    raise SystemExit\n"
        )
        return mlflow.pyfunc.log_model(
            name="model",
            loader_module="planted_loader",
            data_path=str(module),
            code_paths=[str(module)],
            registered_model_name=name,
            pip_requirements=["mlflow"],
        )

    return log


def _wait_error(url: str, needle: str, endpoint: str = "/model", timeout: float = 60) -> dict:
    """The body of `endpoint` once it reports `needle` (each worker polls on its own)."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        r = requests.get(f"{url}{endpoint}", timeout=5)
        body = {**r.json(), "status": r.status_code}
        if needle in (body.get("last_error") or ""):
            return body
        time.sleep(0.5)
    raise AssertionError(f"{url}{endpoint} never reported {needle!r}: {body}")


@pytest.mark.parametrize("kind", ["cloudpickle", "loader_module"])
def test_a_crafted_version_is_refused_and_the_server_keeps_serving(
    mlflow_server, clone_model, start_gunicorn, tmp_path, kind
):
    client = MlflowClient(tracking_uri=mlflow_server)
    name, (good,) = clone_model("good")
    client.set_registered_model_alias(name, "staging", good)
    url = start_gunicorn(mlflow_server, name, "staging", SERVING_POLL_INTERVAL_S="0.5")
    marker = str(tmp_path / f"payload-ran-{kind}")
    log = _cloudpickle(marker) if kind == "cloudpickle" else _loader_module(marker, tmp_path)
    crafted = _register(mlflow_server, name, log)
    assert not os.path.exists(marker), "registering it ran the payload: the test proves nothing"
    client.set_registered_model_alias(name, "staging", crafted)

    needle = "stored as 'cloudpickle'" if kind == "cloudpickle" else "own loader 'planted_loader'"
    info = _wait_error(url, f"version {crafted} refused")
    assert needle in info["last_error"]
    assert info["version"] == good  # still serving what it had
    ready = _wait_error(url, needle, "/ready")
    assert ready["status"] == 200 and ready["version"] == good
    r = requests.post(f"{url}/predict", json={"instances": [ROW]}, timeout=5)
    assert r.status_code == 200 and r.json()["model_version"] == good
    time.sleep(2)  # a few more polls: the refused version is not retried into running
    assert not os.path.exists(marker)


def test_the_gate_fails_a_crafted_candidate_and_runs_nothing(mlflow_server, tmp_path):
    name = f"it-crafted-{os.getpid()}"
    marker = str(tmp_path / "payload-ran-gate")
    version = _register(mlflow_server, name, _cloudpickle(marker))
    assert not os.path.exists(marker)
    MlflowClient(tracking_uri=mlflow_server).set_registered_model_alias(name, "candidate", version)
    r = run_job(
        "gatekeeper",
        "gate",
        env=job_env(mlflow_server, MLFLOW_MODEL_NAME=name, GATE_REPORT_DIR=str(tmp_path)),
    )
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert "trusted_format" in r.stdout
    assert not os.path.exists(marker)


def test_the_server_checks_the_files_against_the_gates_fingerprint(
    mlflow_server, clone_model, start_gunicorn, tmp_path
):
    client = MlflowClient(tracking_uri=mlflow_server)
    name, (good, other) = clone_model("good", "good")
    client.set_registered_model_alias(name, "candidate", good)
    r = run_job(
        "gatekeeper",
        "gate",
        env=job_env(mlflow_server, MLFLOW_MODEL_NAME=name, GATE_REPORT_DIR=str(tmp_path)),
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    recorded = client.get_model_version(name, good).tags["gate.model_sha256"]
    client.set_registered_model_alias(name, "staging", good)
    url = start_gunicorn(mlflow_server, name, "staging", SERVING_POLL_INTERVAL_S="0.5")
    info = requests.get(f"{url}/model", timeout=5).json()
    assert info["verified"] is True and info["sha256"] == recorded
    # Files that differ from what the gate checked (here: a fingerprint that is not theirs).
    client.set_model_version_tag(name, other, "gate.model_sha256", "0" * 64)
    client.set_registered_model_alias(name, "staging", other)
    info = _wait_error(url, "differ from the ones the gate checked")
    assert info["version"] == good
