"""The gatekeeper CLI against a real MLflow server, on versions the real trainer made."""

import json
from pathlib import Path

import mlflow.artifacts
import pytest
from mlflow import MlflowClient

from tests.support import job_env, run_job

pytestmark = pytest.mark.integration


def aliases(client, name):
    return dict(client.get_registered_model(name).aliases)


def gk(server, *args, **env):
    return run_job("gatekeeper", *args, env=job_env(server, **env))


def test_good_candidate_passes_and_records_its_verdict(mlflow_server, clone_model, tmp_path):
    client = MlflowClient(tracking_uri=mlflow_server)
    name, (v,) = clone_model("good")
    client.set_registered_model_alias(name, "candidate", v)
    r = gk(mlflow_server, "gate", MLFLOW_MODEL_NAME=name, GATE_REPORT_DIR=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "PASSED" in r.stdout
    mv = client.get_model_version(name, v)
    assert mv.tags["gate.verdict"] == "passed"
    report = json.loads((tmp_path / "gate_report.json").read_text())
    assert report["verdict"] == "passed" and report["version"] == v
    logged = {f.path for f in client.list_artifacts(mv.run_id, "gate")}
    assert {"gate/gate_report.json", "gate/gate_report.md"} <= logged
    assert aliases(client, name) == {"candidate": v}


def test_a_re_gate_keeps_the_earlier_verdict_in_the_history(mlflow_server, clone_model, tmp_path):
    client = MlflowClient(tracking_uri=mlflow_server)
    name, (v,) = clone_model("good")
    client.set_registered_model_alias(name, "candidate", v)
    env = {"MLFLOW_MODEL_NAME": name, "GATE_REPORT_DIR": str(tmp_path)}
    assert gk(mlflow_server, "gate", **env).returncode == 0
    strict = gk(mlflow_server, "gate", **env, GATE_MAX_P99_LATENCY_MS="0.000001")
    assert strict.returncode == 1
    run_id = client.get_model_version(name, v).run_id
    # The run may hold other gates' history too (copied versions share their source run):
    # this test's two gates are the two folders it wrote locally.
    local = sorted(p.name for p in (tmp_path / "history").iterdir())
    assert len(local) == 2, local
    logged = {f.path for f in client.list_artifacts(run_id, "gate/history")}
    kept = [f"gate/history/{folder}" for folder in local]
    assert set(kept) <= logged, (kept, logged)

    def verdict(path):
        dst = tmp_path / "downloaded" / path
        dst.mkdir(parents=True, exist_ok=True)
        got = client.download_artifacts(run_id, f"{path}/gate_report.json", str(dst))
        return json.loads(Path(got).read_text())["verdict"]

    assert [verdict(k) for k in kept] == ["passed", "failed"]  # in time order
    assert verdict("gate") == "failed"


def test_noisy_candidate_is_blocked_and_nothing_moves(mlflow_server, clone_model):
    client = MlflowClient(tracking_uri=mlflow_server)
    name, (good, noisy) = clone_model("good", "noisy")
    for alias in ("staging", "production"):
        client.set_registered_model_alias(name, alias, good)
    client.set_model_version_tag(name, good, "gate.verdict", "passed")
    client.set_registered_model_alias(name, "candidate", noisy)
    before = aliases(client, name)
    r = gk(mlflow_server, "gate", MLFLOW_MODEL_NAME=name)
    assert r.returncode == 1
    assert "FAILED the gate" in r.stderr and "accuracy" in r.stderr
    assert "regression_accuracy" in r.stdout
    assert client.get_model_version(name, noisy).tags["gate.verdict"] == "failed"
    assert aliases(client, name) == before
    r = gk(mlflow_server, "promote", "--to", "staging", MLFLOW_MODEL_NAME=name)
    assert r.returncode == 1 and "has not passed the gate" in r.stderr
    assert aliases(client, name) == before


def test_promote_and_rollback_move_aliases(mlflow_server, clone_model):
    client = MlflowClient(tracking_uri=mlflow_server)
    name, (v1, v2) = clone_model("good", "good")
    env = {"MLFLOW_MODEL_NAME": name, "GATE_ACTOR": "pytest"}
    for v in (v1, v2):
        client.set_registered_model_alias(name, "candidate", v)
        assert gk(mlflow_server, "gate", **env).returncode == 0
        r = gk(mlflow_server, "promote", "--to", "staging", **env)
        assert r.returncode == 0, r.stderr
        # Production wants the latency gate's verdict on the version (make load records it).
        r = gk(mlflow_server, "promote", "--to", "production", **env)
        assert r.returncode == 1 and "has not passed the latency gate" in r.stderr
        sha = client.get_model_version(name, v).tags["gate.model_sha256"]
        load = ["--p95-ms", "10", "--p99-ms", "20", "--alias", "staging", "--sha256", sha]
        r = gk(mlflow_server, "record-load", "--version", v, "--verdict", "passed", *load, **env)
        assert r.returncode == 0 and "load.verdict=passed" in r.stdout, r.stderr
        r = gk(mlflow_server, "promote", "--to", "production", **env)
        assert r.returncode == 0, r.stderr
    assert aliases(client, name) == {"candidate": v2, "staging": v2, "production": v2}
    assert client.get_model_version(name, v2).tags["promoted.production.previous"] == v1
    assert client.get_model_version(name, v2).tags["promoted.production.by"] == "pytest"

    r = gk(mlflow_server, "rollback", **env)
    assert r.returncode == 0, r.stderr
    assert f"from version {v2} to version {v1}" in r.stdout
    assert aliases(client, name)["production"] == v1
    # The version taken out is revoked, and staging left it for the restored one.
    assert aliases(client, name)["staging"] == v1
    assert client.get_model_version(name, v2).tags["gate.verdict"] == "revoked"
    client.set_registered_model_alias(name, "candidate", v2)
    r = gk(mlflow_server, "gate", **env)
    assert r.returncode == 1 and "not judged again" in r.stderr
    r = gk(mlflow_server, "promote", "--to", "staging", "--version", v2, **env)
    assert r.returncode == 1 and "rolled back out of production" in r.stderr
    assert aliases(client, name) == {"candidate": v2, "staging": v1, "production": v1}

    r = gk(mlflow_server, "status", "--json", **env)
    rows = {row["alias"]: row for row in json.loads(r.stdout)}
    assert rows["production"]["version"] == v1 and rows["production"]["gate"] == "passed"

    r = gk(mlflow_server, "rollback", **env)
    assert r.returncode == 1 and "nothing moved" in r.stderr
    assert aliases(client, name)["production"] == v1


def test_gate_without_candidate_is_a_usage_error(mlflow_server, clone_model):
    name, _ = clone_model("good")
    r = gk(mlflow_server, "gate", MLFLOW_MODEL_NAME=name)
    assert r.returncode == 2 and "no @candidate" in r.stderr


def test_unreachable_mlflow_exits_2():
    r = gk("http://127.0.0.1:9", "status", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    assert r.returncode == 2
    assert r.stderr.startswith("gatekeeper: error:")


def test_usage_error_exits_2():
    r = gk("http://127.0.0.1:9", "promote", "--to", "nowhere")
    assert r.returncode == 2


def test_smoke_checks_the_served_version(mlflow_server, clone_model, start_gunicorn):
    client = MlflowClient(tracking_uri=mlflow_server)
    name, (v1, v2) = clone_model("good", "good")
    client.set_registered_model_alias(name, "staging", v1)
    url = start_gunicorn(mlflow_server, name, "staging", SERVING_POLL_INTERVAL_S="60")
    r = gk(mlflow_server, "smoke", "--url", url, "--alias", "staging", MLFLOW_MODEL_NAME=name)
    assert r.returncode == 0, r.stderr
    assert f"version {v1}" in r.stdout
    client.set_registered_model_alias(name, "staging", v2)  # the server will not notice in time
    r = gk(
        mlflow_server,
        "smoke",
        "--url",
        url,
        "--alias",
        "staging",
        "--timeout",
        "2",
        MLFLOW_MODEL_NAME=name,
    )
    assert r.returncode == 1 and f"expected '{v2}'" in r.stderr


def test_a_noisy_candidate_with_perfect_logged_metrics_still_fails(
    mlflow_server, clone_model, tmp_path, monkeypatch
):
    """The gate measures the model's files on its held-out set; the run's own figures,
    overwritten here by any client that can write to the run, decide nothing."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    client = MlflowClient(tracking_uri=mlflow_server)
    name, (source,) = clone_model("noisy")
    src = client.get_model_version(name, source)
    # The noisy model's files under a run of its own (the trained run is shared by other
    # tests), whose metrics a client then overwrites with perfect ones.
    run_id = client.create_run(client.get_run(src.run_id).info.experiment_id).info.run_id
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro"):
        client.log_metric(run_id, key, 0.99)
    for i in range(3):
        client.log_metric(run_id, f"recall_class_{i}", 0.99)
    files = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{source}",
        dst_path=str(tmp_path / "files"),
    )
    client.log_artifacts(run_id, files, "model")
    client.set_terminated(run_id)
    noisy = str(
        client.create_model_version(
            name, f"runs:/{run_id}/model", run_id=run_id, tags=src.tags
        ).version
    )
    client.set_registered_model_alias(name, "candidate", noisy)
    r = gk(mlflow_server, "gate", MLFLOW_MODEL_NAME=name, GATE_REPORT_DIR=str(tmp_path))
    assert r.returncode == 1, r.stdout + r.stderr
    body = json.loads((tmp_path / "gate_report.json").read_text())
    assert body["logged_by_run"]["accuracy"] == 0.99
    assert body["measured"]["accuracy"] < 0.85
    assert body["held_out_set"]["dataset"] == "iris" and body["held_out_set"]["rows"] > 20
    tags = client.get_model_version(name, noisy).tags
    assert tags["gate.verdict"] == "failed"
    assert tags["gate.holdout_sha256"] == body["held_out_set"]["sha256"]
    assert json.loads(tags["gate.thresholds"])["min_accuracy"] == 0.85
    assert "differ from the gate's" in (tmp_path / "gate_report.md").read_text()
