import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from gatekeeper import holdout


def test_the_held_out_set_is_fixed_and_fingerprinted():
    a, b = holdout.load("iris"), holdout.load("iris")
    assert a.sha256 == b.sha256 and len(a.y) == a.describe()["rows"]
    assert 0.15 < len(a.y) / 150 < 0.35
    assert holdout.load("wine").sha256 != a.sha256


def test_an_unknown_dataset_has_no_held_out_set():
    with pytest.raises(holdout.HoldoutError, match="no held-out set for dataset 'mnist'"):
        holdout.load("mnist")


def test_measure_scores_what_the_model_predicts_not_what_it_claims():
    h = holdout.load("iris")
    always_zero = DummyClassifier(strategy="constant", constant=0).fit(h.X, h.y)
    m = holdout.measure(always_zero, h)
    assert m["accuracy"] == pytest.approx(float(np.mean(h.y == 0)), abs=1e-6)
    assert m["recall_class_0"] == 1.0 and m["recall_class_1"] == 0.0
    good = LogisticRegression(max_iter=1000).fit(h.X, h.y)
    assert holdout.measure(good, h)["accuracy"] > 0.9


def test_a_model_for_other_columns_is_reported_not_raised():
    h = holdout.load("iris")
    wine = holdout.load("wine")
    model = LogisticRegression(max_iter=5000).fit(wine.X, wine.y)
    with pytest.raises(holdout.HoldoutError, match="cannot predict the iris held-out rows"):
        holdout.measure(model, h)


def test_a_shifted_held_out_set_is_the_same_rows_moved_and_fingerprinted_apart():
    plain = holdout.load("iris")
    shifted = holdout.load("iris", "petal length (cm)=+1.5")
    col = "petal length (cm)"
    assert np.allclose(shifted.X[col], plain.X[col] + 1.5)
    assert shifted.X.drop(columns=col).equals(plain.X.drop(columns=col))
    assert (shifted.y == plain.y).all()
    assert shifted.sha256 != plain.sha256
    assert shifted.describe()["shift"] == "petal length (cm)=+1.5"
    assert "shift" not in plain.describe()


def test_a_shift_the_gate_cannot_read_is_a_held_out_error():
    with pytest.raises(holdout.HoldoutError, match="train_shift tag: no feature named 'petal'"):
        holdout.load("iris", "petal=+1")
