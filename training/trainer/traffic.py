"""`python -m trainer.traffic`: send a model server realistic requests for a bounded while.

Rows are drawn (seeded, with replacement) from the whole dataset the lab trains on, the
rows training never saw included, and shifted where asked with TRAIN_SHIFT's syntax, so a
class can create drift on purpose and watch the drift check catch it:

    TRAFFIC_URL=http://127.0.0.1:8082 TRAFFIC_SHIFT="petal length (cm)=+1.5" \\
        python -m trainer.traffic

Settings (environment): TRAFFIC_URL (the server), TRAFFIC_SHIFT, TRAFFIC_ROWS (rows in
all, default 500), TRAFFIC_BATCH (rows per request, default 5), TRAFFIC_SECONDS (the
longest it runs, default 60), TRAIN_DATASET, TRAIN_SEED.
Exit 0 when every request was answered, 1 when some were not, 2 on bad settings or when
the server cannot be reached at all.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from trainer import data, shift
from trainer.config import DATASETS, ConfigError, TrainConfig, _int


@dataclass(frozen=True)
class TrafficConfig:
    url: str = "http://127.0.0.1:8082"  # the production server's default port
    shift: str = ""
    rows: int = 500
    batch: int = 5
    seconds: float = 60.0
    dataset: str = "iris"
    seed: int = 42

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TrafficConfig:
        env = os.environ if env is None else env
        url = env.get("TRAFFIC_URL", "").strip().rstrip("/") or cls.url
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"TRAFFIC_URL must be a server's http:// URL, got {url!r}")
        train = TrainConfig.from_env({k: v for k, v in env.items() if k.startswith("TRAIN_")})
        try:
            text = shift.describe(shift.parse(env.get("TRAFFIC_SHIFT", "")))
        except shift.ShiftError as exc:
            raise ConfigError(f"TRAFFIC_SHIFT: {exc}") from None
        return cls(
            url=url,
            shift=text,
            rows=_int(env, "TRAFFIC_ROWS", cls.rows, 1, 1_000_000),
            batch=_int(env, "TRAFFIC_BATCH", cls.batch, 1, 1000),
            seconds=float(_int(env, "TRAFFIC_SECONDS", int(cls.seconds), 1, 86_400)),
            dataset=train.dataset,
            seed=train.seed,
        )


def rows_to_send(cfg: TrafficConfig) -> tuple[list[str], np.ndarray]:
    """(feature names, the rows to send in order): drawn from the dataset, shifted."""
    assert cfg.dataset in DATASETS
    ds = data.load(cfg.dataset)
    X = shift.apply(ds.X, shift.parse(cfg.shift)) if cfg.shift else ds.X
    idx = np.random.default_rng(cfg.seed).integers(0, len(X), size=cfg.rows)
    return [str(c) for c in X.columns], X.to_numpy(dtype="float64")[idx]


@dataclass
class Sent:
    rows: int = 0
    requests: int = 0
    failed: int = 0
    versions: Counter = None  # type: ignore[assignment]
    errors: Counter = None  # type: ignore[assignment]
    seconds: float = 0.0


def send(cfg: TrafficConfig, session=None, clock=time.monotonic) -> Sent:
    import requests

    session = session or requests.Session()
    features, rows = rows_to_send(cfg)
    sent = Sent(versions=Counter(), errors=Counter())
    # Spread over a tenth of the allowed time at least, so the traffic reads as traffic.
    pause = min(0.05, cfg.seconds / 10 / max(1, len(rows) // cfg.batch))
    t0 = clock()
    for start in range(0, len(rows), cfg.batch):
        if clock() - t0 > cfg.seconds:
            break
        chunk = rows[start : start + cfg.batch]
        body = {"instances": [dict(zip(features, map(float, r), strict=True)) for r in chunk]}
        sent.requests += 1
        try:
            r = session.post(f"{cfg.url}/predict", json=body, timeout=10)
        except requests.RequestException as exc:
            sent.failed += 1
            sent.errors[type(exc).__name__] += 1
            if sent.requests == sent.failed >= 3:
                break  # nothing answers: no point in trying every row
            continue
        if r.status_code != 200:
            sent.failed += 1
            sent.errors[f"HTTP {r.status_code}"] += 1
            continue
        sent.rows += len(chunk)
        sent.versions[str(r.json().get("model_version"))] += 1
        if pause:
            time.sleep(pause)
    sent.seconds = clock() - t0
    return sent


def main() -> int:
    try:
        cfg = TrafficConfig.from_env()
    except ConfigError as exc:
        print(f"traffic: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        sent = send(cfg)
    except shift.ShiftError as exc:
        print(f"traffic: configuration error: TRAFFIC_SHIFT: {exc}", file=sys.stderr)
        return 2
    versions = ", ".join(f"v{v}: {n}" for v, n in sorted(sent.versions.items())) or "none"
    print(
        f"traffic: {sent.rows} rows in {sent.requests - sent.failed} requests to {cfg.url} "
        f"in {sent.seconds:.1f} s ({cfg.dataset}"
        + (f", shift {cfg.shift}" if cfg.shift else ", no shift")
        + f"); answered by {versions}"
    )
    if sent.failed:
        errors = ", ".join(f"{k} x{n}" for k, n in sent.errors.most_common())
        failed = f"{sent.failed} of {sent.requests} requests failed"
        print(f"traffic: {failed}: {errors}", file=sys.stderr)
        return 2 if sent.failed == sent.requests else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
