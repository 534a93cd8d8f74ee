"""The lab's settings: `.env` parsed the way Compose parses it, layered the way Compose does.

Precedence, highest first: a non-empty variable in the environment, then `.env` (the
user's file, generated on the first `make up`), then `.env.example` (the documented
defaults; the one place a default is written for the lab's own tooling). An empty
environment variable counts as unset, as `${VAR:-default}` does in the compose file: CI
passes its knobs as possibly-empty variables, and empty must mean "the lab's value".
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import secrets
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from labctl import images
from labctl.errors import LabError

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Only lab settings are taken from `.env`: a file that a classmate, a state archive or a
# pull request can hand over must not be able to set BASH_ENV, LD_PRELOAD, PYTHONPATH,
# DOCKER_HOST or PATH for every program the lab runs.
SETTING_PREFIXES = (
    "LAB_",
    "MLFLOW_",
    "GATE_",
    "SERVING_",
    "LOAD_",
    "LOCUST_",
    "TRAIN_",
    "S3_",
    "POSTGRES_",
    "GUNICORN_",
    "DRIFT_",
    "TRAFFIC_",
    "PROMOTE_",
)
SETTING_SUFFIXES = ("_IMAGE", "_PORT")
SETTING_NAMES = frozenset(
    {
        "LABEL_NOISE",
        "PIP_CA_FILE",
        "STATE_FILE",
        "GIT_SHA",
        "COMPOSE_PROJECT_NAME",
        "REGISTRY_PASSWORD",
    }
)

PORT_VARS = (
    "MLFLOW_PORT",
    "REGISTRY_PORT",
    "STAGING_PORT",
    "PRODUCTION_PORT",
    "S3_PORT",
    "S3_CONSOLE_PORT",
)
SERVER_PORT_VARS = ("STAGING_PORT", "PRODUCTION_PORT")  # on LAB_BIND; the rest on LAB_ADMIN_BIND
MODES = ("auto", "docker", "local")
S3_BACKENDS = ("minio", "seaweedfs")
SECRET_KEYS = (
    "POSTGRES_PASSWORD",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_READER_PASSWORD",
    "MLFLOW_SECRET_KEY",
    "REGISTRY_PASSWORD",
)
# The accounts of classroom mode (LAB_AUTH): the lab's jobs sign in to MLflow as the admin,
# the model servers as a reader, pushes and retags go to the registry as `lab`.
MLFLOW_ADMIN_USER = "admin"
MLFLOW_READER_USER = "lab-reader"
REGISTRY_USER = "lab"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; anything else reaches (or may reach) a network."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def admin_bind(bind: str, auth: bool) -> str:
    return bind if auth or is_loopback(bind) else "127.0.0.1"


def _client(bind: str) -> str:
    return "127.0.0.1" if bind in ("0.0.0.0", "", "::") else bind  # noqa: S104


def resolve_auth(value: str, bind: str) -> bool:
    """LAB_AUTH: 1 or 0, or empty/auto for "on whenever LAB_BIND is not a loopback address"."""
    v = value.strip().lower()
    if v in ("", "auto"):
        return not is_loopback(bind)
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise LabError(f"LAB_AUTH must be 1, 0 or auto (got {value!r})")


def is_setting(key: str) -> bool:
    """True for the names the lab reads from `.env`."""
    if key == "COMPOSE_PROJECT_NAME":  # Compose reads it from .env too: both must agree
        return True
    if key.startswith(("DOCKER_", "LD_", "BASH", "COMPOSE_")):
        return False
    if key.startswith("PYTHON") and key != "PYTHON_IMAGE":
        return False
    return (
        key in SETTING_NAMES or key.startswith(SETTING_PREFIXES) or key.endswith(SETTING_SUFFIXES)
    )


@dataclass
class DotEnv:
    values: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # the line each key was last set on


DOCUMENTED = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
# Read from `.env` though .env.example does not list them: Compose reads the project name
# from `.env` too, and a checkout without git may pin its image tag.
UNDOCUMENTED_SETTINGS = frozenset({"COMPOSE_PROJECT_NAME", "GIT_SHA"})
IMAGE_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")


def documented_keys(example_text: str) -> frozenset[str]:
    """Every key .env.example sets or shows in a comment (`# GATE_ACTOR=`)."""
    return frozenset(DOCUMENTED.findall(example_text)) | UNDOCUMENTED_SETTINGS


def check_dotenv(env: DotEnv, allowed: frozenset[str], name: str = ".env") -> None:
    """Refuse a `.env` that sets anything but the documented lab settings, or a value no
    setting can have, or a line that is not `KEY=value` (Compose reads forms this parser
    does not, such as `KEY: value`); the message names the line. Nothing is read from a
    refused file."""
    if env.problems:
        raise LabError(f"{name} {env.problems[0]}: fix or remove the line")
    for key, value in env.values.items():
        line = env.lines.get(key, 0)
        if key not in allowed or not is_setting(key):
            raise LabError(
                f"{name} line {line}: {key} is not a lab setting (.env.example lists them): "
                "remove the line"
            )
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise LabError(f"{name} line {line}: {key} holds a control character")
        if key.endswith("_IMAGE") and value and not IMAGE_REFERENCE.match(value):
            raise LabError(f"{name} line {line}: {key}={value!r} is not an image reference")


def _unquote_double(body: str) -> tuple[str, str]:
    """Value of a double-quoted string starting after the quote, and what follows it."""
    out, i = [], 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            out.append(escapes.get(body[i + 1], "\\" + body[i + 1]))
            i += 2
            continue
        if c == '"':
            return "".join(out), body[i + 1 :]
        out.append(c)
        i += 1
    raise ValueError("no closing double quote")


def parse_dotenv(text: str) -> DotEnv:
    """Parse a `.env` file with Compose's rules for the forms people write.

    `KEY=value`, `export KEY=value`, blank lines and `#` comments; values in single quotes
    (literal) or double quotes (backslash escapes); an unquoted value ends at ` #` and loses
    surrounding blanks; CRLF line ends (a file saved on Windows) are accepted.
    """
    env = DotEnv()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r").strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not NAME.match(key):
            env.problems.append(f"line {number}: not a KEY=value line: {raw.strip()[:40]!r}")
            continue
        value = value.lstrip()
        try:
            if value.startswith("'"):
                end = value.find("'", 1)
                if end < 0:
                    raise ValueError("no closing single quote")
                value, rest = value[1:end], value[end + 1 :]
            elif value.startswith('"'):
                value, rest = _unquote_double(value[1:])
            else:
                value = re.split(r"\s#", value, maxsplit=1)[0].rstrip()
                rest = ""
        except ValueError as exc:
            env.problems.append(f"line {number}: {key}: {exc}")
            continue
        rest = rest.strip()
        if rest and not rest.startswith("#"):
            env.problems.append(f"line {number}: {key}: text after the closing quote ignored")
        env.values[key] = value
        env.lines[key] = number
    return env


def read_dotenv(path: Path) -> DotEnv:
    try:
        # utf-8-sig: Windows editors may start the file with a byte order mark.
        return parse_dotenv(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        return DotEnv()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabError(f"cannot read {path}: {exc}") from exc


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return ""


# The folders images are built from: an edit there changes what a job or a server runs.
IMAGE_SOURCES = ("training", "gatekeeper", "serving", "loadtests", "services")


def git_sha(root: Path) -> str:
    """The commit's short sha; `dev` outside git. A working tree with changes under the
    folders images are built from gets `<sha>-dirty-<hash>`, the hash covering every
    uncommitted change there (untracked files included): each different edit gets images
    of its own, so a job never runs code older than the tree, and uncommitted changes
    never overwrite a commit's images."""

    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, check=True).stdout

    try:
        sha = git("rev-parse", "--short=12", "HEAD").decode().strip()
        changed = git("status", "--porcelain", "--untracked-files=all", "--", *IMAGE_SOURCES)
    except (OSError, subprocess.CalledProcessError):
        return "dev"
    if not changed:  # edits elsewhere (docs, the Makefile) change no image
        return sha
    h = hashlib.sha256(git("diff", "HEAD", "--binary", "--", *IMAGE_SOURCES))
    untracked = git("ls-files", "--others", "--exclude-standard", "-z", "--", *IMAGE_SOURCES)
    for name in sorted(n for n in untracked.split(b"\0") if n):
        h.update(b"\0" + name + b"\0")
        with contextlib.suppress(OSError):  # a file that went away meanwhile
            h.update((root / name.decode()).read_bytes())
    return f"{sha}-dirty-{h.hexdigest()[:10]}"


