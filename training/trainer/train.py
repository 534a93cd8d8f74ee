"""Train a small model grid, log everything to MLflow, register the best as `candidate`."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from trainer import data, figures, report, shift
from trainer import profile as reference
from trainer.config import TrainConfig

log = logging.getLogger("trainer")

# Types skops must be told to trust when loading each family (MLflow's default sklearn
# format is skops): https://skops.readthedocs.io/en/stable/persistence.html
TRUSTED_TYPES = {"random_forest": ["sklearn.tree._tree.Tree"]}


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    version: str
    params: dict
    metrics: dict[str, float]


def model_requirements() -> list[str]:
    """What loading the model needs, pinned to the versions that trained it."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("scikit-learn", "skops", "numpy", "pandas")]


def candidates(seed: int) -> list[tuple[str, dict, Pipeline]]:
    """The grid: two model families, a few settings each. Small enough for a laptop."""
    grid: list[tuple[str, dict, Pipeline]] = []
    for c in (0.1, 1.0, 10.0):
        pipe = Pipeline(
            [
                ("scale", StandardScaler()),
                ("clf", LogisticRegression(C=c, max_iter=2000, random_state=seed)),
            ]
        )
        grid.append(("logreg", {"C": c}, pipe))
    for depth in (3, None):
        pipe = Pipeline(
            [
                (
                    "clf",
                    RandomForestClassifier(
                        n_estimators=50, max_depth=depth, random_state=seed, n_jobs=1
                    ),
                ),
            ]
        )
        grid.append(("random_forest", {"n_estimators": 50, "max_depth": depth}, pipe))
    return grid


def evaluate(y_true, y_pred, target_names) -> dict[str, float]:
    """Accuracy, macro precision/recall/F1 and per-class recall, as MLflow metric names."""
    metrics = {
        "accuracy": accuracy_score(y_true, y_pred),
        "precision_macro": precision_score(y_true, y_pred, average="macro", zero_division=0),
        "recall_macro": recall_score(y_true, y_pred, average="macro", zero_division=0),
        "f1_macro": f1_score(y_true, y_pred, average="macro", zero_division=0),
    }
    per_class = recall_score(
        y_true, y_pred, average=None, labels=list(range(len(target_names))), zero_division=0
    )
    for i, value in enumerate(per_class):
        metrics[f"recall_class_{i}"] = float(value)
    return {k: round(float(v), 6) for k, v in metrics.items()}


def _log_reports(y_true, y_pred, target_names, out: Path) -> None:
    labels = list(range(len(target_names)))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    svg = figures.confusion_matrix_svg(
        cm.tolist(), list(target_names), "Confusion matrix (test split)"
    )
    (out / "confusion_matrix.svg").write_text(svg)
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=list(target_names), zero_division=0
    )
    (out / "classification_report.txt").write_text(report)
    mlflow.log_artifact(str(out / "confusion_matrix.svg"), "evaluation")
    mlflow.log_artifact(str(out / "classification_report.txt"), "evaluation")


