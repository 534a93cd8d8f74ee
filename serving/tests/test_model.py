"""Model loading and hot swapping, without a server (unit)."""

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from serving.config import ServingConfig
from serving.model import ModelHolder, build_predictors
from serving.validation import parse


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    import mlflow.sklearn

    bunch = load_wine()
    X = pd.DataFrame(bunch.data, columns=bunch.feature_names)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, bunch.target)
    path = tmp_path_factory.mktemp("model") / "m"
    mlflow.sklearn.save_model(
        model, str(path), signature=infer_signature(X, bunch.target), input_example=X.head(2)
    )
    return str(path), X


def test_fast_path_and_pyfunc_path_answer_identically(saved_model):
    path, X = saved_model
    features = tuple(X.columns)
    native, pyfunc = build_predictors(path, features, ("double",) * len(features))
    assert native is not None
    rng = np.random.default_rng(0)
    rows = X.sample(64, random_state=0).to_numpy() * rng.uniform(0.8, 1.2, size=(64, len(features)))
    payload = {"instances": [dict(zip(features, r.tolist(), strict=True)) for r in rows]}
    array = parse(payload, features, ("double",) * len(features), 1000)
    assert native(array) == pyfunc(array)
    assert native(array[:1]) == pyfunc(array[:1])
    assert all(isinstance(p, int) for p in native(array))


class FlakyClient:
    def __init__(self):
        self.version = "1"
        self.down = False

    def get_model_version_by_alias(self, name, alias):
        if self.down:
            raise ConnectionError("Connection refused")
        from types import SimpleNamespace

        return SimpleNamespace(version=self.version)


def fake_loader(cfg, client):
    from serving.model import LoadedModel

    v = client.version
    return LoadedModel(
        "m",
        v,
        cfg.alias,
        "r",
        "s",
        "t",
        ("a",),
        ("double",),
        "pyfunc",
        lambda rows: [int(v)] * len(rows),
    )


def test_holder_swaps_on_a_new_version_and_keeps_the_model_when_mlflow_is_down():
    client = FlakyClient()
    holder = ModelHolder(ServingConfig(alias="staging"), client=client, loader=fake_loader)
    assert holder.refresh() is True and holder.current.version == "1"
    assert holder.refresh() is False  # same version: no reload
    client.version = "2"
    assert holder.refresh() is True and holder.current.version == "2"
    client.down = True
    assert holder.refresh() is False
    assert holder.current.version == "2"
    assert holder.mlflow_reachable is False and "Connection refused" in holder.last_error
    client.down = False
    holder.refresh()
    assert holder.mlflow_reachable is True and holder.last_error is None


def test_holder_thread_loads_in_the_background():
    holder = ModelHolder(
        ServingConfig(alias="staging", poll_interval_s=0.05),
        client=FlakyClient(),
        loader=fake_loader,
    )
    holder.start()
    try:
        assert holder.wait_loaded(5)
    finally:
        holder.stop()
