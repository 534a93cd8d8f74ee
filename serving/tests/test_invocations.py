"""MLflow's scoring protocol on POST /invocations, /ping and /version (unit).

The parser alone (serving/invocations.py), then the HTTP layer through Flask's test client
with the fixed model of conftest.py: features a, b (double) and c (long); it predicts 1
when a > 1. tests/integration/test_invocations_conformance.py asks `mlflow models serve`
the same questions.
"""

from __future__ import annotations

import dataclasses
import json
import random
from importlib import metadata

import numpy as np
import pytest

from serving.app import create_app
from serving.invocations import ProtocolError, parse

from .conftest import StaticHolder, fake_model

FEATURES = ("a", "b", "c")
TYPES = ("double", "double", "long")
JSON = "application/json"
CSV = "text/csv"
BAD = "BAD_REQUEST"
INVALID = "INVALID_PARAMETER_VALUE"
ROW = [2.0, 0.5, 3.0]
ACCEPTED_KEYS = ["dataframe_split", "dataframe_records", "instances", "inputs"]


def run(body, content_type=JSON, max_rows=5, features=FEATURES, types=TYPES):
    data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else None
    if data is None:
        data = json.dumps(body).encode()
    return parse(content_type, data, features, types, max_rows)


def refused(body, content_type=JSON, **kwargs) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        run(body, content_type, **kwargs)
    return info.value


# --- what is accepted --------------------------------------------------------------------

ACCEPTED = {
    "dataframe_split": {"dataframe_split": {"columns": ["a", "b", "c"], "data": [ROW]}},
    "dataframe_split with an index": {
        "dataframe_split": {"columns": ["a", "b", "c"], "data": [ROW], "index": ["r1"]}
    },
    "dataframe_split, columns in another order": {
        "dataframe_split": {"columns": ["c", "a", "b"], "data": [[3, 2, 0.5]]}
    },
    "dataframe_split with a column the model does not use": {
        "dataframe_split": {"columns": ["x", "a", "b", "c"], "data": [["text", 2, 0.5, 3]]}
    },
    "dataframe_records": {"dataframe_records": [{"a": 2, "b": 0.5, "c": 3}]},
    "dataframe_records, keys in another order, one extra": {
        "dataframe_records": [{"c": 3, "x": None, "b": 0.5, "a": 2}]
    },
    "instances as records": {"instances": [{"a": 2, "b": 0.5, "c": 3}]},
    "instances as columns": {"instances": {"a": [2], "b": [0.5], "c": [3]}},
    "instances as one record": {"instances": {"a": 2, "b": 0.5, "c": 3}},
    "inputs as records": {"inputs": [{"a": 2, "b": 0.5, "c": 3}]},
    "inputs as columns": {"inputs": {"a": [2], "b": [0.5], "c": [3]}},
    "inputs as one record": {"inputs": {"a": 2, "b": 0.5, "c": 3}},
    "inputs as columns, a scalar fills its column": {"inputs": {"a": [2], "b": 0.5, "c": [3]}},
    "numeric strings": {"inputs": [{"a": "2", "b": " 0.5 ", "c": "3"}]},
    "numbers in exponent form": {"inputs": [{"a": 2e0, "b": "5e-1", "c": 3}]},
    "an integral float for a long": {"inputs": [{"a": 2, "b": 0.5, "c": 3.0}]},
    "params, ignored": {"inputs": [{"a": 2, "b": 0.5, "c": 3}], "params": {"k": 1}},
    "params null": {"inputs": [{"a": 2, "b": 0.5, "c": 3}], "params": None},
    "another top-level key, ignored": {"inputs": [{"a": 2, "b": 0.5, "c": 3}], "note": "x"},
}


@pytest.mark.parametrize("body", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_every_json_format_gives_the_rows_in_signature_order(body):
    result = run(body)
    assert result.dtype == np.float64
    assert result.tolist() == [ROW]


def test_booleans_count_as_one_and_zero_as_in_mlflow():
    assert run({"inputs": [{"a": True, "b": False, "c": True}]}).tolist() == [[1.0, 0.0, 1.0]]


def test_several_rows_keep_their_order_in_every_format():
    rows = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]
    records = [dict(zip(FEATURES, r, strict=True)) for r in rows]
    columns = {f: [r[j] for r in rows] for j, f in enumerate(FEATURES)}
    for body in (
        {"dataframe_split": {"columns": list(FEATURES), "data": rows}},
        {"dataframe_records": records},
        {"instances": records},
        {"instances": columns},
        {"inputs": records},
        {"inputs": columns},
    ):
        assert run(body).tolist() == rows, body
    assert run("a,b,c\n0,1,2\n3,4,5\n6,7,8\n", CSV).tolist() == rows


