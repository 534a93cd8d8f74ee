"""The last good model on disk, and the holder serving it during a registry outage (unit)."""

import json
from types import SimpleNamespace

import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from serving.cache import ModelCache
from serving.config import ServingConfig
from serving.model import LoadedModel, ModelHolder, load_cached
from serving.validation import parse


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    import mlflow.sklearn

    bunch = load_iris()
    X = pd.DataFrame(bunch.data, columns=bunch.feature_names)
    path = tmp_path_factory.mktemp("model") / "m"
    mlflow.sklearn.save_model(
        LogisticRegression(max_iter=1000).fit(X, bunch.target),
        str(path),
        signature=infer_signature(X, bunch.target),
        input_example=X.head(2),
    )
    return str(path)


def cfg(tmp_path, alias="production", name="m") -> ServingConfig:
    return ServingConfig(model_name=name, alias=alias, cache_dir=str(tmp_path / "cache"))


def test_a_saved_model_loads_back_and_predicts(tmp_path, model_dir):
    c = cfg(tmp_path)
    ModelCache(c.cache_dir, "m", "production").save(
        model_dir, {"version": "3", "run_id": "r1", "git_sha": "abc", "saved_at": "t"}
    )
    model = load_cached(c)
    assert (model.version, model.run_id, model.git_sha, model.source) == ("3", "r1", "abc", "cache")
    rows = parse({"instances": [[5.1, 3.5, 1.4, 0.2]]}, model.features, model.types, 10)
    assert model.predict(rows) == [0]


def test_a_newer_version_replaces_the_older_one(tmp_path, model_dir):
    cache = ModelCache(tmp_path / "cache", "m", "production")
    cache.save(model_dir, {"version": "3"})
    cache.save(model_dir, {"version": "4"})
    record, folder = cache.load()
    assert record["version"] == "4" and folder.name == "4"
    assert sorted(p.name for p in (tmp_path / "cache" / "models").iterdir()) == ["4"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda root: (root / "current.json").write_text("{not json"),
        lambda root: (root / "current.json").write_text(json.dumps(["a list"])),
        lambda root: (root / "models" / "3" / "MLmodel").unlink(),
        lambda root: (root / "current.json").write_text(
            json.dumps({"name": "m", "alias": "production", "version": "../../etc"})
        ),
    ],
)
def test_a_damaged_cache_is_ignored_not_served(tmp_path, model_dir, damage):
    ModelCache(tmp_path / "cache", "m", "production").save(model_dir, {"version": "3"})
    damage(tmp_path / "cache")
    assert load_cached(cfg(tmp_path)) is None


@pytest.mark.parametrize(("name", "alias"), [("other", "production"), ("m", "staging")])
def test_a_cache_of_another_model_or_alias_is_ignored(tmp_path, model_dir, name, alias):
    ModelCache(tmp_path / "cache", "m", "production").save(model_dir, {"version": "3"})
    assert load_cached(cfg(tmp_path, alias=alias, name=name)) is None


def test_no_cache_folder_means_no_cache(tmp_path):
    assert load_cached(ServingConfig(model_name="m", alias="production")) is None


class Registry:
    """Answers the alias lookup, or fails like MLflow does when it is down."""

    def __init__(self, version="3", error: Exception | None = None):
        self.version, self.error = version, error

    def get_model_version_by_alias(self, name, alias):
        if self.error is not None:
            raise self.error
        return SimpleNamespace(version=self.version)


def model(version: str, source="registry") -> LoadedModel:
    return LoadedModel(
        "m",
        version,
        "production",
        "r",
        "s",
        "t",
        ("a",),
        ("double",),
        "pyfunc",
        lambda rows: [int(version)] * len(rows),
        source,
    )


def holder(registry, cached: LoadedModel | None) -> ModelHolder:
    return ModelHolder(
        ServingConfig(model_name="m", alias="production"),
        client=registry,
        loader=lambda c, client: model(client.version),
        cache_loader=lambda c: cached,
    )


def test_a_start_during_an_outage_serves_the_cached_model():
    h = holder(Registry(error=ConnectionError("Connection refused")), model("3", "cache"))
    assert h.refresh() is True
    assert (h.current.version, h.current.source) == ("3", "cache")
    assert h.mlflow_reachable is False and "Connection refused" in h.last_error


def test_the_registry_confirms_the_cached_model_without_reloading_it():
    registry = Registry(error=ConnectionError("Connection refused"))
    h = holder(registry, model("3", "cache"))
    h.refresh()
    registry.error = None
    assert h.refresh() is False  # same version: confirmed, not reloaded
    assert (h.current.version, h.current.source) == ("3", "registry")
    assert h.mlflow_reachable is True and h.last_error is None


def test_a_newer_version_in_the_registry_replaces_the_cached_model():
    registry = Registry(error=ConnectionError("Connection refused"))
    h = holder(registry, model("3", "cache"))
    h.refresh()
    registry.error, registry.version = None, "4"
    assert h.refresh() is True and (h.current.version, h.current.source) == ("4", "registry")


def test_the_cache_is_not_used_when_the_registry_says_the_alias_is_gone():
    from mlflow.exceptions import RestException

    gone = RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no alias"})
    h = holder(Registry(error=gone), model("3", "cache"))
    assert h.refresh() is False and h.current is None


def test_the_cache_is_not_read_while_a_model_is_served():
    registry = Registry()
    h = holder(registry, None)
    h.refresh()
    h._cache_loader = lambda c: pytest.fail("read the cache although a model was served")
    registry.error = ConnectionError("Connection refused")
    assert h.refresh() is False and h.current.version == "3"


def test_a_cache_that_fails_to_load_leaves_the_server_not_ready():
    def broken(c):
        raise ValueError("corrupt model file")

    h = ModelHolder(
        ServingConfig(model_name="m", alias="production"),
        client=Registry(error=ConnectionError("Connection refused")),
        loader=lambda c, client: pytest.fail("no registry"),
        cache_loader=broken,
    )
    assert h.refresh() is False and h.current is None
