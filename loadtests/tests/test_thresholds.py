import pytest

from loadgate.thresholds import ConfigError, LoadThresholds, Summary, markdown, violations

T = LoadThresholds(max_p95_ms=100, max_p99_ms=200, max_failure_ratio=0.01, min_requests=10)


def summary(**over):
    base = dict(requests=1000, failures=0, p50_ms=5, p95_ms=50, p99_ms=80, rps=100.0)
    base.update(over)
    return Summary(**base)


@pytest.mark.parametrize(
    ("over", "broken"),
    [
        ({}, []),
        ({"p95_ms": 100}, []),
        ({"p95_ms": 101}, ["p95 101 ms > 100 ms"]),
        ({"p99_ms": 200}, []),
        ({"p99_ms": 201}, ["p99 201 ms > 200 ms"]),
        ({"failures": 10}, []),  # exactly 1%
        ({"failures": 11}, ["failure ratio 0.0110 > 0.01"]),
        ({"requests": 9, "failures": 0}, ["only 9 requests were made (need 10)"]),
    ],
)
def test_violations_at_the_boundaries(over, broken):
    assert violations(summary(**over), T) == broken


def test_no_requests_is_not_a_division_error():
    assert summary(requests=0).failure_ratio == 0.0


def test_from_env_and_errors():
    t = LoadThresholds.from_env({"LOAD_MAX_P95_MS": "50", "LOAD_MAX_FAILURE_RATIO": "0"})
    assert (t.max_p95_ms, t.max_failure_ratio, t.max_p99_ms) == (50, 0, 500)
    with pytest.raises(ConfigError, match="LOAD_MAX_P99_MS"):
        LoadThresholds.from_env({"LOAD_MAX_P99_MS": "fast"})


@pytest.mark.parametrize("raw", ["nan", "inf", "-1"])
def test_non_finite_or_negative_thresholds_are_rejected(raw):
    with pytest.raises(ConfigError, match="LOAD_MAX_P95_MS"):
        LoadThresholds.from_env({"LOAD_MAX_P95_MS": raw})


def rows(md: str) -> dict[str, list[str]]:
    """Table rows keyed by their first cell."""
    return {
        cells[0]: cells[1:]
        for line in md.splitlines()
        if line.startswith("| ") and not line.startswith("| ---")
        for cells in [[c.strip() for c in line.strip("|").split(" | ")]]
    }


def test_markdown_has_each_metric_value_threshold_and_verdict():
    s = summary(p95_ms=150, failures=11)
    md = markdown(s, T, violations(s, T))
    assert md.startswith("### Latency gate (Locust): FAILED\n")
    assert rows(md) == {
        "metric": ["value", "threshold", "verdict"],
        "p50 (ms)": ["5", "-", "-"],
        "p95 (ms)": ["150", "<= 100", "**FAIL**"],
        "p99 (ms)": ["80", "<= 200", "pass"],
        "requests/s": ["100.0", "-", "-"],
        "requests": ["1000", ">= 10", "pass"],
        "failures": ["11 (1.10%)", "<= 1.00%", "**FAIL**"],
    }
    assert md.split("Broken thresholds:\n", 1)[1].splitlines() == [
        "- p95 150 ms > 100 ms",
        "- failure ratio 0.0110 > 0.01",
    ]


@pytest.mark.parametrize(
    ("over", "failed_rows"),
    [
        ({}, []),
        ({"requests": 9}, ["requests"]),
        ({"p99_ms": 201}, ["p99 (ms)"]),
        ({"p95_ms": 101, "p99_ms": 201}, ["p95 (ms)", "p99 (ms)"]),
    ],
)
def test_each_row_fails_exactly_when_its_threshold_is_broken(over, failed_rows):
    s = summary(**over)
    md = markdown(s, T, violations(s, T))
    assert [m for m, cells in rows(md).items() if cells[-1] == "**FAIL**"] == failed_rows
    assert ("PASSED" in md.splitlines()[0]) is (failed_rows == [])
    assert ("Broken thresholds:" in md) is (failed_rows != [])
