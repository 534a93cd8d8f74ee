"""The production hold (compose/proxy/hold.py): real sockets, a server that is not there
yet, and one that comes up while a request waits."""

from __future__ import annotations

import asyncio
import http.server
import importlib.util
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

HOLD_PY = Path(__file__).resolve().parents[1] / "compose" / "proxy" / "hold.py"
spec = importlib.util.spec_from_file_location("hold", HOLD_PY)
hold = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hold)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers with the size and the last bytes of what was posted."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        out = f'{{"got": {len(body)}, "tail": "{body[-8:].decode()}"}}'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def start_server(port: int) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def running_hold():
    """A hold on a free port, forwarding to `target` (a free port nothing listens on yet)."""
    target = free_port()
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()

    async def main():
        server = await asyncio.start_server(
            hold.handler(hold_seconds=3, where=lambda: ("127.0.0.1", target)), "127.0.0.1", port
        )
        started.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(5)
    yield f"http://127.0.0.1:{port}", target
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


def test_a_request_waits_for_the_server_that_restarts(running_hold):
    url, target = running_hold
    server = None

    def come_up():
        nonlocal server
        time.sleep(1.0)
        server = start_server(target)

    threading.Thread(target=come_up).start()
    t0 = time.monotonic()
    r = requests.post(url, data=b"x" * 100 + b"the-tail", timeout=10)
    waited = time.monotonic() - t0
    try:
        assert r.status_code == 200
        assert r.json() == {"got": 108, "tail": "the-tail"}
        assert waited >= 0.9  # it was held, not refused
    finally:
        server.shutdown()
        server.server_close()


def test_a_large_body_and_keep_alive_pass_through_unchanged(running_hold):
    url, target = running_hold
    server = start_server(target)
    try:
        body = bytes(range(256)) * 8192 + b"last8byt"  # 2 MiB and a marker
        with requests.Session() as s:
            for _ in range(3):  # one connection, three requests
                r = s.post(url, data=body, timeout=10)
                assert r.json() == {"got": len(body), "tail": "last8byt"}
    finally:
        server.shutdown()
        server.server_close()


def test_it_gives_up_when_nothing_answers_within_its_time(running_hold):
    url, _ = running_hold
    t0 = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        requests.post(url, data=b"{}", timeout=10)
    assert 2.5 <= time.monotonic() - t0 < 8  # held for its 3 s, then closed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server serving-blue:8080;\nserver serving-hold:8080 backup;\n", ("serving-blue", 8080)),
        (  # during a switch: the colour being switched to
            "server serving-blue:8080;\nserver serving-green:8080 backup;\n"
            "server serving-hold:8080 backup;\n",
            ("serving-green", 8080),
        ),
        ("# nothing yet\nserver serving-hold:8080 backup;\n", None),
    ],
)
def test_the_live_colour_is_read_from_the_proxy_file(tmp_path, text, expected):
    path = tmp_path / "upstream.conf"
    path.write_text(text)
    assert hold.live_colour(str(path)) == expected
    assert hold.live_colour(str(tmp_path / "missing")) is None


def test_the_proxy_file_lists_the_hold_last():
    """What labctl writes is what the hold reads."""
    from labctl import production

    for backup in (None, "green"):
        text = production.upstream_text("blue", backup)
        assert text.strip().splitlines()[-1] == "server serving-hold:8080 backup;"
        path_colour = hold.COLOUR.findall(text)[-1][0]
        assert path_colour == f"serving-{backup or 'blue'}"
