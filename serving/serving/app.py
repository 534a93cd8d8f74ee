"""Flask application factory for the model server.

    gunicorn -c serving/gunicorn.conf.py 'serving.app:create_app()'

Every error, including an unexpected one, is answered with a JSON body naming the problem;
request bodies that do not fit the model's signature get a 4xx, never a 500.
"""

from __future__ import annotations

import logging
import os
import time
from importlib import metadata

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException

from serving import metrics, openinference, page
from serving.capture import Capture
from serving.config import ServingConfig
from serving.invocations import ProtocolError
from serving.invocations import parse as parse_invocation
from serving.model import ModelHolder
from serving.validation import RequestError, parse

log = logging.getLogger("serving")


# MLflow's scoring protocol (`mlflow models serve`): its paths answer errors in its shape.
MLFLOW_PATHS = frozenset({"/invocations", "/ping", "/version"})
MLFLOW_ERROR_CODES = {
    400: "BAD_REQUEST",
    404: "ENDPOINT_NOT_FOUND",
    500: "INTERNAL_ERROR",
    503: "TEMPORARILY_UNAVAILABLE",
}


def _error(status: int, message: str, error_code: str | None = None) -> tuple[Response, int]:
    if request.path in MLFLOW_PATHS:
        code = error_code or MLFLOW_ERROR_CODES.get(
            status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR"
        )
        return jsonify(error_code=code, message=message), status
    return jsonify(error=message, status=status), status


def _mlflow_version() -> str:
    """The installed MLflow's version, as `mlflow models serve` answers GET /version."""
    for dist in ("mlflow", "mlflow-skinny"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


# What a drained server still answers: its container's health checks (the lab's and the
# Open Inference Protocol's) and its metrics.
NOT_DRAINED = frozenset({"/health", "/ready", "/metrics", "/v2/health/live", "/v2/health/ready"})


def create_app(config: ServingConfig | None = None, holder: ModelHolder | None = None) -> Flask:
    """Build the app. Without a holder, one is created and starts polling the registry."""
    cfg = config or ServingConfig.from_env()
    if holder is None:
        holder = ModelHolder(cfg)
        # Load before this worker accepts its first connection: with several gunicorn
        # workers, one that answered /ready must not leave another answering 503.
        # If MLflow is down this returns at once and the poller keeps trying.
        holder.refresh()
        holder.start()
    app = Flask(__name__, static_folder=None)  # serving/static is served by page.py
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_body_bytes
    app.json.sort_keys = False
    app.extensions["model_holder"] = holder
    capture = None
    if cfg.capture_dir and cfg.capture_sample > 0:
        capture = Capture(
            cfg.capture_dir,
            cfg.alias,
            sample=cfg.capture_sample,
            max_bytes=int(cfg.capture_max_mb * 1e6),
        )
    app.extensions["capture"] = capture

    @app.before_request
    def _start_timer():
        g.t0 = time.perf_counter()
        # A production colour being retired: the proxy passes the request on to the new
        # colour when this one answers 503 (every worker sees the file at the same moment).
        if cfg.drain_file and request.path not in NOT_DRAINED and os.path.exists(cfg.drain_file):
            body, status = _error(503, "this server is being retired: retry on the live one")
            body.headers["X-Lab-Drained"] = "1"
            return body, status
        return None

    @app.after_request
    def _observe(response: Response) -> Response:
        endpoint = request.endpoint or "unknown"
        metrics.REQUESTS.labels(endpoint, str(response.status_code)).inc()
        t0 = g.get("t0")
        if t0 is not None:
            metrics.LATENCY.labels(endpoint).observe(time.perf_counter() - t0)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if exc.code == 413:
            return _error(413, f"request body exceeds {cfg.max_body_bytes} bytes")
        return _error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s", request.path)
        return _error(500, f"internal error: {type(exc).__name__}")

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    def _registry_state() -> dict:
        return {
            "mlflow_reachable": holder.mlflow_reachable,
            "last_check": holder.last_check,
            "last_error": holder.last_error,
        }

    @app.get("/ready")
    def ready():
        model = holder.current
        if model is None:
            body = {"ready": False, "reason": "model not loaded yet", **_registry_state()}
            return jsonify(body), 503
        return jsonify(ready=True, version=model.version, source=model.source, **_registry_state())

    @app.get("/model")
    def model_info():
        model = holder.current
        if model is None:
            body = {
                "name": cfg.model_name,
                "alias": cfg.alias,
                "version": None,
                **_registry_state(),
            }
            return jsonify(body), 503
        return jsonify({**model.describe(), **_registry_state()})

    @app.post("/predict")
    def predict():
        model = holder.current  # one read: this request uses this model throughout
        if model is None:
            return _error(503, f"no model loaded for @{cfg.alias} yet")
        if not request.is_json:
            return _error(415, "Content-Type must be application/json")
        try:
            payload = request.get_json()
        except BadRequest:
            return _error(400, "body is not valid JSON")
        except RecursionError:  # the JSON parser's stack ends before the nesting does
            return _error(400, "body is not valid JSON: nested too deeply")
        try:
            rows = parse(payload, model.features, model.types, cfg.max_batch_rows)
        except RequestError as exc:
            return _error(exc.status, exc.message)
        predictions = model.predict(rows)
        metrics.PREDICTED_ROWS.inc(len(predictions))
        if capture is not None and request.headers.get("X-Lab-Capture") != "off":
            capture.record(model.version, model.features, rows, predictions, model.run_id)
        return jsonify(predictions=predictions, model_version=model.version, alias=model.alias)

    @app.post("/invocations")
    def invocations():
        """MLflow's scoring protocol, as `mlflow models serve` answers it (invocations.py)."""
        model = holder.current
        if model is None:
            return _error(503, f"no model loaded for @{cfg.alias} yet")
        try:
            rows = parse_invocation(
                request.headers.get("Content-Type"),
                request.get_data(cache=False),
                model.features,
                model.types,
                cfg.max_batch_rows,
            )
        except ProtocolError as exc:
            return _error(exc.status, exc.message, exc.error_code)
        predictions = model.predict(rows)
        metrics.PREDICTED_ROWS.inc(len(predictions))
        if capture is not None and request.headers.get("X-Lab-Capture") != "off":
            capture.record(model.version, model.features, rows, predictions, model.run_id)
        return jsonify(predictions=predictions)

    @app.get("/ping")
    def ping():
        if holder.current is None:
            return _error(503, f"no model loaded for @{cfg.alias} yet")
        return Response("\n", content_type="application/json")

    mlflow_version = _mlflow_version()

    @app.get("/version")
    def version():
        return Response(mlflow_version, content_type="application/json")

    @app.get("/metrics")
    def prometheus():
        model = holder.current
        metrics.MODEL_VERSION.labels(cfg.alias).set(int(model.version) if model else 0)
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)

    openinference.register(app, holder, cfg)
    page.register(app, holder, cfg)
    return app
