"""The closed loop on the running lab, in either mode: the servers record what they serve,
`make traffic` sends them dataset rows, `make drift` compares production's window with its
training data, `make retrain-on-drift` retrains on the shifted window only on drift, and
production can require a person's approval (`make approve`)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.labtools import ROOT, promote_new_candidate, wait_version

pytestmark = pytest.mark.e2e

SHIFT = "petal length (cm)=+1.5"
WINDOW = "TRAFFIC_ROWS=1000"  # the whole window the check reads (DRIFT_WINDOW_ROWS)


def report() -> dict:
    return json.loads((ROOT / "reports" / "drift" / "drift.json").read_text(encoding="utf-8"))


def ok(r) -> None:
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


@pytest.fixture
def profiled(lab, settled) -> dict[str, str]:
    """The aliases, once production serves a version trained on the unshifted dataset
    whose run logged a reference profile.

    A lab upgraded from a release before profiles has none, and a lab where the loop ran
    serves a model trained on shifted data: then a new candidate goes through the line
    first, as `make drift`'s message tells a student to do.
    """
    mv = lab.client().get_model_version(lab.model_name, settled["production"])
    artifacts = lab.client().list_artifacts(mv.run_id, "reference")
    if not mv.tags.get("train_shift") and any(a.path.endswith("profile.json") for a in artifacts):
        return settled
    wait_version(lab.production, promote_new_candidate(lab))
    return lab.aliases()


def test_ordinary_traffic_does_not_drift(lab, profiled):
    ok(lab.make("traffic", WINDOW))
    checked = lab.make("drift")
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    doc = report()
    assert doc["verdict"] == "no drift" and doc["version"] == profiled["production"]
    assert doc["window"]["rows"] == 1000 and doc["reference"]["rows"] > 0


def test_shifted_traffic_drifts_and_the_approved_retrain_fits_the_new_data(lab, profiled):
    """The scheduled workflow's path: drift, the line retrains up to staging, production
    waits for a person's approval, then the alarm is gone."""
    before = profiled["production"]
    ok(lab.make("traffic", f"SHIFT={SHIFT}", WINDOW))
    checked = lab.make("drift")
    # make folds every failure into its own 2; the job's code is on the last line.
    assert checked.returncode != 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert "drift` exited with 1" in checked.stderr, checked.stderr[-2000:]
    assert "DRIFT" in checked.stderr and "petal length (cm)" in report()["drifted_features"]

    ok(lab.make("retrain-on-drift", f"SHIFT={SHIFT}", "TO=staging"))
    after = lab.aliases()["staging"]
    assert int(after) > int(before) and lab.aliases()["production"] == before
    tags = lab.client().get_model_version(lab.model_name, after).tags
    assert tags["train_shift"] == SHIFT and tags["gate.verdict"] == "passed"
    # The gate measured both on held-out rows shifted the same way: the new model beats the
    # one it replaced on the data production now sees.
    gate = json.loads((ROOT / "reports" / "gate" / "gate_report.json").read_text())
    assert gate["version"] == after and gate["held_out_set"]["shift"] == SHIFT
    assert gate["measured"]["accuracy"] > gate["production"]["measured"]["accuracy"]

    refused = lab.make("promote", "TO=production", PROMOTE_REQUIRE_APPROVAL="1")
    assert refused.returncode != 0
    assert f"make approve VERSION={after}" in refused.stderr, refused.stderr[-2000:]
    assert lab.aliases()["production"] == before
    ok(lab.make("approve", "VERSION=staging", "BY=e2e-reviewer"))
    ok(lab.make("promote", "TO=production", PROMOTE_REQUIRE_APPROVAL="1"))
    assert lab.aliases()["production"] == after
    tags = lab.client().get_model_version(lab.model_name, after).tags
    assert tags["approval.by"] == "e2e-reviewer"
    assert tags["promoted.production.approved_by"] == "e2e-reviewer"

    # The new model's reference includes the shift: the same traffic no longer drifts.
    wait_version(lab.production, after)
    ok(lab.make("traffic", f"SHIFT={SHIFT}", WINDOW))
    checked = lab.make("drift")
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert report()["version"] == after
