"""The capture of served rows: what it writes, its bounds, and that it never fails a request."""

import dataclasses
import json
import os

import numpy as np
import pytest

from serving import capture as capture_mod
from serving.capture import Capture, prune

ROWS = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def lines(folder):
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        out += [json.loads(x) for x in path.read_text().splitlines()]
    return out


def test_each_request_is_one_line_with_its_rows_predictions_and_version(tmp_path):
    c = Capture(tmp_path, "production", clock=lambda: 1000.0)
    c.record("3", ("a", "b", "c"), ROWS, [0, 1])
    c.record("4", ("a", "b", "c"), ROWS[:1], [1])
    c.close()
    got = lines(tmp_path)
    assert got[0] == {
        "t": 1000.0,
        "alias": "production",
        "version": "3",
        "features": ["a", "b", "c"],
        "rows": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
        "predictions": [0, 1],
    }
    assert got[1]["version"] == "4" and got[1]["rows"] == [[1.0, 2.0, 3.0]]
    (path,) = tmp_path.glob("*.jsonl")
    assert path.name.startswith("production-") and f"-{os.getpid()}-" in path.name


def test_a_large_batch_contributes_a_random_subset_of_its_rows(tmp_path):
    n = capture_mod.ROWS_PER_REQUEST + 5
    rows = np.arange(n * 2, dtype=float).reshape(n, 2)
    picked = []

    def pick(population, k):
        picked.append((len(population), k))
        return list(population)[-k:][::-1]  # the last k rows, out of order

    c = Capture(tmp_path, "production", pick=pick)
    c.record("3", ("a", "b"), rows, list(range(n)))
    c.record("3", ("a", "b"), rows[:2], [0, 1])  # small requests are kept whole
    c.close()
    big, small = lines(tmp_path)
    assert picked == [(n, capture_mod.ROWS_PER_REQUEST)]
    assert big["of"] == n and len(big["rows"]) == capture_mod.ROWS_PER_REQUEST
    # rows and their predictions stay paired, in the request's order
    assert big["predictions"] == list(range(5, n))
    assert big["rows"] == rows[5:].tolist()
    assert "of" not in small and small["rows"] == rows[:2].tolist()


def test_only_the_sampled_share_of_requests_is_recorded(tmp_path):
    draws = iter([0.05, 0.5, 0.09, 0.95])
    c = Capture(tmp_path, "staging", sample=0.1, draw=lambda: next(draws))
    for i in range(4):
        c.record(str(i), ("a", "b", "c"), ROWS, [0, 1])
    c.close()
    assert [x["version"] for x in lines(tmp_path)] == ["0", "2"]


def test_the_folder_stays_within_its_budget(tmp_path):
    budget = 4000
    c = Capture(tmp_path, "production", max_bytes=budget)
    for i in range(400):
        c.record(str(i), ("a", "b", "c"), ROWS, [0, 1])
    c.close()
    total = sum(p.stat().st_size for p in tmp_path.glob("*.jsonl"))
    assert total <= budget + budget // capture_mod.FILES_PER_BUDGET
    kept = lines(tmp_path)
    assert kept[-1]["version"] == "399"  # the newest rows are the ones kept
    assert len({p.name for p in tmp_path.glob("*.jsonl")}) > 1


