"""MLflow's scoring protocol (`POST /invocations`, as `mlflow models serve` answers it).

Pure functions, no Flask: `parse` turns a request body into a 2-D float array in the
signature's column order, or raises a ProtocolError carrying the HTTP status, MLflow's
error code and a message naming the problem (which row, which feature).

Accepted, as MLflow accepts them: JSON with exactly one of `dataframe_split`,
`dataframe_records`, `instances` or `inputs` (records, columns, or one record), and CSV
with a header row. Columns come in any order, columns the model does not use are
ignored, numeric strings and booleans are converted. Stricter than MLflow, on purpose:
a missing, null or non-finite value, a fraction for an integer feature, a CSV row longer
than its header and a malformed `params` are refused with a 400 naming the row and
feature, where MLflow predicts on something else or fails deep inside the model; a
batch above the server's row limit gets a 413 (docs/serving-api.md lists every
difference).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

JSON = "application/json"
CSV = "text/csv"
CONTENT_TYPES = (CSV, JSON)
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# Top-level keys that make MLflow read the whole body as a request in its LLM formats
# (chat, completions, embeddings), which a model with named numeric columns never takes.
LLM_KEYS = ("messages", "prompt", "input")
# MLflow's wording (mlflow/pyfunc/scoring_server), its key set in a fixed order.
REQUIRED_INPUT_FORMAT = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}"
)
INTEGRAL = {"long": 2**63, "integer": 2**31}  # integer types and their bound
FLOAT32_MAX = float(np.finfo(np.float32).max)

BAD_REQUEST = "BAD_REQUEST"
INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"


class ProtocolError(Exception):
    """A request the protocol refuses: HTTP status, MLflow error code, message."""

    def __init__(self, status: int, message: str, error_code: str = BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code


def _bad(message: str) -> ProtocolError:
    return ProtocolError(400, message, BAD_REQUEST)


class _Missing:
    """A cell the request does not have (a key absent from a record, an empty CSV cell)."""

    def __repr__(self) -> str:
        return "no value"


MISSING = _Missing()


@dataclass
class _Table:
    """What a request sent: its row count, the values of the features it has (feature ->
    one value per row) and, on demand, every column name it used, in its order."""

    n_rows: int
    columns: dict[str, list]
    names: Callable[[], list]


def media_type(content_type: str | None) -> str:
    """The accepted media type of a Content-Type header, checked as MLflow checks it
    (the charset parameter, if any, must be utf-8; no other parameter)."""
    if content_type is None or not content_type.strip():
        raise ProtocolError(
            415,
            "This predictor only supports the following content types: "
            f"Types: {list(CONTENT_TYPES)}. Got no Content-Type header.",
        )
    parts = [p.strip() for p in content_type.split(";")]
    params = {key: value for key, _, value in (p.partition("=") for p in parts[1:])}
    charset = params.get("charset", "utf-8")
    if charset.lower() != "utf-8":
        raise ProtocolError(415, f"The scoring server only supports UTF-8, got charset {charset!r}")
    unknown = [k for k in params if k != "charset"]
    if unknown:
        raise ProtocolError(
            415,
            f"Unrecognized content type parameters: {', '.join(unknown)}. "
            "Only charset=utf-8 is accepted.",
        )
    if parts[0] not in CONTENT_TYPES:
        raise ProtocolError(
            415,
            "This predictor only supports the following content types: "
            f"Types: {list(CONTENT_TYPES)}. Got {content_type!r}.",
        )
    return parts[0]


def _check_rows(n: int, max_rows: int) -> None:
    if n > max_rows:
        raise ProtocolError(413, f"batch of {n} rows exceeds the limit of {max_rows}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# --- JSON ----------------------------------------------------------------------------


def _decode_json(body: bytes) -> Any:
    try:
        # A UTF-8 byte order mark is accepted, as json.loads(bytes) accepts it in MLflow.
        return json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise _bad(f"Invalid input. The body is not valid UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise _bad(
            f"Invalid input. Ensure that input is a valid JSON formatted string. Error: {exc}"
        ) from None
    except RecursionError:  # the parser's stack ends before the nesting does
        raise _bad("Invalid input. The JSON body is nested too deeply") from None


def _unnamed(n_rows: int, width: int) -> _Table:
    """Rows of values without feature names: MLflow names their columns 0, 1, 2..."""
    return _Table(n_rows, {}, lambda: list(range(width)))


def _row_list(items: list, features: tuple[str, ...], what: str, scalars_fill: bool) -> _Table:
    """A list of records ({feature: value}), of unnamed rows, or of single values."""
    if not items:
        return _unnamed(0, 0)
    if isinstance(items[0], dict):
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise _bad(f"{what}: row {i} is a {_kind(item)}, row 0 an object of features")
        columns = {}
        for f in features:
            if any(f in item for item in items):
                columns[f] = [item.get(f, MISSING) for item in items]

        def names() -> list:
            return list(dict.fromkeys(k for item in items for k in item))

        return _Table(len(items), columns, names)
    if isinstance(items[0], list):
        for i, item in enumerate(items):
            if not isinstance(item, list):
                raise _bad(f"{what}: row {i} is a {_kind(item)}, row 0 a list of values")
        return _unnamed(len(items), max(len(item) for item in items))
    for i, item in enumerate(items):
        if isinstance(item, dict | list):
            raise _bad(f"{what}: item {i} is a {_kind(item)}, item 0 a single value")
    if scalars_fill and len(features) == 1:  # MLflow: the values of a one-column model
        return _Table(len(items), {features[0]: list(items)}, lambda: list(features))
    return _unnamed(len(items), 1)


def _dataframe_split(split: Any, features: tuple[str, ...], max_rows: int) -> _Table:
    if not isinstance(split, dict):
        raise _bad(
            f"Invalid input. Dataframe split format must be a dictionary. Got {_kind(split)}."
        )
    keys = set(split)
    if "data" not in keys or keys - {"columns", "data", "index"}:
        raise _bad(
            "Invalid input. Dataframe split format must have 'data' field and optionally "
            f"'columns' and 'index' fields. Got {sorted(keys)}."
        )
    data, columns, index = split["data"], split.get("columns"), split.get("index")
    if not isinstance(data, list):
        raise _bad(
            f'Invalid input. dataframe_split "data" must be a list of rows, got {_kind(data)}'
        )
    _check_rows(len(data), max_rows)
    if index is not None and (not isinstance(index, list) or len(index) != len(data)):
        got = f"{len(index)} labels" if isinstance(index, list) else f"a {_kind(index)}"
        raise _bad(
            f'Invalid input. dataframe_split "index" must be a list of {len(data)} labels '
            f"(one per row), got {got}"
        )
    for i, row in enumerate(data):
        if not isinstance(row, list):
            raise _bad(
                f"Invalid input. dataframe_split row {i} must be a list of values, got {_kind(row)}"
            )
    if columns is None:
        return _unnamed(len(data), max((len(r) for r in data), default=0))
    if not isinstance(columns, list) or any(isinstance(c, dict | list) for c in columns):
        raise _bad('Invalid input. dataframe_split "columns" must be a list of column names')
    for i, row in enumerate(data):
        if len(row) != len(columns):
            raise _bad(
                f"Invalid input. dataframe_split row {i} has {len(row)} values "
                f"for {len(columns)} columns"
            )
    return _Table(len(data), _named_columns(columns, data, features), lambda: list(columns))


def _named_columns(names: list, rows: list[list], features: tuple[str, ...]) -> dict[str, list]:
    """feature -> its values, from rows under a header (split columns, CSV header)."""
    out = {}
    for f in features:
        at = [j for j, c in enumerate(names) if c == f]
        if len(at) > 1:
            raise ProtocolError(
                400, f"Column {f!r} appears {len(at)} times", INVALID_PARAMETER_VALUE
            )
        if at:
            j = at[0]
            out[f] = [row[j] if j < len(row) else MISSING for row in rows]
    return out


def _tf_serving(value: Any, key: str, features: tuple[str, ...], max_rows: int) -> _Table:
    """`instances` or `inputs`: records, columns ({feature: [values]}) or one record."""
    if isinstance(value, list):
        _check_rows(len(value), max_rows)
        return _row_list(value, features, key, scalars_fill=True)
    if isinstance(value, str):
        raise _bad(f"Invalid input. {key!r} must be records, columns or one record, got a string")
    if not isinstance(value, dict):  # one unnamed value
        return _unnamed(1, 1)
    lengths = {f: len(value[f]) for f in features if isinstance(value.get(f), list)}
    n_rows = 1
    if lengths:
        n_rows = next(iter(lengths.values()))
        if any(n != n_rows for n in lengths.values()):
            raise ProtocolError(
                400,
                f"Invalid input. The columns of {key!r} must all have the same length, "
                f"got {lengths}",
                # MLflow's codes: `instances` checks the lengths, `inputs` fails later.
                BAD_REQUEST if key == "instances" else INVALID_PARAMETER_VALUE,
            )
        _check_rows(n_rows, max_rows)
    columns = {}
    for f in features:
        if f in value:
            v = value[f]
            columns[f] = v if isinstance(v, list) else [v] * n_rows  # a scalar fills its column
    return _Table(n_rows, columns, lambda: list(value))


def _from_json(body: bytes, features: tuple[str, ...], max_rows: int) -> _Table:
    payload = _decode_json(body)
    if not isinstance(payload, dict):
        got = "a list" if isinstance(payload, list) else f"unexpected input type {_kind(payload)!r}"
        raise _bad(f"Invalid input. {REQUIRED_INPUT_FORMAT}. Received {got}.")
    llm = [k for k in payload if k in LLM_KEYS]
    if llm:
        raise ProtocolError(
            400,
            f"Invalid input. {llm} marks a request in MLflow's LLM formats (keys 'messages', "
            f"'prompt', 'input'), which this model does not take. {REQUIRED_INPUT_FORMAT}.",
            INVALID_PARAMETER_VALUE,
        )
    keys = [k for k in payload if k in FORMATS]
    if len(keys) != 1:
        raise _bad(f"{REQUIRED_INPUT_FORMAT}. Received dictionary with input fields: {keys}.")
    params = payload.get("params")
    if params is not None and not isinstance(params, dict):
        raise _bad(f'Invalid input. "params" must be a JSON object, got {_kind(params)}')
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        return _dataframe_split(value, features, max_rows)
    if key == "dataframe_records":
        if not isinstance(value, list):
            got = "dictionary" if isinstance(value, dict) else f"type {_kind(value)}"
            raise _bad(
                f"Invalid input. Dataframe records format must be a list of records. Got {got}."
            )
        _check_rows(len(value), max_rows)
        return _row_list(value, features, key, scalars_fill=False)
    return _tf_serving(value, key, features, max_rows)


# --- CSV -----------------------------------------------------------------------------


def _from_csv(body: bytes, features: tuple[str, ...], max_rows: int) -> _Table:
    try:
        text = body.decode("utf-8-sig")  # pandas skips a byte order mark too
    except UnicodeDecodeError as exc:
        raise _bad(
            f"Invalid input. Ensure that input is a valid UTF-8 encoded string: {exc}"
        ) from None
    try:
        lines = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as exc:
        raise _bad(f"Invalid input. The body is not valid CSV: {exc}") from None
    if not lines:
        raise _bad("Invalid input. The CSV body is empty: send a header row naming the features")
    header, rows = lines[0], lines[1:]
    _check_rows(len(rows), max_rows)
    for i, row in enumerate(rows):
        if len(row) > len(header):
            raise _bad(
                f"Invalid input. CSV row {i} has {len(row)} values for {len(header)} "
                "columns in the header"
            )
    columns = _named_columns(header, rows, features)
    for values in columns.values():
        for i, v in enumerate(values):
            if v == "":
                values[i] = MISSING
    return _Table(len(rows), columns, lambda: list(header))


# --- values --------------------------------------------------------------------------


def _number(value: Any, integral: bool) -> float | str:
    """The value as a float, or why it is not one."""
    if value is MISSING:
        return "has no value"
    if value is None:
        return "is null"
    if isinstance(value, bool | int | float):
        try:
            return float(value)
        except OverflowError:
            return f"is too large: {value}"
    if isinstance(value, str):
        try:
            return float(int(value) if integral else float(value))
        except ValueError:
            return f"must be {'an integer' if integral else 'a number'}, got {value!r}"
        except OverflowError:
            return f"is too large: {value}"
    return f"must be a number, got {_kind(value)}"


def _is_number(v: Any) -> bool:
    return type(v) is float or type(v) is int


def _column(values: list, feature: str, kind: str) -> np.ndarray:
    """One feature's values as floats; a bad one raises, naming its row."""
    integral = kind in INTEGRAL
    if all(type(v) is str for v in values):  # CSV cells, numeric strings: numpy parses them
        try:
            return np.array(values, dtype="int64" if integral else "float64").astype("float64")
        except (ValueError, OverflowError):
            pass  # the loop below names the culprit
    elif all(_is_number(v) for v in values):
        try:
            return np.array(values, dtype="float64")
        except OverflowError:
            pass
    out = np.empty(len(values), dtype="float64")
    for i, v in enumerate(values):
        number = _number(v, integral)
        if isinstance(number, str):
            raise _bad(f"row {i}: feature {feature!r} {number}")
        out[i] = number
    return out


