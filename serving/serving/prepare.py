"""Prepare a model for the server's workers, in a short-lived process of its own.

    python -m serving.prepare --out DIR (--download models:/NAME/VERSION | --model-dir DIR)
                              [--version N] [--expected-sha256 HEX] [--no-program]

Everything that needs MLflow, scikit-learn or pandas happens here: the download, the
checks of serving/trusted.py and of the gate's fingerprint, the signature, the form hints
and, for the estimators serving/fastpath.py knows, the numpy program (checked to answer
exactly as sklearn does). The worker that started this process reads the result from
`DIR/prepared.json` and the program from `DIR/program.*` with numpy only, so a worker
that serves such a model never holds those libraries (about 150 MB each worker).

Exit 0: prepared (`program` says whether a program was written); exit 3: the model is
refused for what it is (`refused` says why); any other exit: it could not be prepared now
(MLflow unreachable, the machine's trouble), try again later.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import fcntl
import hashlib
import hmac
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

RESULT = "prepared.json"
REFUSED = 3
log = logging.getLogger("serving.prepare")


def prepare(local: Path, out: Path, version: str, expected_sha256: str, program: bool) -> dict:
    """Check and describe the model in `local`; write its program into `out` when one
    answers exactly as sklearn does. Raises ModelLoadError when the model is refused."""
    from serving import fastpath, trusted
    from serving.model import (
        ModelLoadError,
        _check_rows,
        _form_hints,
        _signature,
        _strip_feature_names,
        _verify,
    )

    sha256, verified = _verify(str(local), version, expected_sha256)
    try:
        trusted.check(local)
        features, types = _signature(str(local), version)
        example, class_names = _form_hints(str(local), features, types)
        estimator = trusted.load_estimator(local) if program else None
    except trusted.UntrustedModel as exc:
        raise ModelLoadError(f"version {version} refused: {exc}", version) from exc
    result = {
        "model_dir": str(local),
        "version": version,
        "sha256": sha256,
        "verified": verified,
        "features": list(features),
        "types": list(types),
        "example": example,
        "class_names": list(class_names),
        "program": False,
        "why_no_program": "not asked for" if not program else "",
    }
    if estimator is None:
        return result
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None and tuple(str(c) for c in fitted) != features:
        result["why_no_program"] = "the estimator's columns differ from the signature's"
        return result
    estimator = copy.deepcopy(estimator)
    _strip_feature_names(estimator)
    compiled = fastpath.compile_program(estimator)
    if compiled is None:
        result["why_no_program"] = f"no numpy program for {type(estimator).__name__}"
        return result
    from mlflow.models import Model

    rows = _check_rows(Model.load(str(local)), str(local), len(features))
    if not fastpath.agrees(fastpath.build(compiled), estimator.predict, rows):
        result["why_no_program"] = "its numpy program does not answer exactly as sklearn"
        return result
    fastpath.save(compiled, out)
    result["program"] = True
    return result


def _download(uri: str, dst: Path, tracking_uri: str) -> Path:
    import mlflow.artifacts

    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(dst), tracking_uri=tracking_uri
        )
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m serving.prepare", description=__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--download", metavar="URI", help="models:/NAME/VERSION")
    src.add_argument("--model-dir", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""))
    p.add_argument("--version", default="")
    p.add_argument("--expected-sha256", default="")
    p.add_argument("--no-program", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    from serving.model import ModelLoadError

    args.out.mkdir(parents=True, exist_ok=True)
    try:
        if args.download:
            local = _download(args.download, args.out / "model", args.tracking_uri)
        else:  # a copy: the prepared folder holds everything a worker may need
            local = Path(shutil.copytree(args.model_dir, args.out / "model"))
        result = prepare(local, args.out, args.version, args.expected_sha256, not args.no_program)
    except ModelLoadError as exc:
        (args.out / RESULT).write_text(json.dumps({"refused": str(exc)}))
        return REFUSED
    result["model_dir"] = local.resolve().relative_to(args.out.resolve()).as_posix()
    result["program_sha256"] = _program_sha256(args.out) if result["program"] else ""
    (args.out / RESULT).write_text(json.dumps(result))
    return 0


def _program_sha256(out: Path) -> str:
    from serving.fastpath import PROGRAM_ARRAYS, PROGRAM_JSON

    h = hashlib.sha256()
    for name in (PROGRAM_JSON, PROGRAM_ARRAYS):
        h.update(hashlib.sha256((out / name).read_bytes()).digest())
    return h.hexdigest()


class PrepareFailed(RuntimeError):
    """The model could not be prepared now; the message carries the reason."""


# Both under gunicorn's 60 s timeout: a worker's first load runs before it reports alive.
CHILD_TIMEOUT_S = 45.0
LOCK_TIMEOUT_S = 50.0


def _die_with_parent() -> None:
    """In the child (Linux): be killed when the worker that started it dies, so a worker
    gunicorn kills does not leave a 250 MB process behind."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the timeout still bounds it
        pass


