"""The two ways a lab verb fails, and the exit codes they map to."""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


class LabError(Exception):
    """A problem the user can fix: printed as one line, exit code 2 unless told otherwise."""

    def __init__(self, message: str, code: int = EXIT_ERROR):
        super().__init__(message)
        self.code = code


class CommandFailed(Exception):
    """A command the lab ran exited non-zero; its exit code becomes the verb's.

    Jobs speak through exit codes (the gate's 1 stops the line, 2 is an error), so the
    code is passed on unchanged rather than folded into a generic failure.
    """

    def __init__(self, argv: list[str], returncode: int):
        super().__init__(f"`{describe(argv)}` exited with {returncode}")
        self.argv = argv
        self.returncode = returncode


# Options that only say where the lab is: left out when a command is named to the user.
_PLUMBING = {"--project-directory", "-f", "--file", "--profile", "-p", "--project-name"}


def describe(argv: list[str]) -> str:
    """A command as a user can recognise it: `docker compose run … gatekeeper gate`."""
    words: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        if word in _PLUMBING:
            skip = True
            continue
        words.append(word.rsplit("/", 1)[-1] if word.startswith("/") else word)
    return " ".join(words)
