from __future__ import annotations

import pytest

from serving.app import create_app
from serving.config import ServingConfig
from serving.model import LoadedModel

FEATURES = ("a", "b", "c")


class StaticHolder:
    """A holder with a fixed model: unit tests exercise the HTTP layer, not the registry."""

    def __init__(self, model: LoadedModel | None):
        self.current = model
        self.mlflow_reachable = True
        self.last_error = None
        self.last_check = "2026-01-01T00:00:00+00:00"


def fake_model(version="7") -> LoadedModel:
    return LoadedModel(
        name="m",
        version=version,
        alias="staging",
        run_id="r",
        git_sha="abc",
        loaded_at="2026-01-01T00:00:00+00:00",
        features=FEATURES,
        types=("double", "double", "long"),
        path="numpy-native",
        predict=lambda rows: [int(r[0] > 1) for r in rows],
    )


@pytest.fixture
def config():
    return ServingConfig(model_name="m", alias="staging", max_body_bytes=4096, max_batch_rows=5)


@pytest.fixture
def make_client():
    """A test client of the app with the fixed model, for a config of the test's own."""

    def _make(config: ServingConfig):
        return create_app(config, holder=StaticHolder(fake_model())).test_client()

    return _make


@pytest.fixture
def client(config, make_client):
    return make_client(config)


@pytest.fixture
def empty_client(config):
    return create_app(config, holder=StaticHolder(None)).test_client()