def run(out: Path, *source: str, version: str, expected_sha256: str, program: bool, env=None):
    """Prepare a model in a child process (see the module's docstring); the result dict.
    Raises ModelLoadError for a refused model, PrepareFailed for anything else.

    A worker that already holds scikit-learn and MLflow (it serves a model without a
    numpy program) prepares in-process instead: a child would only double its memory."""
    from serving.model import ModelLoadError

    argv = ["--out", str(out), *source, "--version", version]
    argv += ["--expected-sha256", expected_sha256]
    if not program:
        argv.append("--no-program")
    if {"sklearn", "mlflow", "pandas"} <= set(sys.modules):
        code, stderr = _in_process(argv), ""
    else:
        here = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ if env is None else env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
        try:
            r = subprocess.run(
                [sys.executable, "-m", "serving.prepare", *argv],
                env=env,
                capture_output=True,
                text=True,
                timeout=CHILD_TIMEOUT_S,
                check=False,
                preexec_fn=_die_with_parent,
            )
        except subprocess.TimeoutExpired:
            raise PrepareFailed(
                f"preparing version {version} took over {CHILD_TIMEOUT_S:.0f} s"
            ) from None
        code, stderr = r.returncode, r.stderr
    try:
        result = json.loads((out / RESULT).read_text())
    except (OSError, ValueError):
        result = None
    if code == REFUSED and isinstance(result, dict) and "refused" in result:
        raise ModelLoadError(str(result["refused"]), version)
    if code != 0 or not isinstance(result, dict):
        tail = " | ".join(stderr.strip().splitlines()[-3:])[-600:]
        raise PrepareFailed(f"preparing version {version} failed (exit {code}): {tail}")
    return _located(result, out)


def _in_process(argv: list[str]) -> int:
    try:
        return main(argv)
    except Exception as exc:  # as a child's crash would be: retried later
        log.warning("preparing in-process failed: %s: %s", type(exc).__name__, exc)
        return 1


def _located(result: dict, out: Path) -> dict:
    """The result with its model folder as a path under `out`, where it was prepared."""
    return {**result, "model_dir": str(out / result["model_dir"])}


SEAL = "seal"
# The code that decides what a prepared folder holds: a folder prepared by other code is
# prepared again, not reused.
_CODE_FILES = ("prepare.py", "fastpath.py", "model.py", "trusted.py")


def code_hash() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in _CODE_FILES:
        h.update(hashlib.sha256((here / name).read_bytes()).digest())
    return h.hexdigest()[:12]


def _server_key() -> bytes:
    """A secret of this server (gunicorn's settings put one in the environment of its
    master, so all its workers share it; a process on its own makes its own): a folder
    is reused only if it was sealed with it, so files written into the cache volume by
    anyone else, or by an earlier server, are never served unchecked."""
    key = os.environ.get("SERVING_PREPARED_KEY")
    if not key:
        key = os.urandom(32).hex()
        os.environ["SERVING_PREPARED_KEY"] = key
    return key.encode()


