from __future__ import annotations

import pytest

from labctl.doctor import (
    MIN_DOCKER_MEMORY,
    MIN_FREE_DISK,
    DockerFacts,
    disk_problems,
    docker_problems,
    parse_version,
    port_problems,
    python_problems,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2.26.1", (2, 26, 1)), ("v2.20.0", (2, 20, 0)), ("2.29.1-desktop.1", (2, 29, 1)), ("", ())],
)
def test_parse_version(text, expected):
    assert parse_version(text) == expected


def facts(**kw) -> DockerFacts:
    base = {"cli": True, "engine": True, "compose_version": "2.26.1", "memory": 8 << 30}
    return DockerFacts(**{**base, **kw})


def test_a_healthy_docker_has_no_problems():
    assert docker_problems(facts()) == []


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"cli": False, "engine": False}, "docker CLI is not installed"),
        ({"engine": False}, "no Docker engine answers"),
        ({"compose_version": ""}, "Docker Compose v2 is missing"),
        ({"compose_version": "2.19.9"}, "Docker Compose 2.19.9 is too old: 2.20 or newer"),
        ({"compose_version": "1.29.2"}, "Docker Compose 1.29.2 is too old"),
        ({"memory": MIN_DOCKER_MEMORY - 1}, "give it at least 4 GiB"),
    ],
)
def test_each_docker_problem_is_named(kw, needle):
    problems = docker_problems(facts(**kw))
    assert len(problems) == 1 and needle in problems[0]


@pytest.mark.parametrize(
    ("kw", "ok"),
    [
        ({"compose_version": "2.20.0"}, True),
        ({"memory": MIN_DOCKER_MEMORY}, True),
        ({"memory": 0}, True),  # unknown memory is not a problem
    ],
)
def test_docker_thresholds_at_their_boundary(kw, ok):
    assert (docker_problems(facts(**kw)) == []) is ok


def test_disk_threshold():
    assert disk_problems(MIN_FREE_DISK) == []
    assert "MiB free on disk" in disk_problems(MIN_FREE_DISK - 1)[0]


def test_python_threshold():
    assert python_problems((3, 11, 0)) == []
    assert "Python 3.11 or newer (found 3.10.12" in python_problems((3, 10, 12))[0]


def test_a_taken_port_names_its_variable(settings_for):
    s = settings_for(MLFLOW_PORT="5050", STAGING_PORT="8081")
    problems = port_problems(s, ["MLFLOW_PORT", "STAGING_PORT"], lambda p, host: p == 8081)
    assert problems == [
        "port 8081 (STAGING_PORT) is already in use: stop what uses it or set "
        "STAGING_PORT=<free port> in .env"
    ]


def test_a_failed_command_is_named_without_the_plumbing():
    from labctl.errors import describe

    argv = [
        "docker",
        "compose",
        "--project-directory",
        "/x",
        "-f",
        "/x/compose/compose.yaml",
        "--project-name",
        "lab",
        "--profile",
        "minio",
        "--profile",
        "jobs",
        "run",
        "--rm",
        "gatekeeper",
        "gate",
    ]
    assert describe(argv) == "docker compose run --rm gatekeeper gate"
    assert describe(["/work/.venv/bin/python", "-m", "trainer"]) == "python -m trainer"


@pytest.mark.parametrize(
    ("version", "platform", "warned"),
    [
        ("20.10.24+dfsg1", "linux", True),
        ("27.5.1", "linux", True),
        ("28.0.0", "linux", False),
        ("29.1.3", "linux", False),
        ("27.5.1", "darwin", False),  # Docker Desktop: the engine's ports go through its VM
        ("", "linux", False),  # unknown: no claim
    ],
)
def test_old_linux_engines_are_warned_about_loopback(version, platform, warned):
    from labctl.doctor import engine_warnings

    found = engine_warnings(version, platform)
    assert bool(found) is warned
    if warned:
        assert "moby/moby#45610" in found[0] and version in found[0]
