"""Prometheus metrics, shared across gunicorn workers when PROMETHEUS_MULTIPROC_DIR is set.

gunicorn.conf.py sets that directory before any worker imports prometheus_client, so every
worker writes to it and /metrics (answered by any one worker) aggregates all of them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REQUESTS = Counter(
    "serving_requests_total", "HTTP requests by endpoint and status", ["endpoint", "status"]
)
LATENCY = Histogram(
    "serving_request_duration_seconds",
    "Request latency by endpoint",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
PREDICTED_ROWS = Counter("serving_predicted_rows_total", "Rows predicted")
MODEL_VERSION = Gauge(
    "serving_model_version",
    "Registered model version being served (0 while none is loaded)",
    ["alias"],
    multiprocess_mode="livemostrecent",
)


def render() -> tuple[bytes, str]:
    """The exposition text for every worker's metrics (or this process's alone)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
