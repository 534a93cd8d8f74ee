"""The gate decision: a pure function of measured evidence and thresholds.

Every check is inclusive at its threshold (a value equal to a minimum or a maximum
passes), and a missing measurement fails its check: the gate never passes by default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Thresholds:
    min_accuracy: float = 0.85
    min_precision_macro: float = 0.80
    min_recall_per_class: float = 0.70
    max_p99_latency_ms: float = 50.0
    max_model_size_mb: float = 20.0
    # How far accuracy and macro F1 may fall below the production model's.
    max_regression: float = 0.02


@dataclass(frozen=True)
class Evidence:
    """What was measured about a candidate (and the production model it would replace).

    `metrics` and `production_metrics` are the gate's own measurements on the held-out set;
    `logged_metrics` are what the training run reported about itself, shown beside them in
    the report and never used to decide.
    """

    metrics: dict[str, float]
    p99_latency_ms: float | None
    model_size_mb: float | None
    # None when there is no production model yet: nothing to be compatible with.
    schema_compatible: bool | None = None
    schema_detail: str = ""
    production_version: str | None = None
    production_metrics: dict[str, float] = field(default_factory=dict)
    # Why the candidate's files are not a model the lab loads (trusted.py); "" when they are.
    format_refused: str = ""
    sha256: str = ""  # of the candidate's files, recorded with the verdict
    holdout: dict = field(default_factory=dict)  # dataset, rows, sha256 of the held-out set
    # Why the candidate could not be measured on the held-out set; "" when it was.
    measure_error: str = ""
    production_measure_error: str = ""
    logged_metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str
    value: float | str | None
    threshold: float | str | None
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class Decision:
    passed: bool
    checks: tuple[Check, ...]

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}


def _at_least(name: str, value: float | None, minimum: float) -> Check:
    if value is None:
        return Check(name, None, f">= {minimum}", False, "not measured")
    return Check(name, round(value, 6), f">= {minimum}", value >= minimum)


def _at_most(name: str, value: float | None, maximum: float) -> Check:
    if value is None:
        return Check(name, None, f"<= {maximum}", False, "not measured")
    return Check(name, round(value, 6), f"<= {maximum}", value <= maximum)


def decide(evidence: Evidence, thresholds: Thresholds) -> Decision:
    """Return the verdict on a candidate: every check, its value, its threshold, pass/fail."""
    m = evidence.metrics
    per_class = [v for k, v in m.items() if k.startswith("recall_class_")]
    checks = [
        Check(
            "trusted_format",
            "refused" if evidence.format_refused else "skops",
            "sklearn in skops",
            not evidence.format_refused,
            evidence.format_refused,
        ),
        Check(
            "held_out_evaluation",
            f"{evidence.holdout.get('rows')} rows of {evidence.holdout.get('dataset')}"
            if not evidence.measure_error
            else "not measured",
            "measured by the gate",
            not evidence.measure_error,
            evidence.measure_error
            or f"held-out set sha256 {str(evidence.holdout.get('sha256', ''))[:12]}",
        ),
        _at_least("accuracy", m.get("accuracy"), thresholds.min_accuracy),
        _at_least("precision_macro", m.get("precision_macro"), thresholds.min_precision_macro),
        _at_least(
            "min_recall_per_class",
            min(per_class) if per_class else None,
            thresholds.min_recall_per_class,
        ),
        _at_most("p99_latency_ms", evidence.p99_latency_ms, thresholds.max_p99_latency_ms),
        _at_most("model_size_mb", evidence.model_size_mb, thresholds.max_model_size_mb),
    ]
    if evidence.schema_compatible is None:
        checks.append(
            Check("schema_compatible", "n/a", "= production", True, "no production model")
        )
    else:
        checks.append(
            Check(
                "schema_compatible",
                "yes" if evidence.schema_compatible else "no",
                f"= production v{evidence.production_version}",
                evidence.schema_compatible,
                evidence.schema_detail,
            )
        )
    for metric in ("accuracy", "f1_macro"):
        name = f"regression_{metric}"
        if evidence.production_version is None:
            checks.append(Check(name, "n/a", "no production model", True, "no production model"))
            continue
        prod = evidence.production_metrics.get(metric)
        cand = m.get(metric)
        if prod is None or cand is None:
            why = evidence.production_measure_error if prod is None else ""
            checks.append(
                Check(name, None, None, False, why or f"{metric} not measured on both models")
            )
            continue
        drop = prod - cand
        checks.append(
            Check(
                name,
                round(drop, 6),
                f"<= {thresholds.max_regression}",
                drop <= thresholds.max_regression + 1e-12,
                f"production v{evidence.production_version} {metric}={prod:.4f}, "
                f"candidate {cand:.4f}",
            )
        )
    return Decision(all(c.passed for c in checks), tuple(checks))
