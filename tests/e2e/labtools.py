"""Helpers for the end-to-end suite: the lab's URLs, its make targets, its aliases."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Lab:
    mode: str
    host: str
    mlflow: str
    staging: str
    production: str
    registry: str
    s3: str
    model_name: str

    def make(self, *args: str, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
        """Run a make target the way a student would; returns the finished process."""
        return subprocess.run(
            ["make", "--no-print-directory", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.mlflow)

    def aliases(self) -> dict[str, str]:
        return dict(self.client().get_registered_model(self.model_name).aliases)


def classroom() -> bool:
    """The lab runs with logins (LAB_AUTH=1, resolved by make for the tests)."""
    return os.environ.get("LAB_AUTH") == "1"


def mlflow_auth() -> tuple[str, str] | None:
    """The login the lab's jobs use for MLflow (classroom mode), as MLflow's client reads it."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    return (user, os.environ.get("MLFLOW_TRACKING_PASSWORD", "")) if user else None


def registry_auth() -> tuple[str, str] | None:
    """The registry's login in classroom mode (user `lab`), else None."""
    return ("lab", os.environ.get("REGISTRY_PASSWORD", "")) if classroom() else None


def served_version(url: str) -> str | None:
    try:
        return requests.get(f"{url}/model", timeout=5).json().get("version")
    except (requests.RequestException, ValueError):
        return None


def wait_version(url: str, version: str, timeout: float = 120) -> None:
    """Servers poll the registry: wait until `url` serves `version`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served_version(url) == version:
            return
        time.sleep(1)
    raise AssertionError(f"{url} still serves {served_version(url)}, expected {version}")


MANIFEST_ACCEPT = (
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.manifest.v1+json"
)


def run_steps(lab: Lab, *steps: tuple[str, ...]) -> None:
    """make targets in order, each of which must succeed."""
    for args in steps:
        r = lab.make(*args)
        assert r.returncode == 0, f"make {' '.join(args)}:\n{r.stdout[-3000:]}{r.stderr[-3000:]}"


def to_staging(lab: Lab, *train_args: str) -> None:
    """A new candidate trained, gated, promoted to staging and load-tested there."""
    run_steps(
        lab,
        ("train", *train_args),
        ("gate",),
        ("promote", "TO=staging"),
        ("load", "LOCUST_RUN_TIME=5s"),
    )


def promotable_to_production(lab: Lab) -> bool:
    """Whether `make promote TO=production` would move @staging's version on its own:
    gated, load-tested, and not already production."""
    aliases = lab.aliases()
    staging = aliases.get("staging")
    if staging is None or staging == aliases.get("production"):
        return False
    tags = lab.client().get_model_version(lab.model_name, staging).tags
    return tags.get("gate.verdict") == "passed" and tags.get("load.verdict") == "passed"


def promote_new_candidate(lab: Lab) -> str:
    """Train a candidate and take it through gate, staging and production with the make
    targets a student uses; returns its version once the production server serves it."""
    to_staging(lab)
    run_steps(lab, ("promote", "TO=production"))
    version = lab.aliases()["production"]
    wait_version(lab.production, version)
    return version


def image_digest(registry: str, tag: str) -> str | None:
    """The digest of `mlops-lab/serving:<tag>` in the lab's registry, None if absent."""
    r = requests.head(
        f"{registry}/v2/mlops-lab/serving/manifests/{tag}",
        timeout=10,
        auth=registry_auth(),
        headers={"Accept": MANIFEST_ACCEPT},
    )
    return r.headers.get("Docker-Content-Digest") if r.status_code == 200 else None
