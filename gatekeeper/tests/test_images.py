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


@pytest.mark.parametrize("fake_registry", ["lab:s3cret"], indirect=True)
def test_a_registry_with_logins_retags_with_the_right_one(fake_registry):
    url, manifests = fake_registry
    Registry(url, "mlops-lab/serving", auth=("lab", "s3cret")).retag("sha1", "production")
    assert manifests["production"] == manifests["sha1"]


@pytest.mark.parametrize("fake_registry", ["lab:s3cret"], indirect=True)
@pytest.mark.parametrize("auth", [None, ("lab", "wrong")])
def test_a_refused_login_is_named_and_changes_nothing(fake_registry, auth):
    url, manifests = fake_registry
    with pytest.raises(RegistryError, match="HTTP 401: the registry wants a login"):
        Registry(url, "mlops-lab/serving", auth=auth).retag("sha1", "production")
    assert "production" not in manifests
