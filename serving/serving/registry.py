"""The two registry reads a model server makes, over MLflow's REST API (standard library).

A worker asks which version its alias names every poll interval; MLflow's Python client
would cost each worker the import of MLflow (and of what it imports) for two GET
requests (docs/serving.md, "Memory"). Credentials come from the variables MLflow's client reads:
MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic), or MLFLOW_TRACKING_TOKEN.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field


class RegistryError(RuntimeError):
    """MLflow answered with an error; `error_code` is MLflow's (RESOURCE_DOES_NOT_EXIST...)."""

    def __init__(self, message: str, error_code: str = "", status: int = 0):
        super().__init__(message)
        self.error_code = error_code
        self.status = status


class RegistryUnreachable(ConnectionError):
    """No answer from MLflow (refused, timed out, no such host)."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    run_id: str = ""
    source: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


def _version(body: dict) -> ModelVersion:
    mv = body.get("model_version")
    if not isinstance(mv, dict) or not str(mv.get("version", "")).isdigit():
        raise RegistryError(f"MLflow answered without a model version: {str(body)[:200]}")
    tags = mv.get("tags") or []
    return ModelVersion(
        name=str(mv.get("name", "")),
        version=str(mv["version"]),
        run_id=str(mv.get("run_id") or ""),
        source=str(mv.get("source") or ""),
        tags={str(t.get("key")): str(t.get("value", "")) for t in tags if isinstance(t, dict)},
        aliases=tuple(str(a) for a in mv.get("aliases") or ()),
    )


class RestRegistry:
    def __init__(
        self, tracking_uri: str, timeout_s: float = 10.0, env: Mapping[str, str] | None = None
    ):
        env = os.environ if env is None else env
        if not tracking_uri.startswith(("http://", "https://")):
            raise ValueError(f"the tracking URI must be http(s), got {tracking_uri!r}")
        self.base = tracking_uri.rstrip("/")
        self.timeout_s = timeout_s
        self.headers = {"Accept": "application/json"}
        user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
        if user and password:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        elif env.get("MLFLOW_TRACKING_TOKEN"):
            self.headers["Authorization"] = f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"

    def _get(self, path: str, **params: str) -> dict:
        url = f"{self.base}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers=self.headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as r:  # noqa: S310
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            try:
                raw = exc.read()
            except (OSError, http.client.HTTPException):
                raw = b""
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            if not isinstance(body, dict):
                body = {}
            message = body.get("message") or raw[:200].decode("utf-8", "replace")
            code = str(body.get("error_code") or "")
            raise RegistryError(
                f"MLflow answered HTTP {exc.code} ({code or 'no error code'}): {message}",
                code,
                exc.code,
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # refused, reset, timed out, no such host, an answer cut short
            reason = getattr(exc, "reason", exc)
            raise RegistryUnreachable(
                f"ConnectionError: MLflow at {self.base} did not answer ({reason})"
            ) from None
        except ValueError as exc:
            raise RegistryError(f"MLflow answered something that is not JSON ({exc})") from None

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return _version(self._get("registered-models/alias", name=name, alias=alias))

    def get_model_version(self, name: str, version: str) -> ModelVersion:
        return _version(self._get("model-versions/get", name=name, version=str(version)))
