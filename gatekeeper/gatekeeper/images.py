"""Retag images in an OCI/Docker registry through its HTTP API (no Docker socket needed).

Promotion copies the manifest of `serving:<git sha>` to `serving:<alias>`: the registry
stores the same image under a second name, exactly as `docker tag` + `docker push` would.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)


class RegistryError(RuntimeError):
    """The registry refused, or could not be reached; the message says which image."""


@dataclass(frozen=True)
class Manifest:
    body: bytes
    media_type: str
    digest: str


class Registry:
    def __init__(
        self,
        base_url: str,
        repository: str,
        timeout: float = 10.0,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.repository = repository
        self.timeout = timeout
        self.auth = auth  # basic auth (an htpasswd registry); None: anonymous

    def _url(self, reference: str) -> str:
        return f"{self.base_url}/v2/{self.repository}/manifests/{reference}"

    def _login_refused(self, method: str, tag: str) -> str:
        who = f"user {self.auth[0]!r}" if self.auth else "no login"
        return (
            f"{method} {self.repository}:{tag} -> HTTP 401: the registry wants a login and "
            f"refused {who} (GATE_REGISTRY_USERNAME, GATE_REGISTRY_PASSWORD)"
        )

    def get(self, tag: str) -> Manifest | None:
        """The manifest behind a tag, or None when the tag does not exist."""
        try:
            r = requests.get(
                self._url(tag),
                headers={"Accept": MANIFEST_TYPES},
                timeout=self.timeout,
                auth=self.auth,
            )
        except requests.RequestException as exc:
            raise RegistryError(f"registry {self.base_url} unreachable: {exc}") from exc
        if r.status_code == 404:
            return None
        if r.status_code == 401:
            raise RegistryError(self._login_refused("GET", tag))
        if r.status_code != 200:
            raise RegistryError(f"GET {self.repository}:{tag} -> HTTP {r.status_code}")
        media_type = r.headers.get("Content-Type", "").split(";")[0].strip()
        return Manifest(r.content, media_type, r.headers.get("Docker-Content-Digest", ""))

    def put(self, tag: str, manifest: Manifest) -> None:
        try:
            r = requests.put(
                self._url(tag),
                data=manifest.body,
                headers={"Content-Type": manifest.media_type},
                timeout=self.timeout,
                auth=self.auth,
            )
        except requests.RequestException as exc:
            raise RegistryError(f"registry {self.base_url} unreachable: {exc}") from exc
        if r.status_code == 401:
            raise RegistryError(self._login_refused("PUT", tag))
        if r.status_code not in (200, 201):
            raise RegistryError(
                f"PUT {self.repository}:{tag} -> HTTP {r.status_code}: {r.text[:200]}"
            )

    def retag(self, source: str, target: str) -> Manifest | None:
        """Point `target` at the image `source` names; return what `target` was before."""
        manifest = self.get(source)
        if manifest is None:
            raise RegistryError(
                f"image {self.repository}:{source} is not in the registry "
                "(build and push it first: make build)"
            )
        previous = self.get(target)
        self.put(target, manifest)
        return previous

    def digest(self, tag: str) -> str | None:
        manifest = self.get(tag)
        return manifest.digest if manifest else None
