"""Smoke test of a model server before the line moves on: is it serving what it should?"""

from __future__ import annotations

import time

import requests

CONSECUTIVE_ANSWERS = 6


class SmokeFailed(RuntimeError):
    pass


def smoke(url: str, expected_version: str | None, timeout_s: float = 120.0) -> str:
    """Check a server answers /predict with the expected model version; return a summary.

    Waits up to `timeout_s` for the server to load `expected_version` (servers poll the
    registry, so a fresh promotion takes one poll interval to show).
    """
    url = url.rstrip("/")
    deadline = time.monotonic() + timeout_s
    info: dict = {}
    agreeing = 0
    while True:
        try:
            r = requests.get(f"{url}/model", timeout=5)
            info = (
                r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {}
            )
            ok = r.status_code == 200 and (expected_version in (None, info.get("version")))
        except (requests.RequestException, ValueError):
            ok = False
        # Each worker polls the registry on its own clock: several answers in a row, each on
        # a new connection (so on any worker), before saying the server has switched.
        agreeing = agreeing + 1 if ok else 0
        if agreeing >= CONSECUTIVE_ANSWERS:
            break
        if ok:
            continue
        if time.monotonic() > deadline:
            raise SmokeFailed(
                f"{url} serves version {info.get('version')!r}, expected {expected_version!r}"
            )
        time.sleep(1)
    features = info["features"]
    rows = [dict.fromkeys(features, 1.0), dict.fromkeys(features, 2.0)]
    try:
        r = requests.post(f"{url}/predict", json={"instances": rows}, timeout=10)
        if r.status_code != 200 or len(r.json().get("predictions", [])) != 2:
            raise SmokeFailed(f"POST /predict -> HTTP {r.status_code}: {r.text[:200]}")
        bad = requests.post(f"{url}/predict", json={"instances": [{"nope": 1}]}, timeout=10)
    except (requests.RequestException, ValueError) as exc:
        raise SmokeFailed(f"POST /predict failed: {exc}") from exc
    if bad.status_code != 422:
        raise SmokeFailed(f"bad input -> HTTP {bad.status_code}, expected 422")
    return f"{url} serves {info['name']} version {info['version']} ({info['predict_path']})"
