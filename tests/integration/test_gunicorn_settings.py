"""serving/gunicorn.conf.py under a real gunicorn: what the server leaves behind (integration)."""

import time

import pytest
import requests

from labctl import processes
from labctl.processes import free_port, stop, wait_http
from tests.support import job_env

pytestmark = pytest.mark.integration


def test_a_server_given_no_metrics_or_cache_folder_removes_its_own_on_exit(tmp_path):
    """The containers set no PROMETHEUS_MULTIPROC_DIR: the settings file then makes a
    temporary folder for the workers' metrics, which must go when gunicorn exits (a
    stopped server would leave one behind per start); likewise the folder the workers
    share prepared models in, when no SERVING_CACHE_DIR is given."""
    tmp = tmp_path / "tmp"  # where tempfile puts the folder (TMPDIR)
    tmp.mkdir()
    port = free_port()
    env = job_env(
        f"http://127.0.0.1:{free_port()}",  # no MLflow there: /health answers without one
        MLFLOW_MODEL_NAME="no-model",
        SERVING_MODEL_ALIAS="staging",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        TMPDIR=str(tmp),
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("SERVING_CACHE_DIR", None)
    log = tmp_path / "gunicorn.log"
    proc = processes.start_gunicorn(env, log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", 120, proc)
        assert requests.get(f"{url}/metrics", timeout=10).status_code == 200
        [folder] = tmp.glob("serving-metrics-*")
        assert len(list(tmp.glob("serving-cache-*"))) == 1
        # The workers' metrics are in it: the folder the server used, not a stray one.
        deadline = time.monotonic() + 10
        while not list(folder.glob("*.db")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(folder.glob("*.db")), sorted(p.name for p in folder.iterdir())
    finally:
        stop(proc)
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert not list(tmp.glob("serving-metrics-*")), log.read_text()[-2000:]
    assert not list(tmp.glob("serving-cache-*")), log.read_text()[-2000:]