def _matrix(columns: list[list], features: tuple[str, ...], types: tuple[str, ...]) -> np.ndarray:
    """The (rows, features) array; one numpy call when every value is already a number."""
    if all(_is_number(v) for values in columns for v in values):
        try:
            return np.array(columns, dtype="float64").T.copy()
        except OverflowError:
            pass
    out = np.empty((len(columns[0]), len(features)), dtype="float64")
    for j, (values, f, kind) in enumerate(zip(columns, features, types, strict=True)):
        out[:, j] = _column(values, f, kind)
    return out


def _check(array: np.ndarray, features: tuple[str, ...], types: tuple[str, ...]) -> None:
    """Finite everywhere (else the first non-finite value is named, by row then feature);
    whole and in range for integer types, in range for float (else the first such value
    of the first column with one)."""
    bad = ~np.isfinite(array)
    problem = "must be finite, got {}"
    if not bad.any():
        for j, kind in enumerate(types):
            column = array[:, j]
            bound = INTEGRAL.get(kind)
            if bound is not None:
                bad[:, j] = np.mod(column, 1) != 0
                if bad[:, j].any():
                    problem = "must be an integer, got {}"
                    break
                bad[:, j] = (column < -bound) | (column >= bound)
                if bad[:, j].any():
                    problem = f"is out of range for {kind}: {{:.0f}}"
                    break
            elif kind == "float":
                bad[:, j] = np.abs(column) > FLOAT32_MAX
                if bad[:, j].any():
                    problem = "is out of range for float: {}"
                    break
        else:
            return
    i, j = (int(x) for x in np.argwhere(bad)[0])
    raise _bad(f"row {i}: feature {features[j]!r} " + problem.format(array[i, j]))


def parse(
    content_type: str | None,
    body: bytes,
    features: tuple[str, ...],
    types: tuple[str, ...],
    max_rows: int,
) -> np.ndarray:
    """Validate a scoring request; a float64 array of shape (rows, len(features))."""
    if media_type(content_type) == CSV:
        table = _from_csv(body, features, max_rows)
    else:
        table = _from_json(body, features, max_rows)
    missing = [f for f in features if f not in table.columns]
    if table.n_rows == 0:
        # MLflow's code: a request naming no columns also misses every input.
        raise ProtocolError(
            400,
            "Invalid input. The request has no rows: send at least one",
            INVALID_PARAMETER_VALUE if missing else BAD_REQUEST,
        )
    if missing:
        wanted = set(features)
        extra = [c for c in table.names() if c not in wanted]
        message = f"Model is missing inputs {missing}."
        if extra:
            message += f" Note that there were extra inputs: {extra}."
        if extra and all(isinstance(c, int) for c in extra):
            message += " Name the features: send records ({feature: value}) or columns."
        raise ProtocolError(400, message, INVALID_PARAMETER_VALUE)
    _check_rows(table.n_rows, max_rows)
    array = _matrix([table.columns[f] for f in features], features, types)
    _check(array, features, types)
    return array
