"""End-to-end tests against a running lab (`make up`), in either mode.

They talk HTTP to the URLs the lab prints and drive it through the same make targets a
student uses. Checks that only make sense with containers skip in local mode.

The tests share one lab and run in any order (the exercise round trips first), or alone
(-k): a test that needs the lab in some state asks for a fixture below, which waits for
that state or creates it with the same make targets.
"""

from __future__ import annotations

import os

import pytest
import requests

from tests.e2e.labtools import Lab, promote_new_candidate, wait_version


def pytest_collection_modifyitems(items):
    """The exercise round trips run first: each needs a lab on which its exercise was not
    done yet, and other tests do the work some exercises ask for (the closed loop's
    retraining, rollbacks)."""
    items.sort(key=lambda item: item.path.name != "test_exercises.py")  # stable sort


@pytest.fixture(scope="session")
def lab() -> Lab:
    def client(bind: str) -> str:
        return "127.0.0.1" if bind in ("0.0.0.0", "::") else bind

    env = os.environ.get
    host = client(env("LAB_BIND", "127.0.0.1"))  # the model servers
    admin = client(env("LAB_ADMIN_BIND", "127.0.0.1"))  # MLflow and the registry
    lab = Lab(
        mode=env("LAB_ACTIVE_MODE", "docker"),
        host=host,
        mlflow=f"http://{admin}:{env('MLFLOW_PORT', '5050')}",
        staging=f"http://{host}:{env('STAGING_PORT', '8081')}",
        production=f"http://{host}:{env('PRODUCTION_PORT', '8082')}",
        registry=f"http://{admin}:{env('REGISTRY_PORT', '5100')}",
        s3=f"http://127.0.0.1:{env('S3_PORT', '9000')}",  # the S3 store stays on loopback
        model_name=env("MLFLOW_MODEL_NAME", "lab-classifier"),
    )
    try:
        requests.get(f"{lab.mlflow}/health", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        pytest.exit(f"no lab answers at {lab.mlflow} ({exc}): run make up first", returncode=2)
    return lab


@pytest.fixture
def docker_only(lab):
    if lab.mode != "docker":
        pytest.skip(
            "container-only check (registry tags, S3 store, container users): "
            f"the lab runs in {lab.mode} mode"
        )


@pytest.fixture
def settled(lab) -> dict[str, str]:
    """The aliases, once each model server serves the version its alias points to.

    The servers poll the registry, so right after another test moved an alias they may
    still serve the version before it.
    """
    aliases = lab.aliases()
    for alias in ("staging", "production"):
        wait_version(getattr(lab, alias), aliases[alias])
    return aliases


def _previous_production(lab, version: str) -> str:
    tags = lab.client().get_model_version(lab.model_name, version).tags
    return tags.get("promoted.production.previous", "none")


@pytest.fixture
def production_with_previous(lab, settled) -> tuple[str, str]:
    """(current, previous): a production version that replaced an earlier one, served.

    Right after the bootstrap or a rollback, production has nothing to roll back to; then
    a new candidate goes through the line first, as a student would do.
    """
    current = settled["production"]
    if _previous_production(lab, current) == "none":
        current = promote_new_candidate(lab)
    previous = _previous_production(lab, current)
    assert previous != "none", f"version {current} was promoted but records no previous one"
    return current, previous
