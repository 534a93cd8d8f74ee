"""Preflight checks: what must hold before the lab can start, as sentences a user can act on.

The thresholds are pure functions of gathered facts, so each is tested at its boundary.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from labctl import log, processes
from labctl.runner import Runner
from labctl.settings import PORT_VARS, Settings

MIN_COMPOSE = (2, 20)
MIN_DOCKER_MEMORY = 3_500_000_000  # bytes: "give Docker 4 GiB", with room for rounding
MIN_FREE_DISK = 5_000_000_000  # bytes: images, database, artifacts
MIN_PYTHON = (3, 11)
# Engines before 28 on Linux let hosts on the same network reach ports published on
# 127.0.0.1 (moby/moby#45610): loopback is then no boundary.
SAFE_LOOPBACK_ENGINE = (28,)
LOCAL_PORT_VARS = ("MLFLOW_PORT", "STAGING_PORT", "PRODUCTION_PORT")


@dataclass(frozen=True)
class DockerFacts:
    cli: bool
    engine: bool
    compose_version: str = ""  # "" when `docker compose` is missing
    memory: int = 0  # bytes the engine may use; 0 when unknown
    engine_version: str = ""


def parse_version(text: str) -> tuple[int, ...]:
    """`v2.26.1-desktop.1` -> (2, 26, 1); unparseable parts end the tuple."""
    parts = []
    for piece in text.strip().lstrip("v").split("."):
        digits = ""
        for c in piece:
            if not c.isdigit():
                break
            digits += c
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    return tuple(parts)


def docker_problems(facts: DockerFacts) -> list[str]:
    if not facts.cli:
        return [
            "the docker CLI is not installed: https://docs.docker.com/get-docker/ "
            "(or run the lab without Docker: make up LAB_MODE=local)"
        ]
    if not facts.engine:
        return [
            "no Docker engine answers: start Docker Desktop / 'sudo systemctl start docker', "
            "or check 'docker info' (or use LAB_MODE=local)"
        ]
    problems = []
    version = parse_version(facts.compose_version)
    if not facts.compose_version:
        problems.append(
            "Docker Compose v2 is missing ('docker compose'); "
            "the old 'docker-compose' v1 is not supported"
        )
    elif version[:2] < MIN_COMPOSE:
        problems.append(
            f"Docker Compose {facts.compose_version} is too old: "
            f"{MIN_COMPOSE[0]}.{MIN_COMPOSE[1]} or newer is needed"
        )
    if 0 < facts.memory < MIN_DOCKER_MEMORY:
        problems.append(
            f"Docker has {facts.memory // 1048576} MiB of memory; give it at least 4 GiB "
            "(Docker Desktop: Settings > Resources)"
        )
    return problems


def engine_warnings(engine_version: str, platform: str) -> list[str]:
    """What an old Linux engine means for the lab's loopback-only ports."""
    version = parse_version(engine_version)
    if platform != "linux" or not version or version >= SAFE_LOOPBACK_ENGINE:
        return []
    return [
        f"Docker Engine {engine_version} on Linux: other hosts on your network can reach "
        "ports published on 127.0.0.1 (moby/moby#45610, fixed in Engine 28). Upgrade "
        "Docker, or use this machine on networks you trust; classroom mode (LAB_AUTH=1) "
        "puts logins on MLflow and the registry"
    ]


def disk_problems(free_bytes: int) -> list[str]:
    if free_bytes < MIN_FREE_DISK:
        return [
            f"only {free_bytes // 1048576} MiB free on disk; the images and data need about 5 GiB"
        ]
    return []


def python_problems(version: tuple[int, ...]) -> list[str]:
    if tuple(version[:2]) < MIN_PYTHON:
        found = ".".join(str(v) for v in version[:3])
        return [
            f"the lab needs Python 3.11 or newer (found {found}; set PYTHON=/path/to/python3.11)"
        ]
    return []


def port_problems(settings: Settings, names: Iterable[str], in_use) -> list[str]:
    """Ports already taken by something else (call only when the lab is not running);
    `in_use(port, host)`, each port checked on the address its service binds."""
    problems = []
    for name in names:
        port = settings.port(name)
        if in_use(port, settings.host_for(name)):
            problems.append(
                f"port {port} ({name}) is already in use: "
                f"stop what uses it or set {name}=<free port> in .env"
            )
    return problems


def gather_docker(runner: Runner) -> DockerFacts:
    if shutil.which("docker") is None:
        return DockerFacts(cli=False, engine=False)
    if not runner.ok(["docker", "info"]):
        return DockerFacts(cli=True, engine=False)
    r = runner.run(
        ["docker", "compose", "version", "--short"], check=False, capture=True, quiet=True
    )
    compose = r.stdout.strip() if r.returncode == 0 else ""
    r = runner.run(
        ["docker", "info", "--format", "{{.MemTotal}}"], check=False, capture=True, quiet=True
    )
    memory = int(r.stdout.strip()) if r.stdout.strip().isdigit() else 0
    r = runner.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        check=False,
        capture=True,
        quiet=True,
    )
    return DockerFacts(True, True, compose, memory, r.stdout.strip())


def free_disk(path: Path) -> int:
    return shutil.disk_usage(path).free


def docker_doctor(settings: Settings, runner: Runner, lab_running) -> tuple[list[str], str]:
    """Problems (empty when all is well) and a one-line summary of what was found."""
    facts = gather_docker(runner)
    problems = docker_problems(facts) + disk_problems(free_disk(settings.root))
    for warning in engine_warnings(facts.engine_version, sys.platform):
        log.warn(warning)
    if not problems and not lab_running():
        problems += port_problems(settings, PORT_VARS, processes.port_in_use)
    summary = f"docker {facts.engine_version}, compose {facts.compose_version}, ports free, disk ok"
    return problems, summary


def local_doctor(settings: Settings, running: Iterable[str]) -> tuple[list[str], str]:
    problems = python_problems(sys.version_info[:3]) + disk_problems(free_disk(settings.root))
    names = [n for n in LOCAL_PORT_VARS if n not in set(running)]
    problems += port_problems(settings, names, processes.port_in_use)
    ports = " ".join(str(settings.port(n)) for n in LOCAL_PORT_VARS)
    return problems, f"Python {sys.version.split()[0]}, ports {ports}, disk ok"
