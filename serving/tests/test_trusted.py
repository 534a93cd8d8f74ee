"""Models are loaded on the server's terms: sklearn in skops with a fixed trust list.

Crafted models carry a payload that would create a marker file if anything in them ran:
each is refused, and the marker stays absent.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from serving import trusted


class Payload:
    """Unpickling this creates MARKER: proof that loading ran code from the model."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


class Planted(LogisticRegression):
    """A logistic regression that carries the payload in an attribute."""


def _iris():
    bunch = load_iris(as_frame=True)
    return bunch.data, bunch.target


def _save(path: Path, model, **kwargs) -> Path:
    import mlflow.sklearn

    X, _ = _iris()
    mlflow.sklearn.save_model(model, str(path), input_example=X.head(2), **kwargs)
    return path


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "payload-ran"


@pytest.fixture
def good(tmp_path) -> Path:
    X, y = _iris()
    return _save(tmp_path / "good", LogisticRegression(max_iter=500).fit(X, y))


def test_a_skops_model_from_the_training_job_loads(good):
    X, _ = _iris()
    estimator = trusted.load_estimator(good)
    assert len(estimator.predict(X.head(3))) == 3


def test_a_random_forest_loads_with_the_servers_own_trust_list(tmp_path):
    X, y = _iris()
    rf = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    path = _save(tmp_path / "rf", rf, skops_trusted_types=["sklearn.tree._tree.Tree"])
    assert len(trusted.load_estimator(path).predict(X.head(2))) == 2


@pytest.mark.parametrize("fmt", ["cloudpickle", "pickle"])
def test_a_pickled_model_is_refused_and_nothing_in_it_runs(tmp_path, marker, fmt):
    X, y = _iris()
    model = Planted(max_iter=500).fit(X, y)
    model.payload = Payload(str(marker))
    path = _save(tmp_path / fmt, model, serialization_format=fmt)
    with pytest.raises(trusted.UntrustedModel, match=f"stored as '{fmt}'"):
        trusted.load_estimator(path)
    assert not marker.exists()


def test_the_models_own_trust_list_is_ignored(tmp_path, marker):
    """A skops file whose MLmodel trusts an arbitrary type: skops still refuses it."""
    X, y = _iris()
    model = Planted(max_iter=500).fit(X, y)
    model.payload = Payload(str(marker))
    planted = f"{__name__}.Planted"
    with pytest.raises(Exception):  # noqa: B017 (skops refuses to even save the payload)
        _save(tmp_path / "skops", model, skops_trusted_types=[planted])
    model = Planted(max_iter=500).fit(X, y)
    path = _save(tmp_path / "skops2", model, skops_trusted_types=[planted])
    meta = yaml.safe_load((path / "MLmodel").read_text())
    assert planted in meta["flavors"]["sklearn"]["skops_trusted_types"]
    with pytest.raises(trusted.UntrustedModel, match="skops refused it"):
        trusted.load_estimator(path)
    assert not marker.exists()


def test_a_pyfunc_model_with_its_own_loader_is_refused(tmp_path, marker):
    import mlflow.pyfunc

    (tmp_path / "evil_loader.py").write_text(
        f"import os\nos.makedirs({str(marker)!r})\ndef _load_pyfunc(path):\n    return None\n"
    )
    path = tmp_path / "loader"
    mlflow.pyfunc.save_model(
        str(path),
        loader_module="evil_loader",
        data_path=str(tmp_path / "evil_loader.py"),
        code_paths=[str(tmp_path / "evil_loader.py")],
    )
    with pytest.raises(trusted.UntrustedModel, match="own loader 'evil_loader'"):
        trusted.load_estimator(path)
    assert not marker.exists()


def test_a_python_model_is_refused(tmp_path, marker):
    import mlflow.pyfunc

    class Model(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    path = tmp_path / "pythonmodel"
    mlflow.pyfunc.save_model(str(path), python_model=Model())
    with pytest.raises(trusted.UntrustedModel, match=r"own loader 'mlflow\.pyfunc\.model'"):
        trusted.load_estimator(path)


def test_a_code_folder_is_refused(good):
    (good / "code").mkdir()
    (good / "code" / "sitecustomize.py").write_text("raise SystemExit")
    with pytest.raises(trusted.UntrustedModel, match="carries code"):
        trusted.check(good)


def test_another_flavor_is_refused(good):
    meta = yaml.safe_load((good / "MLmodel").read_text())
    meta["flavors"]["keras"] = {"keras_version": "3"}
    (good / "MLmodel").write_text(yaml.safe_dump(meta))
    with pytest.raises(trusted.UntrustedModel, match="flavor 'keras'"):
        trusted.check(good)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "", "missing.skops"])
def test_a_model_file_outside_the_folder_is_refused(good, name):
    meta = yaml.safe_load((good / "MLmodel").read_text())
    meta["flavors"]["sklearn"]["pickled_model"] = name
    (good / "MLmodel").write_text(yaml.safe_dump(meta))
    with pytest.raises(trusted.UntrustedModel, match="is not a file in the model folder"):
        trusted.check(good)


def test_the_fingerprint_covers_every_file_and_its_name(good, tmp_path):
    first = trusted.fingerprint(good)
    copy = shutil.copytree(good, tmp_path / "copy")
    assert trusted.fingerprint(copy) == first  # where it lies does not matter
    (copy / "model.skops").write_bytes((copy / "model.skops").read_bytes() + b"\0")
    assert trusted.fingerprint(copy) != first
    renamed = shutil.copytree(good, tmp_path / "renamed")
    (renamed / "conda.yaml").rename(renamed / "conda2.yaml")
    assert trusted.fingerprint(renamed) != first


def test_the_serving_and_gatekeeper_copies_are_identical():
    here = Path(trusted.__file__)
    other = here.parents[2] / "gatekeeper" / "gatekeeper" / "trusted.py"
    assert other.read_text() == here.read_text()


@pytest.mark.parametrize(
    "flavors",
    [
        {"python_function": "x", "sklearn": {}},
        {1: {}, "sklearn": {}},
        "not a mapping",
    ],
)
def test_a_malformed_mlmodel_is_refused_not_crashed_on(good, flavors):
    meta = yaml.safe_load((good / "MLmodel").read_text())
    meta["flavors"] = flavors
    (good / "MLmodel").write_text(yaml.safe_dump(meta))
    with pytest.raises(trusted.UntrustedModel):
        trusted.check(good)