def _seal_value(final: Path, result: dict) -> str:
    from serving.trusted import fingerprint

    found = fingerprint(result["model_dir"])
    program = _program_sha256(final) if result["program"] else ""
    return hmac.new(_server_key(), f"{found}\0{program}".encode(), "sha256").hexdigest()


def _reusable(final: Path, expected_sha256: str) -> dict | None:
    """A folder a worker of this server prepared and sealed, if its files are still the
    ones it prepared (and the ones the gate checked); None otherwise."""
    try:
        result = _located(json.loads((final / RESULT).read_text()), final)
        if expected_sha256 and result["sha256"] != expected_sha256:
            return None
        seal = (final / SEAL).read_text().strip()
        if not hmac.compare_digest(seal, _seal_value(final, result)):
            return None
        return result
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def prepared(
    store: Path | None,
    *source: str,
    name: str,
    version: str,
    expected_sha256: str,
    program: bool,
):
    """(result, folder) of a prepared model, while the `with` block runs.

    With a `store` (the server's cache folder), a version is prepared once per server:
    the first worker prepares it under a file lock, the others (and any worker started
    later, with MLflow up or down) reuse its folder. Without one, each call prepares its
    own in a temporary folder."""
    if store is None:
        with tempfile.TemporaryDirectory(prefix="serving-model-") as tmp:
            yield (
                run(
                    Path(tmp),
                    *source,
                    version=version,
                    expected_sha256=expected_sha256,
                    program=program,
                ),
                Path(tmp),
            )
        return
    gated = (expected_sha256 or "ungated")[:16]
    kind = "program" if program else "plain"
    model = hashlib.sha256(name.encode()).hexdigest()[:8]  # the registered model's name
    key = f"v{version}-{gated}-{kind}-{model}-{code_hash()}"
    final = store / key
    store.mkdir(parents=True, exist_ok=True)
    with open(store / f".{key}.lock", "a") as lock:
        _wait_for(lock, version)
        result = _reusable(final, expected_sha256)
        if result is None:
            tmp = store / f".{key}-{uuid.uuid4().hex}"
            try:
                made = run(
                    tmp, *source, version=version, expected_sha256=expected_sha256, program=program
                )
                (tmp / SEAL).write_text(_seal_value(tmp, made))
                shutil.rmtree(final, ignore_errors=True)
                tmp.rename(final)
            except OSError as exc:
                raise PrepareFailed(f"version {version}: cannot keep it in {final}: {exc}") from exc
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            result = _reusable(final, expected_sha256)
            if result is None:
                raise PrepareFailed(f"version {version} changed in {final} as it was prepared")
            _prune(store, keep=final.name)
    yield result, final


def _wait_for(lock, version: str, timeout_s: float = LOCK_TIMEOUT_S) -> None:
    """Take the lock, polling: a blocking flock would stall a gevent worker's every
    greenlet (its requests too) while another worker prepares; time.sleep yields."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise PrepareFailed(f"version {version} is still being prepared") from None
            time.sleep(0.1)


STALE_S = 600.0


def _prune(store: Path, keep: str, kept: int = 2) -> None:
    """Keep the folder just prepared and the newest other one (a rollback's way back);
    drop older ones, and leftovers of a prepare that was killed, once they are ten
    minutes old (a worker reads a folder within seconds of choosing it). Lock files
    stay: one held by a worker must never be replaced by a new one."""
    now = time.time()
    folders = []
    for path in store.iterdir():
        try:
            if path.is_dir():
                folders.append((path.stat().st_mtime, path))
        except OSError:  # removed meanwhile
            continue
    folders.sort(reverse=True)
    others = [(m, p) for m, p in folders if p.name != keep and not p.name.startswith(".")]
    stale = others[kept - 1 :] + [(m, p) for m, p in folders if p.name.startswith(".")]
    for mtime, path in stale:
        if now - mtime > STALE_S:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
