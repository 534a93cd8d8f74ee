"""Load a registered model on the loader's terms, not the model's.

MLflow's loaders follow the model's own `MLmodel`: its serialization format (pickle and
cloudpickle run code while loading), the list of types skops should trust, a pyfunc
`loader_module` to import and a `code/` folder to put on the path. Anyone who can register
a version could therefore run code wherever it is loaded. Here only one shape of model
is accepted, the one the lab's training job logs: the sklearn flavor in skops format,
loaded with `skops.io.load` and a trust list fixed below; every other format, flavor,
loader or code folder is refused with a message that says which.

The model's files are fingerprinted (sha256 over every file, by relative path): the
gatekeeper records the fingerprint with its verdict, and the model servers refuse files
that differ from what was gated.

This file is kept identical in serving/ and gatekeeper/ (the components share no code;
tests/test_defaults.py checks the copies match).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# Types skops refuses by default that the lab's own model families need: the tree
# storage of random forests. Fixed here; the model's own `skops_trusted_types` is ignored.
TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)
ALLOWED_FLAVORS = frozenset({"python_function", "sklearn"})
FINGERPRINT_TAG = "gate.model_sha256"


class UntrustedModel(ValueError):
    """The model is not in the one format this lab loads; the message says why."""


def _mlmodel(local_dir: Path) -> dict:
    import yaml

    try:
        meta = yaml.safe_load((local_dir / "MLmodel").read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UntrustedModel(f"no readable MLmodel file ({exc})") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("flavors"), dict):
        raise UntrustedModel("MLmodel has no flavors")
    return meta


def check(local_dir: str | Path) -> Path:
    """The path of the model's skops file, after checking the model is one the lab loads."""
    try:
        return _check(Path(local_dir))
    except (AttributeError, TypeError, ValueError) as exc:  # a malformed MLmodel
        if isinstance(exc, UntrustedModel):
            raise
        raise UntrustedModel(f"its MLmodel is malformed ({type(exc).__name__}: {exc})") from exc


def _check(local_dir: Path) -> Path:
    flavors = _mlmodel(local_dir)["flavors"]
    extra = sorted(str(f) for f in set(flavors) - ALLOWED_FLAVORS)
    if extra:
        raise UntrustedModel(f"flavor {extra[0]!r} is not loaded here (only sklearn in skops)")
    pyfunc = flavors.get("python_function") or {}
    if not isinstance(pyfunc, dict):
        raise UntrustedModel("its python_function flavor is not a mapping")
    loader = pyfunc.get("loader_module")
    if loader not in (None, "mlflow.sklearn"):
        raise UntrustedModel(f"it names its own loader {loader!r}: only mlflow.sklearn is used")
    sk = flavors.get("sklearn")
    if not isinstance(sk, dict):
        raise UntrustedModel("it has no sklearn flavor (only sklearn models in skops are loaded)")
    if pyfunc.get("code") or sk.get("code") or (local_dir / "code").exists():
        raise UntrustedModel("it carries code to import (a code/ folder): refused")
    fmt = sk.get("serialization_format")
    if fmt != "skops":
        raise UntrustedModel(f"it is stored as {fmt!r}, which runs code when loaded: only skops")
    name = str(sk.get("pickled_model", ""))
    path = local_dir / name
    if not name or "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
        raise UntrustedModel(f"its model file {name!r} is not a file in the model folder")
    return path


def load_estimator(local_dir: str | Path):
    """The sklearn estimator, loaded by skops with this module's trust list only."""
    import skops.io

    path = check(local_dir)
    try:
        return skops.io.load(path, trusted=list(TRUSTED_TYPES))
    except (MemoryError, OSError):  # the machine's trouble, not the model's: try again later
        raise
    except Exception as exc:  # skops names the untrusted types it found
        raise UntrustedModel(f"skops refused it: {str(exc).splitlines()[0][:300]}") from exc


def fingerprint(local_dir: str | Path) -> str:
    """sha256 over every file of a model folder: relative path, then the file's sha256."""
    local_dir = Path(local_dir)
    outer = hashlib.sha256()
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        inner = hashlib.sha256(path.read_bytes()).hexdigest()
        outer.update(f"{path.relative_to(local_dir).as_posix()}\0{inner}\n".encode())
    return outer.hexdigest()
