"""Holds production requests while the live model server restarts (standard library only).

The production proxy (nginx, compose/proxy/nginx.conf) lists this as its backup server.
nginx has no way to wait for a server that is not answering: while the live colour's
container restarts (a `docker compose restart`, a crash, an engine that kills it for
memory) each request it forwards would fail at once. Instead nginx passes it here, and
this process connects to the live colour again every 100 ms for up to HOLD_SECONDS, then
forwards the bytes both ways unchanged. The client waits; it does not fail.

Which colour is live is read from the proxy's upstream file on each connection (the last
`serving-blue` or `serving-green` in it: during a switch, the colour being switched to).

    python3 -I hold.py        # listens on 0.0.0.0:8080
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time

UPSTREAM_FILE = os.environ.get("HOLD_UPSTREAM_FILE", "/etc/nginx/lab/upstream.conf")
PORT = int(os.environ.get("HOLD_PORT", "8080"))
HOLD_SECONDS = float(os.environ.get("HOLD_SECONDS", "30"))
RETRY_S = 0.1
CONNECT_TIMEOUT_S = 1.0
COLOUR = re.compile(r"^\s*server\s+(serving-(?:blue|green)):(\d+)\b", re.MULTILINE)


def log(message: str) -> None:
    print(f"[hold] {message}", file=sys.stderr, flush=True)


def live_colour(path: str = UPSTREAM_FILE) -> tuple[str, int] | None:
    """(host, port) of the colour requests are meant for, or None without one."""
    try:
        with open(path, encoding="utf-8") as f:
            found = COLOUR.findall(f.read())
    except OSError:
        return None
    if not found:
        return None
    host, port = found[-1]
    return host, int(port)


async def connect(
    deadline: float, where=live_colour
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A connection to the live colour, retried until `deadline` (monotonic seconds)."""
    while True:
        target = where()
        if target is not None:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(*target), timeout=CONNECT_TIMEOUT_S
                )
            except (TimeoutError, OSError):
                pass  # refused, no route, or not in the engine's DNS yet: it is restarting
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(RETRY_S)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def handler(hold_seconds: float = HOLD_SECONDS, where=live_colour):
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        started = time.monotonic()
        try:
            upstream = await connect(started + hold_seconds, where)
            if upstream is None:
                log(f"no live colour answered within {hold_seconds:.0f} s: connection closed")
                return
            waited = time.monotonic() - started
            if waited > 0.5:
                log(f"held a connection {waited:.1f} s until the live colour answered")
            server_r, server_w = upstream
            await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))
        except Exception as exc:  # never leave nginx waiting on a connection we dropped
            log(f"connection dropped: {exc!r}")
        finally:
            client_w.close()

    return handle


async def serve(port: int = PORT) -> None:
    # All interfaces of its container: it publishes no port, only the proxy reaches it.
    server = await asyncio.start_server(handler(), "0.0.0.0", port, backlog=1024)  # noqa: S104
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log(f"listening on :{port}, holding up to {HOLD_SECONDS:.0f} s for {UPSTREAM_FILE}")
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve())
