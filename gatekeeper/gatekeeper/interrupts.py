"""Stop signals during a move: SIGTERM and SIGHUP end it the way Ctrl-C does.

A promotion moves the serving image tag, then the alias, and puts the tag back when the
alias does not follow (lifecycle._move). Ctrl-C arrives as KeyboardInterrupt, so the code
that puts the tag back runs. SIGTERM (`docker stop`, `docker compose run` passing a stop
on, `timeout`, CI runners cancelling a job) and SIGHUP (a closed terminal) have no Python
handler: the process would die at once, between the two moves; and as a container's first
process it would not even notice them (the kernel drops a signal that process has no
handler for) until the SIGKILL that follows, wherever that lands.

While a `StopSignals` block runs, each of them raises `Stopped` where the code is, so that
the same undo runs as for Ctrl-C, at once rather than after the move finishes: a sender
that escalates to SIGKILL after a few seconds finds the move undone, not half done. Only
the first signal raises: once the undo has begun (`held`), later ones wait for it and are
raised when the block ends. The process then exits 128 + the signal's number, as a shell
reports a process a signal ended (143 for SIGTERM, 129 for SIGHUP).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

# The signals that ask a command to stop; SIGHUP does not exist on Windows.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Stopped(BaseException):
    """A stop signal ended the command. A BaseException, like KeyboardInterrupt: no
    `except Exception` that tolerates a failed step takes it for one."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _interrupt(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Stopped(signum)


class StopSignals:
    """While the block runs, SIGINT raises KeyboardInterrupt and SIGTERM and SIGHUP raise
    Stopped, once. After the first, or once `held` is set (the undo has begun), later
    ones wait; the first of those is raised when the block ends, unless a stop is already
    on its way out. The handlers in place before are put back when it ends. A signal that
    is ignored (`nohup`, or a parent that ignores it) stays ignored. Outside the main
    thread, which alone receives Python's signal handlers, it changes nothing."""

    def __init__(self) -> None:
        self.held = False
        self.pending: int | None = None
        self._previous: dict[int, Callable | int] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.held:
            if self.pending is None:
                self.pending = signum
            return
        self.held = True
        raise _interrupt(signum)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in STOP_SIGNALS:
            current = signal.getsignal(signum)
            if current is signal.SIG_IGN or current is None:  # None: set outside Python
                continue
            self._previous[signum] = current
            signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        pending, self.pending = self.pending, None
        if pending is not None and not isinstance(exc, (Stopped, KeyboardInterrupt)):
            # A signal that came during the undo of an ordinary failure: it still stops
            # the command (an `except Exception` further up must not carry on past it).
            raise _interrupt(pending) from exc
