"""The reference profile: what the training data looked like, logged with the model.

The drift check (gatekeeper/gatekeeper/drift.py) compares what a server was asked about
with the profile of the version it serves, so drift is always measured against the data
that made that model. `make traffic` draws its rows from the profile too.

Stored as `reference/profile.json` in the training run:

    {"format": 1, "dataset": "iris", "shift": "", "rows": 112,
     "columns": ["sepal length (cm)", ...],
     "sample": [[5.1, 3.5, 1.4, 0.2], ...],          # up to MAX_SAMPLE rows, seeded
     "labels": [0, ...],                             # the sample's labels, row by row
     "features": {"sepal length (cm)": {"mean": .., "std": .., "min": .., "max": ..,
                                         "quantiles": [q10, .., q90]}, ...},
     "classes": {"setosa": 0.33, ...}}               # share of each label
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FORMAT = 1
MAX_SAMPLE = 5000
PATH = "reference/profile.json"


def build(
    X: pd.DataFrame,
    y: pd.Series,
    target_names: tuple[str, ...],
    *,
    dataset: str,
    shift: str,
    seed: int,
) -> dict:
    """The profile of the rows in X (and their labels y), JSON-ready."""
    if len(X) == 0:
        raise ValueError("cannot profile an empty dataset")
    idx = np.arange(len(X))
    if len(idx) > MAX_SAMPLE:
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=MAX_SAMPLE, replace=False))
    values = X.to_numpy(dtype="float64")
    labels = y.to_numpy(dtype="int64")
    features = {}
    for j, column in enumerate(X.columns):
        col = values[:, j]
        features[str(column)] = {
            "mean": round(float(col.mean()), 6),
            "std": round(float(col.std()), 6),
            "min": round(float(col.min()), 6),
            "max": round(float(col.max()), 6),
            "quantiles": [round(float(q), 6) for q in np.quantile(col, np.linspace(0.1, 0.9, 9))],
        }
    counts = np.bincount(labels, minlength=len(target_names))
    return {
        "format": FORMAT,
        "dataset": dataset,
        "shift": shift,
        "rows": len(X),
        "columns": [str(c) for c in X.columns],
        "sample": [[float(v) for v in row] for row in values[idx]],
        "labels": [int(v) for v in labels[idx]],
        "features": features,
        "classes": {
            name: round(float(c / len(labels)), 6)
            for name, c in zip(target_names, counts, strict=True)
        },
    }
