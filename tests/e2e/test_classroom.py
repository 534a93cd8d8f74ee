"""Classroom mode (LAB_AUTH=1) on the running lab: anonymous writes are refused everywhere,
the model servers stay open, a student's login reads but cannot move production, and the
lab's own pipeline works with its logins.

Runs only when the lab runs with logins (`make up LAB_AUTH=1`, or LAB_BIND on a network
address); the registry and S3 checks need docker mode.
"""

from __future__ import annotations

import os
import uuid

import pytest
import requests

from tests.e2e.labtools import classroom, image_digest, mlflow_auth, registry_auth, wait_version

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not classroom(), reason="the lab runs without logins (LAB_AUTH=0)"),
]
API = "/api/2.0/mlflow"
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def test_mlflow_refuses_anonymous_reads_and_writes(lab):
    version = lab.aliases()["production"]
    model = {"name": lab.model_name}
    writes = [
        ("post", "/experiments/create", {"name": f"anon-{uuid.uuid4().hex[:6]}"}),
        ("post", "/registered-models/create", {"name": "anon-model"}),
        ("post", "/registered-models/alias", {**model, "alias": "production", "version": version}),
        ("delete", "/registered-models/alias", {**model, "alias": "staging"}),
        ("delete", "/registered-models/delete", model),
        ("post", "/model-versions/set-tag", {**model, "version": version, "key": "k", "value": ""}),
    ]
    for method, path, body in writes:
        r = getattr(requests, method)(f"{lab.mlflow}{API}{path}", json=body, timeout=10)
        assert r.status_code == 401, f"{method.upper()} {path}: {r.status_code} {r.text[:200]}"
    search = requests.get(f"{lab.mlflow}{API}/registered-models/search", timeout=10)
    assert search.status_code == 401
    assert requests.get(f"{lab.mlflow}/health", timeout=10).status_code == 200
    assert lab.aliases()["production"] == version  # nothing moved


def test_the_model_servers_stay_open_without_a_login(lab, settled):
    for alias in ("staging", "production"):
        url = getattr(lab, alias)
        assert requests.get(f"{url}/ready", timeout=10).status_code == 200
        assert requests.get(f"{url}/model", timeout=10).json()["version"] == settled[alias]
        r = requests.post(f"{url}/predict", json={"instances": [IRIS_ROW]}, timeout=10)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 1


def test_a_student_login_reads_and_cannot_move_production(lab):
    name = f"student{uuid.uuid4().hex[:6]}"
    r = lab.make("user", f"NAME={name}")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    password = r.stdout.split("password:")[1].split()[0]
    student = (name, password)
    assert requests.get(f"{lab.mlflow}/", auth=student, timeout=10).status_code == 200
    search = requests.get(f"{lab.mlflow}{API}/registered-models/search", auth=student, timeout=10)
    assert search.status_code == 200
    own = requests.post(
        f"{lab.mlflow}{API}/experiments/create", json={"name": name}, auth=student, timeout=10
    )
    assert own.status_code == 200, own.text[:200]
    version = lab.aliases()["production"]
    moved = requests.post(
        f"{lab.mlflow}{API}/registered-models/alias",
        json={"name": lab.model_name, "alias": "production", "version": version},
        auth=student,
        timeout=10,
    )
    assert moved.status_code == 403, moved.text[:200]
    again = lab.make("user", f"NAME={name}")
    assert again.returncode == 2 and "already has a user" in again.stderr


def test_the_registry_refuses_anonymous_pulls_pushes_and_deletes(lab, docker_only):
    digest = image_digest(lab.registry, "production")
    assert digest is not None  # with the lab's login
    base = f"{lab.registry}/v2/mlops-lab/serving"
    assert requests.get(f"{lab.registry}/v2/_catalog", timeout=10).status_code == 401
    assert requests.get(f"{base}/manifests/production", timeout=10).status_code == 401
    push = requests.put(
        f"{base}/manifests/production",
        data=b"{}",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )
    assert push.status_code == 401
    assert requests.post(f"{base}/blobs/uploads/", timeout=10).status_code == 401
    assert requests.delete(f"{base}/manifests/{digest}", timeout=10).status_code == 401
    wrong = requests.get(f"{lab.registry}/v2/_catalog", auth=("lab", "guess"), timeout=10)
    assert wrong.status_code == 401
    assert image_digest(lab.registry, "production") == digest
    assert registry_auth() is not None


def test_the_s3_store_refuses_anonymous_writes(lab, docker_only):
    bucket = os.environ.get("S3_BUCKET", "mlflow")
    put = requests.put(f"{lab.s3}/{bucket}/anonymous.txt", data=b"x", timeout=10)
    assert put.status_code == 403, put.text[:200]
    assert requests.get(f"{lab.s3}/{bucket}", timeout=10).status_code == 403
    assert requests.put(f"{lab.s3}/anonymous-bucket", timeout=10).status_code == 403


def test_the_pipeline_works_with_the_lab_logins(lab, settled):
    """train, gate and promote to staging: jobs sign in to MLflow and the registry."""
    assert mlflow_auth() is not None
    for args in (("train",), ("gate",), ("promote", "TO=staging")):
        r = lab.make(*args)
        assert r.returncode == 0, f"make {' '.join(args)}:\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
    version = lab.aliases()["staging"]
    assert version != settled["staging"]
    wait_version(lab.staging, version)
    if lab.mode == "docker":
        sha = lab.client().get_model_version(lab.model_name, version).tags["git_sha"]
        assert image_digest(lab.registry, "staging") == image_digest(lab.registry, sha)
