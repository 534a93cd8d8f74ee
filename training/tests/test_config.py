import pytest

from trainer.config import ConfigError, TrainConfig


def test_defaults():
    cfg = TrainConfig.from_env({})
    assert (cfg.dataset, cfg.seed, cfg.label_noise, cfg.git_sha) == ("iris", 42, 0.0, "unknown")
    assert (cfg.duplicate_fraction, cfg.report_dir) == (0.0, "reports/data")


def test_reads_the_duplicate_knob_and_the_report_folder():
    cfg = TrainConfig.from_env({"TRAIN_DUPLICATE_FRACTION": "0.3", "TRAIN_REPORT_DIR": "/r"})
    assert (cfg.duplicate_fraction, cfg.report_dir) == (0.3, "/r")


def test_reads_the_shift_as_its_canonical_text():
    cfg = TrainConfig.from_env({"TRAIN_SHIFT": " petal length (cm) = -0.5 ; sepal width (cm)=*2"})
    assert cfg.shift == "petal length (cm)=-0.5, sepal width (cm)=*2"
    assert TrainConfig.from_env({"TRAIN_SHIFT": ""}).shift == ""


def test_reads_environment():
    cfg = TrainConfig.from_env(
        {
            "TRAIN_DATASET": "Wine",
            "TRAIN_SEED": "7",
            "LABEL_NOISE": "0.4",
            "GIT_SHA": "abc123",
            "MLFLOW_MODEL_NAME": "m",
            "MLFLOW_TRACKING_URI": "http://x:1",
        }
    )
    assert (cfg.dataset, cfg.seed, cfg.label_noise, cfg.git_sha) == ("wine", 7, 0.4, "abc123")
    assert (cfg.model_name, cfg.tracking_uri) == ("m", "http://x:1")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRAIN_DATASET": "mnist"}, "TRAIN_DATASET"),
        ({"LABEL_NOISE": "lots"}, "LABEL_NOISE must be a number"),
        ({"LABEL_NOISE": "1.5"}, "LABEL_NOISE must be between"),
        ({"TRAIN_SEED": "1.5"}, "TRAIN_SEED must be an integer"),
        ({"TRAIN_TEST_SIZE": "0.9"}, "TRAIN_TEST_SIZE"),
        ({"TRAIN_DUPLICATE_FRACTION": "2"}, "TRAIN_DUPLICATE_FRACTION must be between"),
        ({"TRAIN_SHIFT": "petal length (cm)+1.5"}, "TRAIN_SHIFT: cannot read"),
    ],
)
def test_rejects_bad_settings(env, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_env(env)
