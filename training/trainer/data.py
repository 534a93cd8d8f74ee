"""Load a scikit-learn toy dataset, degrade it on request, and validate it before training.

Validation is the first quality gate: bad data stops the job with a message that says
what is wrong, before any compute is spent or anything is registered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
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


def degrade(
    ds: Dataset,
    *,
    label_noise: float,
    null_fraction: float,
    seed: int,
    duplicate_fraction: float = 0.0,
) -> Dataset:
    """Corrupt the data for exercises: flip a share of labels, blank a share of cells,
    repeat a share of rows.

    Label noise reassigns each chosen row to a different class, on the rows training uses
    (its own test split included, so the run's logged metrics look as bad as its data):
    the gate measures the model on its held-out set, whose labels are the true ones.
    Duplicated rows are exact copies (features and label) appended at the end: the split
    then puts copies of one row on both sides, and the test score is inflated.
    """
    if label_noise <= 0 and null_fraction <= 0 and duplicate_fraction <= 0:
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
    if duplicate_fraction > 0:
        copies = np.sort(rng.choice(len(y), size=round(duplicate_fraction * len(y)), replace=False))
        X = pd.concat([X, X.iloc[copies]], ignore_index=True)
        y = np.concatenate([y, y[copies]])
    return Dataset(ds.name, X, pd.Series(y, name="target"), ds.target_names)


# ----------------------------------------------------------------------------- rules
#
# Each rule looks at the data and either returns a short note of what it found, or raises
# DataValidationError saying what is wrong. Rules never change the data. They run in the
# order of RULES; validate() stops at the first that fails.


def columns(ds: Dataset) -> str:
    """As many feature columns as the dataset has, and one label per row."""
    n_features = _SPECS[ds.name][0]
    X, y = ds.X, ds.y
    if X.shape[1] != n_features:
        raise DataValidationError(
            f"{ds.name}: expected {n_features} feature columns, found {X.shape[1]}"
        )
    if len(X) != len(y):
        raise DataValidationError(f"{ds.name}: {len(X)} feature rows but {len(y)} labels")
    return f"{X.shape[1]} feature columns, {len(y)} rows"


def numeric(ds: Dataset) -> str:
    """Every feature column holds numbers."""
    non_numeric = [c for c in ds.X.columns if not pd.api.types.is_numeric_dtype(ds.X[c])]
    if non_numeric:
        raise DataValidationError(f"{ds.name}: non-numeric feature columns: {non_numeric[:5]}")
    return "all feature columns are numeric"


def missing_values(ds: Dataset) -> str:
    """No missing feature value, no missing label."""
    X, y = ds.X, ds.y
    nulls = X.isna().sum()
    if nulls.any() or y.isna().any():
        worst = nulls[nulls > 0].sort_values(ascending=False)
        detail = ", ".join(f"{c}={n}" for c, n in worst.head(3).items()) or "labels"
        raise DataValidationError(
            f"{ds.name}: {int(nulls.sum() + y.isna().sum())} missing values ({detail})"
        )
    return "no missing values"


def finite(ds: Dataset) -> str:
    """No infinite feature value."""
    if not np.isfinite(ds.X.to_numpy()).all():
        raise DataValidationError(f"{ds.name}: non-finite feature values")
    return "all feature values are finite"


def value_ranges(ds: Dataset) -> str:
    """Every feature value within the dataset's plausible range."""
    _, _, lo, hi = _SPECS[ds.name]
    values = ds.X.to_numpy()
    out_of_range = (values < lo) | (values > hi)
    if out_of_range.any():
        col = ds.X.columns[int(np.argmax(out_of_range.any(axis=0)))]
        raise DataValidationError(
            f"{ds.name}: {int(out_of_range.sum())} values outside [{lo}, {hi}] (first in {col})"
        )
    return f"all values within [{lo}, {hi}]"


def labels(ds: Dataset) -> str:
    """Only the dataset's own classes as labels."""
    n_classes = _SPECS[ds.name][1]
    found = set(np.unique(ds.y).tolist())
    if not found <= set(range(n_classes)):
        raise DataValidationError(f"{ds.name}: unexpected labels {sorted(found)}")
    return f"labels within 0..{n_classes - 1}"


def class_balance(ds: Dataset) -> str:
    """Every class holds enough rows to learn it (MIN_CLASS_SHARE, MIN_ROWS_PER_CLASS)."""
    n_classes = _SPECS[ds.name][1]
    counts = np.bincount(ds.y.to_numpy(), minlength=n_classes)
    floor = max(MIN_ROWS_PER_CLASS, MIN_CLASS_SHARE * len(ds.y) / n_classes)
    starved = [ds.target_names[i] for i, c in enumerate(counts) if c < floor]
    if starved:
        raise DataValidationError(
            f"{ds.name}: class imbalance: {starved} below {floor:.0f} rows "
            f"(counts {counts.tolist()})"
        )
    return f"rows per class {counts.tolist()}, at least {floor:.0f} each"


Rule = Callable[[Dataset], str]

# The rules, in the order they run: the schema first, so that later rules can rely on it.
RULES: tuple[Rule, ...] = (
    columns,
    numeric,
    missing_values,
    finite,
    value_ranges,
    labels,
    class_balance,
)


@dataclass(frozen=True)
class Check:
    """One rule's verdict: passed True or False, or None when an earlier rule failed and
    this one did not run."""

    name: str
    passed: bool | None
    detail: str


def validate(ds: Dataset) -> None:
    """Raise DataValidationError unless the data matches its expected schema and ranges."""
    for rule in RULES:
        rule(ds)


def check(ds: Dataset) -> list[Check]:
    """Every rule's verdict on the data, for the validation report (never raises
    DataValidationError). Rules after the first failure are listed as not run. validate()
    stays the authority: should it raise where every rule passed, its message is reported
    as a failed check named `validate`."""
    results: list[Check] = []
    for rule in RULES:
        if results and results[-1].passed is not True:
            results.append(Check(rule.__name__, None, "an earlier rule failed"))
            continue
        try:
            results.append(Check(rule.__name__, True, rule(ds)))
        except DataValidationError as exc:
            results.append(Check(rule.__name__, False, str(exc)))
    if all(c.passed for c in results):
        try:
            validate(ds)
        except DataValidationError as exc:
            results.append(Check("validate", False, str(exc)))
    return results


def fingerprint(ds: Dataset) -> str:
    """A short, stable hash of the exact data trained on (features, labels, column names)."""
    h = hashlib.sha256()
    h.update(",".join(ds.X.columns).encode())
    h.update(np.ascontiguousarray(ds.X.to_numpy(dtype="float64")).tobytes())
    h.update(np.ascontiguousarray(ds.y.to_numpy(dtype="int64")).tobytes())
    return h.hexdigest()[:16]
