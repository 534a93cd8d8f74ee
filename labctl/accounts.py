"""Classroom mode's accounts: MLflow users through its REST API, the registry's htpasswd.

MLflow's basic-auth app keeps users in its database; the admin (created by the server on
its first start from MLFLOW_ADMIN_PASSWORD) adds the others. The image registry reads an
htpasswd file, which must hold bcrypt hashes: the Python standard library of the lab's
base image computes them (Debian's libcrypt), so nothing is installed on the host.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from labctl import log
from labctl.errors import LabError
from labctl.runner import Runner
from labctl.settings import MLFLOW_ADMIN_USER, MLFLOW_READER_USER, REGISTRY_USER, Settings

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
HTPASSWD_SCRIPT = (
    "import crypt, sys\n"
    "user, password = sys.stdin.read().split('\\n', 1)\n"
    "print(f'{user}:' + crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH)))\n"
)


class MlflowAdmin:
    """The user endpoints of MLflow's basic-auth app, called as the admin."""

    def __init__(self, settings: Settings, timeout: float = 10.0):
        self.base = f"http://{settings.admin_host}:{settings.port('MLFLOW_PORT')}"
        password = settings.get("MLFLOW_ADMIN_PASSWORD")
        token = base64.b64encode(f"{MLFLOW_ADMIN_USER}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 (http, the lab's MLflow)
            self.base + path, data=data, method=method, headers=self.headers
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:  # noqa: S310
                return r.status, _json(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read())
        except (OSError, http.client.HTTPException) as exc:
            raise LabError(
                f"MLflow does not answer at {self.base} ({exc}): is the lab up?"
            ) from exc

    def exists(self, username: str) -> bool:
        query = urllib.parse.urlencode({"username": username})
        status, body = self.call("GET", f"/api/2.0/mlflow/users/get?{query}")
        if status == 200:
            return True
        if status == 404:
            return False
        raise LabError(self.refusal(status, body))

    def create(self, username: str, password: str) -> None:
        status, body = self.call(
            "POST", "/api/2.0/mlflow/users/create", {"username": username, "password": password}
        )
        if status != 200:
            raise LabError(self.refusal(status, body))

    def set_password(self, username: str, password: str) -> None:
        status, body = self.call(
            "PATCH",
            "/api/2.0/mlflow/users/update-password",
            {"username": username, "password": password},
        )
        if status != 200:
            raise LabError(self.refusal(status, body))

    def refusal(self, status: int, body: dict) -> str:
        if status == 401:
            return (
                "MLflow refused the admin login: MLFLOW_ADMIN_PASSWORD in .env is not the "
                "password the admin account was created with (MLflow keeps the first one)"
            )
        if status == 404 and not body:
            return "MLflow has no logins here: is the lab running with LAB_AUTH=1?"
        return f"MLflow answered HTTP {status}: {body.get('message') or body}"


def _json(raw: bytes) -> dict:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def ensure_reader(settings: Settings) -> None:
    """The model servers' read-only account, with the password `.env` holds."""
    admin = MlflowAdmin(settings)
    password = settings.get("MLFLOW_READER_PASSWORD")
    if admin.exists(MLFLOW_READER_USER):
        admin.set_password(MLFLOW_READER_USER, password)  # .env is the source of truth
    else:
        admin.create(MLFLOW_READER_USER, password)
        log.info(f"created the model servers' read-only MLflow account {MLFLOW_READER_USER!r}")


def add_user(settings: Settings, name: str, password: str = "") -> str:
    """Create an MLflow account for a student; returns its password (generated if empty)."""
    if not settings.auth:
        raise LabError(
            "make user needs classroom mode: MLflow has no logins while LAB_AUTH=0 "
            "(set LAB_AUTH=1, or LAB_BIND to a network address, then make up)"
        )
    if not USERNAME.match(name):
        raise LabError(
            f"NAME={name!r}: use 2 to 32 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter"
        )
    if name in (MLFLOW_ADMIN_USER, MLFLOW_READER_USER):
        raise LabError(f"NAME={name}: that account belongs to the lab")
    if password and len(password) < 8:
        raise LabError("PASSWORD must have at least 8 characters (or leave it out)")
    admin = MlflowAdmin(settings)
    if admin.exists(name):
        raise LabError(f"MLflow already has a user {name!r}: pick another NAME")
    password = password or secrets.token_urlsafe(12)
    admin.create(name, password)
    return password


def write_htpasswd(settings: Settings, runner: Runner, image: str) -> bool:
    """Write .lab/registry-auth/htpasswd for REGISTRY_PASSWORD unless it is current.

    True when the file changed (a running registry must restart to read it).
    """
    folder = settings.lab_dir / "registry-auth"
    target, stamp = folder / "htpasswd", folder / "password.sha256"
    password = settings.get("REGISTRY_PASSWORD")
    if not password:
        raise LabError("REGISTRY_PASSWORD is empty in .env (delete the line: make up makes one)")
    fingerprint = _fingerprint(password)
    if target.is_file() and _read(stamp) == fingerprint:
        return False
    # fmt: off
    argv = [
        "docker", "run", "--rm", "-i", "--network", "none",
        "--entrypoint", "python", image, "-W", "ignore", "-c", HTPASSWD_SCRIPT,
    ]
    # fmt: on
    result = runner.run(
        argv,
        input=f"{REGISTRY_USER}\n{password}".encode(),
        capture=True,
    )
    line = result.stdout.strip()
    if not line.startswith(f"{REGISTRY_USER}:$2"):
        raise LabError(f"could not make the registry's bcrypt password hash (got {line[:20]!r})")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # the registry reads it as its own user
    target.write_text(line + "\n")
    target.chmod(0o644)
    fd = os.open(stamp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # private: it is fast
    with os.fdopen(fd, "w") as f:
        f.write(fingerprint + "\n")
    stamp.chmod(0o600)
    return True


def _fingerprint(password: str) -> str:
    import hashlib

    return hashlib.sha256(password.encode()).hexdigest()


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
