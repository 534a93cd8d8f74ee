"""Rules the compose file keeps, read as YAML (no Docker needed)."""

from __future__ import annotations

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
