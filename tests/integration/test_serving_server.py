"""The model server under a real gunicorn, against a real MLflow server (integration)."""

import os
import signal
import socket
import subprocess
import time

import pytest
import requests
from mlflow import MlflowClient

from labctl.processes import free_port, start_mlflow, stop, wait_http
from tests.support.load import Load

pytestmark = pytest.mark.integration

ROW = {
    "sepal length (cm)": 5.1,
    "sepal width (cm)": 3.5,
    "petal length (cm)": 1.4,
    "petal width (cm)": 0.2,
}


@pytest.fixture(scope="module")
def served(mlflow_server, clone_model, start_gunicorn):
    client = MlflowClient(tracking_uri=mlflow_server)
    name, (v1, v2) = clone_model("good", "noisy")
    client.set_registered_model_alias(name, "staging", v1)
    url = start_gunicorn(mlflow_server, name, "staging", SERVING_POLL_INTERVAL_S="0.5")
    return client, name, v1, v2, url


def test_predicts_and_describes_its_model(served):
    _, name, v1, _, url = served
    r = requests.post(f"{url}/predict", json={"instances": [ROW, list(ROW.values())]}, timeout=10)
    assert r.status_code == 200
    assert r.json()["predictions"] == [0, 0] and r.json()["model_version"] == v1
    info = requests.get(f"{url}/model", timeout=10).json()
    assert (info["name"], info["version"], info["alias"]) == (name, v1, "staging")
    assert info["git_sha"] == "sha0" and info["predict_path"] == "numpy-native"
    metrics = requests.get(f"{url}/metrics", timeout=10).text
    assert 'serving_requests_total{endpoint="predict",status="200"}' in metrics


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": "{nope", "headers": {"Content-Type": "application/json"}}, 400),
        ({"data": "x", "headers": {"Content-Type": "text/plain"}}, 415),
        ({"json": {"instances": [{"sepal length (cm)": 1}]}}, 422),
        ({"json": {"instances": [[1, 2, 3, "x"]]}}, 422),
        (
            {
                "data": '{"instances": [[1, 2, 3, NaN]]}',
                "headers": {"Content-Type": "application/json"},
            },
            422,
        ),
        ({"json": {"instances": []}}, 400),
        ({"json": {"instances": [[1, 2, 3, 4]] * 1001}}, 413),
        (
            {"data": "[" + "1," * 600_000 + "1]", "headers": {"Content-Type": "application/json"}},
            413,
        ),
    ],
)
def test_bad_input_gets_4xx_json_from_gunicorn(served, kwargs, status):
    url = served[-1]
    r = requests.post(f"{url}/predict", timeout=10, **kwargs)
    assert r.status_code == status
    assert r.json()["status"] == status and r.json()["error"]


