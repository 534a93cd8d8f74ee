"""Load a scikit-learn toy dataset, degrade it on request, and validate it before training.

Validation is the first quality gate: bad data stops the job with a message that says
what is wrong, before any compute is spent or anything is registered.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import datasets

_LOADERS = {
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
    "breast_cancer": datasets.load_breast_cancer,
    "digits": datasets.load_digits,
}

# Expected shape of each dataset: number of features and of classes, and the plausible
# range of every feature value (all four ship non-negative measurements).
_SPECS = {
    "iris": (4, 3, 0.0, 10.0),
    "wine": (13, 3, 0.0, 2000.0),
    "breast_cancer": (30, 2, 0.0, 5000.0),
    "digits": (64, 10, 0.0, 16.0),
}

# The lab's held-out set: a fixed quarter of each dataset's rows that training never sees.
# The gatekeeper measures every candidate (and production) on exactly these rows, with
# their original labels (gatekeeper/holdout.py selects the same rows the same way).
HOLDOUT_FRACTION = 0.25

MIN_CLASS_SHARE = 0.5  # each class must hold at least half of an even share of rows
MIN_ROWS_PER_CLASS = 10


class DataValidationError(ValueError):
    """The data is not fit to train on; the message says why."""


@dataclass(frozen=True)
class Dataset:
    name: str
    X: pd.DataFrame
    y: pd.Series
    target_names: tuple[str, ...]


def load(name: str) -> Dataset:
    """Load a dataset that ships with scikit-learn, as a float DataFrame and an int Series."""
    bunch = _LOADERS[name]()
    columns = [str(c) for c in bunch.feature_names]
    X = pd.DataFrame(np.asarray(bunch.data, dtype="float64"), columns=columns)
    y = pd.Series(np.asarray(bunch.target, dtype="int64"), name="target")
    return Dataset(name, X, y, tuple(str(t) for t in bunch.target_names))


def holdout_mask(name: str, n_rows: int) -> np.ndarray:
    """True for the rows of dataset `name` that belong to the gate's held-out set: chosen by
    a hash of the dataset name and row number, so no seed or library version changes them."""
    limit = int(HOLDOUT_FRACTION * 2**32)
    return np.array(
        [
            int.from_bytes(hashlib.sha256(f"{name}:{i}".encode()).digest()[:4], "big") < limit
            for i in range(n_rows)
        ],
        dtype=bool,
    )


def without_holdout(ds: Dataset) -> Dataset:
    """The rows training may use: everything but the gate's held-out set."""
    keep = ~holdout_mask(ds.name, len(ds.y))
    return Dataset(
        ds.name,
        ds.X[keep].reset_index(drop=True),
        ds.y[keep].reset_index(drop=True),
        ds.target_names,
    )


def degrade(ds: Dataset, *, label_noise: float, null_fraction: float, seed: int) -> Dataset:
    """Corrupt the data for exercises: flip a share of labels, blank a share of cells.

    Label noise reassigns each chosen row to a different class, on the rows training uses
    (its own test split included, so the run's logged metrics look as bad as its data):
    the gate measures the model on its held-out set, whose labels are the true ones.
    """
    if label_noise <= 0 and null_fraction <= 0:
        return ds
    rng = np.random.default_rng(seed)
    y = ds.y.to_numpy().copy()
    n_classes = len(ds.target_names)
    if label_noise > 0:
        flip = rng.random(len(y)) < label_noise
        shift = rng.integers(1, n_classes, size=len(y))
        y[flip] = (y[flip] + shift[flip]) % n_classes
    X = ds.X.copy()
    if null_fraction > 0:
        mask = rng.random(X.shape) < null_fraction
        X = X.mask(mask)
    return Dataset(ds.name, X, pd.Series(y, name="target"), ds.target_names)


def validate(ds: Dataset) -> None:
    """Raise DataValidationError unless the data matches its expected schema and ranges."""
    n_features, n_classes, lo, hi = _SPECS[ds.name]
    X, y = ds.X, ds.y
    if X.shape[1] != n_features:
        raise DataValidationError(
            f"{ds.name}: expected {n_features} feature columns, found {X.shape[1]}"
        )
    if len(X) != len(y):
        raise DataValidationError(f"{ds.name}: {len(X)} feature rows but {len(y)} labels")
    non_numeric = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    if non_numeric:
        raise DataValidationError(f"{ds.name}: non-numeric feature columns: {non_numeric[:5]}")
    nulls = X.isna().sum()
    if nulls.any() or y.isna().any():
        worst = nulls[nulls > 0].sort_values(ascending=False)
        detail = ", ".join(f"{c}={n}" for c, n in worst.head(3).items()) or "labels"
        raise DataValidationError(
            f"{ds.name}: {int(nulls.sum() + y.isna().sum())} missing values ({detail})"
        )
    values = X.to_numpy()
    if not np.isfinite(values).all():
        raise DataValidationError(f"{ds.name}: non-finite feature values")
    out_of_range = (values < lo) | (values > hi)
    if out_of_range.any():
        col = X.columns[int(np.argmax(out_of_range.any(axis=0)))]
        raise DataValidationError(
            f"{ds.name}: {int(out_of_range.sum())} values outside [{lo}, {hi}] (first in {col})"
        )
    labels = set(np.unique(y).tolist())
    if not labels <= set(range(n_classes)):
        raise DataValidationError(f"{ds.name}: unexpected labels {sorted(labels)}")
    counts = np.bincount(y.to_numpy(), minlength=n_classes)
    floor = max(MIN_ROWS_PER_CLASS, MIN_CLASS_SHARE * len(y) / n_classes)
    starved = [ds.target_names[i] for i, c in enumerate(counts) if c < floor]
    if starved:
        raise DataValidationError(
            f"{ds.name}: class imbalance: {starved} below {floor:.0f} rows "
            f"(counts {counts.tolist()})"
        )


def fingerprint(ds: Dataset) -> str:
    """A short, stable hash of the exact data trained on (features, labels, column names)."""
    h = hashlib.sha256()
    h.update(",".join(ds.X.columns).encode())
    h.update(np.ascontiguousarray(ds.X.to_numpy(dtype="float64")).tobytes())
    h.update(np.ascontiguousarray(ds.y.to_numpy(dtype="int64")).tobytes())
    return h.hexdigest()[:16]
