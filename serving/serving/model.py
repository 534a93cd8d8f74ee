"""Load the model behind an alias, and keep it current without a restart.

A background thread polls the alias; when it points to a new version, the new model is
loaded completely and only then swapped in with one reference assignment, so requests in
flight finish on the old model and none fails during the switch. If MLflow cannot be
reached, the server keeps the model it has and reports that on /ready and /model.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from serving.cache import ModelCache
from serving.config import ServingConfig
from serving.validation import INTEGRAL, NUMERIC_TYPES

log = logging.getLogger("serving.model")


class ModelLoadError(RuntimeError):
    """The model cannot be served (missing alias, unsupported schema, refused format...);
    `version` names the version refused, when one was."""

    def __init__(self, message: str, version: str | None = None):
        super().__init__(message)
        self.version = version


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    alias: str
    run_id: str
    git_sha: str
    loaded_at: str
    features: tuple[str, ...]
    types: tuple[str, ...]
    path: str  # "numpy-native" or "sklearn-native" (fast paths), or "pyfunc"
    predict: Callable[[np.ndarray], list]
    # "registry": loaded from MLflow; "cache": the last good model from local disk, served
    # while the registry could not be asked which version the alias points to.
    source: str = "registry"
    # sha256 of the model's files, and whether it equals the one the gate recorded.
    sha256: str = ""
    verified: bool = False
    pinned: bool = False  # started for this one version (SERVING_MODEL_VERSION)
    # For clients that build a form: the first row of the model's input example (feature
    # -> value) and the class names the training job recorded; empty when it has none.
    example: dict = dataclasses.field(default_factory=dict)
    class_names: tuple[str, ...] = ()

    def describe(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "git_sha": self.git_sha,
            "loaded_at": self.loaded_at,
            "predict_path": self.path,
            "features": list(self.features),
            "types": list(self.types),
            "input_example": dict(self.example) or None,
            "class_names": list(self.class_names),
            "source": self.source,
            "sha256": self.sha256,
            "verified": self.verified,
            "pinned": self.pinned,
        }


def _strip_feature_names(estimator) -> None:
    """Let a model fitted on a DataFrame take numpy rows without a per-call warning.

    The fast path builds arrays in the signature's column order (checked against
    `feature_names_in_` before this is called), so the names carry no information.
    """
    if "feature_names_in_" in vars(estimator):  # a Pipeline only forwards its first step's
        del estimator.feature_names_in_
    for _, step in getattr(estimator, "steps", []):
        _strip_feature_names(step)


def _as_list(output) -> list:
    if hasattr(output, "to_numpy"):
        output = output.to_numpy()
    return np.asarray(output).tolist()


def _check_rows(meta, local_dir: str, n_features: int) -> np.ndarray:
    """Rows to check a compiled predictor on: the input example, spread out at random."""
    rng = np.random.default_rng(0)
    base = np.ones((1, n_features))
    try:
        example = meta.load_input_example(local_dir)
        if example is not None:
            base = np.asarray(example, dtype="float64").reshape(-1, n_features)
    except Exception as exc:  # random rows around 1.0 still exercise every class path
        log.info("no usable input example (%s); checking on random rows", exc)
    spread = base[rng.integers(0, len(base), 256)] * rng.uniform(0.0, 2.0, (256, n_features))
    return np.vstack([base, spread, rng.normal(0, 10, (64, n_features))])


def build_predictors(local_dir: str, features: tuple[str, ...], types: tuple[str, ...]):
    """Return (native_predict or None, native_kind, pyfunc_predict) for a downloaded model.

    The estimator is loaded on the server's terms (serving/trusted.py: sklearn in skops,
    the server's own trust list), never through the loader the model names. native_kind
    is "numpy" (compiled, see fastpath.py) or "sklearn" (the estimator's own predict on
    numpy rows); the pyfunc path hands a DataFrame to predict, as MLflow's sklearn pyfunc
    wrapper does under `mlflow models serve`.
    """
    import pandas as pd
    import sklearn
    from mlflow.models import Model

    from serving import fastpath, trusted

    meta = Model.load(local_dir)
    frame_model = trusted.load_estimator(local_dir)  # raises UntrustedModel: not served
    dtypes = {f: NUMERIC_TYPES[t] for f, t in zip(features, types, strict=True)}

    def pyfunc_predict(array: np.ndarray) -> list:
        frame = pd.DataFrame(array, columns=list(features)).astype(dtypes)
        return _as_list(frame_model.predict(frame))

    native, kind = None, None
    try:
        # A second copy, for numpy rows: its feature names are stripped below, the
        # DataFrame path keeps them.
        estimator = copy.deepcopy(frame_model)
        fitted = getattr(estimator, "feature_names_in_", None)
        if fitted is None or tuple(str(c) for c in fitted) == features:
            _strip_feature_names(estimator)
            sk_predict = estimator.predict

            def sklearn_predict(array: np.ndarray) -> list:
                # Inputs were validated (finite, numeric) against the signature already.
                with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
                    return sk_predict(array).tolist()

            native, kind = sklearn_predict, "sklearn"
            compiled = fastpath.compile_predict(estimator)
            check = _check_rows(meta, local_dir, len(features))
            if compiled is not None and fastpath.agrees(compiled, sk_predict, check):

                def native(array: np.ndarray) -> list:
                    return compiled(array).tolist()

                kind = "numpy"

    except Exception as exc:  # the DataFrame path still serves it, only slower
        log.warning("no native fast path for this model (%s); using pyfunc", exc)
    return native, kind, pyfunc_predict


def _signature(local: str, version: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Feature names and types of a downloaded model; only named numeric columns serve."""
    from mlflow.models import Model

    signature = Model.load(local).signature
    if signature is None or signature.inputs is None:
        raise ModelLoadError(
            f"version {version} has no input signature to validate against", version
        )
    spec = signature.inputs.to_dict()
    features = tuple(str(s.get("name")) for s in spec)
    types = tuple(str(s.get("type")) for s in spec)
    unsupported = sorted({t for t in types if t not in NUMERIC_TYPES})
    if unsupported or any(f == "None" for f in features):
        raise ModelLoadError(
            f"version {version}: only named numeric columns can be served, got {unsupported}",
            version,
        )
    return features, types


