"""The benchmark's arithmetic and parsing (unit; the benchmark itself is `make bench`)."""

import pytest

from bench import servebench as bench

WRK_OUT = """Running 10s test @ http://127.0.0.1:1/predict
  1 threads and 32 connections

WRK_JSON {"requests": 20000, "duration_us": 10000000, "non2xx": 3, "connect": 0, "read": 1, "write": 0, "timeout": 0, "p50_us": 12000, "p95_us": 20500, "p99_us": 31000}
"""  # noqa: E501


def test_parse_and_convert_a_wrk_run():
    sample = bench.to_sample("ours", "single", 0, bench.parse_wrk(WRK_OUT), 15.0, 2.5)
    assert sample.rps == 2000
    assert (sample.p50_ms, sample.p95_ms, sample.p99_ms) == (12.0, 20.5, 31.0)
    assert sample.failures == 4
    assert (sample.server_cpu_pct, sample.client_cpu_pct) == (150.0, 25.0)


def test_missing_results_is_an_error():
    with pytest.raises(RuntimeError, match="wrk printed no results"):
        bench.parse_wrk("connection refused")


def _sample(server, scenario, rnd, rps, p99=10.0, failures=0):
    return bench.Sample(server, scenario, rnd, rps, 1.0, 5.0, p99, 100, failures, 50.0, 10.0)


def test_medians_ratios_and_table():
    samples = []
    for rnd, (ours, mlf, floor) in enumerate(
        [(1000, 100, 2000), (1200, 140, 2400), (1100, 120, 2200)]
    ):
        for scenario in bench.SCENARIOS:
            samples += [
                _sample("ours", scenario, rnd, ours, failures=1),
                _sample("ours-invocations", scenario, rnd, ours * 0.95),
                _sample("ours-capture", scenario, rnd, ours * 0.99),
                _sample("ours-sync", scenario, rnd, ours * 2),
                _sample("mlflow-serve", scenario, rnd, mlf),
                _sample("floor", scenario, rnd, floor),
            ]
    med = bench.medians(samples)
    assert med[("ours", "single")]["rps"] == 1100
    assert med[("ours", "single")]["failures"] == 3
    rss = {"ours": [70.4, 72.6, 90.0], "mlflow-serve": [300.0]}
    assert bench.ratio_lines(med, rss) == [
        "ours/ours-sync rps ratio: 0.50",
        "ours-capture/ours rps ratio: 0.99",
        "ours/mlflow-serve invocations rps ratio: 8.7",
        "ours/mlflow-serve rps ratio: 9.2",
        "ours/floor rps ratio: 0.5",
        "ours rss per worker: 73 MB",
    ]
    assert bench.rss_lines(rss) == [
        "- ours: 73 MB per worker (70, 73, 90)",
        "- mlflow-serve: 300 MB per worker (300)",
    ]
    assert "| single | ours | 1100 |" in bench.table(med)