CSV_ACCEPTED = {
    "plain": "a,b,c\n2,0.5,3\n",
    "columns in another order, one extra": "x,c,b,a\nhello,3,0.5,2\n",
    "quoted": '"a","b","c"\n"2","0.5","3"\n',
    "CRLF line ends, no final newline": "a,b,c\r\n2,0.5,3",
    "blank lines": "a,b,c\n\n2,0.5,3\n\n",
    "pandas index column (to_csv default)": ",a,b,c\n0,2,0.5,3\n",
    "a byte order mark": "\ufeffa,b,c\n2,0.5,3\n",
}


@pytest.mark.parametrize("text", CSV_ACCEPTED.values(), ids=CSV_ACCEPTED.keys())
def test_csv_with_a_header_row(text):
    assert run(text, CSV).tolist() == [ROW]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "application/json; charset=UTF-8",
        "application/json;charset=utf-8",
        "application/json ; charset=utf-8",
    ],
)
def test_charset_utf8_is_the_one_parameter_allowed(content_type):
    assert run({"inputs": [{"a": 2, "b": 0.5, "c": 3}]}, content_type).tolist() == [ROW]


def test_a_json_byte_order_mark_is_accepted():
    body = b"\xef\xbb\xbf" + json.dumps({"inputs": {"a": 2, "b": 0.5, "c": 3}}).encode()
    assert run(body).tolist() == [ROW]


def test_a_one_feature_model_takes_a_plain_list_of_values():
    assert run({"inputs": [1, 2]}, features=("a",), types=("double",)).tolist() == [[1.0], [2.0]]


# --- what is refused ---------------------------------------------------------------------

