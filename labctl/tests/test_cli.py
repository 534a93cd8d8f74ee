from __future__ import annotations

import pytest

from labctl import cli
from labctl.errors import LabError
from labctl.local import LocalBackend


def test_makefile_variables_are_the_options_defaults():
    p = cli.parser({"TO": "production", "ALIAS": "production", "SERVICE": "mlflow", "FORCE": "1"})
    assert p.parse_args(["promote"]).to == "production"
    assert p.parse_args(["smoke"]).alias == "production"
    assert p.parse_args(["logs"]).service == "mlflow"
    assert p.parse_args(["clean"]).force is True
    assert p.parse_args(["e2e"]).force is True
    assert cli.parser({}).parse_args(["promote"]).to == "staging"
    for value in ("0", "no", "false", ""):
        assert cli.parser({"FORCE": value}).parse_args(["clean"]).force is False


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["promote"], {"TO": "prod"}, "TO must be staging or production (got 'prod')"),
        (["smoke"], {"ALIAS": "canary"}, "ALIAS must be staging or production"),
        (["load"], {"LOAD_ALIAS": "prod"}, "LOAD_ALIAS must be staging or production"),
    ],
)
def test_an_unknown_alias_is_named_and_nothing_runs(capsys, lab_root, argv, environ, message):
    assert cli.main(argv, environ={"LAB_MODE": "local", **environ}, root=lab_root) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_verbs_are_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["deploy"], environ={})
    assert exc.value.code == 2
    assert "invalid choice: 'deploy'" in capsys.readouterr().err


def test_clean_outside_a_terminal_needs_force(monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(LabError, match="run it in a terminal or with FORCE=1"):
        cli.confirm_clean("docker")


@pytest.mark.parametrize(("answer", "go"), [("y", True), ("yes", True), ("", False), ("n", False)])
def test_clean_asks_first(monkeypatch, answer, go):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert cli.confirm_clean("local", ask=lambda _q: answer) is go


def test_e2e_outside_a_terminal_needs_force_and_runs_nothing(monkeypatch, capsys, lab_root):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    (lab_root / ".venv" / "bin").mkdir(parents=True)
    (lab_root / ".venv" / "bin" / "pytest").write_text("")
    assert cli.main(["e2e"], environ={"LAB_MODE": "local"}, root=lab_root) == 2
    err = capsys.readouterr().err
    assert "make e2e changes the local lab at http://127.0.0.1:" in err
    assert "FORCE=1" in err and "Traceback" not in err


@pytest.mark.parametrize(("answer", "go"), [("y", True), ("", False), ("no", False)])
def test_e2e_asks_first_in_a_terminal(monkeypatch, settings_for, answer, go):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    questions = []

    def ask(question):
        questions.append(question)
        return answer

    assert cli.confirm_e2e(settings_for(), "docker", ask=ask) is go
    assert "trains, promotes, rolls back and restarts it" in questions[0]


@pytest.mark.parametrize("verb", ["state_save", "state_restore"])
def test_state_files_are_docker_only(settings_for, fake, verb):
    with pytest.raises(LabError, match="works in docker mode only"):
        getattr(LocalBackend(settings_for(), fake), verb)()


def test_a_configuration_error_exits_2_with_one_line(capsys, lab_root):
    assert cli.main(["urls"], environ={"MLFLOW_PORT": "abc"}, root=lab_root) == 2
    err = capsys.readouterr().err
    assert "MLFLOW_PORT must be a port number" in err and "Traceback" not in err


def test_urls_in_local_mode_name_the_artifact_folder(capsys, lab_root):
    environ = {"LAB_MODE": "local", "STAGING_PORT": "18081"}
    assert cli.main(["urls"], environ=environ, root=lab_root) == 0
    out = capsys.readouterr().out
    assert ".lab/artifacts" in out and "http://127.0.0.1:18081/ " in out
    assert "Image registry" not in out


@pytest.mark.parametrize(("code", "expected"), [(1, 1), (2, 2), (137, 2)])
def test_a_jobs_exit_code_is_the_verbs(monkeypatch, lab_root, capsys, code, expected):
    """`make gate` must exit as the gate did: 1 stops the line, 2 is an error."""
    from labctl.tests.conftest import FakeRunner

    fake = FakeRunner().on("gatekeeper gate", code)
    monkeypatch.setattr(cli, "Runner", lambda root, env: fake)
    assert cli.main(["gate"], environ={"LAB_MODE": "local"}, root=lab_root) == expected
    assert "python -m gatekeeper gate` exited with" in capsys.readouterr().err


def test_a_file_the_lab_cannot_write_is_one_line_not_a_traceback(lab_root, capsys, monkeypatch):
    def refuse(*_a, **_k):
        raise PermissionError(13, "Permission denied", str(lab_root / "reports"))

    monkeypatch.setattr("pathlib.Path.mkdir", refuse)
    assert cli.main(["gate"], environ={"LAB_MODE": "local"}, root=lab_root) == 2
    err = capsys.readouterr().err
    assert "PermissionError" in err and "Permission denied" in err and "Traceback" not in err


def test_e2e_tests_run_make_at_the_commit_they_are_at(monkeypatch, lab_root):
    """A test that commits (an exercise's solution) and then trains must get a model tagged
    with its new commit: the GIT_SHA of `make e2e`'s own start is not handed down."""
    from labctl.tests.conftest import FakeRunner

    seen = {}

    class Recording(FakeRunner):
        def run(self, argv, *, env=None, **kwargs):
            seen.update({**self.env, **(env or {})})
            return super().run(argv, **kwargs)

    (lab_root / ".venv" / "bin").mkdir(parents=True)
    (lab_root / ".venv" / "bin" / "pytest").touch()
    monkeypatch.setattr(cli, "Runner", lambda root, env: Recording(env))
    assert cli.main(["e2e"], environ={"LAB_MODE": "local", "FORCE": "1"}, root=lab_root) == 0
    assert seen["LAB_ACTIVE_MODE"] == "local" and seen["GIT_SHA"] == ""
