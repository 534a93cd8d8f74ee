"""Training configuration, read from the environment (no side effects at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from trainer.shift import ShiftError, describe, parse

DATASETS = ("iris", "wine", "breast_cancer", "digits")


class ConfigError(ValueError):
    """A setting is missing or out of range; the message names the variable."""


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name, "")
    if raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _int(
    env: Mapping[str, str], name: str, default: int, lo: int | None = None, hi: int | None = None
) -> int:
    """An integer setting; with `lo` and `hi`, one in that range."""
    raw = env.get(name, "")
    if raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if lo is not None and hi is not None and not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


@dataclass(frozen=True)
class TrainConfig:
    tracking_uri: str = "http://127.0.0.1:5050"
    model_name: str = "lab-classifier"
    experiment: str = "mlops-lab"
    dataset: str = "iris"
    seed: int = 42
    test_size: float = 0.25
    label_noise: float = 0.0
    null_fraction: float = 0.0
    duplicate_fraction: float = 0.0
    report_dir: str = "reports/data"
    git_sha: str = "unknown"
    candidate_alias: str = "candidate"
    # The data window to train on: the dataset with this shift applied (trainer/shift.py),
    # canonical text, "" for the dataset as it ships.
    shift: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TrainConfig:
        env = os.environ if env is None else env
        dataset = env.get("TRAIN_DATASET", cls.dataset).strip().lower()
        if dataset not in DATASETS:
            raise ConfigError(
                f"TRAIN_DATASET must be one of {', '.join(DATASETS)}, got {dataset!r}"
            )
        try:
            shift_text = describe(parse(env.get("TRAIN_SHIFT", "")))
        except ShiftError as exc:
            raise ConfigError(f"TRAIN_SHIFT: {exc}") from None
        return cls(
            tracking_uri=env.get("MLFLOW_TRACKING_URI", cls.tracking_uri),
            model_name=env.get("MLFLOW_MODEL_NAME", cls.model_name),
            experiment=env.get("MLFLOW_EXPERIMENT_NAME", cls.experiment),
            dataset=dataset,
            seed=_int(env, "TRAIN_SEED", cls.seed),
            test_size=_float(env, "TRAIN_TEST_SIZE", cls.test_size, 0.1, 0.5),
            label_noise=_float(env, "LABEL_NOISE", cls.label_noise, 0.0, 1.0),
            null_fraction=_float(env, "TRAIN_NULL_FRACTION", cls.null_fraction, 0.0, 1.0),
            duplicate_fraction=_float(
                env, "TRAIN_DUPLICATE_FRACTION", cls.duplicate_fraction, 0.0, 1.0
            ),
            report_dir=env.get("TRAIN_REPORT_DIR", "").strip() or cls.report_dir,
            git_sha=env.get("GIT_SHA", "").strip() or cls.git_sha,
            shift=shift_text,
        )