REFUSED = {
    # The body as a whole
    "invalid JSON": ("{nope", JSON, 400, BAD, "valid JSON"),
    "empty JSON body": ("", JSON, 400, BAD, "valid JSON"),
    "not UTF-8": (b'{"inputs": "\xff"}', JSON, 400, BAD, "UTF-8"),
    "a JSON list": ("[[1, 2, 3]]", JSON, 400, BAD, "Received a list"),
    "JSON null": ("null", JSON, 400, BAD, "unexpected input type 'null'"),
    "none of the four keys": ({"rows": [ROW]}, JSON, 400, BAD, "input fields: []"),
    "an empty object": ({}, JSON, 400, BAD, "exactly one of the input fields"),
    "two of the keys": (
        {"inputs": [ROW], "instances": [ROW]},
        JSON,
        400,
        BAD,
        "input fields: ['inputs', 'instances']",
    ),
    "params not an object": ({"inputs": [ROW], "params": [1]}, JSON, 400, BAD, '"params"'),
    "a key of MLflow's LLM formats": (
        {"inputs": {"a": 1, "b": 1, "c": 1}, "input": "x"},
        JSON,
        400,
        INVALID,
        "['input'] marks a request in MLflow's LLM formats",
    ),
    "a chat request": ({"messages": [{"role": "user"}]}, JSON, 400, INVALID, "LLM formats"),
    # dataframe_split
    "split not an object": ({"dataframe_split": [ROW]}, JSON, 400, BAD, "must be a dictionary"),
    "split without data": ({"dataframe_split": {"columns": ["a"]}}, JSON, 400, BAD, "'data'"),
    "split with an unknown field": (
        {"dataframe_split": {"columns": list(FEATURES), "data": [ROW], "x": 1}},
        JSON,
        400,
        BAD,
        "Got ['columns', 'data', 'x']",
    ),
    "split data not a list": (
        {"dataframe_split": {"columns": list(FEATURES), "data": {"a": 1}}},
        JSON,
        400,
        BAD,
        '"data" must be a list of rows',
    ),
    "split row not a list": (
        {"dataframe_split": {"columns": list(FEATURES), "data": [{"a": 1}]}},
        JSON,
        400,
        BAD,
        "row 0 must be a list",
    ),
    "split row too short": (
        {"dataframe_split": {"columns": list(FEATURES), "data": [ROW, [1, 2]]}},
        JSON,
        400,
        BAD,
        "row 1 has 2 values for 3 columns",
    ),
    "split columns not a list": (
        {"dataframe_split": {"columns": "abc", "data": [ROW]}},
        JSON,
        400,
        BAD,
        '"columns" must be a list',
    ),
    "split index of another length": (
        {"dataframe_split": {"columns": list(FEATURES), "data": [ROW], "index": [1, 2]}},
        JSON,
        400,
        BAD,
        '"index" must be a list of 1 labels',
    ),
    "split column twice": (
        {"dataframe_split": {"columns": ["a", "b", "c", "a"], "data": [[*ROW, 1]]}},
        JSON,
        400,
        INVALID,
        "Column 'a' appears 2 times",
    ),
    "split without columns": (
        {"dataframe_split": {"data": [ROW]}},
        JSON,
        400,
        INVALID,
        "Model is missing inputs ['a', 'b', 'c']. Note that there were extra inputs: [0, 1, 2].",
    ),
    # records, instances, inputs
    "records not a list": (
        {"dataframe_records": {"a": 1}},
        JSON,
        400,
        BAD,
        "must be a list of records. Got dictionary.",
    ),
    "records mixing objects and lists": (
        {"dataframe_records": [{"a": 1}, [1]]},
        JSON,
        400,
        BAD,
        "row 1 is a list",
    ),
    "instances as unnamed rows": (
        {"instances": [ROW]},
        JSON,
        400,
        INVALID,
        "Model is missing inputs ['a', 'b', 'c']. Note that there were extra inputs: [0, 1, 2].",
    ),
    "inputs as unnamed rows": ({"inputs": [ROW, ROW]}, JSON, 400, INVALID, "extra inputs: [0,"),
    "inputs as a string": ({"inputs": "a=1"}, JSON, 400, BAD, "got a string"),
    "instances columns of different lengths": (
        {"instances": {"a": [1, 2], "b": [1], "c": [1]}},
        JSON,
        400,
        BAD,
        "must all have the same length",
    ),
    "inputs columns of different lengths": (
        {"inputs": {"a": [1, 2], "b": [1], "c": [1]}},
        JSON,
        400,
        INVALID,
        "must all have the same length",
    ),
    "a feature missing": (
        {"inputs": [{"a": 1, "b": 2, "x": 3}]},
        JSON,
        400,
        INVALID,
        "Model is missing inputs ['c']. Note that there were extra inputs: ['x'].",
    ),
    "a feature missing from one record": (
        {"dataframe_records": [{"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2}]},
        JSON,
        400,
        BAD,
        "row 1: feature 'c' has no value",
    ),
    # values
    "a word": ({"inputs": [{"a": "x", "b": 1, "c": 1}]}, JSON, 400, BAD, "feature 'a' must be"),
    "a hex string": ({"inputs": [{"a": "0x1", "b": 1, "c": 1}]}, JSON, 400, BAD, "'0x1'"),
    "an empty string": ({"inputs": [{"a": "", "b": 1, "c": 1}]}, JSON, 400, BAD, "got ''"),
    "null": ({"inputs": [{"a": 1, "b": None, "c": 1}]}, JSON, 400, BAD, "row 0: feature 'b' is"),
    "NaN": ('{"inputs": [{"a": NaN, "b": 1, "c": 1}]}', JSON, 400, BAD, "must be finite"),
    "Infinity": ('{"inputs": {"a": [1, -Infinity], "b": 1, "c": 1}}', JSON, 400, BAD, "row 1"),
    "a numeric string that is not finite": (
        {"inputs": [{"a": "inf", "b": 1, "c": 1}]},
        JSON,
        400,
        BAD,
        "must be finite",
    ),
    "a number too large for a float": (
        '{"inputs": [{"a": 1e999, "b": 1, "c": 1}]}',
        JSON,
        400,
        BAD,
        "must be finite",
    ),
    "an integer too large for a float": (
        '{"inputs": [{"a": 1' + "0" * 400 + ', "b": 1, "c": 1}]}',
        JSON,
        400,
        BAD,
        "too large",
    ),
    "a fraction for a long": (
        {"inputs": [{"a": 1, "b": 1, "c": 2.5}]},
        JSON,
        400,
        BAD,
        "row 0: feature 'c' must be an integer, got 2.5",
    ),
    "a fractional string for a long": (
        {"inputs": [{"a": 1, "b": 1, "c": "3.0"}]},
        JSON,
        400,
        BAD,
        "feature 'c' must be an integer, got '3.0'",
    ),
    "a long out of range": (
        {"inputs": [{"a": 1, "b": 1, "c": 2**70}]},
        JSON,
        400,
        BAD,
        "out of range for long",
    ),
    "a nested list": ({"inputs": [{"a": [1], "b": 1, "c": 1}]}, JSON, 400, BAD, "got list"),
    "a nested object": ({"inputs": [{"a": {"v": 1}, "b": 1, "c": 1}]}, JSON, 400, BAD, "dict"),
    # no rows
    "empty records": ({"dataframe_records": []}, JSON, 400, INVALID, "no rows"),
    "empty inputs": ({"inputs": []}, JSON, 400, INVALID, "no rows"),
    "empty split": (
        {"dataframe_split": {"columns": list(FEATURES), "data": []}},
        JSON,
        400,
        BAD,
        "no rows",
    ),
    "empty columns": ({"inputs": {"a": [], "b": [], "c": []}}, JSON, 400, BAD, "no rows"),
    # CSV
    "CSV empty": ("", CSV, 400, BAD, "CSV body is empty"),
    "CSV header only": ("a,b,c\n", CSV, 400, BAD, "no rows"),
    "CSV without a header": ("2,0.5,3\n", CSV, 400, INVALID, "no rows"),
    "CSV missing a feature": ("a,b\n1,2\n", CSV, 400, INVALID, "missing inputs ['c']"),
    "CSV an empty cell": ("a,b,c\n1,,3\n", CSV, 400, BAD, "row 0: feature 'b' has no value"),
    "CSV a short row": ("a,b,c\n1,2,3\n1,2\n", CSV, 400, BAD, "row 1: feature 'c' has no value"),
    "CSV a long row": ("a,b,c\n1,2,3,4\n", CSV, 400, BAD, "row 0 has 4 values for 3 columns"),
    "CSV a word": ("a,b,c\n1,x,3\n", CSV, 400, BAD, "feature 'b' must be a number, got 'x'"),
    "CSV nan": ("a,b,c\n1,nan,3\n", CSV, 400, BAD, "must be finite"),
    "CSV a fraction for a long": ("a,b,c\n1,2,3.5\n", CSV, 400, BAD, "must be an integer"),
    "CSV not UTF-8": (b"a,b,c\n\xff,2,3\n", CSV, 400, BAD, "UTF-8"),
    "CSV a feature twice": ("a,b,c,a\n1,2,3,4\n", CSV, 400, INVALID, "appears 2 times"),
    # Content type
    "no content type": ({"inputs": [ROW]}, None, 415, BAD, "Got no Content-Type header"),
    "text/plain": ({"inputs": [ROW]}, "text/plain", 415, BAD, "['text/csv', 'application/json']"),
    "parquet": (b"PAR1", "application/vnd.apache.parquet", 415, BAD, "only supports"),
    "another charset": ({"inputs": [ROW]}, f"{JSON}; charset=latin-1", 415, BAD, "UTF-8"),
    "another parameter": ({"inputs": [ROW]}, f"{JSON}; v=2", 415, BAD, "parameters: v."),
}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "fragment"), REFUSED.values(), ids=REFUSED.keys()
)
def test_bad_requests_are_refused_with_status_code_and_a_message(
    body, content_type, status, code, fragment
):
    exc = refused(body, content_type)
    assert (exc.status, exc.error_code) == (status, code)
    assert fragment in exc.message


def test_a_missing_feature_reads_as_mlflow_says_it():
    exc = refused({"dataframe_records": [{"b": 1, "x": 2, "c": 3, "y": 4}]})
    assert exc.message == (
        "Model is missing inputs ['a']. Note that there were extra inputs: ['x', 'y']."
    )


def test_unnamed_rows_are_told_how_to_name_the_features():
    exc = refused({"inputs": [ROW]})
    assert exc.message.startswith("Model is missing inputs ['a', 'b', 'c']. Note that")
    assert "records" in exc.message


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": list(FEATURES), "data": [ROW] * 6}},
        {"dataframe_records": [dict(zip(FEATURES, ROW, strict=True))] * 6},
        {"instances": [dict(zip(FEATURES, ROW, strict=True))] * 6},
        {"inputs": {"a": [1] * 6, "b": [1] * 6, "c": [1] * 6}},
        "a,b,c\n" + "1,2,3\n" * 6,
    ],
    ids=["split", "records", "instances", "columns", "csv"],
)
def test_more_rows_than_the_limit_get_413(body):
    exc = refused(body, CSV if isinstance(body, str) else JSON)
    assert (exc.status, exc.error_code) == (413, BAD)
    assert exc.message == "batch of 6 rows exceeds the limit of 5"


