import pytest

from gatekeeper.decide import Evidence, Thresholds, decide

T = Thresholds(
    min_accuracy=0.9,
    min_precision_macro=0.8,
    min_recall_per_class=0.7,
    max_p99_latency_ms=10,
    max_model_size_mb=5,
    max_regression=0.02,
)
GOOD = {
    "accuracy": 0.95,
    "precision_macro": 0.9,
    "f1_macro": 0.93,
    "recall_class_0": 0.9,
    "recall_class_1": 0.8,
}


def evidence(**over):
    base = dict(metrics=dict(GOOD), p99_latency_ms=2.0, model_size_mb=1.0)
    base.update(over)
    return Evidence(**base)


def check(decision, name):
    return next(c for c in decision.checks if c.name == name)


def test_good_candidate_with_no_production_passes():
    d = decide(evidence(), T)
    assert d.passed
    assert check(d, "schema_compatible").detail == "no production model"


@pytest.mark.parametrize(
    ("metric", "value", "passes"),
    [
        ("accuracy", 0.9, True),  # exactly at the minimum
        ("accuracy", 0.8999, False),
        ("precision_macro", 0.8, True),
        ("precision_macro", 0.7999, False),
        ("recall_class_1", 0.7, True),
        ("recall_class_1", 0.6999, False),
    ],
)
def test_minimums_are_inclusive(metric, value, passes):
    metrics = {**GOOD, metric: value}
    assert decide(evidence(metrics=metrics), T).passed is passes


@pytest.mark.parametrize(
    ("field", "value", "passes"),
    [
        ("p99_latency_ms", 10.0, True),
        ("p99_latency_ms", 10.001, False),
        ("model_size_mb", 5.0, True),
        ("model_size_mb", 5.01, False),
    ],
)
def test_maximums_are_inclusive(field, value, passes):
    assert decide(evidence(**{field: value}), T).passed is passes


@pytest.mark.parametrize("missing", ["accuracy", "precision_macro"])
def test_missing_metric_fails_its_check(missing):
    metrics = {k: v for k, v in GOOD.items() if k != missing}
    d = decide(evidence(metrics=metrics), T)
    assert not d.passed
    assert check(d, missing).value is None


def test_no_per_class_recall_fails():
    metrics = {k: v for k, v in GOOD.items() if not k.startswith("recall_class_")}
    assert not decide(evidence(metrics=metrics), T).passed


def test_unmeasured_latency_fails():
    d = decide(evidence(p99_latency_ms=None), T)
    assert [c.name for c in d.failed] == ["p99_latency_ms"]


@pytest.mark.parametrize(
    ("prod_accuracy", "passes"),
    [(0.97, True), (0.9701, False), (0.90, True)],  # candidate 0.95, tolerance 0.02
)
def test_regression_against_production_at_the_boundary(prod_accuracy, passes):
    e = evidence(
        schema_compatible=True,
        production_version="3",
        production_metrics={"accuracy": prod_accuracy, "f1_macro": 0.9},
    )
    assert check(decide(e, T), "regression_accuracy").passed is passes


def test_incompatible_schema_fails():
    e = evidence(
        schema_compatible=False,
        schema_detail="missing ['x']",
        production_version="3",
        production_metrics={"accuracy": 0.9, "f1_macro": 0.9},
    )
    d = decide(e, T)
    assert [c.name for c in d.failed] == ["schema_compatible"]
    assert "missing" in check(d, "schema_compatible").detail


def test_production_without_metrics_fails_regression_checks():
    e = evidence(schema_compatible=True, production_version="3", production_metrics={})
    d = decide(e, T)
    assert {c.name for c in d.failed} == {"regression_accuracy", "regression_f1_macro"}


def test_decision_serialises_every_check():
    body = decide(evidence(), T).to_dict()
    assert body["passed"] is True
    assert len(body["checks"]) == 10


def test_a_candidate_in_a_format_that_runs_code_fails_the_gate():
    d = decide(evidence(format_refused="it is stored as 'cloudpickle'"), Thresholds())
    assert not d.passed
    (check,) = [c for c in d.failed]
    assert check.name == "trusted_format" and "cloudpickle" in check.detail


def test_a_candidate_the_gate_could_not_measure_fails_whatever_the_run_logged():
    d = decide(
        evidence(metrics={}, measure_error="no held-out set for dataset 'x'", logged_metrics=GOOD),
        T,
    )
    assert not d.passed
    assert not check(d, "held_out_evaluation").passed
    assert "no held-out set" in check(d, "held_out_evaluation").detail
    assert not check(d, "accuracy").passed


def test_a_production_model_that_cannot_be_measured_fails_the_regression_check():
    d = decide(
        evidence(production_version="3", production_measure_error="production v3: refused"),
        T,
    )
    assert not check(d, "regression_accuracy").passed
    assert check(d, "regression_accuracy").detail == "production v3: refused"