def _form_hints(
    local: str, features: tuple[str, ...], types: tuple[str, ...]
) -> tuple[dict, tuple[str, ...]]:
    """The first row of the model's input example ({feature: value}, finite values only)
    and the class names in its MLmodel metadata; each empty when the model has none."""
    from mlflow.models import Model

    meta = Model.load(local)
    names = meta.metadata.get("class_names") if isinstance(meta.metadata, dict) else None
    class_names = tuple(str(n) for n in names) if isinstance(names, list | tuple) else ()
    example: dict = {}
    try:
        rows = meta.load_input_example(local)
        if rows is not None:
            if hasattr(rows, "columns"):  # a DataFrame: its columns in signature order
                rows = rows[list(features)]
            first = np.asarray(rows, dtype="float64").reshape(-1, len(features))[0]
            for f, t, v in zip(features, types, first.tolist(), strict=True):
                if np.isfinite(v):
                    example[f] = int(v) if t in INTEGRAL else v
    except Exception as exc:  # a form without placeholders still works
        log.info("no usable input example for the form (%s)", exc)
    return example, class_names


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _verify(local: str, version: str, expected: str) -> tuple[str, bool]:
    """The files' fingerprint, and whether it is the one the gate recorded; a different
    one is refused (the files changed after the gate checked them)."""
    from serving import trusted

    found = trusted.fingerprint(local)
    if expected and found != expected:
        raise ModelLoadError(
            f"version {version} refused: its files differ from the ones the gate checked "
            f"(sha256 {found[:12]}, gate recorded {expected[:12]})",
            version,
        )
    if not expected:
        log.warning("version %s has no gate fingerprint (%s): served unverified", version, found)
    return found, bool(expected)