def test_deeply_nested_json_is_a_400():
    exc = refused("[" * 100_000 + "]" * 100_000)
    assert (exc.status, exc.error_code) == (400, BAD) and "nested too deeply" in exc.message


@pytest.mark.parametrize(
    ("types", "value", "fragment"),
    [
        (("double", "double", "integer"), 2**31, "out of range for integer"),
        (("double", "double", "integer"), -(2**31) - 1, "out of range for integer"),
        (("float", "double", "long"), 1e39, "out of range for float"),
    ],
)
def test_the_narrow_types_have_their_ranges(types, value, fragment):
    body = {"inputs": [{"a": 1, "b": 1, "c": 1}]}
    body["inputs"][0]["c" if "integer" in types else "a"] = value
    exc = refused(body, types=types)
    assert exc.status == 400 and fragment in exc.message


def test_the_limits_of_the_types_are_accepted():
    body = {"inputs": [{"a": -(2**63), "b": 1, "c": 2**63 - 1024}]}
    assert run(body).shape == (1, 3)


def test_no_body_raises_anything_but_a_protocol_error():
    """Random JSON shapes (the never-a-500 promise): parsed, or refused with a 4xx."""
    rng = random.Random(0)
    atoms = [None, True, 0, 1.5, -3, "x", "1", "", 1e308, [], {}]
    keys = [*FEATURES, "x", "data", "columns", "index", *ACCEPTED_KEYS]

    def value(depth):
        roll = rng.random()
        if depth > 3 or roll < 0.4:
            return rng.choice(atoms)
        if roll < 0.7:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {rng.choice(keys): value(depth + 1) for _ in range(rng.randint(0, 4))}

    outcomes = set()
    for _ in range(3000):
        body = {rng.choice(ACCEPTED_KEYS): value(0)}
        try:
            assert run(body, max_rows=3).shape[1] == 3
            outcomes.add((200, "OK"))
        except ProtocolError as exc:
            assert 400 <= exc.status < 500 and exc.message
            outcomes.add((exc.status, exc.error_code))
    assert outcomes >= {(400, BAD), (400, INVALID), (413, BAD)}


