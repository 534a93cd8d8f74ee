"""Latency gate for Locust runs: p95/p99/failure-ratio thresholds decide the exit code."""
