"""Rules the compose file keeps, read as YAML (no Docker needed)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "compose" / "compose.yaml").read_text())
RUNNING = {name: svc for name, svc in COMPOSE["services"].items() if "image" in svc}
# serving-image only names the image to build; it never runs.
RUNNING.pop("serving-image")


def _bytes(value: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    value = str(value).lower()
    return int(float(value[:-1]) * units[value[-1]]) if value[-1] in units else int(value)


@pytest.mark.parametrize("name", sorted(RUNNING))
def test_every_container_has_a_memory_and_a_pid_limit(name):
    limits = RUNNING[name].get("deploy", {}).get("resources", {}).get("limits", {})
    assert _bytes(limits.get("memory", "0")) >= 128 << 20, name
    assert 0 < int(limits.get("pids", 0)) <= 1024, name


def test_the_long_running_services_fit_a_laptop_with_8_gb():
    """Everything but the one-shot jobs runs at once: it must leave the laptop room."""
    one_shot = {"jobs", "load"}  # the Compose profiles of the one-shot jobs
    jobs = {n for n, s in RUNNING.items() if one_shot & set(s.get("profiles", []))} | {"s3-init"}
    # One production colour runs outside a switch (the other only while one is verified).
    idle = {"minio", "serving-green"}
    servers = {n: s for n, s in RUNNING.items() if n not in jobs and n not in idle}
    total = sum(_bytes(s["deploy"]["resources"]["limits"]["memory"]) for s in servers.values())
    biggest_job = max(_bytes(RUNNING[n]["deploy"]["resources"]["limits"]["memory"]) for n in jobs)
    assert total + biggest_job <= 6 << 30, total


def test_the_registry_does_not_allow_deletes():
    env = RUNNING["registry"].get("environment") or {}
    assert str(env.get("REGISTRY_STORAGE_DELETE_ENABLED", "false")).lower() == "false"


PUBLISHED = {n: s["ports"] for n, s in RUNNING.items() if s.get("ports")}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_only_the_model_servers_follow_lab_bind_the_rest_need_logins_first(name):
    """MLflow and the registry publish on LAB_ADMIN_BIND, which leaves loopback only
    together with their logins; the model servers on LAB_BIND; the S3 store on loopback."""
    if name in ("minio", "seaweedfs"):
        expected = "127.0.0.1:"
    elif name.startswith("serving-"):
        expected = "${LAB_BIND:-127.0.0.1}:"
    else:
        expected = "${LAB_ADMIN_BIND:-127.0.0.1}:"
    for port in PUBLISHED[name]:
        assert port.startswith(expected), (name, port)


def test_the_classroom_file_puts_the_registry_behind_htpasswd():
    classroom = yaml.safe_load((ROOT / "compose" / "classroom.yaml").read_text())
    env = classroom["services"]["registry"]["environment"]
    assert env["REGISTRY_AUTH"] == "htpasswd" and env["REGISTRY_AUTH_HTPASSWD_PATH"]


GUNICORN_CONF = ROOT / "serving" / "gunicorn.conf.py"


def _repository(image: str) -> str:
    """An image reference without its tag (the first ":" of the last path component)."""
    folder, _, name = image.rpartition("/")
    return f"{folder}/{name.split(':', 1)[0]}"


# The services that run the image serving-image builds: the model servers.
SERVING_REPOSITORY = _repository(COMPOSE["services"]["serving-image"]["image"])
MODEL_SERVERS = sorted(
    n for n, s in RUNNING.items() if _repository(s["image"]) == SERVING_REPOSITORY
)


def _seconds(duration: str) -> float:
    """A Compose duration ("25s", "1m30s", "500ms") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def _graceful_timeout(environment: dict) -> float:
    """gunicorn's graceful_timeout as serving/gunicorn.conf.py sets it for `environment`:
    a number, or int(os.environ.get("VAR", "default")) read from the container's settings."""
    for node in ast.parse(GUNICORN_CONF.read_text()).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "graceful_timeout":
            value = node.value
            if isinstance(value, ast.Constant):
                return float(value.value)
            if (
                isinstance(value, ast.Call)
                and ast.unparse(value.func) in ("int", "float")
                and isinstance(call := value.args[0], ast.Call)
                and ast.unparse(call.func) == "os.environ.get"
            ):
                var, default = (ast.literal_eval(a) for a in call.args)
                given = str(environment.get(var, default))
                # A compose value "${VAR:-20}": the default it names, unless .env sets VAR.
                m = re.fullmatch(r"\$\{\w+:-(.*)\}", given)
                return float(m.group(1) if m else given)
            raise AssertionError(f"cannot read graceful_timeout = {ast.unparse(value)}")
    return 30.0  # gunicorn's own default


def test_the_model_servers_are_staging_blue_and_green():
    assert MODEL_SERVERS == ["serving-blue", "serving-green", "serving-staging"]


def test_the_model_servers_run_gunicorn_with_the_lab_settings_file():
    """What the next test reads is what the containers run: the image's command names
    gunicorn.conf.py and no graceful timeout of its own."""
    dockerfile = (ROOT / "serving" / "Dockerfile").read_text()
    [cmd] = re.findall(r"^CMD (.*)$", dockerfile, flags=re.MULTILINE)
    argv = json.loads(cmd)
    assert argv[:3] == ["gunicorn", "-c", "/app/gunicorn.conf.py"], argv
    assert not any(a.startswith("--graceful-timeout") for a in argv), argv
    assert "COPY gunicorn.conf.py /app/" in dockerfile
    for name in MODEL_SERVERS:
        assert "command" not in RUNNING[name] and "entrypoint" not in RUNNING[name], name


@pytest.mark.parametrize("name", MODEL_SERVERS)
def test_a_model_server_gets_longer_to_stop_than_gunicorns_graceful_timeout(name):
    """Compose kills a container stop_grace_period after SIGTERM; gunicorn gives requests in
    flight graceful_timeout to finish. A shorter grace period cuts them off."""
    service = RUNNING[name]
    grace = _seconds(service.get("stop_grace_period", "10s"))  # Compose's default: 10 s
    graceful = _graceful_timeout(service.get("environment") or {})
    assert grace > graceful, f"{name}: stop_grace_period {grace} s <= graceful_timeout {graceful} s"