# --- over HTTP -----------------------------------------------------------------------------


def invoke(client, body, content_type=JSON, **kwargs):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = kwargs.pop("headers", {})
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.post("/invocations", data=data, headers=headers, **kwargs)


def test_predictions_come_back_as_mlflow_answers_them(client):
    r = invoke(client, {"dataframe_split": {"columns": ["a", "b", "c"], "data": [ROW, [0, 0, 0]]}})
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.get_json() == {"predictions": [1, 0]}


def test_csv_over_http(client):
    r = invoke(client, "c,b,a\n1,1,5\n", CSV)
    assert r.status_code == 200 and r.get_json() == {"predictions": [1]}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "fragment"),
    [REFUSED[k] for k in REFUSED if k != "no content type"],
    ids=[k for k in REFUSED if k != "no content type"],
)
def test_every_refusal_is_mlflow_shaped_json(client, body, content_type, status, code, fragment):
    r = invoke(client, body, content_type)
    assert r.status_code == status and r.is_json
    assert set(r.get_json()) == {"error_code", "message"}
    assert r.get_json()["error_code"] == code and fragment in r.get_json()["message"]


def test_a_request_without_a_content_type_gets_415_not_500(client):
    r = client.post("/invocations", data=b'{"inputs": [[1, 2, 3]]}')
    assert "Content-Type" not in r.request.headers
    assert r.status_code == 415 and r.get_json()["error_code"] == BAD


def test_too_many_rows_over_http(client):
    r = invoke(client, {"inputs": {"a": [1] * 6, "b": [1] * 6, "c": [1] * 6}})
    assert r.status_code == 413
    assert r.get_json() == {
        "error_code": BAD,
        "message": "batch of 6 rows exceeds the limit of 5",
    }


def test_an_oversized_body_gets_an_mlflow_shaped_413(client):
    r = invoke(client, {"inputs": [{"a": 1.123456789, "b": 2, "c": 3}] * 200})
    assert r.status_code == 413
    assert r.get_json() == {"error_code": BAD, "message": "request body exceeds 4096 bytes"}


@pytest.mark.parametrize(
    ("method", "path"), [("get", "/invocations"), ("put", "/invocations"), ("post", "/ping")]
)
def test_wrong_methods_get_mlflow_shaped_405(client, method, path):
    r = getattr(client, method)(path)
    assert r.status_code == 405 and set(r.get_json()) == {"error_code", "message"}


