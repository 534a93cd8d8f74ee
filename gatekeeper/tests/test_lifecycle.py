"""Promotion and rollback rules, on an in-memory registry client (unit)."""

import pytest

from gatekeeper import lifecycle
from gatekeeper.config import GateConfig


def cfg(registry_url=""):
    return GateConfig(model_name="m", registry_url=registry_url, actor="tester")


def versions():
    return {
        "1": {"gate.verdict": "passed", "git_sha": "sha1"},
        "2": {"gate.verdict": "passed", "git_sha": "sha2"},
        "3": {"gate.verdict": "failed", "git_sha": "sha2"},
    }


def test_promote_refuses_a_failed_gate_and_moves_nothing(fake_client):
    client = fake_client(versions(), {"candidate": "3", "staging": "1"})
    with pytest.raises(lifecycle.Refused, match="version 3 has not passed the gate"):
        lifecycle.promote(client, cfg(), "staging")
    assert client.aliases == {"candidate": "3", "staging": "1"}


def test_promote_records_history(fake_client):
    client = fake_client(versions(), {"candidate": "2", "staging": "1"})
    assert lifecycle.promote(client, cfg(), "staging") == ("2", "1")
    tags = client.versions["2"]
    assert tags["promoted.staging.previous"] == "1"
    assert tags["promoted.staging.by"] == "tester"
    assert tags["promoted.staging.from"] == "@candidate"


def test_promote_without_source_alias_is_a_usage_error(fake_client):
    client = fake_client(versions(), {})
    with pytest.raises(lifecycle.UsageError, match="no @staging"):
        lifecycle.promote(client, cfg(), "production")


def test_rollback_walks_back_one_promotion(fake_client):
    client = fake_client(versions(), {"staging": "2", "production": "1"})
    lifecycle.promote(client, cfg(), "production")
    assert client.aliases["production"] == "2"
    assert lifecycle.rollback(client, cfg()) == ("1", "2")
    assert client.aliases["production"] == "1"
    with pytest.raises(lifecycle.Refused, match="no earlier production version"):
        lifecycle.rollback(client, cfg())


def test_other_registry_errors_are_not_taken_for_a_missing_alias(fake_client):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    class Broken(fake_client):
        def get_model_version_by_alias(self, name, alias):
            raise MlflowException("bad alias name", error_code=INVALID_PARAMETER_VALUE)

    with pytest.raises(MlflowException):
        lifecycle.alias_version(Broken(versions(), {}), "m", "production")
    assert lifecycle.alias_version(fake_client(versions(), {}), "m", "production") is None


def test_image_follows_the_model(fake_client, fake_registry):
    url, manifests = fake_registry
    client = fake_client(versions(), {"candidate": "2"})
    lifecycle.promote(client, cfg(url), "staging")
    assert manifests["staging"] == manifests["sha2"]


def test_failed_alias_move_puts_the_image_tag_back(fake_client, fake_registry):
    url, manifests = fake_registry
    client = fake_client(versions(), {"candidate": "2", "staging": "1"})
    manifests["staging"] = manifests["sha1"]
    client.fail_alias = True
    with pytest.raises(Exception, match="registry down"):
        lifecycle.promote(client, cfg(url), "staging")
    assert manifests["staging"] == manifests["sha1"]
    assert client.aliases["staging"] == "1"


def test_missing_image_stops_promotion_before_the_alias(fake_client, fake_registry):
    url, _ = fake_registry
    v = versions()
    v["2"]["git_sha"] = "not-pushed"
    client = fake_client(v, {"candidate": "2", "staging": "1"})
    with pytest.raises(Exception, match="not in the registry"):
        lifecycle.promote(client, cfg(url), "staging")
    assert client.aliases["staging"] == "1"
