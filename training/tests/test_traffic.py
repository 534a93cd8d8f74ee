from types import SimpleNamespace

import numpy as np
import pytest
import requests

from trainer import data
from trainer.config import ConfigError
from trainer.traffic import TrafficConfig, rows_to_send, send


def cfg(**kw):
    base = {"TRAFFIC_URL": "http://127.0.0.1:9", "TRAFFIC_SECONDS": "5"}
    return TrafficConfig.from_env({**base, **kw})


def test_rows_come_from_the_dataset_and_are_shifted_where_asked():
    features, plain = rows_to_send(cfg(TRAFFIC_ROWS="300"))
    _, shifted = rows_to_send(cfg(TRAFFIC_ROWS="300", TRAFFIC_SHIFT="petal length (cm)=+1.5"))
    iris = data.load("iris").X
    assert features == list(iris.columns) and plain.shape == (300, 4)
    assert {tuple(r) for r in plain} <= {tuple(r) for r in iris.to_numpy()}
    j = features.index("petal length (cm)")
    assert np.allclose(shifted[:, j], plain[:, j] + 1.5)
    assert np.array_equal(np.delete(shifted, j, axis=1), np.delete(plain, j, axis=1))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRAFFIC_URL": "127.0.0.1:8082"}, "TRAFFIC_URL must be a server's http:// URL"),
        ({"TRAFFIC_ROWS": "0"}, "TRAFFIC_ROWS must be between 1"),
        ({"TRAFFIC_BATCH": "x"}, "TRAFFIC_BATCH must be an integer"),
        ({"TRAFFIC_SHIFT": "petal=1"}, "TRAFFIC_SHIFT: cannot read"),
        ({"TRAIN_DATASET": "mnist"}, "TRAIN_DATASET"),
    ],
)
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        TrafficConfig.from_env({"TRAFFIC_URL": "http://x:1", **env})


class FakeSession:
    def __init__(self, answers):
        self.answers = list(answers)
        self.bodies = []

    def post(self, url, json, timeout):
        self.bodies.append(json)
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(status_code=answer, json=lambda: {"model_version": "3"})


def test_send_counts_rows_answered_and_requests_failed():
    session = FakeSession([200, 503, 200])
    sent = send(cfg(TRAFFIC_ROWS="12", TRAFFIC_BATCH="5"), session=session)
    assert [len(b["instances"]) for b in session.bodies] == [5, 5, 2]
    assert (sent.rows, sent.requests, sent.failed) == (7, 3, 1)
    assert sent.versions == {"3": 2} and sent.errors == {"HTTP 503": 1}
    assert set(session.bodies[0]["instances"][0]) == set(data.load("iris").X.columns)


def test_a_server_that_never_answers_is_given_up_on_after_three_tries():
    down = requests.ConnectionError("refused")
    session = FakeSession([down] * 100)
    sent = send(cfg(TRAFFIC_ROWS="500"), session=session)
    assert (sent.requests, sent.failed, sent.rows) == (3, 3, 0)
