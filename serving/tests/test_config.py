import pytest

from serving.config import ConfigError, ServingConfig


def test_from_environment():
    cfg = ServingConfig.from_env(
        {
            "SERVING_MODEL_ALIAS": "staging",
            "SERVING_POLL_INTERVAL_S": "0.5",
            "SERVING_MAX_BATCH_ROWS": "64",
            "SERVING_FAST_PATH": "0",
        }
    )
    assert (cfg.alias, cfg.poll_interval_s, cfg.max_batch_rows, cfg.fast_path) == (
        "staging",
        0.5,
        64,
        False,
    )


def test_defaults_serve_production_on_the_fast_path():
    cfg = ServingConfig.from_env({})
    assert cfg.alias == "production" and cfg.fast_path and cfg.max_body_bytes == 1_048_576


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SERVING_MODEL_ALIAS": "prod/../x"}, "SERVING_MODEL_ALIAS"),
        ({"SERVING_MODEL_ALIAS": ""}, "SERVING_MODEL_ALIAS"),
        ({"SERVING_POLL_INTERVAL_S": "soon"}, "must be a float"),
        ({"SERVING_MAX_BATCH_ROWS": "0"}, "must be a positive number"),
        ({"SERVING_FAST_PATH": "maybe"}, "SERVING_FAST_PATH"),
    ],
)
def test_rejects_bad_settings(env, message):
    with pytest.raises(ConfigError, match=message):
        ServingConfig.from_env(env)
