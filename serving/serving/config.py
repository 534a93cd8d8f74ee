"""Serving configuration, read from the environment (no side effects at import)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigError(ValueError):
    """A setting is malformed; the message names the variable."""


def _positive(env: Mapping[str, str], name: str, default, kind=int):
    raw = env.get(name, "")
    if raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
    if not value > 0 or not math.isfinite(value):  # nan compares false to everything
        raise ConfigError(f"{name} must be a positive number, got {raw!r}")
    return value


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a share between 0 and 1, got {raw!r}") from None
    if not 0 <= value <= 1:
        raise ConfigError(f"{name} must be a share between 0 and 1, got {value}")
    return value


@dataclass(frozen=True)
class ServingConfig:
    tracking_uri: str = "http://127.0.0.1:5050"
    model_name: str = "lab-classifier"
    alias: str = "production"
    # A version number pins the server to that version (the production colours behind the
    # proxy, started for one version and verified before traffic moves); empty follows
    # the alias.
    version: str = ""
    poll_interval_s: float = 5.0
    max_body_bytes: int = 1_048_576
    max_batch_rows: int = 1000
    # Predict with the native scikit-learn model on numpy arrays when the flavor allows it;
    # off means always go through mlflow.pyfunc (pandas), as `mlflow models serve` does.
    fast_path: bool = True
    # Folder for the last good model (empty: none). A server that starts while MLflow is
    # unreachable serves from it until the registry answers again.
    cache_dir: str = ""
    # A file whose existence retires this server: every request but /health, /ready and
    # /metrics gets a 503, so that the production proxy sends it to the new colour. Empty:
    # never drained.
    drain_file: str = ""
    # Folder where the server records a sample of what it serves, for the drift check
    # (serving/capture.py); empty: nothing is recorded.
    capture_dir: str = ""
    capture_sample: float = 1.0  # share of /predict requests recorded (0: none)
    capture_max_mb: float = 20.0  # the alias's files in the folder stay under this

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingConfig:
        env = os.environ if env is None else env
        alias = env.get("SERVING_MODEL_ALIAS", cls.alias).strip()
        if not alias or not alias.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"SERVING_MODEL_ALIAS must be an alias name, got {alias!r}")
        version = env.get("SERVING_MODEL_VERSION", "").strip()
        if version and not version.isdigit():
            raise ConfigError(f"SERVING_MODEL_VERSION must be a version number, got {version!r}")
        fast = env.get("SERVING_FAST_PATH", "1").strip().lower()
        if fast not in ("1", "0", "true", "false", "yes", "no"):
            raise ConfigError(f"SERVING_FAST_PATH must be 1 or 0, got {fast!r}")
        return cls(
            tracking_uri=env.get("MLFLOW_TRACKING_URI", cls.tracking_uri),
            model_name=env.get("MLFLOW_MODEL_NAME", cls.model_name),
            alias=alias,
            version=version,
            poll_interval_s=_positive(env, "SERVING_POLL_INTERVAL_S", cls.poll_interval_s, float),
            max_body_bytes=_positive(env, "SERVING_MAX_BODY_BYTES", cls.max_body_bytes),
            max_batch_rows=_positive(env, "SERVING_MAX_BATCH_ROWS", cls.max_batch_rows),
            fast_path=fast in ("1", "true", "yes"),
            cache_dir=env.get("SERVING_CACHE_DIR", cls.cache_dir).strip(),
            drain_file=env.get("SERVING_DRAIN_FILE", cls.drain_file).strip(),
            capture_dir=env.get("SERVING_CAPTURE_DIR", cls.capture_dir).strip(),
            capture_sample=_share(env, "SERVING_CAPTURE_SAMPLE", cls.capture_sample),
            capture_max_mb=_positive(env, "SERVING_CAPTURE_MAX_MB", cls.capture_max_mb, float),
        )
