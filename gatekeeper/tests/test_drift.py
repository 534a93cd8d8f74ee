import math

import numpy as np
import pytest

from gatekeeper import drift
from gatekeeper.drift import DriftError, Thresholds

RNG = np.random.default_rng(7)
IRIS_LIKE = {
    "sepal length (cm)": RNG.normal(5.8, 0.8, 120),
    "petal length (cm)": RNG.normal(3.8, 1.7, 120),
}


def test_psi_of_a_sample_against_itself_is_zero():
    x = RNG.normal(0, 1, 500)
    assert drift.psi(x, x) == 0.0


def test_psi_is_the_sum_over_bins_of_the_share_gap_times_its_log_ratio():
    reference = np.arange(10, dtype=float)  # deciles put one value in each bin
    current = np.array([0.0] * 5 + [9.0] * 5)  # half in the first bin, half in the last
    edges = drift.bin_edges(reference)
    ref = drift.shares(reference, edges)
    cur = np.maximum(drift.shares(current, edges), drift.MIN_SHARE)
    by_hand = sum((c - r) * math.log(c / r) for c, r in zip(cur, ref, strict=True))
    assert drift.psi(reference, current) == pytest.approx(by_hand)
    assert by_hand > 1  # most bins emptied: a very large shift


def test_shares_put_every_value_in_one_bin_and_sum_to_one():
    x = RNG.normal(0, 1, 333)
    s = drift.shares(x, drift.bin_edges(x))
    assert s.sum() == pytest.approx(1.0)
    assert len(s) == drift.BINS


def test_identical_windows_do_not_drift():
    result = drift.compare(IRIS_LIKE, IRIS_LIKE)
    assert not result.drifted
    assert result.drifted_features == []
    assert all(f.psi == 0 and f.ks_pvalue == 1.0 for f in result.features)


def test_fresh_samples_of_the_same_distribution_rarely_drift():
    # Both measures must agree, at a strict level: false alarms on an unchanged
    # distribution stay rare even on iris-sized references.
    alarms = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        reference = {"a": rng.normal(5.8, 0.8, 112), "b": rng.normal(3.8, 1.7, 112)}
        current = {"a": rng.normal(5.8, 0.8, 300), "b": rng.normal(3.8, 1.7, 300)}
        alarms += drift.compare(reference, current).drifted
    assert alarms <= 2, f"{alarms} false alarms in 200 unchanged windows"


def test_a_clear_shift_in_one_feature_drifts_that_feature_and_the_window():
    current = {
        "sepal length (cm)": IRIS_LIKE["sepal length (cm)"].copy(),
        "petal length (cm)": IRIS_LIKE["petal length (cm)"] + 1.5,
    }
    result = drift.compare(IRIS_LIKE, current)
    assert result.drifted
    assert result.drifted_features == ["petal length (cm)"]
    shifted = result.features[1]
    assert shifted.psi >= 0.2 and shifted.ks_pvalue < 0.01
    assert shifted.current_mean - shifted.reference_mean == pytest.approx(1.5)


def test_a_window_drifts_only_when_enough_features_drift():
    current = dict(IRIS_LIKE, **{"petal length (cm)": IRIS_LIKE["petal length (cm)"] + 1.5})
    assert not drift.compare(IRIS_LIKE, current, Thresholds(min_features=2)).drifted


def test_a_large_psi_without_a_significant_test_is_not_drift():
    # Five rows at the median: one bin holds them all, so PSI is large, but five rows
    # inside the usual range are no evidence that the distribution moved.
    reference = {"x": RNG.normal(0, 1, 200)}
    current = {"x": np.full(5, float(np.median(reference["x"])))}
    result = drift.compare(reference, current, Thresholds(min_rows=5))
    assert result.features[0].psi >= 0.2
    assert result.features[0].ks_pvalue > 0.001
    assert not result.drifted


def test_too_few_rows_is_an_error_that_says_how_many_are_needed():
    few = {k: v[:20] for k, v in IRIS_LIKE.items()}
    with pytest.raises(DriftError, match=r"holds 20 rows .* at least 100"):
        drift.compare(IRIS_LIKE, few)


def test_missing_features_and_empty_references_are_errors():
    with pytest.raises(DriftError, match="lack the model's features: petal length"):
        drift.compare(IRIS_LIKE, {"sepal length (cm)": IRIS_LIKE["sepal length (cm)"]})
    with pytest.raises(DriftError, match="names no features"):
        drift.compare({}, IRIS_LIKE)


def test_non_numeric_values_are_dropped_and_an_all_missing_column_is_an_error():
    current = dict(IRIS_LIKE)
    current["petal length (cm)"] = np.full(150, np.nan)
    with pytest.raises(DriftError, match="no numeric values in the captured window"):
        drift.compare(IRIS_LIKE, current)


def test_constant_equal_windows_do_not_drift():
    same = {"x": np.ones(200)}
    result = drift.compare(same, same)
    assert not result.drifted and result.features[0].ks_pvalue == 1.0


@pytest.mark.parametrize(
    "kwargs", [{"psi": 0}, {"ks_alpha": 0}, {"ks_alpha": 1}, {"min_rows": 1}, {"min_features": 0}]
)
def test_thresholds_out_of_range_are_refused(kwargs):
    with pytest.raises(ValueError):
        Thresholds(**kwargs)
