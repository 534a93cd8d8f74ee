import numpy as np
import pytest

from trainer import data
from trainer.data import DataValidationError


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits"])
def test_shipped_datasets_validate(name):
    data.validate(data.load(name))


def _iris():
    return data.load("iris")


def _replace(ds, X=None, y=None):
    return data.Dataset(
        ds.name, ds.X if X is None else X, ds.y if y is None else y, ds.target_names
    )


def test_missing_values_are_rejected_with_counts():
    ds = _iris()
    X = ds.X.copy()
    X.iloc[3, 1] = np.nan
    with pytest.raises(DataValidationError, match=r"1 missing values \(sepal width \(cm\)=1\)"):
        data.validate(_replace(ds, X=X))


def test_wrong_column_count_is_rejected():
    ds = _iris()
    with pytest.raises(DataValidationError, match="expected 4 feature columns, found 3"):
        data.validate(_replace(ds, X=ds.X.iloc[:, :3]))


def test_out_of_range_values_are_rejected():
    ds = _iris()
    X = ds.X.copy()
    X.iloc[0, 2] = -1.0
    with pytest.raises(DataValidationError, match=r"outside \[0.0, 10.0\].*petal length"):
        data.validate(_replace(ds, X=X))


def test_non_numeric_column_is_rejected():
    ds = _iris()
    X = ds.X.astype({"sepal length (cm)": "object"})
    X.iloc[0, 0] = "five"
    with pytest.raises(DataValidationError, match="non-numeric"):
        data.validate(_replace(ds, X=X))


def test_class_imbalance_is_rejected():
    ds = _iris()
    keep = (ds.y != 2) | (np.arange(len(ds.y)) % 10 == 0)  # 5 rows of class 2 remain
    with pytest.raises(DataValidationError, match=r"class imbalance.*virginica"):
        data.validate(
            _replace(ds, X=ds.X[keep].reset_index(drop=True), y=ds.y[keep].reset_index(drop=True))
        )


def test_unexpected_labels_are_rejected():
    ds = _iris()
    y = ds.y.copy()
    y.iloc[0] = 7
    with pytest.raises(DataValidationError, match="unexpected labels"):
        data.validate(_replace(ds, y=y))


def test_label_noise_flips_the_requested_share_deterministically():
    ds = _iris()
    a = data.degrade(ds, label_noise=0.4, null_fraction=0, seed=1)
    b = data.degrade(ds, label_noise=0.4, null_fraction=0, seed=1)
    flipped = (a.y != ds.y).mean()
    assert 0.3 < flipped < 0.5
    assert (a.y == b.y).all()
    data.validate(a)  # noisy labels are still valid labels: the gate must catch them


def test_null_fraction_makes_validation_fail():
    ds = data.degrade(_iris(), label_noise=0, null_fraction=0.05, seed=1)
    with pytest.raises(DataValidationError, match="missing values"):
        data.validate(ds)


def test_no_degradation_returns_the_same_data():
    ds = _iris()
    assert data.degrade(ds, label_noise=0, null_fraction=0, seed=1) is ds


def test_fingerprint_is_stable_and_sensitive():
    ds = _iris()
    assert data.fingerprint(ds) == data.fingerprint(data.load("iris"))
    noisy = data.degrade(ds, label_noise=0.1, null_fraction=0, seed=1)
    assert data.fingerprint(noisy) != data.fingerprint(ds)
    assert len(data.fingerprint(ds)) == 16


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits"])
def test_training_never_sees_the_gates_held_out_rows(name):
    full = data.load(name)
    mask = data.holdout_mask(name, len(full.y))
    assert 0.15 < mask.mean() < 0.35
    kept = data.without_holdout(full)
    data.validate(kept)
    assert len(kept.y) == len(full.y) - int(mask.sum())
    held_rows = {tuple(r) for r in full.X[mask].to_numpy().tolist()}
    kept_rows = {tuple(r) for r in kept.X.to_numpy().tolist()}
    # Rows that occur twice in a dataset aside, no held-out row is left for training.
    duplicates = {r for r in held_rows if (full.X.to_numpy().tolist().count(list(r)) > 1)}
    assert not (held_rows - duplicates) & kept_rows


def test_the_held_out_set_is_fixed_by_name_and_row_not_by_seed():
    assert data.holdout_mask("iris", 150).tolist() == data.holdout_mask("iris", 150).tolist()
    assert data.holdout_mask("iris", 150).tolist() != data.holdout_mask("wine", 150).tolist()


def test_duplicate_fraction_appends_exact_copies_deterministically():
    ds = _iris()
    a = data.degrade(ds, label_noise=0, null_fraction=0, duplicate_fraction=0.3, seed=1)
    b = data.degrade(ds, label_noise=0, null_fraction=0, duplicate_fraction=0.3, seed=1)
    assert len(a.y) == len(ds.y) + 45
    assert a.X.equals(b.X) and a.y.equals(b.y)
    assert a.X.head(len(ds.y)).equals(ds.X)  # the original rows stay, in their order
    rows = a.X.assign(target=a.y)
    assert rows.duplicated().sum() >= 45  # every copy is exact: features and label


def test_other_knobs_draw_the_same_numbers_with_or_without_duplicates():
    ds = _iris()
    plain = data.degrade(ds, label_noise=0.2, null_fraction=0, seed=3)
    doubled = data.degrade(ds, label_noise=0.2, null_fraction=0, duplicate_fraction=0.1, seed=3)
    assert doubled.y.head(len(ds.y)).equals(plain.y)


def test_check_reports_every_rule_by_name_when_the_data_passes():
    checks = data.check(_iris())
    assert [c.name for c in checks] == [rule.__name__ for rule in data.RULES]
    assert all(c.passed is True and c.detail for c in checks)


def test_check_names_the_failed_rule_with_validates_message_and_skips_the_rest():
    ds = data.degrade(_iris(), label_noise=0, null_fraction=0.05, seed=1)
    checks = {c.name: c for c in data.check(ds)}
    with pytest.raises(DataValidationError) as raised:
        data.validate(ds)
    assert checks["missing_values"].passed is False
    assert checks["missing_values"].detail == str(raised.value)
    assert checks["columns"].passed is True
    assert checks["value_ranges"].passed is None
    assert checks["value_ranges"].detail == "an earlier rule failed"


def test_check_reports_a_rule_written_into_validate_itself(monkeypatch):
    def stricter(ds):
        raise DataValidationError(f"{ds.name}: no data is good enough")

    monkeypatch.setattr(data, "validate", stricter)
    checks = data.check(_iris())
    assert checks[-1] == data.Check("validate", False, "iris: no data is good enough")


def test_validation_does_not_change_the_data():
    ds = data.degrade(_iris(), label_noise=0.1, null_fraction=0, duplicate_fraction=0.02, seed=2)
    before = (ds.X.copy(), ds.y.copy())
    data.check(ds)
    data.validate(ds)
    assert ds.X.equals(before[0]) and ds.y.equals(before[1])