def _loaded(cfg, version, run_id, git_sha, prepared: dict, out: Path, source: str) -> LoadedModel:
    """The model `serving.prepare` prepared in `out`, ready to predict: with its numpy
    program when it has one (numpy only in this process), else through scikit-learn here
    (the `sklearn` native path, or pyfunc when the fast path is off)."""
    from serving import fastpath

    features = tuple(str(f) for f in prepared["features"])
    types = tuple(str(t) for t in prepared["types"])
    if cfg.fast_path and prepared.get("program"):
        program = fastpath.build(fastpath.load(out))

        def predict(array: np.ndarray) -> list:
            return program(array).tolist()

        path = "numpy-native"
    else:
        from serving import trusted

        if prepared.get("why_no_program") and cfg.fast_path:
            log.info("version %s: %s", version, prepared["why_no_program"])
        try:
            native, kind, pyfunc_predict = build_predictors(prepared["model_dir"], features, types)
        except trusted.UntrustedModel as exc:
            raise ModelLoadError(f"version {version} refused: {exc}", version) from exc
        use_native = cfg.fast_path and native is not None
        path = f"{kind}-native" if use_native else "pyfunc"
        predict = native if use_native else pyfunc_predict
    return LoadedModel(
        name=cfg.model_name,
        version=version,
        alias=cfg.alias,
        pinned=bool(cfg.version),
        run_id=run_id,
        git_sha=git_sha,
        loaded_at=_now(),
        features=features,
        types=types,
        path=path,
        predict=predict,
        source=source,
        sha256=str(prepared["sha256"]),
        verified=bool(prepared["verified"]),
        example=dict(prepared.get("example") or {}),
        class_names=tuple(str(n) for n in prepared.get("class_names") or ()),
    )


def resolve(cfg: ServingConfig, client):
    """The model version to serve: the pinned one, else the one the alias points to."""
    if cfg.version:
        return client.get_model_version(cfg.model_name, cfg.version)
    return client.get_model_version_by_alias(cfg.model_name, cfg.alias)


def _store(cfg: ServingConfig) -> Path | None:
    """Where this server's workers share prepared models: under its cache folder."""
    return Path(cfg.cache_dir) / "prepared" if cfg.cache_dir else None


def load(cfg: ServingConfig, client) -> LoadedModel:
    """Resolve `models:/NAME@ALIAS` to a version and load it, ready to predict.

    The download and the checks run in a child process (serving/prepare.py). With a cache
    folder configured, the model's files are kept there once it has loaded and passed its
    checks: the last good model, for a start while MLflow is unreachable.
    """
    from serving import prepare
    from serving.trusted import FINGERPRINT_TAG

    mv = resolve(cfg, client)
    version = str(mv.version)
    git_sha = (mv.tags or {}).get("git_sha", "unknown")
    gated_sha256 = (mv.tags or {}).get(FINGERPRINT_TAG, "")
    with prepare.prepared(
        _store(cfg),
        "--download",
        f"models:/{cfg.model_name}/{version}",
        "--tracking-uri",
        cfg.tracking_uri,
        name=cfg.model_name,
        version=version,
        expected_sha256=gated_sha256,
        program=cfg.fast_path,
    ) as (prepared, folder):
        model = _loaded(cfg, version, mv.run_id or "", git_sha, prepared, folder, "registry")
        if cfg.cache_dir:
            try:
                ModelCache(cfg.cache_dir, cfg.model_name, cfg.alias).save(
                    prepared["model_dir"],
                    {
                        "version": version,
                        "run_id": model.run_id,
                        "git_sha": git_sha,
                        "saved_at": model.loaded_at,
                        "sha256": model.sha256,
                        "gated_sha256": gated_sha256,
                    },
                )
            except OSError as exc:  # serving matters more than the cache
                log.warning("could not keep version %s in %s (%s)", version, cfg.cache_dir, exc)
    return model


def load_cached(cfg: ServingConfig) -> LoadedModel | None:
    """The last good model from the cache folder, ready to predict; None if there is none."""
    if not cfg.cache_dir:
        return None
    found = ModelCache(cfg.cache_dir, cfg.model_name, cfg.alias).load()
    if found is None:
        return None
    record, folder = found
    if cfg.version and str(record.get("version")) != cfg.version:
        return None  # a server pinned to a version serves that version or nothing
    from serving import prepare

    version = str(record["version"])
    with prepare.prepared(
        _store(cfg),
        "--model-dir",
        str(folder),
        name=cfg.model_name,
        version=version,
        # The files must still be the ones that loaded (and that the gate checked).
        expected_sha256=record.get("gated_sha256") or record.get("sha256", ""),
        program=cfg.fast_path,
    ) as (prepared, where):
        model = _loaded(
            cfg,
            version,
            record.get("run_id", ""),
            record.get("git_sha", ""),
            prepared,
            where,
            "cache",
        )
    return dataclasses.replace(model, verified=bool(record.get("gated_sha256")))


