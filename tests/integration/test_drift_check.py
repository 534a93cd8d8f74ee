"""The closed loop's parts against real processes: a model server under gunicorn records
what it serves, the traffic job sends it dataset rows (shifted or not), and the drift job
compares the captured window with the reference profile the real training job logged."""

import json

import pytest
from mlflow import MlflowClient

from tests.support import job_env, run_job
from tests.support import tracking_uri as use_tracking_uri

pytestmark = pytest.mark.integration

SHIFT = "petal length (cm)=+1.5"


@pytest.fixture(scope="module")
def served(mlflow_server, clone_model, start_gunicorn, tmp_path_factory):
    """(model name, version, server URL, capture folder): production served and captured."""
    client = MlflowClient(tracking_uri=mlflow_server)
    name, (v,) = clone_model("good")
    client.set_registered_model_alias(name, "production", v)
    capture = tmp_path_factory.mktemp("capture")
    url = start_gunicorn(
        mlflow_server,
        name,
        "production",
        SERVING_CAPTURE_DIR=str(capture),
        SERVING_POLL_INTERVAL_S="60",
    )
    return name, v, url, capture


def traffic(server, url, rows, shift=""):
    # Batches of 8: the servers record at most 8 rows of a request, so every row sent counts.
    env = job_env(
        server, TRAFFIC_URL=url, TRAFFIC_ROWS=str(rows), TRAFFIC_SHIFT=shift, TRAFFIC_BATCH="8"
    )
    r = run_job("trainer.traffic", env=env)
    assert r.returncode == 0, r.stderr
    return r


def drift_check(server, name, capture, report_dir, **env):
    return run_job(
        "gatekeeper",
        "drift",
        env=job_env(
            server,
            MLFLOW_MODEL_NAME=name,
            DRIFT_CAPTURE_DIR=str(capture),
            DRIFT_REPORT_DIR=str(report_dir),
            DRIFT_WINDOW_ROWS="300",
            **env,
        ),
    )


def test_too_few_rows_is_exit_2_saying_how_many_are_needed(mlflow_server, served, tmp_path):
    name, v, url, capture = served
    traffic(mlflow_server, url, 40)
    (tmp_path / "drift.json").write_text('{"verdict": "drift"}')  # an earlier check's
    r = drift_check(mlflow_server, name, capture, tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert not (tmp_path / "drift.json").exists()  # no older verdict left to misread
    assert f"40 rows captured for @production version {v}" in r.stderr
    assert "needs at least 100" in r.stderr and "make traffic" in r.stderr


def test_ordinary_traffic_does_not_drift_and_shifted_traffic_does(mlflow_server, served, tmp_path):
    name, v, url, capture = served
    sent = traffic(mlflow_server, url, 300)
    assert f"answered by v{v}" in sent.stdout
    calm = drift_check(mlflow_server, name, capture, tmp_path / "calm")
    assert calm.returncode == 0, calm.stdout + calm.stderr
    doc = json.loads((tmp_path / "calm" / "drift.json").read_text())
    assert doc["verdict"] == "no drift" and doc["window"]["rows"] == 300
    assert doc["reference"]["dataset"] == "iris" and doc["version"] == v

    traffic(mlflow_server, url, 300, shift=SHIFT)
    shifted = drift_check(mlflow_server, name, capture, tmp_path / "shifted")
    assert shifted.returncode == 1, shifted.stdout + shifted.stderr
    assert "DRIFT on @production" in shifted.stderr and "petal length (cm)" in shifted.stderr
    doc = json.loads((tmp_path / "shifted" / "drift.json").read_text())
    assert "petal length (cm)" in doc["drifted_features"]
    petal = next(f for f in doc["features"] if f["feature"] == "petal length (cm)")
    assert petal["current_mean"] - petal["reference_mean"] > 1.0
    assert (tmp_path / "shifted" / "drift.html").read_text().count("<svg") == 4

    # Both checks are runs of the monitoring experiment, with the reports attached.
    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("lab-monitoring")
    runs = client.search_runs(
        [exp.experiment_id], f"tags.model = '{name}'", order_by=["attributes.start_time ASC"]
    )
    assert [r.data.tags["verdict"] for r in runs] == ["no drift", "drift"]
    assert runs[1].data.metrics["drift"] == 1.0
    assert {a.path for a in client.list_artifacts(runs[1].info.run_id, "drift")} == {
        "drift/drift.json",
        "drift/drift.md",
        "drift/drift.html",
    }


def test_a_version_without_a_reference_profile_cannot_be_checked(
    mlflow_server, clone_model, tmp_path
):
    import mlflow

    client = MlflowClient(tracking_uri=mlflow_server)
    with use_tracking_uri(mlflow_server), mlflow.start_run() as run:
        mlflow.log_param("x", 1)
    name, (v,) = clone_model("good")
    client.set_registered_model_alias(name, "production", v)
    # A version whose run logged no profile (as versions trained before profiles existed).
    bare = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(name, "production", bare.version)
    r = drift_check(mlflow_server, name, tmp_path / "capture", tmp_path / "r")
    assert r.returncode == 2
    assert f"version {bare.version} has no reference profile" in r.stderr
