"""The Open Inference Protocol (KServe V2) routes, through Flask's test client (unit)."""

import dataclasses
import json
import tomllib
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from serving.app import create_app
from serving.openinference import SERVER_VERSION, output_tensor

from .conftest import StaticHolder, fake_model

INFER = "/v2/models/m/infer"


def infer(client, body, path=INFER, content_type="application/json", headers=None):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type=content_type, headers=headers)


def tensor(name, shape, data, datatype="FP64"):
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def columns_client(config):
    """A model that answers each row's values as one number (a*100 + b*10 + c), so a test
    sees which value reached which column."""
    model = dataclasses.replace(
        fake_model(), predict=lambda rows: (rows @ [100.0, 10.0, 1.0]).tolist()
    )
    return create_app(config, holder=StaticHolder(model)).test_client()


# ---------------------------------------------------------------- health and metadata


def test_server_live_and_server_metadata(client):
    assert client.get("/v2/health/live").json == {"live": True}
    r = client.get("/v2")
    assert r.status_code == 200
    assert r.json == {"name": "mlops-lab-serving", "version": "0.1.0", "extensions": []}


def test_server_metadata_version_is_the_package_version():
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    assert tomllib.loads(pyproject.read_text())["project"]["version"] == SERVER_VERSION


def test_server_ready_only_once_a_model_is_loaded(client, empty_client):
    r = client.get("/v2/health/ready")
    assert (r.status_code, r.json) == (200, {"ready": True})
    r = empty_client.get("/v2/health/ready")
    assert (r.status_code, r.json) == (503, {"ready": False})
    assert empty_client.get("/v2/health/live").status_code == 200


@pytest.mark.parametrize("path", ["/v2/models/m", "/v2/models/m/versions/7"])
def test_model_metadata_describes_one_input_per_feature_and_the_output(client, path):
    r = client.get(path)
    assert r.status_code == 200
    assert r.json == {
        "name": "m",
        "versions": ["7"],
        "platform": "sklearn_mlflow",
        "inputs": [
            {"name": "a", "datatype": "FP64", "shape": [-1]},
            {"name": "b", "datatype": "FP64", "shape": [-1]},
            {"name": "c", "datatype": "INT64", "shape": [-1]},
        ],
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
    }


def test_model_metadata_output_datatype_follows_the_predictions(config):
    labels = dataclasses.replace(fake_model(), predict=lambda rows: ["setosa"] * len(rows))
    client = create_app(config, holder=StaticHolder(labels)).test_client()
    assert client.get("/v2/models/m").json["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1]}
    ]


@pytest.mark.parametrize("path", ["/v2/models/m/ready", "/v2/models/m/versions/7/ready"])
def test_model_ready_names_the_model(client, empty_client, path):
    r = client.get(path)
    assert (r.status_code, r.json) == (200, {"name": "m", "ready": True})
    r = empty_client.get(path)
    assert (r.status_code, r.json) == (503, {"name": "m", "ready": False})


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v2/models/other"),
        ("get", "/v2/models/other/versions/7"),
        ("get", "/v2/models/other/ready"),
        ("post", "/v2/models/other/infer"),
        ("post", "/v2/models/other/versions/7/infer"),
    ],
)
def test_an_unknown_model_name_gets_404_naming_the_served_model(client, method, path):
    r = getattr(client, method)(path, json={"inputs": [tensor("x", [1, 3], [1, 2, 3])]})
    assert r.status_code == 404
    assert r.json == {"error": "unknown model 'other': this server serves 'm'"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v2/models/m/versions/6"),
        ("get", "/v2/models/m/versions/6/ready"),
        ("post", "/v2/models/m/versions/6/infer"),
    ],
)
def test_a_version_not_served_gets_404_naming_the_served_version(client, method, path):
    r = getattr(client, method)(path, json={"inputs": [tensor("x", [1, 3], [1, 2, 3])]})
    assert r.status_code == 404
    assert r.json == {"error": "version '6' of 'm' is not served: this server serves version '7'"}


