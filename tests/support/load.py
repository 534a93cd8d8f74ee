"""Steady load on a model server, with every answer recorded: for the tests that change
something under a server (an alias move, a restart, a fault) and count what it cost."""

from __future__ import annotations

import threading
import time
from collections import Counter

import requests

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


class Load:
    """Clients posting /predict in a loop until stopped; every answer is recorded."""

    def __init__(self, url: str, clients: int = 2, timeout: float = 10):
        self.url = url
        self.clients = clients
        self.timeout = timeout  # seconds a client waits for each answer
        self.outcomes: list[tuple[float, str]] = []  # (time, "200" / "503" / "refused"...)
        self.versions: list[str] = []  # the model version of each answer, in order
        self.by_client: list[list[str]] = []  # the same, one list per client
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _run(self) -> None:
        seen: list[str] = []
        self.by_client.append(seen)
        with requests.Session() as s:
            while not self._stop.is_set():
                t = time.monotonic()
                try:
                    r = s.post(
                        f"{self.url}/predict", json={"instances": [IRIS_ROW]}, timeout=self.timeout
                    )
                    outcome = str(r.status_code)
                    if r.status_code == 200:
                        self.versions.append(r.json()["model_version"])
                        seen.append(r.json()["model_version"])
                    elif r.status_code == 503 and "not answering" in r.text:
                        # The production proxy with no server behind it: the docker-mode
                        # twin of a refused connection, not an answer from a server.
                        outcome = "server unreachable (proxy)"
                except requests.ConnectionError:
                    outcome = "connection refused"
                except requests.RequestException as exc:
                    outcome = type(exc).__name__
                self.outcomes.append((t, outcome))
                if outcome != "200":
                    time.sleep(0.05)  # do not spin on a server that is not there
                else:
                    time.sleep(0.005)

    def __enter__(self) -> Load:
        for _ in range(self.clients):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def sent(self) -> int:
        return len(self.outcomes)

    def failed(self) -> Counter:
        return Counter(o for _, o in self.outcomes if o != "200")

    def report(self, fault: str) -> str:
        return f"{fault}: {self.sent()} requests, failed {dict(self.failed()) or 0}"
