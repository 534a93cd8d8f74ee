"""The lab as a student meets it: two servers, a gated pipeline, rollback, persistence.

The tests share one lab and leave its aliases consistent; each gets the state it needs
from a fixture (conftest.py), so they run in any order, or one at a time.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest
import requests

from tests.e2e import faults
from tests.e2e.faults import compose
from tests.e2e.labtools import (
    MANIFEST_ACCEPT,
    image_digest,
    mlflow_auth,
    registry_auth,
    served_version,
    to_staging,
    wait_version,
)

pytestmark = pytest.mark.e2e

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def test_both_servers_answer_with_their_own_versions(lab, settled):
    aliases = settled
    for alias, url in (("staging", lab.staging), ("production", lab.production)):
        info = requests.get(f"{url}/model", timeout=10).json()
        assert info["alias"] == alias
        assert info["version"] == aliases[alias]
        r = requests.post(f"{url}/predict", json={"instances": [IRIS_ROW, IRIS_ROW]}, timeout=10)
        assert r.status_code == 200
        assert len(r.json()["predictions"]) == 2 and r.json()["model_version"] == aliases[alias]


@pytest.mark.parametrize("server", ["staging", "production"])
@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": "{oops", "headers": {"Content-Type": "application/json"}}, 400),
        ({"data": "1,2,3", "headers": {"Content-Type": "text/csv"}}, 415),
        ({"json": {"instances": [[1, 2]]}}, 422),
        ({"json": {"instances": [{"petal width (cm)": 1}]}}, 422),
        ({"json": {"instances": [[1, 2, 3, "four"]]}}, 422),
        (
            {
                "data": '{"instances": [[1, 2, 3, NaN]]}',
                "headers": {"Content-Type": "application/json"},
            },
            422,
        ),
        ({"json": {"instances": []}}, 400),
        ({"data": "x" * 2_000_000, "headers": {"Content-Type": "application/json"}}, 413),
    ],
)
def test_bad_input_gets_a_json_4xx(lab, settled, server, kwargs, status):
    # `settled`: a server without a loaded model would answer 503 to everything.
    r = requests.post(f"{getattr(lab, server)}/predict", timeout=20, **kwargs)
    assert r.status_code == status
    assert r.json()["error"]


def test_mlflow_ui_and_metrics_answer(lab):
    r = requests.get(lab.mlflow, timeout=10, auth=mlflow_auth())
    assert r.status_code == 200 and "<html" in r.text.lower()
    metrics = requests.get(f"{lab.production}/metrics", timeout=10).text
    assert "serving_requests_total" in metrics and "serving_model_version" in metrics


def test_artifacts_live_in_the_s3_store(lab, docker_only):
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=lab.s3,
        aws_access_key_id=os.environ["S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["S3_SECRET_KEY"],
    )
    bucket = os.environ.get("S3_BUCKET", "mlflow")
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]
    assert any(k.endswith("/MLmodel") for k in keys), keys[:20]
    assert any(k.endswith("confusion_matrix.svg") for k in keys)


def _digest(lab, tag: str) -> str | None:
    return image_digest(lab.registry, tag)


def test_registry_holds_images_by_sha_and_alias(lab, docker_only):
    catalog = requests.get(f"{lab.registry}/v2/_catalog", timeout=10, auth=registry_auth())
    catalog = catalog.json()["repositories"]
    assert {
        "mlops-lab/serving",
        "mlops-lab/mlflow",
        "mlops-lab/training",
        "mlops-lab/gatekeeper",
    } <= set(catalog)
    client = lab.client()
    for alias in ("staging", "production"):
        sha = client.get_model_version_by_alias(lab.model_name, alias).tags["git_sha"]
        # The image promoted with the model is the one built from the code that trained it.
        assert _digest(lab, alias) is not None
        assert _digest(lab, alias) == _digest(lab, sha)


def test_the_registry_refuses_to_delete_an_image(lab, docker_only):
    digest = _digest(lab, "production")
    assert digest is not None
    r = requests.delete(
        f"{lab.registry}/v2/mlops-lab/serving/manifests/{digest}",
        timeout=10,
        auth=registry_auth(),  # even with the lab's own login
    )
    assert r.status_code == 405, r.text[:300]
    assert _digest(lab, "production") == digest


def test_containers_run_as_non_root_with_resource_limits(lab, docker_only):
    live = faults.live_production()
    ids = compose("ps", "-q", "mlflow", "serving-staging", "serving-production", live).split()
    assert len(ids) == 4
    for cid in ids:
        limits = subprocess.run(
            [
                "docker",
                "inspect",
                "--format",
                "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
                cid,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert int(limits[0]) > 0 and int(limits[1]) > 0, (cid, limits)  # resource limits
        user = subprocess.run(
            ["docker", "inspect", "--format", "{{.Config.User}}", cid],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert user not in ("", "0", "root"), cid


NO_PASSWORD_IN_ARGV = """
import os, pathlib
secret = os.environ["MLFLOW_BACKEND_STORE_URI"].split(":")[2].split("@")[0]
assert len(secret) >= 20, "no database password found in the environment"
shown = [p.read_bytes() for p in pathlib.Path("/proc").glob("[0-9]*/cmdline")]
print(len(shown), sum(secret.encode() in c for c in shown))
"""


def test_no_process_of_the_tracking_server_shows_the_database_password(lab, docker_only):
    """`ps` shows every user the arguments of every process: the password must not be one."""
    processes, showing = map(
        int, compose("exec", "-T", "mlflow", "python", "-c", NO_PASSWORD_IN_ARGV).split()
    )
    assert processes >= 3  # the server, its workers, this check
    assert showing == 0


def test_a_new_candidate_moves_through_staging_then_production(lab, settled):
    before = settled
    r = lab.make("train")
    assert r.returncode == 0, r.stderr[-3000:]
    candidate = lab.aliases()["candidate"]
    assert candidate != before.get("candidate")
    r = lab.make("gate")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = lab.make("promote", "TO=staging")
    assert r.returncode == 0, r.stderr[-3000:]
    wait_version(lab.staging, candidate)
    assert served_version(lab.production) == before["production"]
    assert lab.aliases()["production"] == before["production"]
    # Production takes only a version that passed the latency gate on staging.
    r = lab.make("promote", "TO=production")
    assert r.returncode != 0 and "has not passed the latency gate" in r.stderr, r.stderr
    assert lab.aliases()["production"] == before["production"]
    r = lab.make("load", "LOCUST_RUN_TIME=5s")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    tags = lab.client().get_model_version(lab.model_name, candidate).tags
    assert tags["load.verdict"] == "passed" and tags["load.alias"] == "staging"
    assert float(tags["load.p99_ms"]) > 0
    r = lab.make("promote", "TO=production")
    assert r.returncode == 0, r.stderr[-3000:]
    wait_version(lab.production, candidate)
    tags = lab.client().get_model_version(lab.model_name, candidate).tags
    assert tags["promoted.production.load_gate"] == "passed"


def test_rollback_restores_the_previous_version_with_zero_failed_requests(
    lab, production_with_previous
):
    current, previous = production_with_previous
    seen, failures, stop = [], [], threading.Event()

    def client():
        with requests.Session() as s:
            while not stop.is_set():
                try:
                    r = s.post(
                        f"{lab.production}/predict", json={"instances": [IRIS_ROW]}, timeout=10
                    )
                    if r.status_code == 200:
                        seen.append(r.json()["model_version"])
                    else:
                        failures.append(r.status_code)
                except requests.RequestException as exc:
                    failures.append(repr(exc))
                time.sleep(0.01)

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        r = lab.make("rollback")
        assert r.returncode == 0, r.stderr[-3000:]
        wait_version(lab.production, previous)
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert lab.aliases()["production"] == previous
    assert failures == []
    assert current in seen and seen[-1] == previous
    # The version taken out is revoked: it left @staging and can never come back.
    tags = lab.client().get_model_version(lab.model_name, current).tags
    assert tags["gate.verdict"] == "revoked"
    assert lab.aliases()["staging"] != current
    again = lab.make("promote", "TO=production")
    assert lab.aliases()["production"] == previous, again.stderr[-2000:]


def _snapshot(lab) -> dict:
    snap = {"aliases": lab.aliases()}
    if lab.mode == "docker":
        snap["images"] = {tag: _digest(lab, tag) for tag in ("staging", "production")}
    return snap


def test_a_noisy_candidate_is_blocked_and_nothing_moves(lab, settled):
    r = lab.make("train", LABEL_NOISE="0.4")
    assert r.returncode == 0, r.stderr[-3000:]
    before = _snapshot(lab)
    served = (served_version(lab.staging), served_version(lab.production))
    r = lab.make("gate")
    assert r.returncode != 0
    assert "FAILED the gate" in r.stderr
    r = lab.make("promote", "TO=staging")
    assert r.returncode != 0 and "has not passed the gate" in r.stderr
    assert _snapshot(lab) == before
    assert (served_version(lab.staging), served_version(lab.production)) == served


def test_everything_survives_down_and_up(lab, settled):
    before = _snapshot(lab)
    client = lab.client()
    runs_before = {
        r.info.run_id
        for r in client.search_runs(
            [e.experiment_id for e in client.search_experiments()], max_results=1000
        )
    }
    versions_before = {v.version for v in client.search_model_versions(f"name='{lab.model_name}'")}
    r = lab.make("down")
    assert r.returncode == 0, r.stderr[-3000:]
    t0 = time.monotonic()
    r = lab.make("up")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    print(f"second make up took {time.monotonic() - t0:.0f}s")
    assert "running the bootstrap pipeline" not in r.stderr
    client = lab.client()
    runs_after = {
        r.info.run_id
        for r in client.search_runs(
            [e.experiment_id for e in client.search_experiments()], max_results=1000
        )
    }
    assert runs_before <= runs_after
    assert versions_before == {
        v.version for v in client.search_model_versions(f"name='{lab.model_name}'")
    }
    assert _snapshot(lab) == before
    wait_version(lab.production, before["aliases"]["production"])


REPOSITORIES = ("mlflow", "serving", "training", "gatekeeper", "loadtests")


def _tag_as_another_commit(lab, source: str, target: str) -> None:
    """The lab's images under another commit's tag, through the registry's API: a model
    trained "from" that commit is served by a container on another image reference."""
    for repo in REPOSITORIES:
        base = f"{lab.registry}/v2/mlops-lab/{repo}/manifests"
        r = requests.get(
            f"{base}/{source}",
            headers={"Accept": MANIFEST_ACCEPT},
            auth=registry_auth(),
            timeout=30,
        )
        assert r.status_code == 200, (repo, source, r.status_code)
        put = requests.put(
            f"{base}/{target}",
            data=r.content,
            headers={"Content-Type": r.headers["Content-Type"]},
            auth=registry_auth(),
            timeout=30,
        )
        assert put.status_code == 201, (repo, put.status_code, put.text[:200])


def test_a_promotion_across_two_commits_under_load_fails_nothing_and_never_goes_back(
    lab, docker_only, settled
):
    """Production changes commit (a new image) while clients call it: the new version is
    started and checked on the idle colour, then the proxy switches in one event."""
    from tests.support.load import Load

    client = lab.client()
    before = settled["production"]
    sha = client.get_model_version(lab.model_name, before).tags["git_sha"]
    other = f"{sha[:20]}-next{int(time.time()) % 100000}"
    _tag_as_another_commit(lab, sha, other)
    live_before = faults.live_production()
    to_staging(lab, f"GIT_SHA={other}")
    candidate = lab.aliases()["staging"]
    assert client.get_model_version(lab.model_name, candidate).tags["git_sha"] == other
    with Load(lab.production, clients=3) as load:
        time.sleep(1)
        r = lab.make("promote", "TO=production")
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        time.sleep(2)
    assert load.failed() == {}, load.report("promotion across commits")
    for seen in load.by_client:  # no client sees the older version after the newer one
        assert seen and seen[-1] == candidate
        assert candidate not in seen or before not in seen[seen.index(candidate) :], seen
    live = faults.live_production()
    assert live != live_before
    image = compose("ps", "--format", "{{.Image}}", live).strip()
    assert image.endswith(f":{other}"), image
    assert served_version(lab.production) == candidate


def test_a_local_production_change_is_checked_first_and_switches_in_one_event(lab, settled):
    """Local mode: the new version is smoke-tested on a second server before production
    changes; then the production server is replaced without a gap, every worker at once:
    no failed request, and no client gets the older version after the newer one."""
    if lab.mode != "local":
        pytest.skip("docker mode: the promotion across two commits checks the same")
    from tests.support.load import Load

    before = settled["production"]
    to_staging(lab)
    candidate = lab.aliases()["staging"]
    assert candidate != before
    with Load(lab.production, clients=3) as load:
        time.sleep(1)
        r = lab.make("promote", "TO=production")
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        time.sleep(2)
    output = r.stdout + r.stderr
    assert f"starting a production server on version {candidate} to check it" in output, output
    assert f"switching production to version {candidate}" in output, output
    assert load.failed() == {}, load.report("local promotion")
    for seen in load.by_client:
        assert seen and seen[0] == before and seen[-1] == candidate, seen
        assert before not in seen[seen.index(candidate) :], seen
    assert served_version(lab.production) == candidate
