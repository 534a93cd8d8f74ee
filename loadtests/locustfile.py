"""Load test for the model servers, and a latency gate on its result.

    locust -f loadtests/locustfile.py --config loadtests/locust.conf --host http://127.0.0.1:8081

Rows are generated from the feature names the server reports on /model, so the same file
loads any dataset the lab trains. Thresholds (LOAD_MAX_P95_MS, LOAD_MAX_P99_MS,
LOAD_MAX_FAILURE_RATIO) decide the exit code in the `quitting` listener, the documented
way to make Locust a gate: https://docs.locust.io/en/stable/extending-locust.html
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import requests
from locust import HttpUser, between, events, task

from loadgate.thresholds import LoadThresholds, Summary, markdown, violations

BATCH_ROWS = int(os.environ.get("LOAD_BATCH_ROWS", "32"))
FEATURES: list[str] = []
# What the server said it served when the run began: the result is recorded on that
# version (make load), so a run during which the server switched models proves nothing.
SERVED: dict[str, str] = {}


@events.init.add_listener
def _preflight(environment, **_kwargs):
    """Fail before any load on a bad threshold or a server that cannot say its features.

    Locust treats an exception in an init listener as fatal (exit 1, already logged), so
    a misconfiguration never looks like a latency failure after a full run.
    """
    LoadThresholds.from_env()
    host = (environment.host or "").rstrip("/")
    r = requests.get(f"{host}/model", timeout=10)
    r.raise_for_status()
    body = r.json()
    FEATURES[:] = body["features"]
    SERVED.update(
        version=str(body.get("version", "")),
        sha256=str(body.get("sha256", "")),
        alias=str(body.get("alias", "")),
    )


def _served_now(host: str) -> str:
    try:
        return str(requests.get(f"{host.rstrip('/')}/model", timeout=10).json().get("version"))
    except (requests.RequestException, ValueError, AttributeError):
        return "unknown"


# Made-up rows: the servers leave them out of what they record for the drift check.
NO_CAPTURE = {"X-Lab-Capture": "off"}


def _row() -> dict[str, float]:
    return {f: round(random.uniform(0.0, 8.0), 2) for f in FEATURES}


class PredictUser(HttpUser):
    wait_time = between(0.0, float(os.environ.get("LOAD_MAX_WAIT_S", "0.1")))

    def _predict(self, rows: list[dict], name: str) -> None:
        with self.client.post(
            "/predict",
            json={"instances": rows},
            name=name,
            headers=NO_CAPTURE,
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:120]}")
                return
            try:
                predictions = resp.json()["predictions"]
            except (ValueError, KeyError):
                resp.failure("response has no predictions")
                return
            if len(predictions) != len(rows):
                resp.failure(f"{len(predictions)} predictions for {len(rows)} rows")

    @task(8)
    def predict_one(self) -> None:
        self._predict([_row()], "/predict [1 row]")

    @task(2)
    def predict_batch(self) -> None:
        self._predict([_row() for _ in range(BATCH_ROWS)], f"/predict [{BATCH_ROWS} rows]")

    @task(1)
    def model_info(self) -> None:
        self.client.get("/model", name="/model")


@events.quitting.add_listener
def _latency_gate(environment, **_kwargs):
    total = environment.stats.total
    summary = Summary(
        requests=total.num_requests,
        failures=total.num_failures,
        p50_ms=total.get_response_time_percentile(0.5) or 0.0,
        p95_ms=total.get_response_time_percentile(0.95) or 0.0,
        p99_ms=total.get_response_time_percentile(0.99) or 0.0,
        rps=total.total_rps,
    )
    thresholds = LoadThresholds.from_env()
    broken = violations(summary, thresholds)
    now_serving = _served_now(environment.host or "")
    if SERVED.get("version") and now_serving != SERVED["version"]:
        broken.append(
            f"the server switched from version {SERVED['version']} to {now_serving} during "
            "the run: the figures mix two models"
        )
    report = markdown(summary, thresholds, broken)
    out = os.environ.get("LOAD_REPORT_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "latency_gate.md").write_text(report)
        (Path(out) / "latency_gate.json").write_text(
            json.dumps(
                {
                    "passed": not broken,
                    "violations": broken,
                    "version": SERVED.get("version", ""),
                    "model_sha256": SERVED.get("sha256", ""),
                    "alias": SERVED.get("alias", ""),
                    **summary.__dict__,
                    "failure_ratio": summary.failure_ratio,
                    "thresholds": thresholds.__dict__,
                },
                indent=2,
            )
        )
    print(report)
    if broken:
        print("latency gate FAILED: " + "; ".join(broken))
        environment.process_exit_code = 1
    else:
        print("latency gate passed")
        environment.process_exit_code = 0
