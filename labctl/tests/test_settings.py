from __future__ import annotations

import os
import stat

import pytest

from labctl.errors import LabError
from labctl.settings import ensure_env, is_setting, parse_dotenv, resolve_mode


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("A=1", "1"),
        ("A = 1", "1"),
        ("export A=1", "1"),
        ("A=1\r", "1"),
        ("A=one two  ", "one two"),
        ("A=1 # a comment", "1"),
        ("A=1#not-a-comment", "1#not-a-comment"),
        ('A="quoted # kept"', "quoted # kept"),
        ('A="a\\nb"', "a\nb"),
        ('A="say \\"hi\\""', 'say "hi"'),
        ("A='lit\\n # kept'", "lit\\n # kept"),
        ("A='x' # comment", "x"),
        ("A=", ""),
        ("A=x=y", "x=y"),
    ],
)
def test_dotenv_values_parse_like_compose(line, expected):
    assert parse_dotenv(line).values == {"A": expected}


def test_dotenv_skips_comments_blank_lines_and_reports_bad_lines():
    env = parse_dotenv("# comment\n\n  \nA=1\nnot a line\n1BAD=x\nB='open\nC=3\r\n")
    assert env.values == {"A": "1", "C": "3"}
    assert [p.split(":")[0] for p in env.problems] == ["line 5", "line 6", "line 7"]
    assert "no closing single quote" in env.problems[2]


def test_crlf_file_saved_on_windows_parses_the_same():
    text = "A=1\nB='two'\nexport C=\"3\"\n"
    assert parse_dotenv(text.replace("\n", "\r\n")).values == parse_dotenv(text).values


@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        ("MLFLOW_PORT", True),
        ("GATE_MIN_ACCURACY", True),
        ("POSTGRES_IMAGE", True),
        ("PYTHON_IMAGE", True),
        ("LABEL_NOISE", True),
        ("BASH_ENV", False),
        ("LD_PRELOAD", False),
        ("PYTHONPATH", False),
        ("DOCKER_HOST", False),
        ("COMPOSE_FILE", False),
        ("PATH", False),
    ],
)
def test_only_lab_settings_are_read_from_dotenv(key, allowed):
    assert is_setting(key) is allowed


def test_environment_beats_dotenv_beats_example(lab_root, settings_for):
    (lab_root / ".env").write_text("MLFLOW_PORT=6000\nSTAGING_PORT=7000\n")
    s = settings_for(MLFLOW_PORT="6500")
    assert s.get("MLFLOW_PORT") == "6500"  # environment
    assert s.get("STAGING_PORT") == "7000"  # .env
    assert s.get("PRODUCTION_PORT") == "8082"  # .env.example


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("BASH_ENV=.env", "line 2: BASH_ENV is not a lab setting"),
        ("LD_PRELOAD=/tmp/x.so", "line 2: LD_PRELOAD is not a lab setting"),
        ("DOCKER_HOST=tcp://evil:2375", "line 2: DOCKER_HOST is not a lab setting"),
        ("MLFLOW_TRACKING_URI=http://evil", "line 2: MLFLOW_TRACKING_URI is not a lab"),
        ("GATE_MIN_ACURACY=0.1", "line 2: GATE_MIN_ACURACY is not a lab setting"),  # a typo
        ('TRAIN_DATASET="iris\\nBASH_ENV=x"', "line 2: TRAIN_DATASET holds a control"),
        ("PYTHON_IMAGE=python:3.11 --privileged", "is not an image reference"),
        ("POSTGRES_IMAGE: evil/postgres", "line 2: not a KEY=value line"),  # Compose reads it
    ],
)
def test_a_dotenv_setting_more_than_lab_settings_is_refused(lab_root, settings_for, line, message):
    (lab_root / ".env").write_text(f"STAGING_PORT=7000\n{line}\n")
    with pytest.raises(LabError, match=message):
        settings_for()


def test_documented_and_commented_settings_are_accepted(lab_root, settings_for):
    (lab_root / ".env").write_text(
        "GATE_ACTOR=alice\nPYTHON_IMAGE=python:3.11-slim@sha256:abc\nSTATE_FILE=s.tgz\n"
    )
    s = settings_for()
    assert (s.get("GATE_ACTOR"), s.get("STATE_FILE")) == ("alice", "s.tgz")


def test_an_empty_environment_variable_means_the_labs_value(lab_root, settings_for):
    (lab_root / ".env").write_text("TRAIN_DATASET=wine\n")
    s = settings_for(TRAIN_DATASET="", GATE_MIN_ACCURACY="")
    assert s.get("TRAIN_DATASET") == "wine"
    assert s.get("GATE_MIN_ACCURACY") == "0.85"


