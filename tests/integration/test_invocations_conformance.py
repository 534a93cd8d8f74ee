"""POST /invocations against `mlflow models serve` itself, on the same model (integration).

One model, registered in a real MLflow server: iris with its four double columns and one
long column (petal length in whole millimetres), logged as the lab's training job logs
its models (sklearn flavor, skops, a named-column signature). The real `mlflow models
serve --env-manager local` and the lab's server under gunicorn both serve it; every
request below goes to both. Good requests must give equal predictions; bad ones equal
statuses and equal MLflow error codes, except where the lab refuses on purpose what MLflow
accepts (each such case asserts both answers, so an MLflow upgrade that changes them
fails here). docs/serving-api.md lists the differences.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
import requests

from labctl.processes import free_port, venv_bin, wait_http
from tests.support import job_env
from tests.support import tracking_uri as use_tracking_uri

pytestmark = pytest.mark.integration

FEATURES = [
    "sepal length (cm)",
    "sepal width (cm)",
    "petal length (cm)",
    "petal width (cm)",
    "petal length (mm)",
]
# One row of each class.
ROWS = [[5.1, 3.5, 1.4, 0.2, 14], [6.4, 3.2, 4.5, 1.5, 45], [6.3, 3.3, 6.0, 2.5, 60]]
RECORDS = [dict(zip(FEATURES, r, strict=True)) for r in ROWS]
COLUMNS = {f: [r[j] for r in ROWS] for j, f in enumerate(FEATURES)}
JSON = "application/json"
CSV = "text/csv"


def _csv(features=FEATURES, rows=ROWS) -> str:
    return "\n".join([",".join(features)] + [",".join(str(v) for v in r) for r in rows]) + "\n"


def _register(tracking_uri: str, name: str) -> str:
    """Train and log the model as the lab's training job does; returns its version."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True, as_frame=True)
    X["petal length (mm)"] = (X["petal length (cm)"] * 10).round().astype("int64")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    example = X.head(3)
    with use_tracking_uri(tracking_uri), mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            registered_model_name=name,
            serialization_format="skops",
            pip_requirements=["scikit-learn"],
        )
    return str(info.registered_model_version)


@pytest.fixture(scope="module")
def servers(mlflow_server, start_gunicorn, tmp_path_factory):
    """(mlflow models serve URL, lab server URL), both on the same registered version."""
    from mlflow import MlflowClient

    name = "it-invocations"
    version = _register(mlflow_server, name)
    MlflowClient(tracking_uri=mlflow_server).set_registered_model_alias(name, "staging", version)
    port = free_port()
    env = job_env(mlflow_server)
    env["PATH"] = f"{venv_bin()}{os.pathsep}{env.get('PATH', '')}"  # it runs `uvicorn`
    log = tmp_path_factory.mktemp("mlflow-serve") / "serve.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                str(venv_bin() / "mlflow"),
                "models",
                "serve",
                "-m",
                f"models:/{name}/{version}",
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its uvicorn child goes down with it
        )
    try:
        lab = start_gunicorn(mlflow_server, name, "staging", GUNICORN_WORKERS="1")
        reference = f"http://127.0.0.1:{port}"
        wait_http(f"{reference}/ping", 120, proc)
        yield reference, lab
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _post(url: str, body, content_type: str | None = JSON) -> requests.Response:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = {} if content_type is None else {"Content-Type": content_type}
    request = requests.Request("POST", f"{url}/invocations", data=data, headers=headers)
    prepared = request.prepare()
    if content_type is None:
        prepared.headers.pop("Content-Type", None)
    with requests.Session() as session:
        return session.send(prepared, timeout=30)


def _both(servers, body, content_type: str | None = JSON):
    reference, lab = servers
    return _post(reference, body, content_type), _post(lab, body, content_type)


