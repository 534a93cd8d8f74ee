import pytest

from gatekeeper.config import ConfigError, GateConfig


def test_thresholds_from_environment():
    cfg = GateConfig.from_env(
        {
            "GATE_MIN_ACCURACY": "0.99",
            "GATE_MAX_P99_LATENCY_MS": "5",
            "GATE_REGISTRY_URL": "http://registry:5000/",
            "GATE_ACTOR": "ci",
        }
    )
    assert cfg.thresholds.min_accuracy == 0.99
    assert cfg.thresholds.max_p99_latency_ms == 5
    assert cfg.registry_url == "http://registry:5000"
    assert cfg.actor == "ci"


def test_the_registry_login_is_read_and_never_printed():
    cfg = GateConfig.from_env(
        {"GATE_REGISTRY_USERNAME": "lab", "GATE_REGISTRY_PASSWORD": "s3cret-value"}
    )
    assert (cfg.registry_username, cfg.registry_password) == ("lab", "s3cret-value")
    assert "s3cret-value" not in repr(cfg)


def test_defaults_have_no_image_registry():
    cfg = GateConfig.from_env({"USER": "alice"})
    assert cfg.registry_url == ""
    assert cfg.actor == "alice"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATE_MIN_ACCURACY": "high"}, "GATE_MIN_ACCURACY must be a number"),
        ({"GATE_MIN_ACCURACY": "1.5"}, "between 0 and 1"),
        ({"GATE_MAX_REGRESSION": "-0.1"}, "must not be negative"),
        ({"GATE_MAX_P99_LATENCY_MS": "nan"}, "must be a finite number"),
        ({"GATE_MIN_ACCURACY": "inf"}, "must be a finite number"),
    ],
)
def test_rejects_bad_thresholds(env, message):
    with pytest.raises(ConfigError, match=message):
        GateConfig.from_env(env)


def test_drift_settings_have_defaults_and_are_read_from_the_environment():
    from gatekeeper.config import DriftConfig

    d = DriftConfig.from_env({})
    assert (d.alias, d.window_rows, d.min_rows, d.psi, d.ks_alpha) == (
        "production",
        1000,
        100,
        0.2,
        0.001,
    )
    d = DriftConfig.from_env(
        {"DRIFT_WINDOW_ROWS": "300", "DRIFT_MIN_ROWS": "50", "DRIFT_CAPTURE_DIR": "/c"}
    )
    assert (d.window_rows, d.min_rows, d.capture_dir) == (300, 50, "/c")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DRIFT_PSI_THRESHOLD": "0"}, "DRIFT_PSI_THRESHOLD must be positive"),
        ({"DRIFT_KS_ALPHA": "1"}, "DRIFT_KS_ALPHA must be between 0 and 1"),
        ({"DRIFT_MIN_ROWS": "many"}, "DRIFT_MIN_ROWS must be a whole number"),
        ({"DRIFT_MIN_ROWS": "1"}, "DRIFT_MIN_ROWS must be at least 2"),
        ({"DRIFT_WINDOW_ROWS": "50"}, r"DRIFT_WINDOW_ROWS \(50\) must be at least DRIFT_MIN_ROWS"),
    ],
)
def test_drift_settings_out_of_range_name_the_variable(env, message):
    from gatekeeper.config import ConfigError, DriftConfig

    with pytest.raises(ConfigError, match=message):
        DriftConfig.from_env(env)
