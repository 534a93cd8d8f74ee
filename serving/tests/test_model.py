"""Model loading and hot swapping, without a server (unit)."""

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from serving.config import ServingConfig
from serving.model import ModelHolder, build_predictors
from serving.validation import parse


def _save(tmp_path_factory, estimator, loader):
    import mlflow.sklearn

    bunch = loader()
    X = pd.DataFrame(bunch.data, columns=bunch.feature_names)
    model = estimator.fit(X, bunch.target)
    path = tmp_path_factory.mktemp("model") / "m"
    trusted = ["sklearn.tree._tree.Tree"] if "Forest" in type(estimator).__name__ else None
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(X, bunch.target),
        input_example=X.head(2),
        skops_trusted_types=trusted,
    )
    return str(path), X


MODELS = {
    "logreg-multiclass": (
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        load_wine,
        "numpy",
    ),
    "logreg-binary": (
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        load_breast_cancer,
        "numpy",
    ),
    "logreg-bare": (lambda: LogisticRegression(C=10.0, max_iter=5000), load_iris, "numpy"),
    "random-forest": (
        lambda: RandomForestClassifier(n_estimators=10, random_state=0),
        load_iris,
        "sklearn",
    ),
    "svc": (lambda: make_pipeline(StandardScaler(), SVC()), load_iris, "sklearn"),
}


@pytest.mark.parametrize("kind", list(MODELS))
def test_fast_paths_and_pyfunc_path_answer_identically(tmp_path_factory, kind):
    make, loader, expected_kind = MODELS[kind]
    path, X = _save(tmp_path_factory, make(), loader)
    features = tuple(X.columns)
    native, native_kind, pyfunc = build_predictors(path, features, ("double",) * len(features))
    assert native_kind == expected_kind
    rng = np.random.default_rng(0)
    rows = X.sample(64, random_state=0).to_numpy() * rng.uniform(0.8, 1.2, (64, len(features)))
    payload = {"instances": [dict(zip(features, r.tolist(), strict=True)) for r in rows]}
    array = parse(payload, features, ("double",) * len(features), 1000)
    assert native(array) == pyfunc(array)
    for i in range(8):
        assert native(array[i : i + 1]) == pyfunc(array[i : i + 1])
    assert all(isinstance(p, int) for p in native(array))


def test_compiled_predict_refuses_what_it_does_not_know():
    from sklearn.preprocessing import MinMaxScaler

    from serving.fastpath import compile_predict

    X, y = load_iris(return_X_y=True)
    assert compile_predict(SVC().fit(X, y)) is None
    assert compile_predict(RandomForestClassifier(n_estimators=2).fit(X, y)) is None
    assert compile_predict(make_pipeline(StandardScaler(), SVC()).fit(X, y)) is None
    assert compile_predict(make_pipeline(MinMaxScaler(), LogisticRegression()).fit(X, y)) is None
    assert compile_predict(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y))


def test_a_wrong_compiled_predictor_is_caught():
    from serving.fastpath import agrees

    rows = np.arange(12.0).reshape(4, 3)
    assert agrees(lambda r: r.sum(axis=1), lambda r: r.sum(axis=1), rows)
    assert not agrees(lambda r: r.sum(axis=1) * 0, lambda r: r.sum(axis=1), rows)
    assert not agrees(lambda r: 1 / 0, lambda r: r.sum(axis=1), rows)


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


def test_a_refused_version_is_not_downloaded_again_while_the_alias_stays():
    from serving.model import ModelLoadError

    client = FlakyClient()
    calls = []

    def loader(cfg, c):
        calls.append(c.version)
        if c.version == "2":
            raise ModelLoadError("version 2 refused: it is stored as 'cloudpickle'", "2")
        return fake_loader(cfg, c)

    holder = ModelHolder(ServingConfig(alias="staging"), client=client, loader=loader)
    holder.refresh()
    client.version = "2"
    for _ in range(3):
        assert holder.refresh() is False
    assert calls == ["1", "2"]  # refused once, then remembered
    assert holder.current.version == "1" and "cloudpickle" in holder.last_error
    client.version = "3"  # the alias moves on: loaded as usual
    assert holder.refresh() is True and holder.current.version == "3"


def test_only_the_version_the_loader_refused_is_remembered():
    """The alias moved between the holder's read and the loader's: the loader's version
    is the one refused, not the one the holder read."""
    from serving.model import ModelLoadError

    client = FlakyClient()
    holder = ModelHolder(
        ServingConfig(alias="staging"),
        client=client,
        loader=lambda cfg, c: (_ for _ in ()).throw(ModelLoadError("refused", "9")),
    )
    holder.refresh()
    assert holder.refused is not None and holder.refused[0] == "9"


class PinnedClient(FlakyClient):
    """The alias moves on; a pinned server asks for its own version only."""

    def get_model_version(self, name, version):
        from types import SimpleNamespace

        return SimpleNamespace(version=version)


def test_a_pinned_server_serves_its_version_whatever_the_alias_says():
    from serving.model import resolve

    client = PinnedClient()
    client.version = "7"  # where the alias points
    cfg = ServingConfig(alias="production", version="3")
    assert resolve(cfg, client).version == "3"
    assert resolve(ServingConfig(alias="production"), client).version == "7"


def test_a_pinned_server_never_serves_another_version_from_its_cache(tmp_path):
    from serving.cache import ModelCache
    from serving.model import load_cached

    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "MLmodel").write_text("x")
    ModelCache(str(tmp_path / "c"), "m", "production").save(str(folder), {"version": "4"})
    cfg = ServingConfig(
        model_name="m", alias="production", version="3", cache_dir=str(tmp_path / "c")
    )
    assert load_cached(cfg) is None


def test_serving_model_version_must_be_a_number():
    from serving.config import ConfigError

    assert ServingConfig.from_env({"SERVING_MODEL_VERSION": "12"}).version == "12"
    with pytest.raises(ConfigError, match="SERVING_MODEL_VERSION must be a version number"):
        ServingConfig.from_env({"SERVING_MODEL_VERSION": "latest"})


def test_a_version_that_keeps_failing_to_prepare_is_tried_less_and_less_often():
    from serving.prepare import PrepareFailed

    def failing(cfg, client):
        raise PrepareFailed("preparing version 1 failed (exit -9): killed")

    holder = ModelHolder(ServingConfig(alias="staging"), client=FlakyClient(), loader=failing)
    waits = []
    for _ in range(8):
        holder.refresh()
        waits.append(holder.next_wait())
    assert waits[:2] == [2.0, 2.0] and waits[2:5] == [4.0, 8.0, 16.0] and waits[-1] == 60.0
    holder._loader = fake_loader
    holder.refresh()
    assert holder.failed_prepares == 0 and holder.next_wait() == 5.0
