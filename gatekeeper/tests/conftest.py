"""Unit-test fakes for the gatekeeper: an in-memory registry client and an image registry.

Fakes are for unit tests only; the integration tests use a real MLflow server.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE


class FakeClient:
    """Just enough of MlflowClient for lifecycle.promote/rollback/status."""

    def __init__(self, versions: dict[str, dict[str, str]], aliases: dict[str, str]):
        self.versions = versions
        self.aliases = dict(aliases)
        self.fail_alias = False

    def get_model_version_by_alias(self, name, alias):
        if alias not in self.aliases:
            raise MlflowException("alias not found", error_code=INVALID_PARAMETER_VALUE)
        return self.get_model_version(name, self.aliases[alias])

    def get_model_version(self, name, version):
        return SimpleNamespace(version=version, tags=self.versions[version], run_id=f"run{version}")

    def set_registered_model_alias(self, name, alias, version):
        if self.fail_alias:
            raise MlflowException("registry down")
        self.aliases[alias] = version

    def set_model_version_tag(self, name, version, key, value):
        self.versions[version][key] = value

    def get_run(self, run_id):
        return SimpleNamespace(data=SimpleNamespace(metrics={"accuracy": 0.9, "f1_macro": 0.9}))


@pytest.fixture
def fake_client():
    return FakeClient


class _RegistryHandler(BaseHTTPRequestHandler):
    manifests: dict[str, tuple[bytes, str]] = {}
    login: str = ""  # "user:password" when the registry wants basic auth (htpasswd)

    def log_message(self, *args):  # keep test output clean
        pass

    def _refused(self) -> bool:
        if not self.login:
            return False
        expected = "Basic " + base64.b64encode(self.login.encode()).decode()
        if self.headers.get("Authorization") == expected:
            return False
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="registry"')
        self.end_headers()
        return True

    def _tag(self) -> str:
        return self.path.rsplit("/manifests/", 1)[1]

    def do_GET(self):
        if self._refused():
            return
        item = self.manifests.get(self._tag())
        if item is None:
            self.send_response(404)
            self.end_headers()
            return
        body, media_type = item
        self.send_response(200)
        self.send_header("Content-Type", media_type)
        self.send_header("Docker-Content-Digest", "sha256:" + str(abs(hash(body))))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        if self._refused():
            return
        length = int(self.headers["Content-Length"])
        self.manifests[self._tag()] = (self.rfile.read(length), self.headers["Content-Type"])
        self.send_response(201)
        self.end_headers()


@pytest.fixture
def fake_registry(request):
    """A tiny HTTP server speaking the manifest part of the registry API.

    Parametrize indirectly with "user:password" for a registry that wants a login.
    """
    login = getattr(request, "param", "")
    handler = type("H", (_RegistryHandler,), {"manifests": {}, "login": login})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    media = "application/vnd.oci.image.index.v1+json"
    handler.manifests["sha1"] = (json.dumps({"image": "one"}).encode(), media)
    handler.manifests["sha2"] = (json.dumps({"image": "two"}).encode(), media)
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.manifests
    server.shutdown()
    server.server_close()
