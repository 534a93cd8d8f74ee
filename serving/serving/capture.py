"""What the server was asked, and what it answered: a bounded sample for the drift check.

Each served `/predict` request (or a random share of them, SERVING_CAPTURE_SAMPLE) appends
one JSON line to a file of this process in SERVING_CAPTURE_DIR:

    {"t": 1764150000.12, "alias": "production", "version": "3", "run": "<run id>",
     "features": ["sepal length (cm)", ...], "rows": [[5.1, 3.5, 1.4, 0.2]], "predictions": [0]}

The run id tells two models apart that carry the same version number (a lab restored from
a saved state numbers its versions again). Requests with the header `X-Lab-Capture: off`
are not recorded: the lab's own load and smoke tests send made-up rows that would pollute
the window.

A request of more than ROWS_PER_REQUEST rows contributes that many, drawn at random
(`"of"` says how many it had): encoding floats as JSON costs about 1 µs each, so a large
batch recorded whole would slow its own request by a quarter, and a uniform subset of each
batch keeps the window's distribution.

Each process writes its own file (`<alias>-<host>-<pid>-<n>.jsonl`), so gunicorn workers and
the production colours never interleave lines. The folder is bounded: a file is closed once
it holds a quarter of SERVING_CAPTURE_MAX_MB, and the oldest files of the alias are deleted
until the rest fit, open ones too (a process whose file was deleted starts a new one within
a second). Capture never fails a request: a write error is logged once and the request is
answered as usual.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("serving.capture")

FILES_PER_BUDGET = 4  # a file closes at a quarter of the budget: at most ~4 kept per alias
ROWS_PER_REQUEST = 8  # at most this many rows of one request are recorded


class Capture:
    def __init__(
        self,
        directory: str | os.PathLike,
        alias: str,
        *,
        sample: float = 1.0,
        max_bytes: int = 20_000_000,
        clock=time.time,
        draw=random.random,
        pick=random.sample,
    ) -> None:
        self.directory = Path(directory)
        self.alias = alias
        self.sample = sample
        self.max_bytes = max_bytes
        self._clock = clock
        self._draw = draw
        self._pick = pick
        self._file = None
        self._pid = 0
        self._written = 0
        self._serial = 0
        self._failed_at = 0.0
        self._checked_at = 0.0

    def record(
        self, version: str, features, rows: np.ndarray, predictions: list, run_id: str = ""
    ) -> None:
        """Append one request's rows and predictions (a sampled share of requests)."""
        if self.sample < 1.0 and self._draw() >= self.sample:
            return
        now = self._clock()
        if self._failed_at and now - self._failed_at < 60:
            return  # the folder failed a moment ago: do not retry on every request
        record = {"t": round(now, 3), "alias": self.alias, "version": version}
        if run_id:
            record["run"] = run_id
        record["features"] = list(features)
        if len(rows) > ROWS_PER_REQUEST:
            kept = sorted(self._pick(range(len(rows)), ROWS_PER_REQUEST))
            record["of"] = len(rows)
            rows, predictions = rows[kept], [predictions[i] for i in kept]
        record["rows"] = rows.tolist()
        record["predictions"] = list(predictions)
        line = json.dumps(record, separators=(",", ":"))
        try:
            f = self._open()
            f.write(line + "\n")
            f.flush()  # the drift check reads the files while the server runs
            self._written += len(line) + 1
            if self._written >= self.max_bytes // FILES_PER_BUDGET:
                self._rotate()
            elif now - self._checked_at >= 1.0:  # another process pruned it: start anew
                self._checked_at = now
                if os.fstat(f.fileno()).st_nlink == 0:
                    self._close()
        except (OSError, ValueError) as exc:
            if not self._failed_at:
                log.warning("capture to %s stopped: %s (requests are served as usual)", self, exc)
            self._failed_at = now
            self._close()
        else:
            if self._failed_at:
                log.info("capture to %s resumed", self)
                self._failed_at = 0.0

    def close(self) -> None:
        self._close()

    def __str__(self) -> str:
        return str(self.directory)

    def _open(self):
        pid = os.getpid()
        if self._file is None or self._pid != pid:  # first use, or a forked worker
            self._close()  # a forked worker's copy of the parent's file (nothing buffered)
            self._pid = pid
            self._serial += 1
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"{self.alias}-{socket.gethostname()}-{pid}-{self._serial}.jsonl"
            self._file = open(self.directory / name, "a", encoding="utf-8")  # noqa: SIM115
            self._written = 0
        return self._file

    def _close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _rotate(self) -> None:
        self._close()
        prune(self.directory, self.alias, self.max_bytes)


def prune(directory: Path, alias: str, max_bytes: int) -> list[Path]:
    """Delete the alias's oldest capture files until the rest hold at most `max_bytes`."""
    files = []
    for path in directory.glob(f"{alias}-*.jsonl"):
        try:
            st = path.stat()
        except FileNotFoundError:  # another process pruned it first
            continue
        files.append((st.st_mtime, st.st_size, path))
    files.sort()
    total = sum(size for _, size, _ in files)
    removed = []
    for _, size, path in files:
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
        removed.append(path)
    return removed