GOOD = {
    "dataframe_split": ({"dataframe_split": {"columns": FEATURES, "data": ROWS}}, JSON),
    "dataframe_split, index, columns reversed": (
        {
            "dataframe_split": {
                "columns": FEATURES[::-1],
                "data": [r[::-1] for r in ROWS],
                "index": [7, 8, 9],
            }
        },
        JSON,
    ),
    "dataframe_records": ({"dataframe_records": RECORDS}, JSON),
    "dataframe_records, an extra key": (
        {"dataframe_records": [{**r, "note": "x"} for r in RECORDS]},
        JSON,
    ),
    "instances as records": ({"instances": RECORDS}, JSON),
    "instances as columns": ({"instances": COLUMNS}, JSON),
    "instances as one record": ({"instances": RECORDS[1]}, JSON),
    "inputs as records": ({"inputs": RECORDS}, JSON),
    "inputs as columns": ({"inputs": COLUMNS}, JSON),
    "inputs as one record": ({"inputs": RECORDS[2]}, JSON),
    "params and another top-level key": (
        {"inputs": RECORDS, "params": {"k": 1}, "note": "ignored"},
        JSON,
    ),
    "numeric strings": ({"inputs": [{f: str(v) for f, v in r.items()} for r in RECORDS]}, JSON),
    "an integral float for the long": (
        {"inputs": [{**r, "petal length (mm)": float(r["petal length (mm)"])} for r in RECORDS]},
        JSON,
    ),
    "charset=UTF-8": ({"inputs": RECORDS}, f"{JSON}; charset=UTF-8"),
    "csv": (_csv(), CSV),
    "csv, columns reversed, an extra column, charset": (
        _csv(["x", *FEATURES[::-1]], [[0, *r[::-1]] for r in ROWS]),
        f"{CSV}; charset=utf-8",
    ),
}


@pytest.mark.parametrize(("body", "content_type"), GOOD.values(), ids=GOOD.keys())
def test_good_requests_get_the_same_predictions(servers, body, content_type):
    theirs, ours = _both(servers, body, content_type)
    assert theirs.status_code == 200, theirs.text[:500]
    assert ours.status_code == 200, ours.text[:500]
    assert ours.headers["Content-Type"] == theirs.headers["Content-Type"] == JSON
    assert ours.json() == theirs.json()
    assert set(ours.json()) == {"predictions"}


def test_the_three_rows_are_three_classes(servers):
    """The comparisons above are not all on one class."""
    theirs, ours = _both(servers, {"inputs": RECORDS})
    assert ours.json() == theirs.json() == {"predictions": [0, 1, 2]}


def _without(record: dict, feature: str) -> dict:
    return {k: v for k, v in record.items() if k != feature}


def _nan_body(literal: str) -> str:
    return json.dumps({"dataframe_split": {"columns": FEATURES, "data": ROWS}}).replace(
        "5.1", literal, 1
    )


MM = "petal length (mm)"
BAD = {
    "invalid JSON": ("{nope", JSON),
    "not UTF-8": (b'{"inputs": "\xff"}', JSON),
    "a JSON list": (json.dumps(ROWS), JSON),
    "none of the four keys": ({"rows": RECORDS}, JSON),
    "two of the keys": ({"inputs": RECORDS, "instances": RECORDS}, JSON),
    "a completions request": ({"prompt": "which iris?"}, JSON),
    "inputs beside a key of the LLM formats": ({"inputs": RECORDS, "input": 1}, JSON),
    "dataframe_split not an object": ({"dataframe_split": ROWS}, JSON),
    "dataframe_split, an unknown field": (
        {"dataframe_split": {"columns": FEATURES, "data": ROWS, "x": 1}},
        JSON,
    ),
    "dataframe_split, a short row": (
        {"dataframe_split": {"columns": FEATURES, "data": [ROWS[0][:2]]}},
        JSON,
    ),
    "dataframe_split without columns": ({"dataframe_split": {"data": ROWS}}, JSON),
    "dataframe_records not a list": ({"dataframe_records": RECORDS[0]}, JSON),
    "instances as unnamed rows": ({"instances": ROWS}, JSON),
    "inputs as unnamed rows": ({"inputs": ROWS}, JSON),
    "a feature missing": ({"dataframe_records": [_without(r, MM) for r in RECORDS]}, JSON),
    "a feature missing from one record": (
        {"dataframe_records": [RECORDS[0], _without(RECORDS[1], "sepal width (cm)")]},
        JSON,
    ),
    "a word for a number": ({"inputs": [{**RECORDS[0], "sepal width (cm)": "wide"}]}, JSON),
    "null": ({"dataframe_records": [{**RECORDS[0], "sepal width (cm)": None}]}, JSON),
    "NaN": (_nan_body("NaN"), JSON),
    "Infinity": (_nan_body("Infinity"), JSON),
    "a fractional string for the long": ({"inputs": [{**RECORDS[0], MM: "14.0"}]}, JSON),
    "no rows (records)": ({"dataframe_records": []}, JSON),
    "no rows (split)": ({"dataframe_split": {"columns": FEATURES, "data": []}}, JSON),
    "csv missing a feature": (_csv(FEATURES[1:], [r[1:] for r in ROWS]), CSV),
    "csv, a word": (_csv().replace("3.5", "x", 1), CSV),
    "csv, an empty cell": (_csv().replace("3.5", "", 1), CSV),
    "csv, header only": (",".join(FEATURES) + "\n", CSV),
}


