"""One promotion or rollback at a time per lab.

Two `make promote` or `make rollback` at once (two terminals, a script and a person)
could interleave their image retag, alias move, server roll and smoke test. The second
one is refused at once with who holds the lock, and nothing moves. The lock is an
advisory `flock` on a file in the lab's folder: the kernel releases it when its holder
exits, however it exits, so a killed command never leaves the lab locked.

The commands run while it is held (the gatekeeper, `docker compose run`) inherit it
(labctl.runner passes `held()` on): if make itself is killed while the gatekeeper moves
an alias, the lock stays held until the gatekeeper has finished too, so no second
promotion can start in the middle of the first one's move.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from labctl.errors import EXIT_FAILED, LabError

try:
    import fcntl
except ImportError:  # native Windows: the lab runs under WSL2, where fcntl exists
    fcntl = None  # type: ignore[assignment]


_held: set[int] = set()


def held() -> tuple[int, ...]:
    """The descriptors of the locks this process holds, for its children to inherit."""
    return tuple(sorted(_held))


@contextlib.contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold the lab's promotion lock for the duration, or refuse (exit 1) if it is held."""
    if fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another command"
            raise LabError(
                f"{holder} is running in this lab: one promotion or rollback at a time; "
                f"wait for it to finish, then run {what} again (nothing moved)",
                code=EXIT_FAILED,
            ) from None
        os.ftruncate(fd, 0)
        stamp = time.strftime("%H:%M:%S")
        os.pwrite(fd, f"{what} (PID {os.getpid()}, since {stamp})\n".encode(), 0)
        _held.add(fd)
        yield
    finally:
        _held.discard(fd)
        os.close(fd)  # closing the last descriptor (children's included) releases the lock
