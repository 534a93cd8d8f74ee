"""Fixtures for the integration tests: real processes, on free ports.

- `mlflow_server`: a real `mlflow server` (SQLite backend, proxied local artifacts).
- `trained`: the real training job run twice against it, once clean and once with label
  noise; other tests copy those versions into a model name of their own, so each test
  owns its aliases and no test depends on another's order.
- `start_gunicorn`: the real model server under gunicorn.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from labctl import processes
from labctl.processes import free_port, start_mlflow, stop, wait_http
from tests.support import Trained, job_env, run_job


@pytest.fixture(scope="session")
def mlflow_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="session")
def mlflow_server(mlflow_dir):
    port = free_port()
    proc = start_mlflow(mlflow_dir, port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", 120, proc)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def trained(mlflow_server) -> Trained:
    """The real training job, run clean then noisy, registering two versions."""
    name = "it-source"
    versions = []
    for noise in ("0", "0.4"):
        r = run_job(
            "trainer",
            env=job_env(
                mlflow_server, MLFLOW_MODEL_NAME=name, LABEL_NOISE=noise, GIT_SHA=f"sha{noise}"
            ),
        )
        assert r.returncode == 0, r.stderr[-2000:]
        versions.append(r.stdout.strip().split("version ")[1].split()[0])
    return Trained(name, versions[0], versions[1])


@pytest.fixture(scope="session")
def clone_model(mlflow_server, trained):
    """Copy trained versions into a fresh registered model: `clone_model('good', 'noisy')`."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)

    def _clone(*kinds: str) -> tuple[str, list[str]]:
        name = f"it-{uuid.uuid4().hex[:8]}"
        versions = []
        for kind in kinds:
            src = trained.good_version if kind == "good" else trained.noisy_version
            src_mv = client.get_model_version(trained.model_name, src)
            mv = client.copy_model_version(f"models:/{trained.model_name}/{src}", name)
            for key in ("git_sha", "dataset", "dataset_fingerprint", "run_id"):
                if key in src_mv.tags:
                    client.set_model_version_tag(name, mv.version, key, src_mv.tags[key])
            versions.append(str(mv.version))
        return name, versions

    return _clone


@pytest.fixture(scope="module")
def start_gunicorn(tmp_path_factory):
    """Start the model server under gunicorn; returns its base URL once /ready answers."""
    procs = []
    tmp_path = tmp_path_factory.mktemp("gunicorn")

    def _start(tracking_uri: str, model_name: str, alias: str, wait_ready=True, **env) -> str:
        port = free_port()
        penv = job_env(
            tracking_uri,
            MLFLOW_MODEL_NAME=model_name,
            SERVING_MODEL_ALIAS=alias,
            GUNICORN_BIND=f"127.0.0.1:{port}",
            GUNICORN_WORKERS=env.pop("GUNICORN_WORKERS", "2"),
            PROMETHEUS_MULTIPROC_DIR=str(tmp_path / f"metrics-{port}"),
            **env,
        )
        proc = processes.start_gunicorn(penv, tmp_path / f"gunicorn-{port}.log")
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/ready" if wait_ready else f"{url}/health", 120, proc)
        return url

    _start.processes = procs  # the gunicorn masters, newest last
    yield _start
    for p in procs:
        stop(p)