@dataclass
class Settings:
    """The merged settings, and the environment every program the lab runs receives."""

    root: Path
    env: dict[str, str]
    environ: dict[str, str]  # the caller's own environment, before .env
    warnings: list[str] = field(default_factory=list)
    # The upstream image each *_IMAGE variable pins for this lab: the user's value, else
    # compose/compose.yaml's default (through LAB_MIRROR when set). `env` may name the same
    # image differently (as loaded from a classroom bundle).
    images: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        return self.env.get(key) or default

    def from_environ(self, key: str) -> str:
        """What the caller's environment says, ignoring `.env` (empty means unset)."""
        return self.environ.get(key) or ""

    def flag(self, key: str) -> bool:
        return self.get(key, "0") not in ("", "0", "false", "no")

    def port(self, key: str) -> int:
        value = self.get(key)
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise LabError(f"{key} must be a port number between 1 and 65535 (got {value!r})")
        return int(value)

    @property
    def bind(self) -> str:
        return self.get("LAB_BIND", "127.0.0.1")

    @property
    def client_host(self) -> str:
        """The address clients on this machine use for the model servers (0.0.0.0 is not
        one)."""
        return _client(self.bind)

    @property
    def admin_bind(self) -> str:
        """Where MLflow, the registry and the S3 store listen: LAB_BIND only when they want
        logins (or LAB_BIND is a loopback address), else 127.0.0.1."""
        return self.get("LAB_ADMIN_BIND") or admin_bind(self.bind, self.auth)

    def host_for(self, port_var: str) -> str:
        """The client address of the service behind a port variable."""
        if port_var in ("S3_PORT", "S3_CONSOLE_PORT"):
            return "127.0.0.1"  # the S3 store never leaves loopback
        return self.client_host if port_var in SERVER_PORT_VARS else self.admin_host

    @property
    def admin_host(self) -> str:
        """The address clients on this machine use for MLflow, the registry, the S3 store."""
        return _client(self.admin_bind)

    @property
    def auth(self) -> bool:
        """Classroom mode: logins on MLflow and the registry (LAB_AUTH, resolved by load)."""
        return self.get("LAB_AUTH") == "1"

    @property
    def s3_backend(self) -> str:
        return self.get("S3_BACKEND", "minio")

    @property
    def lab_dir(self) -> Path:
        return self.root / ".lab"

    @property
    def env_file(self) -> Path:
        return self.root / ".env"