def test_alias_move_switches_version_with_zero_failed_requests(
    mlflow_server, clone_model, start_gunicorn
):
    client = MlflowClient(tracking_uri=mlflow_server)
    name, (v1, v2) = clone_model("good", "noisy")
    client.set_registered_model_alias(name, "staging", v1)
    url = start_gunicorn(mlflow_server, name, "staging", SERVING_POLL_INTERVAL_S="0.5")
    with Load(url, clients=3) as load:
        time.sleep(1.0)
        client.set_registered_model_alias(name, "staging", v2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and load.versions[-20:].count(v2) < 20:
            time.sleep(0.2)
        time.sleep(0.5)
    seen = load.versions
    assert load.failed() == {}
    assert seen[0] == v1 and seen[-1] == v2
    assert len(seen) > 50
    # Each worker follows the alias on its own poll clock: every one within a few seconds.
    deadline = time.monotonic() + 10
    while requests.get(f"{url}/model", timeout=10).json()["version"] != v2:
        assert time.monotonic() < deadline, "a worker still serves the old version"
        time.sleep(0.2)


def test_keeps_serving_when_mlflow_goes_away(mlflow_dir, clone_model, start_gunicorn, tmp_path):
    """A second MLflow server on the same store, stopped under the serving process."""
    port = free_port()
    proc = start_mlflow(mlflow_dir, port)
    tracking = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{tracking}/health", 120, proc)
        name, (v1,) = clone_model("good")
        MlflowClient(tracking_uri=tracking).set_registered_model_alias(name, "production", v1)
        url = start_gunicorn(tracking, name, "production", SERVING_POLL_INTERVAL_S="0.3")
    finally:
        stop(proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready = requests.get(f"{url}/ready", timeout=10)
        if ready.json()["mlflow_reachable"] is False:
            break
        time.sleep(0.3)
    assert ready.status_code == 200 and ready.json()["mlflow_reachable"] is False
    assert requests.get(f"{url}/model", timeout=10).json()["last_error"]
    r = requests.post(f"{url}/predict", json={"instance": ROW}, timeout=10)
    assert r.status_code == 200 and r.json()["model_version"] == v1


def _workers(master_pid: int) -> list[int]:
    r = subprocess.run(
        ["pgrep", "-P", str(master_pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in r.stdout.split()]


def test_outage_restarts_serve_the_last_good_model(
    mlflow_dir, clone_model, start_gunicorn, tmp_path
):
    """MLflow stopped: a recycled worker and a whole new server both serve from the cache."""
    port = free_port()
    proc = start_mlflow(mlflow_dir, port)
    tracking = f"http://127.0.0.1:{port}"
    cache = str(tmp_path / "cache")
    try:
        wait_http(f"{tracking}/health", 120, proc)
        name, (v1,) = clone_model("good")
        MlflowClient(tracking_uri=tracking).set_registered_model_alias(name, "production", v1)
        url = start_gunicorn(
            tracking, name, "production", SERVING_POLL_INTERVAL_S="0.3", SERVING_CACHE_DIR=cache
        )
    finally:
        stop(proc)
    master = start_gunicorn.processes[-1].pid
    with Load(url, clients=3) as load:
        before = _workers(master)
        assert len(before) == 2
        os.kill(before[0], signal.SIGTERM)  # as gunicorn recycles a worker
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            len(_workers(master)) < 2 or before[0] in _workers(master)
        ):
            time.sleep(0.2)
        time.sleep(3)  # the new worker takes its share of the requests
    assert load.failed() == {}, load.report("worker recycled with MLflow stopped")
    assert load.sent() > 50

    # A whole new server (a container restart) while MLflow is still down.
    url2 = start_gunicorn(tracking, name, "production", SERVING_CACHE_DIR=cache)
    ready = requests.get(f"{url2}/ready", timeout=10).json()
    assert ready["ready"] is True and ready["source"] == "cache"
    assert ready["mlflow_reachable"] is False
    info = requests.get(f"{url2}/model", timeout=10).json()
    assert (info["version"], info["source"]) == (v1, "cache")
    r = requests.post(f"{url2}/predict", json={"instances": [ROW]}, timeout=10)
    assert r.status_code == 200 and r.json()["model_version"] == v1


def _slow_clients(url: str, n: int) -> list[socket.socket]:
    """Connections that send the start of a request, then nothing more."""
    host, port = url.removeprefix("http://").split(":")
    conns = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\n")
        conns.append(s)
    return conns


@pytest.mark.parametrize(("worker_class", "stalled"), [("gevent", False), ("sync", True)])
def test_slow_clients_do_not_stall_predict(served, start_gunicorn, worker_class, stalled):
    """The lab's worker class answers others while slow clients hold connections; sync
    workers, shown for contrast, are stalled by as many slow clients as workers."""
    client, name, *_ = served
    url = start_gunicorn(client.tracking_uri, name, "staging", GUNICORN_WORKER_CLASS=worker_class)
    conns = _slow_clients(url, 20 if worker_class == "gevent" else 2)
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        try:
            r = requests.post(f"{url}/predict", json={"instances": [ROW]}, timeout=5)
            answered = r.status_code == 200
        except requests.Timeout:
            answered = False
        took = time.monotonic() - t0
    finally:
        for s in conns:
            s.close()
    assert answered is not stalled, f"{worker_class}: answered={answered} after {took:.1f}s"
    if not stalled:
        assert took < 1.0