def test_registry_address_follows_the_registry_port(settings_for):
    assert settings_for(REGISTRY_PORT="5200").get("LAB_REGISTRY") == "127.0.0.1:5200"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MLFLOW_PORT": "http"}, "MLFLOW_PORT must be a port number"),
        ({"STAGING_PORT": "70000"}, "STAGING_PORT must be a port number"),
        ({"S3_BACKEND": "rustfs"}, "S3_BACKEND must be minio or seaweedfs"),
    ],
)
def test_bad_settings_are_named(settings_for, environ, message):
    with pytest.raises(LabError, match=message):
        settings_for(**environ)


def test_client_host_is_loopback_when_the_lab_binds_everywhere(settings_for):
    assert settings_for(LAB_BIND="0.0.0.0").client_host == "127.0.0.1"
    assert settings_for(LAB_BIND="192.168.1.20").client_host == "192.168.1.20"


@pytest.mark.parametrize(
    ("lab_mode", "recorded", "docker", "expected"),
    [
        ("local", None, True, "local"),
        ("docker", None, True, "docker"),
        ("auto", None, True, "docker"),
        ("auto", None, False, "local"),
        ("auto", "local", True, "local"),  # keep talking to what `up` started
        ("auto", "docker", False, "docker"),
        ("auto", "garbage", False, "local"),
    ],
)
def test_mode_resolution(lab_root, settings_for, lab_mode, recorded, docker, expected):
    if recorded:
        (lab_root / ".lab").mkdir()
        (lab_root / ".lab" / "mode").write_text(recorded + "\n")
    assert resolve_mode(settings_for(LAB_MODE=lab_mode), lambda: docker) == expected


def test_docker_mode_without_an_engine_says_so(settings_for):
    with pytest.raises(LabError, match="no Docker engine answers"):
        resolve_mode(settings_for(LAB_MODE="docker"), lambda: False)


def test_an_unknown_mode_is_refused(settings_for):
    with pytest.raises(LabError, match="LAB_MODE must be auto, docker or local"):
        resolve_mode(settings_for(LAB_MODE="kubernetes"), lambda: True)


def test_first_run_generates_private_secrets_and_never_overwrites(lab_root, settings_for):
    s = settings_for(S3_BACKEND="seaweedfs")
    assert ensure_env(s).startswith("created .env")
    env = parse_dotenv((lab_root / ".env").read_text()).values
    assert len(env["POSTGRES_PASSWORD"]) == 40 and int(env["POSTGRES_PASSWORD"], 16) >= 0
    assert env["S3_ACCESS_KEY"].startswith("lab") and len(env["S3_SECRET_KEY"]) == 40
    assert env["S3_BACKEND"] == "seaweedfs"
    assert stat.S_IMODE(os.stat(lab_root / ".env").st_mode) == 0o600
    before = (lab_root / ".env").read_text()
    assert ensure_env(settings_for()) == ""
    assert (lab_root / ".env").read_text() == before


def test_two_labs_get_different_secrets(lab_root, tmp_path_factory, settings_for):
    ensure_env(settings_for())
    first = parse_dotenv((lab_root / ".env").read_text()).values["POSTGRES_PASSWORD"]
    (lab_root / ".env").unlink()
    ensure_env(settings_for())
    assert parse_dotenv((lab_root / ".env").read_text()).values["POSTGRES_PASSWORD"] != first


def test_a_byte_order_mark_from_a_windows_editor_is_ignored(lab_root, settings_for):
    (lab_root / ".env").write_bytes("\ufeffPOSTGRES_PASSWORD=secret\n".encode())
    s = settings_for()
    assert s.get("POSTGRES_PASSWORD") == "secret" and s.warnings == []


def test_git_sha_and_project_name_from_dotenv_are_honoured(lab_root):
    from labctl.settings import load

    (lab_root / ".env").write_text("GIT_SHA=pinned\nCOMPOSE_PROJECT_NAME=course\n")
    s = load(lab_root, {})
    assert s.get("GIT_SHA") == "pinned" and s.get("COMPOSE_PROJECT_NAME") == "course"


def test_each_uncommitted_edit_gets_its_own_image_tag(tmp_path):
    """A dirty tree's tag hashes the edits (untracked files too) under the image folders:
    a second edit never reuses the first edit's images."""
    import subprocess

    from labctl.settings import git_sha

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "x")
    (tmp_path / "serving").mkdir()
    clean = git_sha(tmp_path)
    assert "-dirty" not in clean
    (tmp_path / "README.md").write_text("notes")  # outside the image folders
    assert git_sha(tmp_path) == clean
    (tmp_path / "serving" / "app.py").write_text("one")  # untracked, in an image folder
    first = git_sha(tmp_path)
    (tmp_path / "serving" / "app.py").write_text("two")
    second = git_sha(tmp_path)
    assert first.startswith(f"{clean}-dirty-") and second.startswith(f"{clean}-dirty-")
    assert first != second
    (tmp_path / "serving" / "app.py").write_text("one")
    assert git_sha(tmp_path) == first  # the same edit, the same images