def validate_and_report(ds: data.Dataset, cfg: TrainConfig, knobs: dict) -> tuple[Path, Path]:
    """Check the data, write the validation report (passed or failed), and raise
    DataValidationError with the first failed rule's message if the data is not fit."""
    checks = data.check(ds)
    doc = report.build(
        ds,
        checks,
        knobs=knobs,
        git_sha=cfg.git_sha,
        checked_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    try:
        files = report.write(Path(cfg.report_dir), doc)
    except OSError as exc:
        raise RuntimeError(
            f"cannot write the data-validation report to {cfg.report_dir}: {exc}"
        ) from None
    log.info("data validation %s: %s", doc["verdict"], files[1])
    failed = next((c for c in checks if c.passed is False), None)
    if failed is not None:
        raise data.DataValidationError(failed.detail)
    return files


def run(cfg: TrainConfig) -> TrainResult:
    """Validate, train, log, register and alias. Raises on any failure before the alias moves."""
    full = data.load(cfg.dataset)
    knobs = {
        "shift": cfg.shift,
        "label_noise": cfg.label_noise,
        "null_fraction": cfg.null_fraction,
        "duplicate_fraction": cfg.duplicate_fraction,
        "seed": cfg.seed,
    }
    window = data.without_holdout(full)
    if cfg.shift:
        shifted = shift.apply(window.X, shift.parse(cfg.shift))
        window = data.Dataset(window.name, shifted, window.y, window.target_names)
    ds = data.degrade(
        window,
        label_noise=cfg.label_noise,
        null_fraction=cfg.null_fraction,
        duplicate_fraction=cfg.duplicate_fraction,
        seed=cfg.seed,
    )
    validation_files = validate_and_report(ds, cfg, knobs)
    fp = data.fingerprint(ds)

    X_train, X_test, y_train, y_test = train_test_split(
        ds.X, ds.y, test_size=cfg.test_size, random_state=cfg.seed, stratify=ds.y
    )

    mlflow.set_tracking_uri(cfg.tracking_uri)
    mlflow.set_experiment(cfg.experiment)
    client = MlflowClient()

    tags = {"git_sha": cfg.git_sha, "dataset": cfg.dataset, "dataset_fingerprint": fp}
    if cfg.shift:
        tags["train_shift"] = cfg.shift
    with mlflow.start_run(run_name=f"train-{cfg.dataset}", tags=tags) as parent:
        mlflow.log_params(
            {
                "dataset": cfg.dataset,
                "seed": cfg.seed,
                "test_size": cfg.test_size,
                "label_noise": cfg.label_noise,
                "duplicate_fraction": cfg.duplicate_fraction,
                "train_shift": cfg.shift or "none",
                "n_train": len(X_train),
                "n_test": len(X_test),
                "n_held_out_for_gate": len(full.y) - len(ds.y),
            }
        )
        for path in validation_files:
            mlflow.log_artifact(str(path), "data")
        # What the drift check compares production's traffic with: the rows trained on.
        mlflow.log_dict(
            reference.build(
                ds.X, ds.y, ds.target_names, dataset=cfg.dataset, shift=cfg.shift, seed=cfg.seed
            ),
            reference.PATH,
        )
        best = None
        for family, params, pipe in candidates(cfg.seed):
            scores = cross_val_score(clone(pipe), X_train, y_train, cv=3, scoring="f1_macro")
            score = float(np.mean(scores))
            with mlflow.start_run(run_name=f"{family}-{params}", nested=True, tags=tags):
                mlflow.log_params({"family": family, **params})
                mlflow.log_metric("cv_f1_macro", score)
            log.info("grid %s %s cv_f1_macro=%.4f", family, params, score)
            if best is None or score > best[0]:
                best = (score, family, params, pipe)
        assert best is not None
        cv_score, family, params, pipe = best
        model = clone(pipe).fit(X_train, y_train)
        y_pred = model.predict(X_test)
        metrics = evaluate(y_test, y_pred, ds.target_names)
        metrics["cv_f1_macro"] = round(cv_score, 6)
        mlflow.log_params({"best_family": family, **{f"best_{k}": v for k, v in params.items()}})
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            _log_reports(y_test, y_pred, ds.target_names, Path(tmp))
            (Path(tmp) / "target_names.json").write_text(json.dumps(list(ds.target_names)))
            mlflow.log_artifact(str(Path(tmp) / "target_names.json"), "evaluation")

        example = X_train.head(3)
        signature = infer_signature(example, model.predict(example))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            # Labels are indexes into these: a client (the servers' page) can name the class.
            metadata={"class_names": [str(n) for n in ds.target_names]},
            registered_model_name=cfg.model_name,
            # skops refuses tree internals unless named; we built this model ourselves.
            skops_trusted_types=TRUSTED_TYPES.get(family),
            # Stated, not inferred: inference spawns a subprocess and costs ~5 s per run.
            pip_requirements=model_requirements(),
        )
        version = str(info.registered_model_version)
        for key, value in {**tags, "run_id": parent.info.run_id, "model_family": family}.items():
            client.set_model_version_tag(cfg.model_name, version, key, str(value))
        # The alias moves last: if anything above failed, `candidate` still points where it did.
        client.set_registered_model_alias(cfg.model_name, cfg.candidate_alias, version)
        return TrainResult(parent.info.run_id, version, {"family": family, **params}, metrics)
