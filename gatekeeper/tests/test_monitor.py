"""The drift check's reading of the capture folder, and its reports (unit)."""

import json
import re

import numpy as np
import pytest

from gatekeeper import drift, monitor

FEATURES = ["a", "b"]


def write_lines(path, records):
    with open(path, "a", encoding="utf-8") as f:
        for rec in records:
            f.write((rec if isinstance(rec, str) else json.dumps(rec)) + "\n")


def rec(t, version, rows, features=FEATURES, alias="production"):
    return {
        "t": t,
        "alias": alias,
        "version": version,
        "features": features,
        "rows": rows,
        "predictions": [0] * len(rows),
    }


def test_the_window_is_the_latest_rows_of_that_version_across_files(tmp_path):
    write_lines(tmp_path / "production-h-1-1.jsonl", [rec(1, "3", [[1, 1]]), rec(3, "3", [[3, 3]])])
    write_lines(
        tmp_path / "production-h-2-1.jsonl",
        [rec(2, "3", [[2, 2], [2.5, 2.5]]), rec(4, "4", [[9, 9]]), rec(5, "3", [[5, 5]])],
    )
    write_lines(tmp_path / "staging-h-1-1.jsonl", [rec(6, "3", [[7, 7]], alias="staging")])
    w = monitor.read_window(tmp_path, "production", "3", max_rows=3)
    assert w.rows.tolist() == [[2.5, 2.5], [3, 3], [5, 5]]  # oldest first, latest three
    assert w.features == FEATURES and w.files == 2 and (w.first_t, w.last_t) == (2, 5)
    everything = monitor.read_window(tmp_path, "production", "3", max_rows=100)
    assert len(everything.rows) == 5


def test_broken_lines_are_skipped_and_counted(tmp_path):
    write_lines(
        tmp_path / "production-h-1-1.jsonl",
        [
            rec(1, "3", [[1, 1]]),
            '{"t": 2, "version": "3", "feat',  # a server stopped mid-write
            rec(3, "3", [[1, 2, 3]]),  # rows that do not match their features
            "[]",
            {**rec(3.1, "3", [[1, 1]]), "rows": [["x", 1]]},  # not numbers
            {**rec(3.2, "3", [[1, 1]]), "rows": [[[1], [1]]]},  # nested deeper
            {**rec(3.3, "3", [[1, 1]]), "predictions": [0, 1]},  # predictions not paired
            '{"t": NaN, "version": "3", "features": ["a", "b"], "rows": [[1, 1]], '
            '"predictions": [0]}',
            rec(4, "3", [[4, 4]]),
        ],
    )
    w = monitor.read_window(tmp_path, "production", "3", max_rows=10)
    assert w.rows.tolist() == [[1, 1], [4, 4]] and w.skipped_lines == 7


def test_rows_of_another_model_under_the_same_version_number_are_left_out(tmp_path):
    write_lines(
        tmp_path / "production-h-1-1.jsonl",
        [
            {**rec(1, "3", [[1, 1]]), "run": "old-lab"},  # a lab restored over this folder
            {**rec(2, "3", [[2, 2]]), "run": "r3"},
            rec(3, "3", [[3, 3]]),  # written before lines carried the run
        ],
    )
    w = monitor.read_window(tmp_path, "production", "3", max_rows=10, run_id="r3")
    assert w.rows.tolist() == [[2, 2], [3, 3]]


def test_rows_under_other_features_are_left_out(tmp_path):
    write_lines(
        tmp_path / "production-h-1-1.jsonl",
        [rec(1, "3", [[1, 1, 1]], features=["a", "b", "c"]), rec(2, "3", [[2, 2]])],
    )
    w = monitor.read_window(tmp_path, "production", "3", max_rows=10)
    assert w.features == FEATURES and w.rows.tolist() == [[2, 2]]


def test_a_missing_folder_is_an_empty_window(tmp_path):
    w = monitor.read_window(tmp_path / "nope", "production", "3", max_rows=10)
    assert w.rows.shape == (0, 0) and w.files == 0


PROFILE = {"format": 1, "dataset": "iris", "shift": "", "classes": {"x": 0.5, "y": 0.5}}


def report_for(shifted: bool) -> dict:
    rng = np.random.default_rng(0)
    ref = {"a": rng.normal(0, 1, 200), "b": rng.normal(5, 1, 200)}
    cur = {"a": rng.normal(0, 1, 300), "b": rng.normal(5, 1, 300) + (2 if shifted else 0)}
    result = drift.compare(ref, cur)
    window = monitor.Window(FEATURES, np.zeros((300, 2)), [0] * 200 + [1] * 100, 2, 0, 0, 60)
    return monitor.document("m", "7", PROFILE, window, result, "2026-11-26T10:00:00+00:00")


def test_the_reports_say_the_verdict_and_name_the_drifted_feature():
    doc = report_for(shifted=True)
    assert doc["verdict"] == "drift" and doc["drifted_features"] == ["b"]
    assert doc["predictions"] == {
        "x": {"reference": 0.5, "window": pytest.approx(2 / 3, abs=1e-6)},
        "y": {"reference": 0.5, "window": pytest.approx(1 / 3, abs=1e-6)},
    }
    md = monitor.to_markdown(doc)
    assert "**DRIFT**" in md and re.search(r"\| b \| [0-9.]+ .* \| \*\*yes\*\* \|", md)
    page = monitor.to_html(doc)
    assert "Drift: b" in page and page.count("<svg") == 2 and "<script" not in page
    assert 'class="verdict drift"' in page
    calm = report_for(shifted=False)
    assert calm["verdict"] == "no drift" and "No drift" in monitor.to_html(calm)
    json.dumps(doc)


def test_the_reports_are_written_side_by_side(tmp_path):
    files = monitor.write(tmp_path / "drift", report_for(shifted=True))
    assert [f.name for f in files] == ["drift.json", "drift.md", "drift.html"]
    assert json.loads(files[0].read_text())["verdict"] == "drift"
