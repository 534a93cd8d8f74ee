"""How the lab runs other programs: one object, so tests can replace it with a fake."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from labctl.errors import CommandFailed


@dataclass
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Runner:
    """Runs commands with the lab's environment; output goes to the terminal unless captured."""

    def __init__(self, cwd: Path, env: Mapping[str, str]):
        self.cwd = cwd
        self.env = dict(env)

    def run(
        self,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        capture: bool = False,
        input: bytes | None = None,
        stdin: IO[bytes] | None = None,
        stdout: IO[bytes] | None = None,
        quiet: bool = False,
    ) -> Result:
        """Run `argv`; with `check`, a non-zero exit raises CommandFailed with its code."""
        penv = {**self.env, **(env or {})}
        if capture:
            out, err = subprocess.PIPE, subprocess.PIPE
        else:
            out = stdout if stdout is not None else (subprocess.DEVNULL if quiet else None)
            err = subprocess.DEVNULL if quiet else None
        try:
            proc = subprocess.run(
                argv,
                cwd=self.cwd,
                env=penv,
                input=input,
                stdin=stdin if input is None else None,
                stdout=out,
                stderr=err,
                check=False,
            )
        except FileNotFoundError as exc:
            if check:
                raise CommandFailed(argv, 127) from exc
            return Result(127, "", str(exc))
        result = Result(
            proc.returncode,
            proc.stdout.decode(errors="replace") if capture and proc.stdout else "",
            proc.stderr.decode(errors="replace") if capture and proc.stderr else "",
        )
        if check and proc.returncode != 0:
            raise CommandFailed(argv, proc.returncode)
        return result

    def ok(self, argv: list[str], **kwargs) -> bool:
        """True when `argv` exits 0 (its output is discarded)."""
        return self.run(argv, check=False, quiet=True, **kwargs).returncode == 0
