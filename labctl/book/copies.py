"""Run Python on a copy of a component's code: the copy is imported, not the lab's own.

The self-checks run the student's code (or a planted bug) from a temporary copy of a
component folder, with the lab's .venv python. That venv has the lab's own components
installed in editable mode: a .pth file puts training/, gatekeeper/, serving/ on
sys.path, after the standard library and site-packages. `python_argv` puts the copy's
folders first instead: right after sys.path[0] (the script's folder, or the current one
for -c and -m), before the standard library, so a package in the copy wins over the
installed one of the same name.

Only the process started this way sees the copy: its folders are not passed on in the
environment, so a process it starts in turn imports the installed packages.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# Run as `python -c BOOTSTRAP <folders> -c CODE args...` or `... -m MODULE args...`: puts
# the folders on sys.path, then runs the code as `python -c CODE args...` would (in
# __main__, sys.argv == ["-c", *args]), or the module as `python -m MODULE args...` would:
# sys.path[0] the current folder, and runpy._run_module_as_main, the function `-m` itself
# calls (runpy.run_module runs a module in a fresh namespace, not __main__'s). Its own
# names leave __main__ before the code runs.
BOOTSTRAP = """\
def _bootstrap():
    import os, runpy, sys
    del globals()["_bootstrap"]
    sys.path[1:1] = sys.argv.pop(1).split(os.pathsep)
    how, what = sys.argv.pop(1), sys.argv.pop(1)
    if how == "-c":
        return compile(what, "<string>", "exec")
    sys.path[0] = os.getcwd()
    sys.argv[0] = "-m"  # as while -m looks for the module
    runpy._run_module_as_main(what)
    return ""
exec(_bootstrap())
"""


def python_argv(python: str | Path, first: Iterable[str | Path], *args: str) -> list[str]:
    """The command running `python *args` (`-c CODE ...` or `-m MODULE ...`) with the
    folders `first` ahead of the installed packages on sys.path."""
    folders = [str(f) for f in first]
    if len(args) < 2 or args[0] not in ("-c", "-m"):
        raise ValueError(f"expected -c CODE or -m MODULE, then arguments: {args!r}")
    if not folders or any(os.pathsep in f for f in folders):
        raise ValueError(f"folders must be given, none holding {os.pathsep!r}: {folders!r}")
    return [str(python), "-c", BOOTSTRAP, os.pathsep.join(folders), *args]
