"""Classroom mode (LAB_AUTH): when it is on, what it adds to `.env`, compose and the jobs."""

from __future__ import annotations

import stat
import subprocess
import sys
import warnings

import pytest

from labctl import accounts
from labctl.docker import DockerBackend
from labctl.errors import LabError
from labctl.settings import SECRET_KEYS, ensure_env, parse_dotenv, resolve_auth


@pytest.mark.parametrize(
    ("value", "bind", "on"),
    [
        ("", "127.0.0.1", False),
        ("auto", "127.0.0.2", False),
        ("", "::1", False),
        ("", "localhost", False),
        ("", "0.0.0.0", True),
        ("", "192.168.1.20", True),
        ("", "::", True),
        ("1", "127.0.0.1", True),
        ("yes", "127.0.0.1", True),
        ("0", "0.0.0.0", False),
    ],
)
def test_logins_are_on_whenever_the_lab_listens_beyond_loopback(value, bind, on):
    assert resolve_auth(value, bind) is on


def test_an_unknown_lab_auth_value_is_refused(settings_for):
    with pytest.raises(LabError, match="LAB_AUTH must be 1, 0 or auto"):
        settings_for(LAB_AUTH="maybe")


def test_a_network_bind_turns_logins_on_and_the_jobs_sign_in_as_admin(settings_for):
    s = settings_for(LAB_BIND="0.0.0.0", MLFLOW_ADMIN_PASSWORD="pw-admin")
    assert s.auth and s.get("LAB_AUTH") == "1"
    assert s.get("MLFLOW_TRACKING_USERNAME") == "admin"
    assert s.get("MLFLOW_TRACKING_PASSWORD") == "pw-admin"


def test_logins_off_on_loopback_send_no_credentials(settings_for):
    s = settings_for(MLFLOW_ADMIN_PASSWORD="pw-admin")
    assert not s.auth and s.get("LAB_AUTH") == "0"
    assert "MLFLOW_TRACKING_USERNAME" not in s.env


def test_without_logins_only_the_model_servers_leave_loopback(settings_for, fake):
    s = settings_for(LAB_BIND="0.0.0.0", LAB_AUTH="0")
    assert any("only the model servers are reachable" in w for w in s.warnings)
    assert s.get("LAB_ADMIN_BIND") == "127.0.0.1" and s.admin_host == "127.0.0.1"
    assert s.host_for("PRODUCTION_PORT") == "127.0.0.1"  # 0.0.0.0 is reached at loopback


@pytest.mark.parametrize(
    ("environ", "admin"),
    [
        ({"LAB_BIND": "0.0.0.0"}, "0.0.0.0"),  # logins on by themselves
        ({"LAB_BIND": "192.168.1.20", "LAB_AUTH": "0"}, "127.0.0.1"),
        ({"LAB_BIND": "127.0.0.2"}, "127.0.0.2"),
        ({}, "127.0.0.1"),
    ],
)
def test_mlflow_the_registry_and_s3_follow_lab_bind_only_with_logins(settings_for, environ, admin):
    assert settings_for(**environ).get("LAB_ADMIN_BIND") == admin


def test_lab_admin_bind_in_env_cannot_open_the_tools(lab_root, settings_for):
    (lab_root / ".env").write_text("LAB_BIND=0.0.0.0\nLAB_AUTH=0\nLAB_ADMIN_BIND=0.0.0.0\n")
    with pytest.raises(LabError, match="line 3: LAB_ADMIN_BIND is not a lab setting"):
        settings_for()
    (lab_root / ".env").unlink()
    forced = settings_for(LAB_BIND="0.0.0.0", LAB_AUTH="0", LAB_ADMIN_BIND="0.0.0.0")
    assert forced.get("LAB_ADMIN_BIND") == "127.0.0.1"


def test_an_older_env_gains_the_new_secrets_and_keeps_every_line(lab_root, settings_for):
    old = "POSTGRES_PASSWORD=keep-me\nS3_ACCESS_KEY=labkey\nS3_SECRET_KEY=keep-too"  # no \n
    (lab_root / ".env").write_text(old)
    message = ensure_env(settings_for())
    assert "MLFLOW_ADMIN_PASSWORD" in message and "REGISTRY_PASSWORD" in message
    text = (lab_root / ".env").read_text()
    assert text.startswith(old + "\n")
    values = parse_dotenv(text).values
    assert values["POSTGRES_PASSWORD"] == "keep-me" and values["S3_SECRET_KEY"] == "keep-too"
    assert all(len(values[k]) >= 20 for k in SECRET_KEYS if k.startswith(("MLFLOW", "REG")))
    loaded = settings_for()
    assert all(loaded.get(key) == values[key] for key in SECRET_KEYS), "a secret is not read"
    assert ensure_env(loaded) == ""  # nothing missing any more: nothing appended
    assert (lab_root / ".env").read_text() == text


