"""Fixtures for labctl's unit tests: a lab folder in tmp_path and a fake command runner."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from labctl.errors import CommandFailed
from labctl.runner import Result
from labctl.settings import ROOT, load


class FakeRunner:
    """Records every command; answers from rules `(predicate, Result)`, else exit 0.

    A rule's predicate sees the argv joined with spaces, so tests match on words.
    """

    def __init__(self, env=None):
        self.env = dict(env or {})
        self.calls: list[list[str]] = []
        self.rules: list[tuple[Callable[[str], bool], Result]] = []

    def on(self, words: str, returncode: int = 0, stdout: str = "") -> FakeRunner:
        self.rules.insert(0, (lambda cmd: words in cmd, Result(returncode, stdout, "")))
        return self

    def run(self, argv, *, check=True, capture=False, **_kwargs) -> Result:
        self.calls.append(list(argv))
        cmd = " ".join(argv)
        result = next((r for match, r in self.rules if match(cmd)), Result(0))
        if check and result.returncode != 0:
            raise CommandFailed(list(argv), result.returncode)
        return result

    def ok(self, argv, **kwargs) -> bool:
        return self.run(argv, check=False, **kwargs).returncode == 0

    def ran(self, words: str) -> bool:
        return any(words in " ".join(c) for c in self.calls)


@pytest.fixture
def lab_root(tmp_path) -> Path:
    """A lab folder with the real .env.example and compose file, and no .env yet."""
    shutil.copy(ROOT / ".env.example", tmp_path / ".env.example")
    (tmp_path / "compose").mkdir()
    shutil.copy(ROOT / "compose" / "compose.yaml", tmp_path / "compose" / "compose.yaml")
    return tmp_path


@pytest.fixture
def settings_for(lab_root):
    def _load(**environ: str):
        return load(lab_root, environ, sha="abc123")

    return _load


@pytest.fixture
def fake() -> FakeRunner:
    return FakeRunner()


@pytest.fixture(autouse=True)
def no_lab_answers(monkeypatch):
    """Unit tests reach no lab: a lab running on this machine's default ports must not
    answer for the fakes (labctl reads MLflow's REST API through Lab.http)."""
    from labctl.book import view

    def unanswered(self, url, **_kwargs):
        raise view.Unanswered(f"{url} does not answer (unit tests reach no lab)")

    monkeypatch.setattr(view.Lab, "http", unanswered)