@pytest.mark.parametrize(("method", "path"), [("get", "/v2/models/m"), ("post", INFER)])
def test_metadata_and_inference_get_503_until_a_model_is_loaded(empty_client, method, path):
    r = getattr(empty_client, method)(path, json={"inputs": [tensor("x", [1, 3], [1, 2, 3])]})
    assert r.status_code == 503
    assert r.json == {"error": "no model loaded for @staging yet"}


# ---------------------------------------------------------------- inference


def test_infer_one_tensor_with_flat_data(client):
    r = infer(client, {"inputs": [tensor("input-0", [2, 3], [0, 0, 0, 3, 0, 0])]})
    assert r.status_code == 200
    assert r.json == {
        "model_name": "m",
        "model_version": "7",
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [2], "data": [0, 1]}],
    }


def test_infer_one_tensor_with_nested_data_echoes_the_id(client):
    body = {"id": "42", "inputs": [tensor("input-0", [2, 3], [[0, 0, 0], [3, 0, 0]])]}
    r = infer(client, body, path="/v2/models/m/versions/7/infer")
    assert r.status_code == 200
    assert r.json["id"] == "42" and r.json["outputs"][0]["data"] == [0, 1]


def test_one_tensor_takes_the_features_in_signature_order(config):
    r = infer(columns_client(config), {"inputs": [tensor("x", [2, 3], [1, 2, 3, 4, 5, 6])]})
    assert r.json["outputs"] == [
        {"name": "predict", "datatype": "FP64", "shape": [2], "data": [123.0, 456.0]}
    ]


def test_one_tensor_per_feature_in_any_order_with_shape_n_or_n_by_1(config):
    body = {
        "inputs": [
            tensor("c", [2, 1], [[3], [6]], "INT64"),
            tensor("a", [2], [1, 4]),
            tensor("b", [2, 1], [2, 5], "FP32"),
        ]
    }
    r = infer(columns_client(config), body)
    assert r.status_code == 200
    assert r.json["outputs"][0]["data"] == [123.0, 456.0]


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("BOOL", [True, False, True]),
        ("UINT8", [1, 0, 255]),
        ("INT8", [-128, 0, 127]),
        ("INT16", [1, 0, 1]),
        ("UINT64", [1, 0, 2**64 - 1]),
        ("FP16", [1.5, 0, 1]),
        ("FP32", [1.5, 0.25, 1.0]),
    ],
)
def test_every_numeric_datatype_is_accepted(client, datatype, values):
    r = infer(client, {"inputs": [tensor("x", [1, 3], values, datatype)]})
    assert r.status_code == 200, r.json
    assert r.json["outputs"][0]["shape"] == [1]


def test_requesting_the_predict_output_and_parameters_are_accepted(client):
    body = {
        "parameters": {"content_type": "np"},
        "inputs": [{**tensor("x", [1, 3], [2, 0, 0]), "parameters": {"content_type": "np"}}],
        "outputs": [{"name": "predict", "parameters": {"binary_data": False}}],
    }
    r = infer(client, body)
    assert r.status_code == 200 and r.json["outputs"][0]["data"] == [1]


def test_served_rows_are_captured_and_counted(config, tmp_path):
    config = dataclasses.replace(config, capture_dir=str(tmp_path))
    client = create_app(config, holder=StaticHolder(fake_model())).test_client()
    before = REGISTRY.get_sample_value("serving_predicted_rows_total") or 0.0
    infer(client, {"inputs": [tensor("x", [2, 3], [0, 0, 0, 3, 0, 0])]})
    infer(client, {"inputs": [tensor("x", [1, 3], [9, 9, 9])]}, headers={"X-Lab-Capture": "off"})
    infer(client, {"inputs": [tensor("x", [1, 3], [1, 2, float("nan")])]})  # 400: not captured
    client.application.extensions["capture"].close()
    lines = [json.loads(x) for f in tmp_path.glob("*.jsonl") for x in f.read_text().splitlines()]
    assert [(x["rows"], x["predictions"]) for x in lines] == [([[0, 0, 0], [3, 0, 0]], [0, 1])]
    assert REGISTRY.get_sample_value("serving_predicted_rows_total") == before + 3
    text = client.get("/metrics").get_data(as_text=True)
    assert 'serving_requests_total{endpoint="v2_infer",status="200"}' in text


