"""How the lab runs other programs: one object, so tests can replace it with a fake."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from labctl import lock
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
        stdin: IO[bytes] | int | None = None,
        stdout: IO[bytes] | int | None = None,
        quiet: bool = False,
    ) -> Result:
        """Run `argv`; with `check`, a non-zero exit raises CommandFailed with its code.

        `capture` keeps stdout for the caller; stderr still reaches the terminal, so a
        failing command says why. `quiet` discards both.
        """
        penv = {**self.env, **(env or {})}
        out = subprocess.PIPE if capture else stdout
        if quiet and not capture:
            out = subprocess.DEVNULL
        err = subprocess.DEVNULL if quiet else None
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=penv,
                stdin=subprocess.PIPE if input is not None else stdin,
                stdout=out,
                stderr=err,
                pass_fds=lock.held(),  # a promotion's lock outlives make while its steps run
            )
        except FileNotFoundError as exc:
            if check:
                raise CommandFailed(argv, 127) from exc
            return Result(127, "", str(exc))
        try:
            output, _ = proc.communicate(input)
        except KeyboardInterrupt:
            # The child got the same Ctrl-C: let it clean up (compose removes its one-off
            # container) instead of killing it, then stop.
            proc.wait()
            raise
        result = Result(proc.returncode, output.decode(errors="replace") if output else "")
        if check and proc.returncode != 0:
            raise CommandFailed(argv, proc.returncode)
        return result

    def ok(self, argv: list[str], **kwargs) -> bool:
        """True when `argv` exits 0 (its output is discarded)."""
        return self.run(argv, check=False, quiet=True, **kwargs).returncode == 0
