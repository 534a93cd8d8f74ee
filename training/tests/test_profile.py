import json

import numpy as np
import pytest

from trainer import data, profile


def test_the_profile_summarises_every_feature_and_keeps_the_rows():
    ds = data.without_holdout(data.load("iris"))
    p = profile.build(ds.X, ds.y, ds.target_names, dataset="iris", shift="", seed=1)
    json.dumps(p)  # JSON-ready
    assert p["rows"] == len(ds.y) and p["columns"] == list(ds.X.columns)
    assert np.array_equal(np.array(p["sample"]), ds.X.to_numpy())
    assert p["labels"] == ds.y.tolist()
    petal = p["features"]["petal length (cm)"]
    assert petal["mean"] == pytest.approx(ds.X["petal length (cm)"].mean(), abs=1e-6)
    assert len(petal["quantiles"]) == 9 and petal["min"] <= petal["quantiles"][0]
    assert sum(p["classes"].values()) == pytest.approx(1.0, abs=1e-5)
    assert set(p["classes"]) == set(ds.target_names)


def test_a_large_dataset_keeps_a_seeded_sample_of_its_rows(monkeypatch):
    ds = data.load("digits")
    monkeypatch.setattr(profile, "MAX_SAMPLE", 500)
    a = profile.build(ds.X, ds.y, ds.target_names, dataset="digits", shift="", seed=3)
    b = profile.build(ds.X, ds.y, ds.target_names, dataset="digits", shift="", seed=3)
    assert len(a["sample"]) == len(a["labels"]) == 500 and a["rows"] == len(ds.y)
    assert a["sample"] == b["sample"]


def test_an_empty_dataset_cannot_be_profiled():
    ds = data.load("iris")
    with pytest.raises(ValueError, match="empty"):
        profile.build(
            ds.X.iloc[:0], ds.y.iloc[:0], ds.target_names, dataset="iris", shift="", seed=0
        )
