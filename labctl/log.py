"""One-line messages on stderr, so stdout stays for what other programs read."""

from __future__ import annotations

import os
import sys


def _color(code: str, text: str) -> str:
    if sys.stderr.isatty() and not os.environ.get("NO_COLOR"):
        return f"\033[{code}m{text}\033[0m"
    return text


def info(message: str) -> None:
    print(f"{_color('1', '[lab]')} {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"{_color('33', '[lab] warning:')} {message}", file=sys.stderr, flush=True)


def error(message: str) -> None:
    print(f"{_color('31', '[lab] error:')} {message}", file=sys.stderr, flush=True)


def problem(message: str) -> None:
    print(f"  {_color('31', '✗')} {message}", file=sys.stderr, flush=True)


def good(message: str) -> None:
    print(f"  {_color('32', '✓')} {message}", file=sys.stderr, flush=True)
