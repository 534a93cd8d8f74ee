"""Turn a request body into a 2-D float array checked against the model's input schema.

Pure functions, no Flask: every rejection is a RequestError carrying the HTTP status
and a message that names the problem (which row, which feature).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

NUMERIC_TYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}
INTEGRAL = {"long", "integer"}


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _rows(payload: Any) -> list:
    if not isinstance(payload, dict):
        raise RequestError(400, 'body must be a JSON object: {"instances": [...]}')
    keys = set(payload) & {"instances", "instance"}
    if len(keys) != 1 or len(payload) != 1:
        raise RequestError(
            400,
            'body must have exactly one key: "instances" (a list of rows) or "instance" (a row)',
        )
    if "instance" in payload:
        return [payload["instance"]]
    rows = payload["instances"]
    if not isinstance(rows, list):
        raise RequestError(400, '"instances" must be a list of rows')
    return rows


def _bad_value(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, got {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be finite, got {value}"
    return None


def parse(
    payload: Any, features: tuple[str, ...], types: tuple[str, ...], max_rows: int
) -> np.ndarray:
    """Validate `payload` and return a float64 array of shape (rows, len(features))."""
    rows = _rows(payload)
    if not rows:
        raise RequestError(400, '"instances" is empty: send at least one row')
    if len(rows) > max_rows:
        raise RequestError(413, f"batch of {len(rows)} rows exceeds the limit of {max_rows}")
    n = len(features)
    wanted = set(features)
    matrix: list[list] = []
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            if len(row) != n or row.keys() != wanted:
                missing = sorted(wanted - row.keys())
                extra = sorted(row.keys() - wanted)
                parts = []
                if missing:
                    parts.append(f"missing features {missing}")
                if extra:
                    parts.append(f"unknown features {extra}")
                raise RequestError(422, f"row {i}: " + "; ".join(parts))
            values = [row[f] for f in features]
        elif isinstance(row, list):
            if len(row) != n:
                raise RequestError(
                    422, f"row {i}: expected {n} values in order {list(features)}, got {len(row)}"
                )
            values = row
        else:
            raise RequestError(422, f"row {i}: must be an object of features or a list of values")
        for v in values:
            # Fast check for the common case; the slow path below names the culprit.
            if type(v) is not float and type(v) is not int:
                break
        else:
            matrix.append(values)
            continue
        for f, v in zip(features, values, strict=True):
            problem = _bad_value(v)
            if problem:
                raise RequestError(422, f"row {i}: feature {f!r} {problem}")
        matrix.append(values)
    try:
        array = np.array(matrix, dtype="float64")
    except OverflowError:
        raise RequestError(422, "a feature value is too large to be a number") from None
    if not np.isfinite(array).all():
        i, j = (int(x[0]) for x in np.nonzero(~np.isfinite(array)))
        raise RequestError(
            422, f"row {i}: feature {features[j]!r} must be finite, got {array[i, j]}"
        )
    for j, t in enumerate(types):
        if t in INTEGRAL and not np.all(np.mod(array[:, j], 1) == 0):
            i = int(np.nonzero(np.mod(array[:, j], 1) != 0)[0][0])
            raise RequestError(422, f"row {i}: feature {features[j]!r} must be an integer")
    return array