@pytest.mark.parametrize(("body", "content_type"), BAD.values(), ids=BAD.keys())
def test_bad_requests_get_the_same_status_and_error_code(servers, body, content_type):
    theirs, ours = _both(servers, body, content_type)
    assert theirs.status_code == 400, theirs.text[:500]
    assert ours.status_code == theirs.status_code, ours.text[:500]
    assert set(ours.json()) == {"error_code", "message"} and ours.json()["message"]
    assert ours.json()["error_code"] == theirs.json()["error_code"], ours.json()["message"]


UNSUPPORTED_MEDIA = {
    "text/plain": "text/plain",
    "another charset": f"{JSON}; charset=latin-1",
    "another parameter": f"{JSON}; format=split",
    "an upper-case media type": "Application/JSON",
}


@pytest.mark.parametrize("content_type", UNSUPPORTED_MEDIA.values(), ids=UNSUPPORTED_MEDIA.keys())
def test_unsupported_content_types_get_415_from_both(servers, content_type):
    """MLflow answers these in plain text; the lab in its JSON error shape."""
    theirs, ours = _both(servers, {"inputs": RECORDS}, content_type)
    assert theirs.status_code == ours.status_code == 415
    assert theirs.headers["Content-Type"].startswith("text/plain")
    assert ours.json()["error_code"] == "BAD_REQUEST" and ours.json()["message"]


# (request, MLflow's status, the lab's status): the lab refuses what MLflow lets through
# or fails on. Each reason is in docs/serving-api.md.
DEVIATIONS = {
    # MLflow truncates 14.5 to 14.
    "a fraction for the long": ({"inputs": [{**RECORDS[0], MM: 14.5}]}, JSON, 200, 400),
    # MLflow answers a bare 500 (it reads the header as a string it does not have).
    "no Content-Type": ({"inputs": RECORDS}, None, 500, 415),
    # Rows one value longer than the header: pandas takes each row's first value as an
    # index, and MLflow predicts on values shifted one column to the left.
    "CSV rows longer than the header": (
        _csv(rows=[[*r, 9] for r in ROWS]),
        CSV,
        200,
        400,
    ),
    # pandas repeats the one row for each label: MLflow answers two predictions for it.
    "an index longer than the data": (
        {"dataframe_split": {"columns": FEATURES, "data": ROWS[:1], "index": [0, 1]}},
        JSON,
        200,
        400,
    ),
    # MLflow drops a malformed params silently.
    "params not an object": ({"inputs": RECORDS, "params": [1]}, JSON, 200, 400),
}


@pytest.mark.parametrize(
    ("body", "content_type", "mlflow_status", "lab_status"),
    DEVIATIONS.values(),
    ids=DEVIATIONS.keys(),
)
def test_where_the_lab_refuses_on_purpose(servers, body, content_type, mlflow_status, lab_status):
    theirs, ours = _both(servers, body, content_type)
    assert theirs.status_code == mlflow_status, theirs.text[:500]
    assert ours.status_code == lab_status, ours.text[:500]
    assert set(ours.json()) == {"error_code", "message"}
    assert ours.json()["error_code"] == "BAD_REQUEST" and ours.json()["message"]


def test_ping_and_version_answer_alike(servers):
    reference, lab = servers
    for path in ("/ping", "/version"):
        theirs = requests.get(f"{reference}{path}", timeout=10)
        ours = requests.get(f"{lab}{path}", timeout=10)
        assert (ours.status_code, ours.content) == (theirs.status_code, theirs.content), path
        assert ours.headers["Content-Type"] == theirs.headers["Content-Type"], path


def test_wrong_method_gets_405_from_both(servers):
    reference, lab = servers
    theirs = requests.get(f"{reference}/invocations", timeout=10)
    ours = requests.get(f"{lab}/invocations", timeout=10)
    assert theirs.status_code == ours.status_code == 405
    assert ours.json()["error_code"] == "BAD_REQUEST"
