"""The real training job against a real MLflow server (integration)."""

import mlflow.models
import pytest
from mlflow import MlflowClient

from tests.support import job_env, run_job

pytestmark = pytest.mark.integration


def test_job_registers_a_tagged_candidate_with_its_evidence(mlflow_server, trained, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    client = MlflowClient(tracking_uri=mlflow_server)
    mv = client.get_model_version_by_alias(trained.model_name, "candidate")
    assert mv.version == trained.noisy_version  # the last run holds the alias
    good = client.get_model_version(trained.model_name, trained.good_version)
    assert good.tags["git_sha"] == "sha0"
    assert good.tags["dataset"] == "iris"
    assert len(good.tags["dataset_fingerprint"]) == 16
    run = client.get_run(good.run_id)
    for metric in (
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "recall_class_0",
        "recall_class_2",
        "cv_f1_macro",
    ):
        assert metric in run.data.metrics
    assert run.data.metrics["accuracy"] > 0.85
    evaluation = {f.path for f in client.list_artifacts(good.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.svg", "evaluation/classification_report.txt"} <= evaluation
    info = mlflow.models.get_model_info(f"models:/{trained.model_name}/{trained.good_version}")
    assert info.signature is not None and len(info.signature.inputs.input_names()) == 4
    assert info.saved_input_example_info is not None


def test_noisy_labels_score_visibly_worse(mlflow_server, trained):
    client = MlflowClient(tracking_uri=mlflow_server)
    acc = {}
    for v in (trained.good_version, trained.noisy_version):
        run_id = client.get_model_version(trained.model_name, v).run_id
        acc[v] = client.get_run(run_id).data.metrics["accuracy"]
    assert acc[trained.noisy_version] < acc[trained.good_version] - 0.2


def test_bad_data_stops_the_job_and_moves_nothing(mlflow_server, clone_model):
    client = MlflowClient(tracking_uri=mlflow_server)
    name, (v,) = clone_model("good")
    client.set_registered_model_alias(name, "candidate", v)
    r = run_job(
        "trainer", env=job_env(mlflow_server, MLFLOW_MODEL_NAME=name, TRAIN_NULL_FRACTION="0.05")
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("training: data validation failed:")
    assert client.get_model_version_by_alias(name, "candidate").version == v
    assert len(client.search_model_versions(f"name='{name}'")) == 1


def test_configuration_error_exits_2_with_one_line(mlflow_server):
    r = run_job("trainer", env=job_env(mlflow_server, TRAIN_DATASET="mnist"))
    assert r.returncode == 2
    assert "TRAIN_DATASET must be one of" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_unreachable_mlflow_exits_2(tmp_path):
    r = run_job(
        "trainer",
        env=job_env("http://127.0.0.1:9", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"),
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("training: failed:")