# ---------------------------------------------------------------- bad input


def one(values, shape=(1, 3), datatype="FP64", name="x"):
    return {"inputs": [tensor(name, list(shape), values, datatype)]}


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        # the body
        ("{not json", 400, "body is not valid JSON"),
        ("", 400, "body is not valid JSON"),
        ("[1, 2]", 400, "body must be a JSON object"),
        ({}, 400, '"inputs" must be a non-empty list'),
        ({"inputs": []}, 400, '"inputs" must be a non-empty list'),
        ({"instances": [[1, 2, 3]]}, 400, "unknown keys ['instances']"),
        ({**one([1, 2, 3]), "id": 42}, 400, '"id" must be a string'),
        ({**one([1, 2, 3]), "parameters": [1]}, 400, '"parameters" must be an object'),
        ({**one([1, 2, 3]), "outputs": "predict"}, 400, '"outputs" must be a list'),
        ({**one([1, 2, 3]), "outputs": [{"name": "proba"}]}, 400, "unknown output 'proba'"),
        # a tensor
        ({"inputs": [[1, 2, 3]]}, 400, "inputs[0] must be an object"),
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64"}]}, 400, "binary"),
        ({"inputs": [{**tensor("x", [1, 3], [1, 2, 3]), "raw": 1}]}, 400, "unknown keys ['raw']"),
        (one(["a", "b", "c"], datatype="BYTES"), 400, "datatype BYTES is not accepted"),
        (one([1, 2, 3], datatype="FLOAT64"), 400, "unknown datatype 'FLOAT64'"),
        (one([1, 2, 3], shape=(-1, 3)), 400, '"shape" must be a list of non-negative integers'),
        ({"inputs": [tensor("x", "1x3", [1, 2, 3])]}, 400, '"shape" must be a list'),
        (one({"a": 1}), 400, '"data" must be a list, got dict'),
        # shape against data, and against the model
        (one([1, 2, 3, 4]), 400, "data has 4 values, shape [1, 3] needs 3"),
        (one([[1, 2, 3], [4, 5, 6]]), 400, "data has 2 rows, shape [1, 3] needs 1"),
        (one([[1, 2]]), 400, "data row 0 has 2 values, shape [1, 3] needs 3"),
        (one([[1, 2, [3]]]), 400, "nested deeper than shape"),
        (one([[1, 2, 3], 4, 5, 6], shape=(2, 3)), 400, "flat list of 6 values, or nested"),
        (one([1, 2, 3, 4], shape=(2, 2)), 400, "send one tensor of shape [N, 3]"),
        (one([1, 2, 3], shape=(1, 3, 1)), 400, "send one tensor of shape [N, 3]"),
        (one([], shape=(0, 3)), 400, "has no rows"),
        (one([1, 2, 3] * 6, shape=(6, 3)), 413, "batch of 6 rows exceeds the limit of 5"),
        # one tensor per feature
        ({"inputs": [tensor("a", [1], [1]), tensor("b", [1], [2])]}, 400, "missing features ['c']"),
        (
            {"inputs": [tensor(n, [1], [1]) for n in ("a", "b", "c", "d")]},
            400,
            "unknown inputs ['d']",
        ),
        (
            {"inputs": [tensor(n, [1], [1]) for n in ("a", "a", "b", "c")]},
            400,
            "inputs named more than once: ['a']",
        ),
        (
            {"inputs": [tensor("a", [1], [1]), tensor("b", [2], [1, 2]), tensor("c", [1], [1])]},
            400,
            "inputs disagree on the number of rows: 'a' has 1, 'b' has 2",
        ),
        (
            {"inputs": [tensor("a", [1, 2], [1, 2]), tensor("b", [1], [1]), tensor("c", [1], [1])]},
            400,
            "input 'a': shape [1, 2] must be [N] or [N, 1]",
        ),
        # values
        (
            one([1, 2, float("nan")]),
            400,
            "row 0: feature 'c' must be finite, got nan",
        ),
        (
            one([1, float("inf"), 2]),
            400,
            "row 0: feature 'b' must be finite, got inf",
        ),
        (one([1, "2", 3]), 400, "row 0: feature 'b' must be a number, got '2'"),
        (one([1, None, 3]), 400, "row 0: feature 'b' must be a number, got null"),
        (one([True, 2, 3]), 400, "row 0: feature 'a' must be a number, got True"),
        (one([1, 0, 2], datatype="BOOL"), 400, "feature 'a' must be true or false"),
        (one([1, 2.5, 3], datatype="INT64"), 400, "feature 'b' must be a whole number"),
        (one([1, 300, 3], datatype="INT8"), 400, "feature 'b' is out of range for datatype INT8"),
        (one([1, -1, 3], datatype="UINT32"), 400, "out of range for datatype UINT32"),
        (one([1, 10**400, 3]), 400, "feature 'b' is too large to be a number"),
        (one([1, 2, 3, 4, 5, 6.5], shape=(2, 3)), 400, "row 1: feature 'c' must be an integer"),
        (
            {"inputs": [tensor("a", [1], [1]), tensor("b", [1], [1]), tensor("c", [1], [0.5])]},
            400,
            "row 0: feature 'c' must be an integer, got 0.5",
        ),
    ],
)
def test_bad_input_gets_a_4xx_with_the_problem_named(client, body, status, fragment):
    r = infer(client, body)
    assert r.status_code == status
    assert r.is_json and set(r.json) == {"error"}
    assert fragment in r.json["error"]


