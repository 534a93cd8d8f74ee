"""The lab's weight report: docker's sizes read right, and targets compared (unit)."""

import pytest

from bench import weight


def test_docker_sizes_in_binary_and_decimal_units():
    assert weight.to_bytes("312.5MiB") == 312.5 * 1024**2
    assert weight.to_bytes("1.2GB") == 1.2e9
    assert weight.to_bytes("0B") == 0
    with pytest.raises(ValueError, match="not a size"):
        weight.to_bytes("12 parsecs")


def test_stats_lines_become_megabytes_per_container():
    lines = ["mlops-lab-mlflow-1\t300MiB / 1.5GiB", "mlops-lab-registry-1\t9.5MiB / 256MiB", ""]
    assert weight.parse_stats(lines) == {
        "mlops-lab-mlflow-1": 314.6,
        "mlops-lab-registry-1": 10.0,
    }


def test_each_target_says_whether_it_is_met():
    found = {
        "images_mb": {"mlflow": 430, "serving": 510},
        "images_total_mb": 1400,
        "containers_mb": {"a": 600.0, "b": 500.0},
        "idle_mb": 1100,
    }
    lines = weight.verdicts(found)
    assert "image mlflow: 430 MB (before 991 MB) [ok, <= 500]" in lines
    assert "image serving: 510 MB (before 455 MB) [OVER, <= 500]" in lines
    assert "images together (layers once): 1400 MB [ok, <= 1500]" in lines
    assert lines[-1] == "idle stack: 1100 MB (before 1540 MB) [OVER, <= 1000]"
