"""Pure-numpy prediction for the scikit-learn models the lab trains.

scikit-learn spends most of a one-row `predict` validating its input (about 200 us of the
~230 us here); the server has already validated the request against the signature. For
the estimators below,
`compile_program` writes down the arithmetic sklearn performs as a *program*: a list of
steps and the arrays they use (numbers only, no Python objects), which `build` turns into
a numpy-only predict:

- `StandardScaler`: `(X - mean_) / scale_`
- `LogisticRegression`: `X @ coef_.T + intercept_`, then an argmax over `classes_`

A program is compiled where scikit-learn is loaded (serving/prepare.py, a short-lived
process) and saved as one JSON and one `.npz` file; a model-server worker only loads
those with numpy, so it never imports scikit-learn, pandas or MLflow for these models.
`agrees` must hold (the program answers exactly as sklearn, row by row and as a batch)
before a program is used. Anything else (random forests among them: the latency
exercise is about a forest's cost) stays on sklearn's own `predict`, in the worker.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

PROGRAM_JSON = "program.json"
PROGRAM_ARRAYS = "program.npz"
FORMAT = 1

Program = tuple[list[dict], dict[str, np.ndarray]]


class _Writer:
    """Collects a program's steps and names each array it uses."""

    def __init__(self) -> None:
        self.steps: list[dict] = []
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, value) -> str:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = np.ascontiguousarray(value)
        return key


def _scaler(step, w: _Writer) -> bool:
    from sklearn.preprocessing import StandardScaler

    if type(step) is not StandardScaler:
        return False
    w.steps.append(
        {
            "op": "scale",
            "mean": w.array(step.mean_) if step.with_mean else None,
            "scale": w.array(step.scale_) if step.with_std else None,
        }
    )
    return True


def _classes(est, w: _Writer) -> str | None:
    classes = np.asarray(est.classes_)
    if classes.dtype.kind not in "biuU":  # numbers or text: stored without pickle
        return None
    return w.array(classes)


def _linear_classifier(est, w: _Writer) -> bool:
    from sklearn.linear_model import LogisticRegression

    if type(est) is not LogisticRegression:
        return False
    classes = _classes(est, w)
    if classes is None:
        return False
    w.steps.append(
        {
            "op": "linear",
            "coef_t": w.array(est.coef_.T),
            "intercept": w.array(est.intercept_),
            "classes": classes,
            # binary: one decision function, positive -> classes_[1]
            "binary": bool(est.coef_.shape[0] == 1),
        }
    )
    return True


def compile_program(estimator) -> Program | None:
    """The estimator's predict as a program (steps, arrays), or None if unsupported."""
    from sklearn.pipeline import Pipeline

    steps = [s for _, s in estimator.steps] if type(estimator) is Pipeline else [estimator]
    steps = [s for s in steps if s not in (None, "passthrough")]
    if not steps:
        return None
    w = _Writer()
    for step in steps[:-1]:
        if not _scaler(step, w):
            return None
    if not _linear_classifier(steps[-1], w):
        return None
    return w.steps, w.arrays


def _op(step: dict, a: dict[str, np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    op = step["op"]
    if op == "scale":
        mean = a[step["mean"]] if step["mean"] is not None else None
        scale = a[step["scale"]] if step["scale"] is not None else None

        def transform(X: np.ndarray) -> np.ndarray:
            if mean is not None:
                X = X - mean
            if scale is not None:
                X = X / scale
            return X

        return transform
    if op == "linear":
        coef_t, intercept, classes = a[step["coef_t"]], a[step["intercept"]], a[step["classes"]]
        if step["binary"]:

            def predict_binary(X: np.ndarray) -> np.ndarray:
                scores = (X @ coef_t + intercept).ravel()
                return classes[(scores > 0).astype(int)]

            return predict_binary

        def predict_multi(X: np.ndarray) -> np.ndarray:
            return classes[np.argmax(X @ coef_t + intercept, axis=1)]

        return predict_multi
    raise ValueError(f"unknown program step {op!r}")


def build(program: Program) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy-only predict from a program."""
    steps, arrays = program
    ops = [_op(step, arrays) for step in steps]
    *transforms, final = ops

    def predict(X: np.ndarray) -> np.ndarray:
        for t in transforms:
            X = t(X)
        return final(X)

    return predict


def compile_predict(estimator) -> Callable[[np.ndarray], np.ndarray] | None:
    """A numpy-only predict equivalent to `estimator.predict`, or None if unsupported."""
    program = compile_program(estimator)
    return build(program) if program is not None else None


def save(program: Program, folder: str | Path) -> None:
    steps, arrays = program
    folder = Path(folder)
    np.savez(folder / PROGRAM_ARRAYS, **arrays)
    (folder / PROGRAM_JSON).write_text(json.dumps({"format": FORMAT, "steps": steps}))


def load(folder: str | Path) -> Program:
    """A saved program; ValueError when it is not one this module wrote."""
    folder = Path(folder)
    meta = json.loads((folder / PROGRAM_JSON).read_text())
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"not a program of format {FORMAT}: {folder / PROGRAM_JSON}")
    with np.load(folder / PROGRAM_ARRAYS, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return meta["steps"], arrays


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
