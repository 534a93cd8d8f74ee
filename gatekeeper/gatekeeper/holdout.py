"""The lab's held-out set, and the gate's own measurement of a model on it.

The gate never trusts the metrics a training run logged about itself: any client that can
write to the run can overwrite them. It loads the model's files (trusted.py) and measures
them here, on rows training never saw, with their original labels, the candidate and the
production model on the same rows. The rows are a fixed quarter of each dataset, chosen by
a hash of the dataset name and row number (training/trainer/data.py leaves out exactly
these rows), and the set is recorded with each verdict by its sha256.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gatekeeper import shift as shift_rows

HOLDOUT_FRACTION = 0.25
DATASETS = ("iris", "wine", "breast_cancer", "digits")


class HoldoutError(ValueError):
    """The held-out set cannot be built or the model cannot be measured on it."""


@dataclass(frozen=True)
class Holdout:
    dataset: str
    X: pd.DataFrame
    y: np.ndarray
    n_classes: int
    sha256: str
    shift: str = ""

    def describe(self) -> dict:
        described = {"dataset": self.dataset, "rows": len(self.y), "sha256": self.sha256}
        if self.shift:
            described["shift"] = self.shift
        return described


def holdout_mask(name: str, n_rows: int) -> np.ndarray:
    """True for the rows of dataset `name` held out from training for the gate."""
    limit = int(HOLDOUT_FRACTION * 2**32)
    return np.array(
        [
            int.from_bytes(hashlib.sha256(f"{name}:{i}".encode()).digest()[:4], "big") < limit
            for i in range(n_rows)
        ],
        dtype=bool,
    )


def load(dataset: str, shift: str = "") -> Holdout:
    """The held-out rows of a dataset that ships with scikit-learn (no network), with
    `shift` (TRAIN_SHIFT's syntax) applied to their features."""
    if dataset not in DATASETS:
        raise HoldoutError(
            f"no held-out set for dataset {dataset!r} (the version's `dataset` tag); "
            f"the lab has one for {', '.join(DATASETS)}"
        )
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{dataset}")()
    columns = [str(c) for c in bunch.feature_names]
    X = pd.DataFrame(np.asarray(bunch.data, dtype="float64"), columns=columns)
    y = np.asarray(bunch.target, dtype="int64")
    mask = holdout_mask(dataset, len(y))
    X, y = X[mask].reset_index(drop=True), y[mask]
    entries = ()
    if shift.strip():
        try:
            entries = shift_rows.parse(shift)
            X = shift_rows.apply(X, entries)
        except shift_rows.ShiftError as exc:
            raise HoldoutError(f"the version's train_shift tag: {exc}") from None
    h = hashlib.sha256()
    h.update(dataset.encode() + b"\0" + ",".join(columns).encode())
    h.update(np.ascontiguousarray(X.to_numpy()).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return Holdout(
        dataset, X, y, len(bunch.target_names), h.hexdigest(), shift_rows.describe(entries)
    )


def measure(estimator, holdout: Holdout) -> dict[str, float]:
    """Accuracy, macro precision/recall/F1 and per-class recall of `estimator` on the
    held-out rows, under the same metric names training logs."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    try:
        predicted = np.asarray(estimator.predict(holdout.X))
    except Exception as exc:  # wrong columns, wrong types: the model does not fit the data
        raise HoldoutError(
            f"the model cannot predict the {holdout.dataset} held-out rows: "
            f"{type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    if predicted.shape != holdout.y.shape:
        raise HoldoutError(
            f"the model returned {predicted.shape[0] if predicted.ndim else 0} predictions "
            f"for {len(holdout.y)} held-out rows"
        )
    try:
        predicted = predicted.astype("int64")
    except (TypeError, ValueError):
        raise HoldoutError("the model's predictions are not class numbers") from None
    y = holdout.y
    labels = list(range(holdout.n_classes))
    metrics = {
        "accuracy": accuracy_score(y, predicted),
        "precision_macro": precision_score(
            y, predicted, average="macro", labels=labels, zero_division=0
        ),
        "recall_macro": recall_score(y, predicted, average="macro", labels=labels, zero_division=0),
        "f1_macro": f1_score(y, predicted, average="macro", labels=labels, zero_division=0),
    }
    per_class = recall_score(y, predicted, average=None, labels=labels, zero_division=0)
    for i, value in enumerate(per_class):
        metrics[f"recall_class_{i}"] = float(value)
    return {k: round(float(v), 6) for k, v in metrics.items()}
