"""labctl.book.copies: Python run on a copy of a package imports the copy, and otherwise
runs `-c` code and `-m` modules exactly as a plain `python -c` / `python -m` does.

Real subprocesses of the venv's python, whose editable installs of the lab's components
are what the copy has to win over.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.book.copies import python_argv

# What a process sees of itself; run as `-c` code, and as the module `probe` for `-m`.
PROBE = """
import json, sys
print(json.dumps({
    "path": sys.path,
    "argv": sys.argv,
    "name": __name__,
    "names": sorted(globals()),
    "main": sorted(vars(sys.modules["__main__"])),
}))
raise SystemExit(3)
"""


def run(argv: list[str], cwd: Path) -> dict:
    r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 3, r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def work(tmp_path) -> Path:
    (tmp_path / "probe.py").write_text(PROBE)
    return tmp_path


@pytest.mark.parametrize("how", ["-c", "-m"])
def test_a_run_is_the_plain_one_with_the_folders_right_after_sys_path_0(work, how):
    """Where the interpreter's search-path variable would put them: after the script's (or
    the current) folder, before the standard library and site-packages."""
    what = PROBE if how == "-c" else "probe"
    first = [str(work / "one"), str(work / "two")]
    plain = run([sys.executable, how, what, "a", "-q"], work)
    mine = run(python_argv(sys.executable, first, how, what, "a", "-q"), work)
    assert mine["path"] == [plain["path"][0], *first, *plain["path"][1:]]
    assert plain["path"][0] == ("" if how == "-c" else str(work))
    del plain["path"], mine["path"]
    # argv, __name__, the code's globals and __main__: as in a plain run.
    assert mine == plain


def test_a_package_in_the_copy_wins_over_the_installed_one(tmp_path):
    import gatekeeper  # installed in editable mode: the lab's own folder, through a .pth

    copy = tmp_path / "copy" / "gatekeeper"
    (copy / "gatekeeper").mkdir(parents=True)
    (copy / "gatekeeper" / "__init__.py").write_text("")
    code = "import gatekeeper; print(gatekeeper.__file__); import gatekeeper.decide"

    def imported(argv: list[str]) -> tuple[Path, str]:
        r = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)
        return Path(r.stdout.splitlines()[0]).resolve(), r.stderr

    plain, _ = imported([sys.executable, "-c", code])
    assert plain == Path(gatekeeper.__file__).resolve()
    mine, error = imported(python_argv(sys.executable, [copy], "-c", code))
    assert mine == (copy / "gatekeeper" / "__init__.py").resolve()
    # Its modules come from the copy too: none falls through to the installed package.
    assert "No module named 'gatekeeper.decide'" in error


def test_only_code_or_a_module_with_folders_is_accepted():
    with pytest.raises(ValueError, match="-c CODE or -m MODULE"):
        python_argv("python", ["/x"], "script.py")
    with pytest.raises(ValueError, match="folders must be given"):
        python_argv("python", [], "-c", "pass")
