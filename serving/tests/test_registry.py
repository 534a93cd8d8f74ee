"""The server's two registry reads over MLflow's REST API, against a small HTTP server."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from serving.model import _alias_missing, _is_connection_error
from serving.registry import RegistryError, RegistryUnreachable, RestRegistry

VERSION = {
    "name": "m",
    "version": "7",
    "run_id": "r1",
    "source": "models:/m-1",
    "tags": [{"key": "git_sha", "value": "abc"}, {"key": "gate.model_sha256", "value": "f0"}],
    "aliases": ["staging"],
}


class Handler(BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        Handler.seen.append((url.path, q, self.headers.get("Authorization")))
        by_alias = url.path.endswith("/registered-models/alias") and q.get("alias") == "staging"
        pinned = url.path.endswith("/model-versions/get") and q.get("version") == "7"
        if by_alias or pinned:
            self._answer(200, {"model_version": VERSION})
        elif url.path.endswith("/registered-models/alias"):
            self._answer(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no alias nope"})
        else:
            self._answer(401, "not json")

    def _answer(self, status, body):
        raw = json.dumps(body).encode() if isinstance(body, dict) else body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture
def registry_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Handler.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_alias_and_a_pinned_version_are_read_with_their_tags(registry_url):
    r = RestRegistry(registry_url, env={})
    mv = r.get_model_version_by_alias("m", "staging")
    assert (mv.version, mv.run_id, mv.tags["git_sha"]) == ("7", "r1", "abc")
    assert r.get_model_version("m", "7").tags["gate.model_sha256"] == "f0"
    assert Handler.seen[0][0] == "/api/2.0/mlflow/registered-models/alias"
    assert Handler.seen[0][1] == {"name": "m", "alias": "staging"}


def test_credentials_are_sent_as_mlflow_s_client_sends_them(registry_url):
    env = {"MLFLOW_TRACKING_USERNAME": "lab-reader", "MLFLOW_TRACKING_PASSWORD": "pw"}
    RestRegistry(registry_url, env=env).get_model_version_by_alias("m", "staging")
    RestRegistry(registry_url, env={"MLFLOW_TRACKING_TOKEN": "t"}).get_model_version("m", "7")
    assert Handler.seen[0][2] == "Basic bGFiLXJlYWRlcjpwdw=="
    assert Handler.seen[1][2] == "Bearer t"


def test_a_missing_alias_keeps_mlflow_s_error_code(registry_url):
    with pytest.raises(RegistryError, match=r"HTTP 404 .*no alias nope") as exc:
        RestRegistry(registry_url, env={}).get_model_version_by_alias("m", "nope")
    assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert _alias_missing(exc.value) and not _is_connection_error(exc.value)


def test_an_error_without_json_still_says_what_came_back(registry_url):
    with pytest.raises(RegistryError, match=r"HTTP 401 .*not json"):
        RestRegistry(registry_url, env={})._get("experiments/get")


def test_a_registry_that_does_not_answer_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once it is closed
    with pytest.raises(RegistryUnreachable) as exc:
        RestRegistry(f"http://127.0.0.1:{port}", env={}).get_model_version_by_alias("m", "a")
    assert _is_connection_error(exc.value)


def test_mlflow_s_missing_alias_answer_counts_as_a_missing_alias():
    exc = RegistryError(
        "MLflow answered HTTP 400 (INVALID_PARAMETER_VALUE): "
        "Registered model alias staging not found.",
        "INVALID_PARAMETER_VALUE",
        400,
    )
    assert _alias_missing(exc)
    assert not _alias_missing(RegistryError("bad name", "INVALID_PARAMETER_VALUE", 400))
