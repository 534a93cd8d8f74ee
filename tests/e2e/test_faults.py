"""Production under faults: the lab's parts fail and restart while production is loaded.

Each test puts steady load on the production server, hurts one part of the lab, and
counts the answers. What each fault cost is written to reports/faults/faults.md.
Docker-only faults (Postgres, the S3 store, the registry's image tags) skip in local mode.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time

import pytest
import requests

from tests.e2e import faults
from tests.e2e.faults import answers, compose, wait_for
from tests.e2e.labtools import (
    ROOT,
    image_digest,
    promotable_to_production,
    promote_new_candidate,
    to_staging,
    wait_version,
)
from tests.support.load import Load

pytestmark = pytest.mark.e2e

REPORT = ROOT / "reports" / "faults" / "faults.md"


def record(line: str) -> None:
    print(line)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with open(REPORT, "a", encoding="utf-8") as f:
        f.write(f"- {line}\n")


def assert_consistent(lab) -> dict[str, str]:
    """Every served alias and, in docker mode, its image tag name the same version."""
    aliases = lab.aliases()
    client = lab.client()
    for alias in ("staging", "production"):
        wait_version(getattr(lab, alias), aliases[alias])
        if lab.mode == "docker":
            sha = client.get_model_version(lab.model_name, aliases[alias]).tags["git_sha"]
            assert image_digest(lab.registry, alias) == image_digest(lab.registry, sha), alias
    return aliases


@pytest.mark.parametrize("service", ["mlflow", "postgres", "s3 store"])
def test_production_rides_out_a_restart_of(lab, docker_only, settled, service):
    name = os.environ.get("S3_BACKEND", "minio") if service == "s3 store" else service
    with Load(lab.production) as load:
        time.sleep(1)
        compose("restart", name)
        compose("up", "-d", "--wait", name)
        wait_for(lambda: answers(f"{lab.mlflow}/health"), 120, "MLflow to answer")
        time.sleep(2)
    record(load.report(f"restart {name} (docker)"))
    assert load.failed() == {}, load.report(name)
    assert load.sent() > 50
    assert_consistent(lab)


def stop_mlflow(lab) -> None:
    if lab.mode == "docker":
        compose("stop", "mlflow")
    else:
        os.kill(faults.supervisor("mlflow"), signal.SIGTERM)
    wait_for(lambda: not answers(f"{lab.mlflow}/health"), 60, "MLflow to stop")


def start_mlflow(lab) -> None:
    if lab.mode == "docker":
        compose("up", "-d", "--wait", "mlflow")
    else:
        r = lab.make("up")
        assert r.returncode == 0, r.stderr[-3000:]
    wait_for(lambda: answers(f"{lab.mlflow}/health"), 180, "MLflow to answer")


def restart_production_server(lab) -> None:
    if lab.mode == "docker":
        compose("restart", faults.live_production())  # the model server behind the proxy
    else:  # the supervisor starts a new gunicorn after this one exits
        os.kill(faults.local_server("serving-production"), signal.SIGTERM)


def kill_production_worker(lab) -> None:
    if lab.mode == "docker":
        faults.kill_container_worker(faults.live_production())
        time.sleep(8)  # gunicorn starts a new worker, which loads its model
    else:
        master = faults.local_server("serving-production")
        before = faults.children(master)
        killed = faults.kill_local_worker("serving-production")
        wait_for(
            lambda: (
                killed not in faults.children(master)
                and len(faults.children(master)) == len(before)
            ),
            60,
            "gunicorn to replace the worker",
        )
        time.sleep(5)


def test_production_rides_out_an_mlflow_outage(lab, settled):
    """MLflow down: a recycled worker and a restarted server serve the last good model."""
    version = settled["production"]
    stop_mlflow(lab)
    try:
        with Load(lab.production) as load:
            time.sleep(1)
            kill_production_worker(lab)
        record(load.report(f"MLflow stopped, one production worker killed ({lab.mode})"))
        assert load.failed() == {}, load.report("worker killed")

        # A client waits as long as the hold does (30 s) for a restarting server.
        with Load(lab.production, timeout=30) as load:
            time.sleep(1)
            t0 = time.monotonic()
            restart_production_server(lab)
            time.sleep(2)
            wait_for(lambda: answers(f"{lab.production}/ready"), 120, "production to be ready")
            back = time.monotonic() - t0
            time.sleep(3)
        record(
            load.report(f"MLflow stopped, production server restarted ({lab.mode})")
            + f"; ready again after {back:.1f}s"
        )
        # While the server restarts, requests wait (docker mode: in the proxy's hold; local
        # mode: in the listen queue of the socket its supervisor keeps open) and are
        # answered from the cached model once it is back: none fails.
        assert load.failed() == {}, load.report("server restarted")
        after = [o for t, o in load.outcomes if t > t0 + back]
        assert after and set(after) == {"200"}
        info = requests.get(f"{lab.production}/model", timeout=10).json()
        assert (info["version"], info["source"]) == (version, "cache")
        assert info["mlflow_reachable"] is False
    finally:
        start_mlflow(lab)
    wait_for(
        lambda: requests.get(f"{lab.production}/model", timeout=10).json()["source"] == "registry",
        120,
        "production to confirm its model with the registry",
    )
    assert_consistent(lab)


def test_two_promotions_at_once_never_interleave(lab, production_with_previous):
    """A rollback and a promotion at once, each of which would succeed alone: one runs,
    the other waits its turn or is refused naming the one running; never both at once."""
    if not promotable_to_production(lab):
        # Whatever an earlier test left on @staging (an exercise's candidate that was
        # never load-tested, a revoked version) would be refused for its own reasons.
        to_staging(lab)
    results = {}

    def run(key: str, target: str) -> None:
        results[key] = lab.make(*target.split())

    with Load(lab.production) as load:
        threads = [
            threading.Thread(target=run, args=("rollback", "rollback")),
            threading.Thread(target=run, args=("promote", "promote TO=production")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    outcomes = {k: r.returncode for k, r in results.items()}
    record(load.report(f"a rollback and a promotion at once, exit codes {outcomes} ({lab.mode})"))
    refused = [k for k, r in results.items() if r.returncode != 0]
    for key in refused:
        assert "one promotion or rollback at a time" in results[key].stderr, results[key].stderr
    assert len(refused) <= 1, {k: r.stderr[-1000:] for k, r in results.items()}
    assert load.failed() == {}, load.report("two promotions")
    assert_consistent(lab)


def test_the_pipeline_works_after_the_faults(lab, settled):
    version = promote_new_candidate(lab)
    assert assert_consistent(lab)["production"] == version


def malformed_requests(n: int, seed: int = 20261125):
    """Bodies and headers a careless or hostile client sends, varied at random."""
    rng = random.Random(seed)
    json_ct = {"Content-Type": "application/json"}
    values = [
        None,
        True,
        "x",
        "",
        -1e308,
        1e308,
        2**70,
        [],
        {},
        [1],
        {"a": 1},
        "NaN",
        "1e999",
        "\x00",
        "🌼",
        0.0,
        -0.0,
    ]
    lengths = [0, 1, 2, 3, 5, 6]
    valid = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]})  # cut short, never whole
    features = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    makers = [
        lambda: {
            "data": bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))),
            "headers": json_ct,
        },
        lambda: {
            "data": valid[: rng.randrange(1, len(valid))],
            "headers": json_ct,
        },
        # never 4 values: a row of 4 numbers would be a valid request
        lambda: {"json": {"instances": [[rng.choice(values) for _ in range(rng.choice(lengths))]]}},
        lambda: {"json": {"instances": [{rng.choice(features): rng.choice(values)}]}},
        lambda: {"json": {rng.choice(["instance", "inputs", "rows", "x"]): rng.choice(values)}},
        lambda: {"json": rng.choice(values)},
        lambda: {"json": {"instances": rng.choice(values)}},
        lambda: {"data": "[" * rng.randrange(1, 5000), "headers": json_ct},
        lambda: {
            "data": "1,2,3,4",
            "headers": {
                "Content-Type": rng.choice(
                    ["text/csv", "text/plain", "application/xml", "multipart/form-data", ""]
                )
            },
        },
        lambda: {"json": {"instances": [[1.0, 2.0, 3.0, 4.0]] * rng.randrange(1001, 1500)}},
        lambda: {
            "data": '{"instances": [[1, 2, 3, '
            + rng.choice(["NaN", "Infinity", "-Infinity"])
            + "]]}",
            "headers": json_ct,
        },
    ]
    for _ in range(n):
        yield rng.choice(makers)()


def test_a_thousand_malformed_requests_get_json_4xx(lab, settled):
    statuses = []
    with requests.Session() as s:
        for kwargs in malformed_requests(1000):
            r = s.post(f"{lab.production}/predict", timeout=20, **kwargs)
            statuses.append(r.status_code)
            assert 400 <= r.status_code < 500, (r.status_code, r.text[:300], kwargs)
            body = r.json()
            assert body["status"] == r.status_code and body["error"], body
    counts = {code: statuses.count(code) for code in sorted(set(statuses))}
    record(f"fuzzing /predict ({lab.mode}): 1000 malformed requests, statuses {counts}")
    assert len(counts) >= 4  # the generator reaches several distinct checks