def test_the_lab_endpoints_keep_their_own_error_shape(client):
    r = client.post("/predict", data="{nope", content_type=JSON)
    assert r.status_code == 400 and set(r.get_json()) == {"error", "status"}
    assert set(client.get("/nope").get_json()) == {"error", "status"}


def test_without_a_model_every_protocol_path_but_version_answers_503(empty_client):
    r = invoke(empty_client, {"inputs": {"a": 1, "b": 1, "c": 1}})
    assert r.status_code == 503
    assert r.get_json() == {
        "error_code": "TEMPORARILY_UNAVAILABLE",
        "message": "no model loaded for @staging yet",
    }
    r = empty_client.get("/ping")
    assert r.status_code == 503 and r.get_json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert empty_client.get("/version").status_code == 200


def test_ping_answers_as_mlflow_does(client):
    r = client.get("/ping")
    assert r.status_code == 200
    assert r.get_data() == b"\n" and r.headers["Content-Type"] == "application/json"


def installed_mlflow() -> str:
    for dist in ("mlflow", "mlflow-skinny"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    raise AssertionError("no mlflow distribution installed")


def test_version_is_the_installed_mlflow_as_plain_text(client):
    r = client.get("/version")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.get_data(as_text=True) == installed_mlflow()


def test_version_reads_mlflow_skinny_when_full_mlflow_is_absent(config, monkeypatch):
    from serving import app as app_mod

    def version(dist):
        if dist == "mlflow":
            raise metadata.PackageNotFoundError(dist)
        return "9.9.9-skinny"

    monkeypatch.setattr(app_mod.metadata, "version", version)
    client = create_app(config, holder=StaticHolder(fake_model())).test_client()
    assert client.get("/version").get_data(as_text=True) == "9.9.9-skinny"


def test_a_failing_model_is_an_mlflow_shaped_500(config):
    def broken(rows):
        raise RuntimeError("boom")

    holder = StaticHolder(dataclasses.replace(fake_model(), predict=broken))
    client = create_app(config, holder=holder).test_client()
    r = invoke(client, {"inputs": {"a": 1, "b": 1, "c": 1}})
    assert r.status_code == 500
    assert r.get_json() == {
        "error_code": "INTERNAL_ERROR",
        "message": "internal error: RuntimeError",
    }


def test_metrics_count_invocations_and_their_rows(client):
    def predicted():
        text = client.get("/metrics").get_data(as_text=True)
        (line,) = [x for x in text.splitlines() if x.startswith("serving_predicted_rows_total")]
        return float(line.split()[-1])

    before = predicted()
    invoke(client, {"inputs": {"a": [1, 2, 3], "b": [1, 2, 3], "c": [1, 2, 3]}})
    invoke(client, {"inputs": []})
    assert predicted() - before == 3
    text = client.get("/metrics").get_data(as_text=True)
    assert 'serving_requests_total{endpoint="invocations",status="200"}' in text
    assert 'serving_requests_total{endpoint="invocations",status="400"}' in text


def test_invocations_are_captured_unless_marked_as_tests(config, make_client, tmp_path):
    client = make_client(dataclasses.replace(config, capture_dir=str(tmp_path)))
    off = {"X-Lab-Capture": "off"}
    assert invoke(client, "a,b,c\n9,9,9\n", CSV, headers=off).status_code == 200
    assert invoke(client, {"inputs": [{"a": 1, "b": 1, "c": 1}, {"x": 0}]}).status_code == 400
    r = invoke(client, {"dataframe_records": [{"c": 3, "b": 0.5, "a": 2}]})
    assert r.status_code == 200
    client.application.extensions["capture"].close()
    (line,) = [json.loads(x) for p in tmp_path.glob("*.jsonl") for x in p.read_text().splitlines()]
    assert line["rows"] == [ROW] and line["predictions"] == [1] and line["version"] == "7"


def test_a_drained_server_hands_invocations_on_in_mlflow_shape(make_client, config, tmp_path):
    flag = tmp_path / "drained"
    client = make_client(dataclasses.replace(config, drain_file=str(flag)))
    flag.touch()
    r = invoke(client, {"inputs": {"a": 1, "b": 1, "c": 1}})
    assert r.status_code == 503 and r.headers["X-Lab-Drained"] == "1"
    assert r.get_json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert "being retired" in r.get_json()["message"]