def load(
    root: Path = ROOT, environ: Mapping[str, str] | None = None, sha: str | None = None
) -> Settings:
    """Layer environment > .env > .env.example and fill in what the lab computes."""
    environ = dict(os.environ if environ is None else environ)
    example = read_dotenv(root / ".env.example")
    user = read_dotenv(root / ".env")
    check_dotenv(user, documented_keys(_read_text(root / ".env.example")))
    warnings: list[str] = []
    env = dict(environ)
    for key in {**example.values, **user.values}:
        if not is_setting(key):
            continue
        if not environ.get(key):
            env[key] = user.values.get(key) or example.values.get(key, "")
    env["GIT_SHA"] = environ.get("GIT_SHA") or user.values.get("GIT_SHA") or sha or git_sha(root)
    env.setdefault("S3_BACKEND", "minio")
    env["S3_BACKEND"] = env["S3_BACKEND"] or "minio"
    settings = Settings(root=root, env=env, environ=environ, warnings=warnings)
    for key in PORT_VARS:
        if not env.get(key):
            raise LabError(f"{key} is not set: .env.example documents its default")
        settings.port(key)
    if settings.s3_backend not in S3_BACKENDS:
        raise LabError(f"S3_BACKEND must be minio or seaweedfs (got {settings.s3_backend!r})")
    env["LAB_REGISTRY"] = env.get("LAB_REGISTRY") or f"127.0.0.1:{env['REGISTRY_PORT']}"
    settings.images = upstream_images(root, env)
    auth = resolve_auth(env.get("LAB_AUTH", ""), settings.bind)
    env["LAB_AUTH"] = "1" if auth else "0"
    # Computed, never read from .env: the tools without logins stay on this machine.
    env["LAB_ADMIN_BIND"] = admin_bind(settings.bind, auth)
    if not auth and not is_loopback(settings.bind):
        warnings.append(
            f"LAB_BIND={settings.bind} with LAB_AUTH=0: only the model servers are reachable "
            "from your network; MLflow, the registry and the S3 store stay on 127.0.0.1 "
            "(LAB_AUTH=1 opens them with logins)"
        )
    if auth and env.get("MLFLOW_ADMIN_PASSWORD"):
        # The lab's own jobs and tests sign in as the admin (MLflow's clients read these).
        env["MLFLOW_TRACKING_USERNAME"] = MLFLOW_ADMIN_USER
        env["MLFLOW_TRACKING_PASSWORD"] = env["MLFLOW_ADMIN_PASSWORD"]
    return settings


# host:port of LAB_MIRROR: a name or IPv4 address, or an IPv6 address in brackets.
MIRROR = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):\d{1,5}$")
# What `make bundle-load` loaded: the names under which this engine holds digest-pinned images.
BUNDLE_IMAGES = Path(".bundle") / "images.json"


