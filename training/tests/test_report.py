"""The data-validation report: built from the rules' verdicts, written as JSON and Markdown,
and written by the job whether the data passes or not."""

import json

import pytest

from trainer import data, report, train
from trainer.config import TrainConfig

KNOBS = {"label_noise": 0.0, "null_fraction": 0.05, "duplicate_fraction": 0.0, "seed": 1}


def _failed_doc():
    ds = data.degrade(data.load("iris"), label_noise=0, null_fraction=0.05, seed=1)
    checks = data.check(ds)
    return report.build(
        ds, checks, knobs=KNOBS, git_sha="abc123", checked_at="2026-01-01T00:00:00+00:00"
    ), ds


def test_a_failed_report_names_the_rule_and_carries_its_evidence():
    doc, ds = _failed_doc()
    assert doc["verdict"] == "failed"
    assert doc["failed_checks"] == ["missing_values"]
    assert doc["fingerprint"] == data.fingerprint(ds)
    assert doc["knobs"] == KNOBS
    assert (doc["dataset"], doc["rows"], doc["columns"]) == ("iris", 150, 4)
    assert (doc["git_sha"], doc["checked_at"]) == ("abc123", "2026-01-01T00:00:00+00:00")
    failed = next(c for c in doc["checks"] if c["name"] == "missing_values")
    assert failed["passed"] is False and "missing values" in failed["detail"]
    json.dumps(doc)  # JSON-ready as it is


def test_a_passing_report_has_every_rule_passed():
    ds = data.load("wine")
    doc = report.build(ds, data.check(ds), knobs={}, git_sha="x", checked_at="t")
    assert doc["verdict"] == "passed" and doc["failed_checks"] == []
    assert {c["passed"] for c in doc["checks"]} == {True}


def test_the_markdown_shows_each_rule_and_the_verdict(tmp_path):
    doc, _ = _failed_doc()
    j, m = report.write(tmp_path / "reports" / "data", doc)
    assert json.loads(j.read_text()) == doc
    md = m.read_text()
    assert md.startswith("# Data validation: FAILED")
    assert "| missing_values | **FAILED** |" in md
    assert "| value_ranges | not run |" in md
    assert "null_fraction=0.05" in md


def _cfg(tmp_path, **kw):
    return TrainConfig(report_dir=str(tmp_path / "data"), git_sha="abc123", **kw)


def test_the_job_leaves_a_report_when_the_data_fails(tmp_path):
    cfg = _cfg(tmp_path, null_fraction=0.05)
    ds = data.degrade(data.load("iris"), label_noise=0, null_fraction=0.05, seed=cfg.seed)
    with pytest.raises(data.DataValidationError, match=r"iris: \d+ missing values"):
        train.validate_and_report(ds, cfg, {"null_fraction": 0.05})
    doc = json.loads((tmp_path / "data" / "validation.json").read_text())
    assert doc["verdict"] == "failed" and doc["failed_checks"] == ["missing_values"]
    assert doc["git_sha"] == "abc123" and doc["knobs"] == {"null_fraction": 0.05}
    assert (tmp_path / "data" / "validation.md").is_file()


def test_the_job_leaves_a_report_when_the_data_passes(tmp_path):
    cfg = _cfg(tmp_path)
    files = train.validate_and_report(data.load("iris"), cfg, {"duplicate_fraction": 0.0})
    assert [f.name for f in files] == ["validation.json", "validation.md"]
    assert json.loads(files[0].read_text())["verdict"] == "passed"


def test_a_report_that_cannot_be_written_is_one_clear_error(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(RuntimeError, match="cannot write the data-validation report"):
        train.validate_and_report(data.load("iris"), _cfg(tmp_path), {})