def test_compose_adds_the_classroom_file_only_with_logins(settings_for, fake):
    plain = DockerBackend(settings_for(), fake).compose("ps")
    classroom = DockerBackend(settings_for(LAB_AUTH="1"), fake).compose("ps")
    assert not any(a.endswith("classroom.yaml") for a in plain)
    assert plain[2:4] == ["--env-file", "/dev/null"]  # Compose never reads .env itself
    assert any(a.endswith("compose/classroom.yaml") for a in classroom)


def test_the_registry_starts_behind_its_htpasswd_and_docker_logs_in(settings_for, fake):
    s = settings_for(LAB_AUTH="1", REGISTRY_PASSWORD="reg-pw", PYTHON_IMAGE="py:test")
    fake.on("--entrypoint python py:test", stdout="lab:$2b$12$abcdefghijklmnopqrstuv\n")
    DockerBackend(s, fake).start_registry()
    assert (s.lab_dir / "registry-auth" / "htpasswd").read_text().startswith("lab:$2b$")
    stamp = s.lab_dir / "registry-auth" / "password.sha256"
    assert stat.S_IMODE(stamp.stat().st_mode) == 0o600  # a fast hash: for the owner only
    assert fake.ran("up -d --wait --force-recreate registry")
    assert fake.ran("docker login --username lab --password-stdin 127.0.0.1:5100")
    fake.calls.clear()
    DockerBackend(s, fake).start_registry()  # same password: no new hash, no recreate
    assert not fake.ran("--entrypoint python") and not fake.ran("--force-recreate")


def test_a_new_registry_password_makes_a_new_hash(settings_for, fake):
    fake.on("--entrypoint python", stdout="lab:$2b$12$x\n")
    accounts.write_htpasswd(settings_for(REGISTRY_PASSWORD="one"), fake, "py")
    assert accounts.write_htpasswd(settings_for(REGISTRY_PASSWORD="two"), fake, "py") is True


def test_a_hash_that_is_not_bcrypt_is_refused(settings_for, fake):
    fake.on("--entrypoint python", stdout="lab:abc\n")
    with pytest.raises(LabError, match="bcrypt"):
        accounts.write_htpasswd(settings_for(REGISTRY_PASSWORD="pw"), fake, "py")
    assert not (settings_for().lab_dir / "registry-auth" / "htpasswd").exists()


def test_the_htpasswd_script_makes_a_bcrypt_hash_of_the_password():
    """The script the base image runs, run here with this Python's crypt (Debian's libcrypt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    if crypt.METHOD_BLOWFISH not in crypt.methods:
        pytest.skip("this libcrypt has no bcrypt")
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", accounts.HTPASSWD_SCRIPT],
        input="lab\npass word\n$x",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    user, hashed = out.split(":", 1)
    assert user == "lab" and hashed.startswith("$2b$")
    assert crypt.crypt("pass word\n$x", hashed) == hashed
    assert crypt.crypt("pass word", hashed) != hashed


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("", "", "which user"),
        ("Alice", "", "lowercase letters"),
        ("a", "", "2 to 32"),
        ("admin", "", "belongs to the lab"),
        ("lab-reader", "", "belongs to the lab"),
        ("alice", "short", "at least 8 characters"),
    ],
)
def test_make_user_refuses_bad_names_before_calling_mlflow(settings_for, name, password, message):
    from labctl.cli import add_user

    with pytest.raises(LabError, match=message):
        add_user(settings_for(LAB_AUTH="1", MLFLOW_PORT="9"), name, password)


def test_make_user_without_logins_says_how_to_turn_them_on(settings_for):
    with pytest.raises(LabError, match="needs classroom mode"):
        accounts.add_user(settings_for(), "alice")


def test_make_user_when_mlflow_is_down_says_so(settings_for):
    s = settings_for(LAB_AUTH="1", MLFLOW_PORT="9")
    with pytest.raises(LabError, match="MLflow does not answer"):
        accounts.add_user(s, "alice")


def test_a_wrong_admin_password_is_explained(settings_for, monkeypatch):
    s = settings_for(LAB_AUTH="1")
    monkeypatch.setattr(accounts.MlflowAdmin, "call", lambda *a, **k: (401, {}))
    with pytest.raises(LabError, match="MLflow keeps the first one"):
        accounts.add_user(s, "alice")


def test_local_mode_starts_mlflow_with_its_basic_auth_app(settings_for, fake, monkeypatch):
    from labctl.local import LocalBackend

    s = settings_for(LAB_AUTH="1", MLFLOW_ADMIN_PASSWORD="pw", MLFLOW_SECRET_KEY="key")
    b = LocalBackend(s, fake)
    started = {}
    monkeypatch.setattr(b, "start", lambda name, argv, env=None: started.update(argv=argv, env=env))
    monkeypatch.setattr(b, "wait_http", lambda *a, **k: None)
    monkeypatch.setattr(accounts, "ensure_reader", lambda settings: started.update(reader=True))
    b.start_tracking()
    assert started["argv"][-2:] == ["--app-name", "basic-auth"]
    assert started["env"]["MLFLOW_AUTH_ADMIN_PASSWORD"] == "pw"
    ini = (s.lab_dir / "mlflow-auth.ini").read_text()
    assert "default_permission = READ" in ini and "mlflow-auth.db" in ini
    assert started["reader"]
