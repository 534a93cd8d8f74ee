"""The Open Inference Protocol (KServe V2) REST API, next to the server's own /predict.

The protocol KServe, Triton and Seldon MLServer speak, so that their clients can call the
lab's model server unchanged:

    GET  /v2                                            server metadata
    GET  /v2/health/live, /v2/health/ready              server health
    GET  /v2/models/NAME[/versions/VERSION]             model metadata
    GET  /v2/models/NAME[/versions/VERSION]/ready       model health
    POST /v2/models/NAME[/versions/VERSION]/infer       inference

NAME is the registered model's name; VERSION, when given, must be the version being served
(the server holds one). An inference request carries its rows in one of two forms:

- one tensor of shape [N, F] under any name, F the number of features, in the order of the
  model's signature; or
- one tensor per feature, named after it, each of shape [N] or [N, 1].

Data is a flat list in row-major order or nested to the tensor's shape. Only numeric
datatypes are taken (BOOL, UINT*, INT*, FP*); the values are checked against the declared
datatype and against the signature (finite numbers, whole numbers for integer features).
The answer is one output tensor, "predict", of shape [N]. Every error is a JSON object
{"error": message} with a 4xx status (503 while no model is loaded), never a 500.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import BadRequest

from serving import metrics
from serving.config import ServingConfig
from serving.validation import INTEGRAL

log = logging.getLogger("serving.openinference")

SERVER_NAME = "mlops-lab-serving"
SERVER_VERSION = "0.1.0"  # the package's version (serving/pyproject.toml)
PLATFORM = "sklearn_mlflow"
OUTPUT = "predict"

# The signature's column types, as the protocol's tensor datatypes.
FEATURE_DATATYPES = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32"}
# Integer datatypes and the values they can hold.
INTEGER_RANGES = {
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
}
NUMERIC_DATATYPES = ("BOOL", *INTEGER_RANGES, "FP16", "FP32", "FP64")
FLOAT_MAX = float(np.finfo(np.float64).max)

REQUEST_KEYS = {"id", "parameters", "inputs", "outputs"}
INPUT_KEYS = {"name", "shape", "datatype", "parameters", "data"}


class ProtocolError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message), status


def _show(value: Any) -> str:
    """A value for an error message: its type for containers, else a short repr."""
    if isinstance(value, (list, dict)) or value is None:
        return "null" if value is None else type(value).__name__
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------- the request body


def _check_parameters(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise ProtocolError(400, f'{where}"parameters" must be an object')


def _check_shape(shape: Any, where: str) -> list[int]:
    if (
        not isinstance(shape, list)
        or not shape
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise ProtocolError(
            400, f'{where}"shape" must be a list of non-negative integers, got {shape!r}'[:300]
        )
    return shape


def _flatten(data: Any, shape: list[int], where: str) -> list:
    """The elements of a 1-D or 2-D tensor in row-major order, given flat or nested."""
    if not isinstance(data, list):
        raise ProtocolError(400, f'{where}"data" must be a list, got {_show(data)}')
    total = math.prod(shape)
    nested = [isinstance(x, list) for x in data]
    if not any(nested):
        if len(data) != total:
            raise ProtocolError(
                400, f"{where}data has {len(data)} values, shape {shape} needs {total}"
            )
        return data
    if len(shape) != 2 or not all(nested):
        raise ProtocolError(
            400,
            f"{where}data must be a flat list of {total} values, or nested to shape {shape}",
        )
    rows, cols = shape
    if len(data) != rows:
        raise ProtocolError(400, f"{where}data has {len(data)} rows, shape {shape} needs {rows}")
    flat: list = []
    for i, row in enumerate(data):
        if len(row) != cols:
            raise ProtocolError(
                400, f"{where}data row {i} has {len(row)} values, shape {shape} needs {cols}"
            )
        if any(isinstance(x, list) for x in row):
            raise ProtocolError(400, f"{where}data is nested deeper than shape {shape}")
        flat.extend(row)
    return flat


def _check_values(values: list, datatype: str, locate: Callable[[int], str]) -> None:
    """Each element is a value of `datatype`: a finite number (a boolean for BOOL, a whole
    number in range for the integer types)."""
    if datatype == "BOOL":
        for k, v in enumerate(values):
            if type(v) is not bool:
                raise ProtocolError(
                    400, f"{locate(k)} must be true or false (datatype BOOL), got {_show(v)}"
                )
        return
    bounds = INTEGER_RANGES.get(datatype)
    for k, v in enumerate(values):
        if type(v) is float:
            if not math.isfinite(v):
                raise ProtocolError(400, f"{locate(k)} must be finite, got {v}")
            if bounds is not None and not v.is_integer():
                raise ProtocolError(
                    400, f"{locate(k)} must be a whole number (datatype {datatype}), got {v}"
                )
        elif type(v) is int:
            if bounds is None and abs(v) > FLOAT_MAX:
                raise ProtocolError(400, f"{locate(k)} is too large to be a number")
        else:
            raise ProtocolError(400, f"{locate(k)} must be a number, got {_show(v)}")
        if bounds is not None and not bounds[0] <= v <= bounds[1]:
            raise ProtocolError(
                400, f"{locate(k)} is out of range for datatype {datatype}, got {_show(v)}"
            )


def _parse_input(item: Any, i: int) -> dict:
    if not isinstance(item, dict):
        raise ProtocolError(400, f"inputs[{i}] must be an object, got {_show(item)}")
    unknown = sorted(set(item) - INPUT_KEYS)
    if unknown:
        raise ProtocolError(400, f"inputs[{i}]: unknown keys {unknown}")
    missing = [k for k in ("name", "shape", "datatype", "data") if k not in item]
    if missing:
        hint = " (binary tensor data is not supported)" if "data" in missing else ""
        raise ProtocolError(400, f"inputs[{i}]: missing {missing}{hint}")
    name = item["name"]
    if not isinstance(name, str) or not name:
        raise ProtocolError(400, f'inputs[{i}]: "name" must be a non-empty string')
    where = f"input {name!r}: "
    if "parameters" in item:
        _check_parameters(item["parameters"], where)
    datatype = item["datatype"]
    if datatype == "BYTES":
        raise ProtocolError(
            400, f"{where}datatype BYTES is not accepted: the model takes numbers only"
        )
    if datatype not in NUMERIC_DATATYPES:
        raise ProtocolError(
            400, f"{where}unknown datatype {_show(datatype)}: one of {list(NUMERIC_DATATYPES)}"
        )
    shape = _check_shape(item["shape"], where)
    return {"name": name, "shape": shape, "datatype": datatype, "data": item["data"]}


def _batch_size(shape: list[int], where: str, max_rows: int) -> int:
    rows = shape[0]
    if rows < 1:
        raise ProtocolError(400, f"{where}shape {shape} has no rows: send at least one")
    if rows > max_rows:
        raise ProtocolError(413, f"batch of {rows} rows exceeds the limit of {max_rows}")
    return rows


def _one_tensor(tensor: dict, features: tuple[str, ...], max_rows: int) -> np.ndarray:
    """Form (a): one [N, F] tensor, features in signature order."""
    n = len(features)
    shape, where = tensor["shape"], f"input {tensor['name']!r}: "
    if len(shape) != 2 or shape[1] != n:
        raise ProtocolError(
            400,
            f"{where}shape {shape} does not fit the model: send one tensor of shape [N, {n}] "
            f"(features in order {list(features)}), or one tensor of shape [N] per feature",
        )
    rows = _batch_size(shape, where, max_rows)
    values = _flatten(tensor["data"], shape, where)
    _check_values(
        values, tensor["datatype"], lambda k: f"row {k // n}: feature {features[k % n]!r}"
    )
    return np.array(values, dtype="float64").reshape(rows, n)


def _named_tensors(tensors: list[dict], features: tuple[str, ...], max_rows: int) -> np.ndarray:
    """Form (b): one [N] or [N, 1] tensor per feature, named after it."""
    counts = Counter(t["name"] for t in tensors)
    repeated = sorted(x for x, c in counts.items() if c > 1)
    if repeated:
        raise ProtocolError(400, f"inputs named more than once: {repeated}")
    missing = [f for f in features if f not in counts]
    unknown = sorted(set(counts) - set(features))
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing features {missing}")
        if unknown:
            parts.append(f"unknown inputs {unknown}")
        raise ProtocolError(
            400,
            "; ".join(parts) + f": send one tensor per feature, or one tensor of shape "
            f"[N, {len(features)}]",
        )
    by_name = {t["name"]: t for t in tensors}
    columns = []
    rows = None
    for f in features:
        tensor = by_name[f]
        shape, where = tensor["shape"], f"input {f!r}: "
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise ProtocolError(400, f"{where}shape {shape} must be [N] or [N, 1]")
        n = _batch_size(shape, where, max_rows)
        if rows is None:
            rows, first = n, f
        elif n != rows:
            raise ProtocolError(
                400, f"inputs disagree on the number of rows: {first!r} has {rows}, {f!r} has {n}"
            )
        values = _flatten(tensor["data"], shape, where)
        _check_values(values, tensor["datatype"], lambda k, f=f: f"row {k}: feature {f!r}")
        columns.append(values)
    return np.array(columns, dtype="float64").T.copy()


def parse_infer(
    payload: Any, features: tuple[str, ...], types: tuple[str, ...], max_rows: int
) -> tuple[np.ndarray, str | None]:
    """Validate an inference request; return (rows as a float64 array in signature order,
    the request's id or None)."""
    if not isinstance(payload, dict):
        raise ProtocolError(400, 'body must be a JSON object: {"inputs": [...]}')
    unknown = sorted(set(payload) - REQUEST_KEYS)
    if unknown:
        raise ProtocolError(400, f"unknown keys {unknown}: an inference request has {REQUEST_KEYS}")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError(400, f'"id" must be a string, got {_show(request_id)}')
    if "parameters" in payload:
        _check_parameters(payload["parameters"], "")
    outputs = payload.get("outputs", [])
    if not isinstance(outputs, list):
        raise ProtocolError(400, '"outputs" must be a list of {"name": ...}')
    for j, out in enumerate(outputs):
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise ProtocolError(400, f'outputs[{j}] must be an object with a "name"')
        if out["name"] != OUTPUT:
            raise ProtocolError(
                400, f"unknown output {out['name']!r}: this model has one output, {OUTPUT!r}"
            )
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError(400, '"inputs" must be a non-empty list of tensors')
    tensors = [_parse_input(item, i) for i, item in enumerate(inputs)]
    only = tensors[0]
    if len(tensors) == 1 and (
        only["name"] not in features
        or (len(only["shape"]) == 2 and only["shape"][1] == len(features))
    ):
        array = _one_tensor(only, features, max_rows)
    else:
        array = _named_tensors(tensors, features, max_rows)
    for j, t in enumerate(types):
        if t not in INTEGRAL:
            continue
        fractional = np.mod(array[:, j], 1) != 0
        if fractional.any():
            i = int(np.nonzero(fractional)[0][0])
            raise ProtocolError(
                400, f"row {i}: feature {features[j]!r} must be an integer, got {array[i, j]}"
            )
    return array, request_id


# ---------------------------------------------------------------- the answer


def output_tensor(predictions: list) -> dict:
    """The predictions as the protocol's output tensor (flat data, row-major)."""
    try:
        array = np.asarray(predictions)
    except ValueError:  # rows of different lengths
        array = np.empty(len(predictions), dtype=object)
        array[:] = predictions
    kind = array.dtype.kind
    if kind in "biuf":
        datatype = {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}[kind]
        data = array.ravel().tolist()
    else:  # labels: strings, or anything else as its text
        datatype = "BYTES"
        data = [v if isinstance(v, str) else str(v) for v in array.ravel().tolist()]
    return {"name": OUTPUT, "datatype": datatype, "shape": list(array.shape), "data": data}


def register(app: Flask, holder, cfg: ServingConfig) -> None:
    """Add the protocol's routes to the app; `holder.current` is the model served."""
    probed: dict[tuple, dict] = {}  # the output's metadata, for the model last described

    def _output_metadata(model) -> dict:
        key = (model.version, model.run_id, model.loaded_at, model.path)
        if key not in probed:
            try:
                out = output_tensor(model.predict(np.zeros((1, len(model.features)))))
                meta = {
                    "name": OUTPUT,
                    "datatype": out["datatype"],
                    "shape": [-1, *out["shape"][1:]],
                }
            except Exception as exc:  # describe the model anyway; its inputs matter more
                log.warning(
                    "could not tell the output's datatype (%s: %s)", type(exc).__name__, exc
                )
                return {"name": OUTPUT, "datatype": "BYTES", "shape": [-1]}
            probed.clear()
            probed[key] = meta
        return probed[key]

    def _served(name: str, version: str | None):
        """The model for this path: (model, None) or (None, error response)."""
        if name != cfg.model_name:
            return None, _error(
                404, f"unknown model {name!r}: this server serves {cfg.model_name!r}"
            )
        model = holder.current
        if model is None:
            return None, _error(503, f"no model loaded for @{cfg.alias} yet")
        if version is not None and version != model.version:
            return None, _error(
                404,
                f"version {version!r} of {name!r} is not served: "
                f"this server serves version {model.version!r}",
            )
        return model, None

    @app.get("/v2/health/live")
    def v2_live():
        return jsonify(live=True)

    @app.get("/v2/health/ready")
    def v2_ready():
        ready = holder.current is not None
        return jsonify(ready=ready), 200 if ready else 503

    @app.get("/v2")
    def v2_server_metadata():
        return jsonify(name=SERVER_NAME, version=SERVER_VERSION, extensions=[])

    @app.get("/v2/models/<name>")
    @app.get("/v2/models/<name>/versions/<version>")
    def v2_model_metadata(name: str, version: str | None = None):
        model, failed = _served(name, version)
        if failed:
            return failed
        inputs = [
            {"name": f, "datatype": FEATURE_DATATYPES.get(t, "FP64"), "shape": [-1]}
            for f, t in zip(model.features, model.types, strict=True)
        ]
        return jsonify(
            name=cfg.model_name,
            versions=[model.version],
            platform=PLATFORM,
            inputs=inputs,
            outputs=[_output_metadata(model)],
        )

    @app.get("/v2/models/<name>/ready")
    @app.get("/v2/models/<name>/versions/<version>/ready")
    def v2_model_ready(name: str, version: str | None = None):
        model, failed = _served(name, version)
        if model is not None:
            return jsonify(name=name, ready=True)
        body, status = failed
        if status == 503:  # the model this server is for, not loaded yet
            return jsonify(name=name, ready=False), 503
        return body, status

    @app.post("/v2/models/<name>/infer")
    @app.post("/v2/models/<name>/versions/<version>/infer")
    def v2_infer(name: str, version: str | None = None):
        model, failed = _served(name, version)  # one read: this request uses this model
        if failed:
            return failed
        if not request.is_json:
            return _error(415, "Content-Type must be application/json")
        try:
            payload = request.get_json()
        except BadRequest:
            return _error(400, "body is not valid JSON")
        except RecursionError:  # the JSON parser's stack ends before the nesting does
            return _error(400, "body is not valid JSON: nested too deeply")
        try:
            rows, request_id = parse_infer(payload, model.features, model.types, cfg.max_batch_rows)
        except ProtocolError as exc:
            return _error(exc.status, exc.message)
        predictions = model.predict(rows)
        metrics.PREDICTED_ROWS.inc(len(predictions))
        capture = app.extensions.get("capture")
        if capture is not None and request.headers.get("X-Lab-Capture") != "off":
            capture.record(model.version, model.features, rows, predictions, model.run_id)
        body: dict[str, Any] = {"model_name": cfg.model_name, "model_version": model.version}
        if request_id is not None:
            body["id"] = request_id
        body["outputs"] = [output_tensor(predictions)]
        return jsonify(body)
