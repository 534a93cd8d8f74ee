"""Start, wait for and stop the lab's local processes (standard library only).

One implementation for the local backend, the integration tests (tests/support) and the
serving benchmark (bench/): a free port, an HTTP wait that notices a dead process, a
polite stop, and the command lines of the MLflow server and the gunicorn model server.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The MLflow server's job runner (GenAI jobs) starts about six processes of about 280 MB
# each; nothing in the lab uses it.
MLFLOW_SERVER_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on host:port."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def http_ok(url: str, timeout: float = 2.0, ok: Iterable[int] = (200,)) -> bool:
    """True when a GET of `url` answers one of the `ok` statuses."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (http only)
            return r.status in tuple(ok)
    except urllib.error.HTTPError as exc:
        return exc.code in tuple(ok)
    except (OSError, ValueError, http.client.HTTPException):
        return False


def wait_http(
    url: str,
    timeout: float,
    proc: subprocess.Popen | None = None,
    ok: Iterable[int] = (200,),
    alive=None,
) -> None:
    """Wait until `url` answers; fail early when `proc` exits or `alive()` turns false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        if alive is not None and not alive():
            raise RuntimeError(f"the process stopped before {url} answered")
        if http_ok(url, ok=ok):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_pid(pid: int, timeout: float = 30) -> bool:
    """Stop a process we did not start (a supervisor by its PID file). True if it was killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.2)
    try:  # the supervisor leads its own process group: take its server down with it
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
    return True


def venv_bin(python: str | os.PathLike | None = None) -> Path:
    """The folder of the console scripts installed beside `python` (default: this one)."""
    return Path(python or sys.executable).parent


def mlflow_server_command(
    bin_dir: Path, backend_dir: Path, port: int, host: str = "127.0.0.1", workers: int = 1
) -> list[str]:
    """`mlflow server` on SQLite with proxied local artifacts, as local mode runs it
    (through services/mlflow/serve.py, as the image does: no idle parent process)."""
    return [
        str(bin_dir / "python"),
        str(ROOT / "services" / "mlflow" / "serve.py"),
        "--backend-store-uri",
        f"sqlite:///{backend_dir / 'mlflow.db'}",
        "--artifacts-destination",
        str(backend_dir / "artifacts"),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def write_auth_config(path: Path, database_uri: str) -> None:
    """The basic-auth app's settings, as services/mlflow/auth_config.py writes them in the
    MLflow image: signed-in users read everything, a checked login is cached for 60 s."""
    import configparser

    config = configparser.ConfigParser(interpolation=None)
    config["mlflow"] = {
        "default_permission": "READ",
        "database_uri": database_uri,
        "admin_username": "admin",
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "auth_cache_ttl_seconds": "60",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        config.write(f)


SERVING_APP = "serving.app:create_app()"


def gunicorn_command(bin_dir: Path, app: str = SERVING_APP) -> list[str]:
    """The model server (or another WSGI `app`) under gunicorn with the lab's settings file."""
    return [
        str(bin_dir / "gunicorn"),
        "-c",
        str(ROOT / "serving" / "gunicorn.conf.py"),
        app,
    ]


def start_mlflow(
    backend_dir: Path,
    port: int,
    bin_dir: Path | None = None,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    args: Iterable[str] = (),
) -> subprocess.Popen:
    """Start a real MLflow server (log in `backend_dir/mlflow-<port>.log`); `args` are
    added to its command line (`--app-name basic-auth`)."""
    backend_dir.mkdir(parents=True, exist_ok=True)
    penv = {**(env if env is not None else os.environ), **MLFLOW_SERVER_ENV}
    with open(backend_dir / f"mlflow-{port}.log", "ab") as log:  # the child keeps its own fd
        return subprocess.Popen(
            [*mlflow_server_command(bin_dir or venv_bin(), backend_dir, port, host), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=backend_dir,
            env=penv,
        )


def start_gunicorn(
    env: Mapping[str, str],
    log_path: Path,
    bin_dir: Path | None = None,
    app: str = SERVING_APP,
) -> subprocess.Popen:
    """Start the model server under gunicorn; `env` carries its settings (GUNICORN_BIND…).

    gunicorn imports `app` from its working directory, the repository root, so the
    benchmark's `bench.floor_app:app` is found there too.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            gunicorn_command(bin_dir or venv_bin(), app),
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
