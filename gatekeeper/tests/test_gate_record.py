"""What `gate` records on the version it judged, on an in-memory registry client (unit).

The measurement itself (download, latency, held-out metrics) is replaced by fixed
evidence: these tests are about the tags written from it.
"""

import dataclasses
import json

import pytest

from gatekeeper import holdout, lifecycle
from gatekeeper.config import GateConfig
from gatekeeper.decide import Evidence, Thresholds

# Not the defaults, so that a tag written from Thresholds() instead is caught.
STRICT = Thresholds(min_accuracy=0.97, max_p99_latency_ms=7.5, max_regression=0.0)
MODEL_SHA256 = "f" * 64  # the model's files: must not be taken for the held-out set's


@pytest.fixture
def gate(fake_client, monkeypatch, tmp_path):
    """gate() on version 1 with the evidence given; returns the tags in the order written."""

    class Client(fake_client):
        def __init__(self, *args):
            super().__init__(*args)
            self.written: list[str] = []

        def set_model_version_tag(self, name, version, key, value):
            self.written.append(key)
            super().set_model_version_tag(name, version, key, value)

        def log_artifact(self, run_id, path, artifact_path=None):
            pass

    def run(evidence: Evidence) -> tuple[dict[str, str], list[str]]:
        monkeypatch.setattr(lifecycle, "collect", lambda client, cfg, version: (evidence, "run1"))
        client = Client({"1": {}}, {"candidate": "1"})
        cfg = GateConfig(model_name="m", thresholds=STRICT, report_dir=str(tmp_path))
        lifecycle.gate(client, cfg)
        return client.versions["1"], client.written

    return run


def measured(held_out: dict) -> Evidence:
    metrics = {"accuracy": 0.99, "precision_macro": 0.99, "f1_macro": 0.99}
    metrics.update({f"recall_class_{i}": 0.99 for i in range(3)})
    return Evidence(
        metrics=metrics,
        p99_latency_ms=1.0,
        model_size_mb=0.1,
        sha256=MODEL_SHA256,
        holdout=held_out,
    )


def test_the_verdict_records_its_thresholds_and_the_held_out_sets_fingerprint(gate, tmp_path):
    held_out = holdout.load("iris")
    tags, written = gate(measured(held_out.describe()))
    assert tags["gate.verdict"] == "passed"
    assert json.loads(tags["gate.thresholds"]) == dataclasses.asdict(STRICT)
    assert tags["gate.holdout_sha256"] == held_out.sha256 != MODEL_SHA256
    # The same figures as the report the verdict was written with.
    report = json.loads((tmp_path / "gate_report.json").read_text())
    assert tags["gate.holdout_sha256"] == report["held_out_set"]["sha256"]
    # Written before the verdict: a version never reads a verdict without them.
    assert written[-1] == "gate.verdict"
    assert {"gate.thresholds", "gate.holdout_sha256"} <= set(written[:-1])


def test_a_verdict_without_a_held_out_set_records_none_for_its_fingerprint(gate):
    # As collect() finds it for a version whose dataset tag names no known data set.
    unmeasured = dataclasses.replace(
        measured({}), metrics={}, measure_error="the version's dataset tag names no data set"
    )
    tags, _ = gate(unmeasured)
    assert tags["gate.verdict"] == "failed"
    assert tags["gate.holdout_sha256"] == "none"
    assert json.loads(tags["gate.thresholds"]) == dataclasses.asdict(STRICT)
