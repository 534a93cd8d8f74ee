import re
from pathlib import Path

import pytest

from labctl.images import default_python_image

COMPOSE = Path(__file__).resolve().parents[2] / "compose" / "compose.yaml"
# Built at run time: a literal pinned python digest here would be a second copy of the
# default, which tests/test_defaults.py forbids outside compose/compose.yaml.
DIGEST = "sha256:" + "0" * 64


def test_reads_the_default_of_the_real_compose_file():
    image = default_python_image(COMPOSE.read_text(encoding="utf-8"))
    # Pinned by digest, so that every build starts from the same bytes.
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+@sha256:[0-9a-f]{64}", image), image


def test_reads_the_default_among_other_variables():
    text = (
        "x-build: &build\n"
        "  args:\n"
        f"    PYTHON_IMAGE: ${{PYTHON_IMAGE:-example/python:9.9-slim@{DIGEST}}}\n"
        "services:\n"
        "  db:\n"
        "    image: ${POSTGRES_IMAGE:-postgres:15}\n"
    )
    assert default_python_image(text) == f"example/python:9.9-slim@{DIGEST}"


def test_the_same_default_twice_is_one_default():
    text = "a: ${PYTHON_IMAGE:-img:1}\nb: ${PYTHON_IMAGE:-img:1}\n"
    assert default_python_image(text) == "img:1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("args:\n  PYTHON_IMAGE: ${PYTHON_IMAGE}\n", "no"),
        ("args:\n  PYTHON_IMAGE: ${PYTHON_IMAGE:?set it}\n", "no"),
        ("image: ${OTHER_PYTHON_IMAGE:-img:1}\n", "no"),
        ("a: ${PYTHON_IMAGE:-img:1}\nb: ${PYTHON_IMAGE:-img:2}\n", "several"),
    ],
)
def test_no_default_or_two_defaults_is_an_error(text, message):
    with pytest.raises(ValueError, match=message):
        default_python_image(text)


def test_an_image_size_comes_from_the_engine_or_is_none(tmp_path, monkeypatch):
    from labctl.images import local_size

    docker = tmp_path / "docker"
    docker.write_text('#!/bin/sh\n[ "$5" = "here:1" ] && echo 1234 && exit 0\nexit 1\n')
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert local_size("here:1") == 1234
    assert local_size("gone:1") is None
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert local_size("here:1") is None
