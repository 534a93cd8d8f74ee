"""Pure-numpy prediction for the scikit-learn models the lab trains.

scikit-learn spends most of a one-row `predict` validating its input (about 200 us of the
~230 us here); the server has already validated the request against the signature. For
the estimators below, `compile_predict` returns the same arithmetic sklearn performs
(`(X - mean_) / scale_`, then `X @ coef_.T + intercept_` and an argmax over `classes_`),
and `build_predictors` only uses it after checking it answers exactly as sklearn does.
Anything else (random forests, other steps) stays on sklearn's own `predict`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _scaler(step) -> Callable[[np.ndarray], np.ndarray] | None:
    from sklearn.preprocessing import StandardScaler

    if type(step) is not StandardScaler:
        return None
    mean = step.mean_ if step.with_mean else None
    scale = step.scale_ if step.with_std else None

    def transform(X: np.ndarray) -> np.ndarray:
        if mean is not None:
            X = X - mean
        if scale is not None:
            X = X / scale
        return X

    return transform


def _linear_classifier(est) -> Callable[[np.ndarray], np.ndarray] | None:
    from sklearn.linear_model import LogisticRegression

    if type(est) is not LogisticRegression:
        return None
    coef_t = np.ascontiguousarray(est.coef_.T)
    intercept = est.intercept_
    classes = est.classes_
    if coef_t.shape[1] == 1:  # binary: one decision function, positive -> classes_[1]

        def predict(X: np.ndarray) -> np.ndarray:
            scores = (X @ coef_t + intercept).ravel()
            return classes[(scores > 0).astype(int)]

        return predict

    def predict_multi(X: np.ndarray) -> np.ndarray:
        return classes[np.argmax(X @ coef_t + intercept, axis=1)]

    return predict_multi


def compile_predict(estimator) -> Callable[[np.ndarray], np.ndarray] | None:
    """A numpy-only predict equivalent to `estimator.predict`, or None if unsupported."""
    from sklearn.pipeline import Pipeline

    steps = [s for _, s in estimator.steps] if type(estimator) is Pipeline else [estimator]
    steps = [s for s in steps if s not in (None, "passthrough")]
    if not steps:
        return None
    transforms = []
    for step in steps[:-1]:
        t = _scaler(step)
        if t is None:
            return None
        transforms.append(t)
    final = _linear_classifier(steps[-1])
    if final is None:
        return None

    def predict(X: np.ndarray) -> np.ndarray:
        for t in transforms:
            X = t(X)
        return final(X)

    return predict


def agrees(fast, reference, rows: np.ndarray) -> bool:
    """True when `fast` returns exactly what `reference` does, row by row and as a batch."""
    try:
        expected = reference(rows)
        if not np.array_equal(fast(rows), expected):
            return False
        return all(
            np.array_equal(fast(rows[i : i + 1]), expected[i : i + 1])
            for i in range(min(len(rows), 32))
        )
    except Exception:
        return False
