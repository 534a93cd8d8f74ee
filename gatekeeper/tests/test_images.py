import pytest

from gatekeeper.images import Registry, RegistryError


def test_retag_copies_the_manifest_and_returns_the_previous(fake_registry):
    url, manifests = fake_registry
    reg = Registry(url, "mlops-lab/serving")
    assert reg.retag("sha1", "staging") is None
    assert manifests["staging"] == manifests["sha1"]
    previous = reg.retag("sha2", "staging")
    assert previous is not None and previous.body == manifests["sha1"][0]
    assert manifests["staging"][1] == "application/vnd.oci.image.index.v1+json"


def test_missing_source_image_changes_nothing(fake_registry):
    url, manifests = fake_registry
    reg = Registry(url, "mlops-lab/serving")
    reg.retag("sha1", "production")
    with pytest.raises(RegistryError, match="serving:nope is not in the registry"):
        reg.retag("nope", "production")
    assert manifests["production"] == manifests["sha1"]


def test_unreachable_registry_is_a_clear_error():
    with pytest.raises(RegistryError, match="unreachable"):
        Registry("http://127.0.0.1:9", "x", timeout=1).get("t")