def test_pruning_deletes_the_oldest_files_of_that_alias_only(tmp_path):
    for i, name in enumerate(["production-a", "production-b", "staging-a", "production-c"]):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("x" * 100)
        os.utime(path, (1000 + i, 1000 + i))
    removed = prune(tmp_path, "production", 150)
    assert [p.name for p in removed] == ["production-a.jsonl", "production-b.jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["production-c.jsonl", "staging-a.jsonl"]


def test_a_folder_that_cannot_be_written_never_fails_the_request(tmp_path, caplog):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    now = [1000.0]
    c = Capture(blocked / "capture", "production", clock=lambda: now[0])
    c.record("1", ("a", "b", "c"), ROWS, [0, 1])  # no exception
    c.record("1", ("a", "b", "c"), ROWS, [0, 1])
    stopped = [r.getMessage() for r in caplog.records if "stopped" in r.getMessage()]
    assert len(stopped) == 1 and stopped[0].endswith("(requests are served as usual)")
    blocked.unlink()
    now[0] += 61  # retried after a minute, and resumes
    c.record("2", ("a", "b", "c"), ROWS, [0, 1])
    c.close()
    assert [x["version"] for x in lines(blocked / "capture")] == ["2"]


def test_a_forked_worker_writes_its_own_file(tmp_path, monkeypatch):
    c = Capture(tmp_path, "production")
    c.record("1", ("a", "b", "c"), ROWS, [0, 1])
    monkeypatch.setattr(capture_mod.os, "getpid", lambda: 424242)
    c.record("1", ("a", "b", "c"), ROWS, [0, 1])
    c.close()
    names = sorted(p.name for p in tmp_path.glob("*.jsonl"))
    assert len(names) == 2 and any("-424242-" in n for n in names)


def test_the_server_records_what_it_answered_and_not_what_it_refused(config, make_client, tmp_path):
    client = make_client(dataclasses.replace(config, capture_dir=str(tmp_path)))
    r = client.post("/predict", json={"instances": [[0, 0, 0], [3, 0, 0]]})
    assert r.status_code == 200
    client.post("/predict", json={"instances": [[1, "x", 3]]})  # 422: not captured
    client.application.extensions["capture"].close()
    (line,) = lines(tmp_path)
    assert line["rows"] == [[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]]
    assert line["predictions"] == r.json["predictions"] == [0, 1]
    assert line["version"] == "7" and line["alias"] == "staging" and line["run"] == "r"


def test_requests_marked_as_tests_are_answered_and_not_recorded(config, make_client, tmp_path):
    client = make_client(dataclasses.replace(config, capture_dir=str(tmp_path)))
    off = {"X-Lab-Capture": "off"}
    assert client.post("/predict", json={"instances": [[9, 0, 0]]}, headers=off).status_code == 200
    assert client.post("/predict", json={"instances": [[0, 0, 0]]}).status_code == 200
    client.application.extensions["capture"].close()
    assert [x["rows"] for x in lines(tmp_path)] == [[[0.0, 0.0, 0.0]]]


def test_a_process_whose_open_file_was_pruned_starts_a_new_one(tmp_path):
    now = [1000.0]
    c = Capture(tmp_path, "production", clock=lambda: now[0])
    c.record("1", ("a", "b", "c"), ROWS, [0, 1])
    (first,) = tmp_path.glob("*.jsonl")
    first.unlink()  # another worker's prune
    c.record("2", ("a", "b", "c"), ROWS, [0, 1])  # within the second: still the old file
    now[0] += 1.5
    c.record("3", ("a", "b", "c"), ROWS, [0, 1])  # notices, closes
    c.record("4", ("a", "b", "c"), ROWS, [0, 1])  # and writes to a new file
    c.close()
    assert [x["version"] for x in lines(tmp_path)] == ["4"]


def test_without_a_folder_nothing_is_recorded(client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert client.post("/predict", json={"instances": [[0, 0, 0]]}).status_code == 200
    assert list(tmp_path.iterdir()) == []


def test_a_sample_share_of_zero_records_nothing(config, make_client, tmp_path):
    client = make_client(dataclasses.replace(config, capture_dir=str(tmp_path), capture_sample=0))
    assert client.post("/predict", json={"instances": [[0, 0, 0]]}).status_code == 200
    assert client.application.extensions["capture"] is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "x"])
def test_a_capture_budget_that_is_not_a_positive_number_is_a_config_error(value):
    from serving.config import ConfigError, ServingConfig

    with pytest.raises(ConfigError, match="SERVING_CAPTURE_MAX_MB"):
        ServingConfig.from_env({"SERVING_CAPTURE_MAX_MB": value})


@pytest.mark.parametrize("value", ["1.5", "-0.1", "x"])
def test_a_sample_share_out_of_range_is_a_config_error(value):
    from serving.config import ConfigError, ServingConfig

    with pytest.raises(ConfigError, match="SERVING_CAPTURE_SAMPLE"):
        ServingConfig.from_env({"SERVING_CAPTURE_SAMPLE": value})
