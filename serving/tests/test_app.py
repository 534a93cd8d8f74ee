"""The HTTP contract, through Flask's test client with a fixed model (unit)."""

import dataclasses
import json

import pytest


def post(client, body, content_type="application/json"):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/predict", data=data, content_type=content_type)


def test_predict_one_row_and_a_batch(client):
    r = post(client, {"instance": {"a": 2, "b": 0, "c": 1}})
    assert r.status_code == 200
    assert r.json == {"predictions": [1], "model_version": "7", "alias": "staging"}
    r = post(client, {"instances": [[0, 0, 0], [3, 0, 0]]})
    assert r.json["predictions"] == [0, 1]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        ("{not json", "application/json", 400, "not valid JSON"),
        ("", "application/json", 400, "not valid JSON"),
        ("null", "application/json", 400, "JSON object"),
        ('{"instances": [[1, 2, 3]]}', "text/plain", 415, "Content-Type"),
        ('{"instances": [[1, 2, NaN]]}', "application/json", 422, "finite"),
        ('{"instances": [[1, 2, Infinity]]}', "application/json", 422, "finite"),
        ({"instances": [[1, 2, 3]] * 6}, "application/json", 413, "exceeds the limit of 5"),
        ({"instances": [{"a": 1}]}, "application/json", 422, "missing features"),
        ({"instances": [[1, "x", 3]]}, "application/json", 422, "must be a number"),
    ],
)
def test_bad_input_gets_a_json_4xx(client, body, content_type, status, fragment):
    r = post(client, body, content_type)
    assert r.status_code == status
    assert r.is_json and fragment in r.json["error"] and r.json["status"] == status


def test_deeply_nested_json_gets_400_not_500(config, make_client):
    body = "[" * 100_000 + "]" * 100_000
    # A body limit that lets this body through, so the nesting is what gets judged.
    roomy = make_client(dataclasses.replace(config, max_body_bytes=len(body) + 1))
    r = post(roomy, body)
    assert r.status_code == 400
    assert r.json == {"error": "body is not valid JSON: nested too deeply", "status": 400}


def test_oversized_body_gets_413(client):
    r = post(client, {"instances": [[1.123456789, 2, 3]] * 400})
    assert r.status_code == 413
    assert "exceeds 4096 bytes" in r.json["error"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("get", "/nope", 404), ("get", "/predict", 405), ("put", "/model", 405)],
)
def test_routing_errors_are_json(client, method, path, status):
    r = getattr(client, method)(path)
    assert r.status_code == status and r.is_json


def test_health_ready_and_model(client):
    assert client.get("/health").json == {"status": "ok"}
    assert client.get("/ready").status_code == 200
    info = client.get("/model").json
    assert (info["version"], info["alias"], info["git_sha"]) == ("7", "staging", "abc")
    assert info["features"] == ["a", "b", "c"] and info["mlflow_reachable"] is True


def test_not_ready_until_a_model_is_loaded(empty_client):
    assert empty_client.get("/health").status_code == 200
    assert empty_client.get("/ready").status_code == 503
    assert empty_client.get("/model").status_code == 503
    r = post(empty_client, {"instances": [[1, 2, 3]]})
    assert r.status_code == 503 and "no model loaded" in r.json["error"]


def test_metrics_count_requests_and_expose_the_version(client):
    post(client, {"instances": [[1, 2, 3]]})
    post(client, {"instances": []})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'serving_requests_total{endpoint="predict",status="200"}' in text
    assert 'serving_requests_total{endpoint="predict",status="400"}' in text
    assert 'serving_model_version{alias="staging"} 7.0' in text
    assert "serving_request_duration_seconds_bucket" in text


def test_a_drained_server_hands_requests_on_but_keeps_its_health_checks(make_client, tmp_path):
    from dataclasses import replace

    from serving.config import ServingConfig

    flag = tmp_path / "drained"
    client = make_client(replace(ServingConfig(model_name="m"), drain_file=str(flag)))
    row = {"instances": [{"a": 1.0, "b": 2.0}]}
    assert client.get("/model").status_code == 200
    flag.touch()
    for r in (client.get("/model"), client.post("/predict", json=row)):
        assert r.status_code == 503 and r.headers["X-Lab-Drained"] == "1"
        assert "being retired" in r.get_json()["error"]
    for path in ("/health", "/ready", "/v2/health/live", "/v2/health/ready"):
        assert client.get(path).status_code == 200, path
    flag.unlink()
    assert client.get("/model").status_code == 200
