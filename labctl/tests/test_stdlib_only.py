"""labctl must run with a bare Python 3.11: `make up` works before any venv exists."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import labctl
from labctl.settings import ROOT


def test_every_module_imports_without_site_packages():
    modules = [
        f"labctl.{m.name}" for m in pkgutil.iter_modules(labctl.__path__) if m.name != "__main__"
    ]
    assert "labctl.cli" in modules and "labctl.docker" in modules
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)"
    # -S: no site-packages, -s: no user site, -E: no PYTHON* variables, so only the stdlib is there.
    r = subprocess.run(
        [sys.executable, "-E", "-s", "-S", "-c", code, *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr


def test_the_cli_answers_without_a_venv():
    r = subprocess.run(
        [sys.executable, "-E", "-s", "-S", "-m", "labctl", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0 and "state-restore" in r.stdout, r.stderr
