"""Gatekeeper configuration, read from the environment (no side effects at import)."""

from __future__ import annotations

import getpass
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from gatekeeper.decide import Thresholds


class ConfigError(ValueError):
    """A setting is malformed; the message names the variable."""


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    if raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {raw!r}")
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def _actor(env: Mapping[str, str]) -> str:
    for name in ("GATE_ACTOR", "GITHUB_ACTOR", "USER"):
        if env.get(name):
            return env[name]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container uid with no passwd entry
        return "unknown"


@dataclass(frozen=True)
class GateConfig:
    tracking_uri: str = "http://127.0.0.1:5050"
    model_name: str = "lab-classifier"
    thresholds: Thresholds = field(default_factory=Thresholds)
    report_dir: str = "reports/gate"
    # Where promotion retags the serving image; empty means "no image registry" (local mode).
    registry_url: str = ""
    image_repository: str = "mlops-lab/serving"
    # The registry's login (classroom mode); empty means anonymous.
    registry_username: str = ""
    registry_password: str = field(default="", repr=False)
    actor: str = "unknown"
    # Production takes only a version someone approved (make approve).
    require_approval: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GateConfig:
        env = os.environ if env is None else env
        d = Thresholds()
        thresholds = Thresholds(
            min_accuracy=_float(env, "GATE_MIN_ACCURACY", d.min_accuracy),
            min_precision_macro=_float(env, "GATE_MIN_PRECISION_MACRO", d.min_precision_macro),
            min_recall_per_class=_float(env, "GATE_MIN_RECALL_PER_CLASS", d.min_recall_per_class),
            max_p99_latency_ms=_float(env, "GATE_MAX_P99_LATENCY_MS", d.max_p99_latency_ms),
            max_model_size_mb=_float(env, "GATE_MAX_MODEL_SIZE_MB", d.max_model_size_mb),
            max_regression=_float(env, "GATE_MAX_REGRESSION", d.max_regression),
        )
        for name in ("min_accuracy", "min_precision_macro", "min_recall_per_class"):
            if getattr(thresholds, name) > 1:
                raise ConfigError(f"GATE_{name.upper()} must be between 0 and 1")
        return cls(
            tracking_uri=env.get("MLFLOW_TRACKING_URI", cls.tracking_uri),
            model_name=env.get("MLFLOW_MODEL_NAME", cls.model_name),
            thresholds=thresholds,
            report_dir=env.get("GATE_REPORT_DIR", cls.report_dir),
            registry_url=env.get("GATE_REGISTRY_URL", cls.registry_url).rstrip("/"),
            image_repository=env.get("GATE_IMAGE_REPOSITORY", cls.image_repository),
            registry_username=env.get("GATE_REGISTRY_USERNAME", ""),
            registry_password=env.get("GATE_REGISTRY_PASSWORD", ""),
            actor=_actor(env),
            require_approval=_flag(env, "PROMOTE_REQUIRE_APPROVAL"),
        )


def _int(env: Mapping[str, str], name: str, default: int, lowest: int) -> int:
    raw = env.get(name, "")
    if raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < lowest:
        raise ConfigError(f"{name} must be at least {lowest}, got {value}")
    return value


@dataclass(frozen=True)
class DriftConfig:
    """The drift check (`python -m gatekeeper drift`): which window, judged how."""

    capture_dir: str = ".lab/capture"
    alias: str = "production"
    window_rows: int = 1000  # the most recent rows the version served
    min_rows: int = 100
    psi: float = 0.2
    ks_alpha: float = 0.001
    min_features: int = 1
    report_dir: str = "reports/drift"
    experiment: str = "lab-monitoring"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DriftConfig:
        env = os.environ if env is None else env
        psi = _float(env, "DRIFT_PSI_THRESHOLD", cls.psi)
        alpha = _float(env, "DRIFT_KS_ALPHA", cls.ks_alpha)
        if psi <= 0:
            raise ConfigError(f"DRIFT_PSI_THRESHOLD must be positive, got {psi}")
        if not 0 < alpha < 1:
            raise ConfigError(f"DRIFT_KS_ALPHA must be between 0 and 1, got {alpha}")
        min_rows = _int(env, "DRIFT_MIN_ROWS", cls.min_rows, 2)
        window = _int(env, "DRIFT_WINDOW_ROWS", cls.window_rows, 2)
        if window < min_rows:
            raise ConfigError(
                f"DRIFT_WINDOW_ROWS ({window}) must be at least DRIFT_MIN_ROWS ({min_rows})"
            )
        return cls(
            capture_dir=env.get("DRIFT_CAPTURE_DIR", "").strip() or cls.capture_dir,
            alias=env.get("DRIFT_ALIAS", "").strip() or cls.alias,
            window_rows=window,
            min_rows=min_rows,
            psi=psi,
            ks_alpha=alpha,
            min_features=_int(env, "DRIFT_MIN_FEATURES", cls.min_features, 1),
            report_dir=env.get("DRIFT_REPORT_DIR", "").strip() or cls.report_dir,
            experiment=env.get("DRIFT_EXPERIMENT", "").strip() or cls.experiment,
        )