class ModelHolder:
    """Holds the current model and refreshes it from the registry in the background."""

    def __init__(
        self, cfg: ServingConfig, client=None, loader=load, cache_loader=load_cached
    ) -> None:
        self.cfg = cfg
        self._client = client
        self._loader = loader
        self._cache_loader = cache_loader
        self.current: LoadedModel | None = None
        self.mlflow_reachable: bool | None = None
        self.last_error: str | None = None
        self.last_check: str | None = None
        # A version refused for what it is (format, files, schema): not downloaded again
        # while the alias still points to it.
        self.refused: tuple[str, str] | None = None
        self.failed_prepares = 0  # in a row
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def client(self):
        if self._client is None:
            from serving.registry import RestRegistry

            self._client = RestRegistry(self.cfg.tracking_uri)
        return self._client

    def refresh(self) -> bool:
        """Check the alias once; load and swap in a new version. Returns True on a swap.

        When the registry cannot answer and nothing is loaded yet (a worker or container
        that starts during an outage), the last good model from the cache is served until
        the registry answers again.
        """
        self.last_check = _now()
        try:
            mv = resolve(self.cfg, self.client)
            self.mlflow_reachable = True
            if self.refused is not None and self.refused[0] == str(mv.version):
                self.last_error = self.refused[1]
                return False
            current = self.current
            if current is not None and str(mv.version) == current.version:
                if current.source != "registry":  # the registry confirms the cached model
                    self.current = dataclasses.replace(current, source="registry")
                    log.warning("version %s from the cache confirmed by the registry", mv.version)
                self.last_error = None
                return False
            loaded = self._loader(self.cfg, self.client)
        except Exception as exc:
            from serving.prepare import PrepareFailed

            self.failed_prepares = self.failed_prepares + 1 if isinstance(exc, PrepareFailed) else 0
            reachable = not _is_connection_error(exc)
            self.mlflow_reachable = reachable
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            if isinstance(exc, ModelLoadError) and exc.version is not None:
                # The version the loader refused (the alias may have moved since it was read).
                self.refused = (exc.version, self.last_error)
            if self.current is None and not _alias_missing(exc):
                return self._load_from_cache()
            log.warning(
                "model refresh failed (%s); keeping version %s",
                self.last_error,
                self.current.version if self.current else "none",
            )
            return False
        self.failed_prepares = 0
        return self._swap(loaded)

    def _swap(self, loaded: LoadedModel) -> bool:
        previous = self.current
        self.current = loaded  # one reference assignment: requests see old or new, never half
        if loaded.source == "registry":
            self.last_error = None
        log.warning(
            "serving %s@%s version %s (was %s, %s path, from the %s)",
            loaded.name,
            loaded.alias,
            loaded.version,
            previous.version if previous else "none",
            loaded.path,
            loaded.source,
        )
        return True

    def _load_from_cache(self) -> bool:
        try:
            cached = self._cache_loader(self.cfg)
        except Exception as exc:  # a damaged cache must not stop the poller
            log.warning("the model cache cannot be loaded (%s: %s)", type(exc).__name__, exc)
            return False
        if cached is None:
            log.warning("model refresh failed (%s); no model to serve yet", self.last_error)
            return False
        return self._swap(cached)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            # Retry quickly until a model is loaded, then poll at the configured interval;
            # a version that keeps failing to prepare (each try may start a 250 MB
            # process) is tried less and less often, up to once a minute.
            self._stop.wait(self.next_wait())

    def next_wait(self) -> float:
        wait = self.cfg.poll_interval_s if self.current else min(2.0, self.cfg.poll_interval_s)
        if self.failed_prepares > 1:
            wait = max(wait, min(60.0, 2.0 ** (self.failed_prepares - 1)))
        return wait

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait_loaded(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.current is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.current is not None


def _alias_missing(exc: Exception) -> bool:
    """The registry answered that the alias does not exist: serve nothing rather than a
    model the alias no longer names. (MLflow's SQL store answers a missing alias with
    INVALID_PARAMETER_VALUE, "Registered model alias ... not found".)"""
    code = getattr(exc, "error_code", "")
    if code == "RESOURCE_DOES_NOT_EXIST":
        return True
    text = str(exc)
    return code == "INVALID_PARAMETER_VALUE" and "alias" in text and "not found" in text


def _is_connection_error(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}"
    return any(
        s in text
        for s in (
            "ConnectionError",
            "Connection refused",
            "Max retries",
            "Failed to establish",
            "NameResolution",
            "timed out",
        )
    )
