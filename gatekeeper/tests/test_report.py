import json

from gatekeeper import report
from gatekeeper.decide import Evidence, Thresholds, decide


def test_reports_carry_every_check_and_the_verdict(tmp_path):
    d = decide(Evidence(metrics={"accuracy": 0.5}, p99_latency_ms=1, model_size_mb=1), Thresholds())
    j = report.to_json("m", "4", d, "2026-01-01T00:00:00+00:00", Thresholds())
    md = report.to_markdown("m", "4", d, "2026-01-01T00:00:00+00:00")
    body = json.loads(j)
    assert body["verdict"] == "failed" and body["version"] == "4"
    assert [c["name"] for c in body["checks"]] == [c.name for c in d.checks]
    assert "FAILED" in md and "| accuracy | 0.5 | >= 0.85 | **FAIL** |" in md
    jp, mp = report.write(tmp_path / "out", j, md)
    assert jp.read_text() == j and mp.read_text() == md
