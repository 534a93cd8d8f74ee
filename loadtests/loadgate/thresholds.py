"""Pure evaluation of a load-test summary against thresholds (unit-tested at the boundaries)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class LoadThresholds:
    max_p95_ms: float = 200.0
    max_p99_ms: float = 500.0
    max_failure_ratio: float = 0.01
    # Fewer requests than this make p95 and p99 meaningless, so such a run fails the gate.
    min_requests: int = 100

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LoadThresholds:
        env = os.environ if env is None else env

        def num(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{name} must be a number, got {raw!r}") from None
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite, non-negative number, got {raw!r}")
            return value

        return cls(
            max_p95_ms=num("LOAD_MAX_P95_MS", cls.max_p95_ms),
            max_p99_ms=num("LOAD_MAX_P99_MS", cls.max_p99_ms),
            max_failure_ratio=num("LOAD_MAX_FAILURE_RATIO", cls.max_failure_ratio),
            min_requests=int(num("LOAD_MIN_REQUESTS", cls.min_requests)),
        )


@dataclass(frozen=True)
class Summary:
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rps: float

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def _checks(s: Summary, t: LoadThresholds) -> dict[str, str | None]:
    """Each gated metric, by its table row: what it broke as a sentence, or None."""
    broken: dict[str, str | None] = dict.fromkeys(("requests", "p95 (ms)", "p99 (ms)", "failures"))
    if s.requests < t.min_requests:
        broken["requests"] = f"only {s.requests} requests were made (need {t.min_requests})"
    if s.p95_ms > t.max_p95_ms:
        broken["p95 (ms)"] = f"p95 {s.p95_ms:.0f} ms > {t.max_p95_ms:.0f} ms"
    if s.p99_ms > t.max_p99_ms:
        broken["p99 (ms)"] = f"p99 {s.p99_ms:.0f} ms > {t.max_p99_ms:.0f} ms"
    if s.failure_ratio > t.max_failure_ratio:
        broken["failures"] = f"failure ratio {s.failure_ratio:.4f} > {t.max_failure_ratio}"
    return broken


def violations(summary: Summary, t: LoadThresholds) -> list[str]:
    """Every threshold the run broke, as sentences; empty means the gate passes."""
    return [broken for broken in _checks(summary, t).values() if broken]


def markdown(summary: Summary, t: LoadThresholds, broken: list[str]) -> str:
    """The result for people: each metric with its value, threshold and verdict, and the
    broken thresholds listed (this is what `make summary` shows)."""
    verdict = "PASSED" if not broken else "FAILED"
    checks = _checks(summary, t)
    rows = [
        ("p50 (ms)", f"{summary.p50_ms:.0f}", "-"),
        ("p95 (ms)", f"{summary.p95_ms:.0f}", f"<= {t.max_p95_ms:.0f}"),
        ("p99 (ms)", f"{summary.p99_ms:.0f}", f"<= {t.max_p99_ms:.0f}"),
        ("requests/s", f"{summary.rps:.1f}", "-"),
        ("requests", str(summary.requests), f">= {t.min_requests}"),
        (
            "failures",
            f"{summary.failures} ({summary.failure_ratio:.2%})",
            f"<= {t.max_failure_ratio:.2%}",
        ),
    ]
    lines = [
        f"### Latency gate (Locust): {verdict}",
        "",
        "| metric | value | threshold | verdict |",
        "| --- | --- | --- | --- |",
    ]
    for metric, value, threshold in rows:
        mark = "-" if metric not in checks else "**FAIL**" if checks[metric] else "pass"
        lines.append(f"| {metric} | {value} | {threshold} | {mark} |")
    if broken:
        lines += ["", "Broken thresholds:", *[f"- {b}" for b in broken]]
    return "\n".join(lines) + "\n"
