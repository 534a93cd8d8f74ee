"""Models prepared in a child process: a worker that serves a compiled model holds numpy,
not scikit-learn, pandas or MLflow (unit, with real saved models)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from serving import fastpath, prepare
from serving.cache import ModelCache
from serving.config import ServingConfig
from serving.model import ModelLoadError, load_cached
from serving.trusted import fingerprint

SERVING_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sklearn", "pandas", "mlflow", "scipy", "skops")


def _saved(tmp_path: Path, estimator, fmt: str = "skops") -> tuple[Path, pd.DataFrame]:
    import mlflow.sklearn

    bunch = load_iris()
    X = pd.DataFrame(bunch.data, columns=bunch.feature_names)
    estimator.fit(X, bunch.target)
    path = tmp_path / "model"
    trusted = ["sklearn.tree._tree.Tree"] if "Forest" in type(estimator).__name__ else None
    mlflow.sklearn.save_model(
        estimator,
        str(path),
        signature=infer_signature(X, bunch.target),
        input_example=X.head(2),
        serialization_format=fmt,
        **({"skops_trusted_types": trusted} if fmt == "skops" else {}),
    )
    return path, X


def _cached(tmp_path: Path, estimator) -> tuple[ServingConfig, pd.DataFrame]:
    path, X = _saved(tmp_path, estimator)
    cache = tmp_path / "cache"
    ModelCache(cache, "m", "production").save(
        path, {"version": "4", "sha256": fingerprint(path), "gated_sha256": fingerprint(path)}
    )
    return ServingConfig(model_name="m", alias="production", cache_dir=str(cache)), X


WORKER = """
import json, sys
import numpy as np
from serving.config import ServingConfig
from serving.model import load_cached
cfg = ServingConfig(model_name="m", alias="production", cache_dir=sys.argv[1])
model = load_cached(cfg)
rows = np.asarray(json.loads(sys.argv[2]), dtype="float64")
heavy = sorted({k.split(".")[0] for k in sys.modules} & set(sys.argv[3].split(",")))
print(json.dumps({"path": model.path, "predictions": model.predict(rows), "heavy": heavy}))
"""


def _worker(cfg: ServingConfig, rows: np.ndarray) -> dict:
    """Load the cached model as a fresh worker process does, and predict."""
    r = subprocess.run(
        [sys.executable, "-c", WORKER, cfg.cache_dir, json.dumps(rows.tolist()), ",".join(HEAVY)],
        cwd=SERVING_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        lambda: LogisticRegression(C=10.0, max_iter=5000),
    ],
    ids=["scaled-logreg", "bare-logreg"],
)
def test_a_worker_serving_a_compiled_model_never_imports_sklearn_pandas_or_mlflow(tmp_path, make):
    estimator = make()
    cfg, X = _cached(tmp_path, estimator)
    rows = X.to_numpy() * np.random.default_rng(0).uniform(0.7, 1.3, X.shape)
    found = _worker(cfg, rows)
    assert found["path"] == "numpy-native"
    assert found["heavy"] == []
    assert found["predictions"] == estimator.predict(pd.DataFrame(rows, columns=X.columns)).tolist()


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_pipeline(StandardScaler(), SVC()),
        lambda: RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1),
    ],
    ids=["svc", "random-forest"],
)
def test_a_model_without_a_program_is_served_by_sklearn_in_the_worker(tmp_path, make):
    estimator = make()
    cfg, X = _cached(tmp_path, estimator)
    found = _worker(cfg, X.to_numpy()[:20])
    assert found["path"] == "sklearn-native"
    assert "sklearn" in found["heavy"]
    assert found["predictions"] == estimator.predict(X.head(20)).tolist()


def test_the_pyfunc_path_still_goes_through_pandas(tmp_path):
    cfg, X = _cached(tmp_path, LogisticRegression(max_iter=2000))
    model = load_cached(ServingConfig(**{**cfg.__dict__, "fast_path": False}))
    assert model.path == "pyfunc"
    assert model.predict(X.to_numpy()[:3]) == [0, 0, 0]


def test_a_refused_model_is_a_load_error_naming_why(tmp_path):
    path, _ = _saved(tmp_path, LogisticRegression(max_iter=2000), fmt="cloudpickle")
    with pytest.raises(ModelLoadError, match="refused: it is stored as 'cloudpickle'") as exc:
        prepare.run(
            tmp_path / "out",
            "--model-dir",
            str(path),
            version="3",
            expected_sha256="",
            program=True,
        )
    assert exc.value.version == "3"


def test_files_that_differ_from_the_gated_ones_are_refused(tmp_path):
    path, _ = _saved(tmp_path, LogisticRegression(max_iter=2000))
    with pytest.raises(ModelLoadError, match="differ from the ones the gate checked"):
        prepare.run(
            tmp_path / "out",
            "--model-dir",
            str(path),
            version="3",
            expected_sha256="0" * 64,
            program=True,
        )


def test_a_model_that_cannot_be_prepared_now_is_not_refused(tmp_path):
    with pytest.raises(prepare.PrepareFailed, match="exit 1"):
        prepare.run(
            tmp_path / "out",
            "--download",
            "models:/m/1",
            "--tracking-uri",
            "http://127.0.0.1:9",
            version="1",
            expected_sha256="",
            program=True,
        )


def test_a_program_survives_its_files_and_another_format_is_refused(tmp_path):
    X, y = load_iris(return_X_y=True)
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    fastpath.save(fastpath.compile_program(estimator), tmp_path)
    assert fastpath.build(fastpath.load(tmp_path))(X).tolist() == estimator.predict(X).tolist()
    meta = json.loads((tmp_path / fastpath.PROGRAM_JSON).read_text())
    (tmp_path / fastpath.PROGRAM_JSON).write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(ValueError, match="not a program of format 1"):
        fastpath.load(tmp_path)


def _prepare_in(store, path, calls, monkeypatch):
    real = prepare.run

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare, "run", counted)

    def once():
        with prepare.prepared(
            store,
            "--model-dir",
            str(path),
            name="m",
            version="5",
            expected_sha256="",
            program=True,
        ) as (result, folder):
            return result, folder

    return once


def test_workers_of_one_server_prepare_a_version_once(tmp_path, monkeypatch):
    path, _ = _saved(tmp_path, LogisticRegression(max_iter=2000))
    calls: list = []
    once = _prepare_in(tmp_path / "store", path, calls, monkeypatch)
    found: list = []
    threads = [threading.Thread(target=lambda: found.append(once())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(calls) == 1
    assert len({folder for _, folder in found}) == 1 and all(r["program"] for r, _ in found)


def test_a_prepared_folder_whose_files_changed_is_prepared_again(tmp_path, monkeypatch):
    path, _ = _saved(tmp_path, LogisticRegression(max_iter=2000))
    calls: list = []
    once = _prepare_in(tmp_path / "store", path, calls, monkeypatch)
    _, folder = once()
    arrays = folder / fastpath.PROGRAM_ARRAYS
    data = bytearray(arrays.read_bytes())
    data[len(data) // 2] ^= 1  # a program that is not the one made
    arrays.write_bytes(bytes(data))
    once()
    assert len(calls) == 2
    (Path(once()[0]["model_dir"]) / "MLmodel").write_text("changed")
    once()
    assert len(calls) == 3


def test_a_restarted_worker_reuses_the_prepared_model_without_a_child_process(
    tmp_path, monkeypatch
):
    cfg, X = _cached(tmp_path, LogisticRegression(max_iter=2000))
    first = load_cached(cfg)

    def no_child(*args, **kwargs):
        raise AssertionError("prepared again")

    monkeypatch.setattr(prepare, "run", no_child)
    again = load_cached(cfg)
    assert again.path == first.path == "numpy-native"
    assert again.predict(X.to_numpy()) == first.predict(X.to_numpy())


def test_a_folder_sealed_by_another_server_is_prepared_again(tmp_path, monkeypatch):
    path, _ = _saved(tmp_path, LogisticRegression(max_iter=2000))
    calls: list = []
    once = _prepare_in(tmp_path / "store", path, calls, monkeypatch)
    monkeypatch.setenv("SERVING_PREPARED_KEY", "a" * 64)
    once()
    once()
    assert len(calls) == 1
    monkeypatch.setenv("SERVING_PREPARED_KEY", "b" * 64)  # a new server: its own secret
    once()
    assert len(calls) == 2


def test_prune_keeps_two_versions_and_fresh_leftovers_and_every_lock(tmp_path):
    import os
    import time as clock

    store = tmp_path / "store"
    old = clock.time() - 3600
    for name in ("v1-x", "v2-x", "v3-x", ".v4-x-dead", ".v5-x-fresh"):
        (store / name).mkdir(parents=True)
    (store / ".v1-x.lock").write_text("")
    for name in ("v1-x", "v2-x", ".v4-x-dead"):
        os.utime(store / name, (old, old))
    os.utime(store / "v2-x", (old + 60, old + 60))
    prepare._prune(store, keep="v3-x")
    assert sorted(p.name for p in store.iterdir()) == [".v1-x.lock", ".v5-x-fresh", "v2-x", "v3-x"]
