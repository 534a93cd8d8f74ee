"""Unit tests for the training logic that needs no MLflow server."""

import numpy as np
import pytest
from sklearn.base import clone

from trainer import data, train


def test_evaluate_reports_every_metric_the_gate_reads():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 2, 2, 2])
    m = train.evaluate(y_true, y_pred, ("a", "b", "c"))
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["recall_class_1"] == 0.5
    assert m["recall_class_0"] == m["recall_class_2"] == 1.0
    assert {"precision_macro", "recall_macro", "f1_macro"} <= m.keys()


def test_grid_has_two_model_families():
    families = {family for family, _, _ in train.candidates(0)}
    assert families == {"logreg", "random_forest"}


def test_training_is_deterministic_with_a_seed():
    ds = data.load("wine")
    preds = []
    for _ in range(2):
        for _family, _params, pipe in train.candidates(3):
            preds.append(clone(pipe).fit(ds.X, ds.y).predict(ds.X))
    half = len(preds) // 2
    for a, b in zip(preds[:half], preds[half:], strict=True):
        assert (a == b).all()