def upstream_images(root: Path, env: dict[str, str]) -> dict[str, str]:
    """The upstream image of every *_IMAGE variable; sets in `env` the ones the lab pulls
    through LAB_MIRROR, or runs by the name a loaded classroom bundle gave them."""
    try:
        defaults = images.upstream_defaults(
            (root / "compose" / "compose.yaml").read_text(encoding="utf-8")
        )
    except FileNotFoundError:
        return {}
    mirror = env.get("LAB_MIRROR", "").strip()
    if mirror and not MIRROR.match(mirror):
        raise LabError(
            "LAB_MIRROR must be host:port, the address of the room's pull-through registry "
            f"(e.g. 192.168.1.20:5000, no http://; got {mirror!r})"
        )
    pinned: dict[str, str] = {}
    for var, default in defaults.items():
        if env.get(var):
            pinned[var] = env[var]
            continue
        through = images.through_mirror(default, mirror) if mirror else None
        pinned[var] = through or default
        if through:
            env[var] = through
    for var, ref in loaded_images(root).items():
        # Only for the very image the lab pins: after a checkout that pins another, the
        # lab pulls that one as usual.
        if var in defaults and pinned.get(var) == ref:
            env[var] = images.bundle_name(ref)
    return pinned


def loaded_images(root: Path) -> dict[str, str]:
    """`.bundle/images.json`, written by make bundle-load: variable -> the digest-pinned
    image the engine holds under its bundle name (images.bundle_name). Anything but image
    references is ignored."""
    try:
        data = json.loads((root / BUNDLE_IMAGES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {
        var: ref
        for var, ref in (data.items() if isinstance(data, dict) else ())
        if isinstance(var, str)
        and var.endswith("_IMAGE")
        and isinstance(ref, str)
        and IMAGE_REFERENCE.match(ref)
    }


def reload(settings: Settings, runner) -> None:
    """Read `.env` again (after the lab wrote it) into the settings and the environment of
    every later command."""
    fresh = load(settings.root, settings.environ, sha=settings.get("GIT_SHA"))
    settings.env.clear()
    settings.env.update(fresh.env)
    runner.env = dict(fresh.env)


def resolve_mode(settings: Settings, docker_answers) -> str:
    """docker or local: LAB_MODE, else the mode `up` recorded, else whether Docker answers."""
    mode = settings.get("LAB_MODE", "auto")
    if mode not in MODES:
        raise LabError(f"LAB_MODE must be auto, docker or local (got {mode!r})")
    if mode == "docker":
        if not docker_answers():
            raise LabError(
                "LAB_MODE=docker but no Docker engine answers (is Docker running? try: docker info)"
            )
        return "docker"
    if mode == "local":
        return "local"
    recorded = settings.lab_dir / "mode"
    if recorded.is_file():  # keep talking to what `up` started
        value = recorded.read_text(errors="replace").strip()
        if value in ("docker", "local"):
            return value
    return "docker" if docker_answers() else "local"


def generate_secrets() -> dict[str, str]:
    """Fresh secrets: hex, so they are safe in URLs, YAML and shells without quoting."""
    values = {key: secrets.token_hex(20) for key in SECRET_KEYS}
    values["S3_ACCESS_KEY"] = "lab" + secrets.token_hex(9)[:17]
    return values


def add_missing_secrets(path: Path) -> list[str]:
    """Append the secrets an older `.env` lacks (a lab upgraded in place); change no line.

    Returns the names added. Existing values are never touched: the database and the
    stores only open with the secrets they were created with.
    """
    current = read_dotenv(path).values
    missing = [key for key in SECRET_KEYS if not current.get(key)]
    if not missing:
        return []
    fresh = generate_secrets()
    text = path.read_text(encoding="utf-8-sig")
    lines = [] if text.endswith("\n") or not text else [""]
    lines.append("# Secrets added by a newer version of the lab (generated; never commit them)")
    lines += [f"{key}={fresh[key]}" for key in missing]
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return missing


def ensure_env(settings: Settings) -> str:
    """Write `.env` from `.env.example` with generated secrets; never overwrite.

    Returns what changed, for the user ("" when nothing did): after a change, read the
    settings again.
    """
    path = settings.env_file
    if path.exists():
        added = add_missing_secrets(path)
        return f"added generated {', '.join(added)} to .env" if added else ""
    template = (settings.root / ".env.example").read_text(encoding="utf-8")
    values = {**generate_secrets(), "S3_BACKEND": settings.s3_backend}
    lines = []
    for line in template.splitlines():
        key = line.split("=", 1)[0]
        if "=" in line and not line.startswith("#") and key in values:
            line = f"{key}={values[key]}"
        lines.append(line)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return "created .env with freshly generated secrets (it is git-ignored; keep it)"
