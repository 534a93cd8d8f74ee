"""Classroom mode against a real MLflow server running its basic-auth app, as the lab runs it.

Anonymous clients are refused, the lab's jobs work with the admin login, the model server
reads with the read-only account, a student added with `make user` reads everything and
changes only what they create.
"""

from __future__ import annotations

import pytest
import requests

from labctl import accounts, processes
from labctl.processes import free_port, start_mlflow, stop, wait_http
from labctl.settings import MLFLOW_READER_USER, ROOT, Settings
from tests.support import job_env, run_job

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "admin-secret-for-tests"
READER_PASSWORD = "reader-secret-for-tests"
MODEL = "classroom-model"
API = "/api/2.0/mlflow"
T = 10  # seconds, every request


@pytest.fixture(scope="module")
def auth_lab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-auth")
    port = free_port()
    ini = folder / "auth.ini"
    processes.write_auth_config(ini, f"sqlite:///{folder / 'auth.db'}")
    proc = start_mlflow(
        folder,
        port,
        env={
            **job_env(""),
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-session-key",
        },
        args=["--app-name", "basic-auth"],
    )
    url = f"http://127.0.0.1:{port}"
    settings = Settings(
        root=ROOT,
        env={
            "MLFLOW_PORT": str(port),
            "LAB_AUTH": "1",
            "MLFLOW_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_READER_PASSWORD": READER_PASSWORD,
        },
        environ={},
    )
    try:
        wait_http(f"{url}/health", 120, proc)
        accounts.ensure_reader(settings)
        # The lab's training job, signed in as the admin, registers the model.
        r = run_job(
            "trainer",
            env=job_env(
                url,
                MLFLOW_MODEL_NAME=MODEL,
                MLFLOW_TRACKING_USERNAME="admin",
                MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD,
            ),
        )
        assert r.returncode == 0, r.stderr[-2000:]
        version = r.stdout.strip().split("version ")[1].split()[0]
        yield url, settings, version
    finally:
        stop(proc)


def set_alias(url, version, auth):
    return requests.post(
        f"{url}{API}/registered-models/alias",
        json={"name": MODEL, "alias": "production", "version": version},
        auth=auth,
        timeout=10,
    )


def test_anonymous_clients_are_refused_reads_and_writes(auth_lab):
    url, _, version = auth_lab
    assert requests.get(f"{url}/health", timeout=5).status_code == 200
    assert (
        requests.post(f"{url}{API}/experiments/create", json={"name": "x"}, timeout=T).status_code
        == 401
    )
    assert requests.get(f"{url}{API}/registered-models/search", timeout=T).status_code == 401
    assert set_alias(url, version, None).status_code == 401
    delete = requests.delete(
        f"{url}{API}/registered-models/delete", json={"name": MODEL}, timeout=T
    )
    assert delete.status_code == 401


def test_a_wrong_password_is_refused(auth_lab):
    url, _, version = auth_lab
    assert set_alias(url, version, ("admin", "guess")).status_code == 401


def test_the_jobs_admin_login_writes(auth_lab):
    url, _, version = auth_lab
    assert set_alias(url, version, ("admin", ADMIN_PASSWORD)).status_code == 200


def test_the_model_servers_account_reads_but_cannot_move_an_alias(auth_lab, start_gunicorn):
    url, _, version = auth_lab
    reader = (MLFLOW_READER_USER, READER_PASSWORD)
    got = requests.get(
        f"{url}{API}/model-versions/get",
        params={"name": MODEL, "version": version},
        auth=reader,
        timeout=T,
    )
    assert got.status_code == 200
    assert set_alias(url, version, reader).status_code == 403
    # The real model server loads the model (registry and artifacts) with that account.
    set_alias(url, version, ("admin", ADMIN_PASSWORD)).raise_for_status()
    server = start_gunicorn(
        url,
        MODEL,
        "production",
        MLFLOW_TRACKING_USERNAME=MLFLOW_READER_USER,
        MLFLOW_TRACKING_PASSWORD=READER_PASSWORD,
    )
    assert requests.get(f"{server}/model", timeout=5).json()["version"] == version


def test_ensure_reader_puts_back_the_password_env_holds(auth_lab):
    url, settings, _ = auth_lab
    admin = accounts.MlflowAdmin(settings)
    admin.set_password(MLFLOW_READER_USER, "some-other-password")
    accounts.ensure_reader(settings)
    ok = requests.get(
        f"{url}{API}/registered-models/search",
        auth=(MLFLOW_READER_USER, READER_PASSWORD),
        timeout=T,
    )
    assert ok.status_code == 200


def test_a_student_reads_everything_and_changes_only_their_own(auth_lab):
    url, settings, version = auth_lab
    password = accounts.add_user(settings, "alice")
    alice = ("alice", password)
    assert (
        requests.get(f"{url}{API}/registered-models/search", auth=alice, timeout=T).status_code
        == 200
    )
    made = requests.post(
        f"{url}{API}/experiments/create", json={"name": "alice-exp"}, auth=alice, timeout=T
    )
    assert made.status_code == 200
    assert set_alias(url, version, alice).status_code == 403
    with pytest.raises(accounts.LabError, match="already has a user 'alice'"):
        accounts.add_user(settings, "alice")


def test_an_anonymous_training_job_is_refused_and_registers_nothing(auth_lab):
    url, _, _ = auth_lab
    r = run_job("trainer", env=job_env(url, MLFLOW_MODEL_NAME="anonymous-model"))
    assert r.returncode != 0
    search = requests.get(
        f"{url}{API}/registered-models/search",
        params={"filter": "name='anonymous-model'"},
        auth=("admin", ADMIN_PASSWORD),
        timeout=T,
    )
    assert search.json().get("registered_models", []) == []