def test_wrong_content_type_gets_415(client):
    r = infer(client, one([1, 2, 3]), content_type="text/plain")
    assert (r.status_code, r.json) == (415, {"error": "Content-Type must be application/json"})


def test_deeply_nested_json_gets_400_not_500(config):
    body = '{"inputs": ' + "[" * 100_000 + "]" * 100_000 + "}"
    roomy = dataclasses.replace(config, max_body_bytes=len(body) + 1)
    client = create_app(roomy, holder=StaticHolder(fake_model())).test_client()
    r = infer(client, body)
    assert (r.status_code, r.json) == (400, {"error": "body is not valid JSON: nested too deeply"})


def test_an_oversized_body_gets_413(client):
    r = infer(client, one([1.123456789] * 3 * 400, shape=(400, 3)))
    assert r.status_code == 413 and "exceeds 4096 bytes" in r.json["error"]


def test_infer_only_takes_post(client):
    r = client.get(INFER)
    assert r.status_code == 405 and r.is_json


GARBAGE = [None, True, -1, 2.5, "", "x", [], [None], {}, {"a": 1}, [[[]]], 10**30]


@pytest.mark.parametrize("field", ["id", "parameters", "inputs", "outputs"])
def test_garbage_in_any_request_field_never_gets_a_500(client, field):
    for value in GARBAGE:
        r = infer(client, {**one([1, 2, 3]), field: value})
        assert r.status_code < 500 and r.is_json, (field, value, r.json)


@pytest.mark.parametrize("field", ["name", "shape", "datatype", "data", "parameters"])
def test_garbage_in_any_tensor_field_never_gets_a_500(client, field):
    for value in GARBAGE:
        body = {"inputs": [{**tensor("x", [1, 3], [1, 2, 3]), field: value}]}
        r = infer(client, body)
        assert r.status_code < 500 and r.is_json, (field, value, r.json)
        assert r.status_code == 200 or set(r.json) == {"error"}, (field, value, r.json)


# ---------------------------------------------------------------- the output tensor


@pytest.mark.parametrize(
    ("predictions", "datatype", "shape", "data"),
    [
        ([0, 2], "INT64", [2], [0, 2]),
        ([0.5, 1.5], "FP64", [2], [0.5, 1.5]),
        ([True, False], "BOOL", [2], [True, False]),
        (["setosa", "virginica"], "BYTES", [2], ["setosa", "virginica"]),
        ([[1.0, 2.0], [3.0, 4.0]], "FP64", [2, 2], [1.0, 2.0, 3.0, 4.0]),
    ],
)
def test_output_tensor_datatype_and_shape_follow_the_predictions(
    predictions, datatype, shape, data
):
    assert output_tensor(predictions) == {
        "name": "predict",
        "datatype": datatype,
        "shape": shape,
        "data": data,
    }
