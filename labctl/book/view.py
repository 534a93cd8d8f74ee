"""A read-only view of a running lab, for the self-checks (standard library only)."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from labctl.settings import Settings

MANIFEST_ACCEPT = (
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.manifest.v1+json"
)


class LabDown(RuntimeError):
    """The lab does not answer: the check cannot say anything (exit 2)."""


class Unanswered(RuntimeError):
    """One endpoint did not answer as expected; the criterion that asked fails."""


@dataclass
class Http:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self):
        return json.loads(self.body)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Lab:
    """What a check may look at. Every method only reads."""

    # How long a server may take to follow its alias: a poll interval (5 s) and a load.
    settle_s = 15.0

    def __init__(self, settings: Settings, mode: str):
        self.s = settings
        self.mode = mode
        self.root = settings.root
        self.model_name = settings.get("MLFLOW_MODEL_NAME", "lab-classifier")
        self.experiment = settings.get("MLFLOW_EXPERIMENT_NAME", "mlops-lab")
        self.mlflow_url = f"http://{settings.admin_host}:{settings.get('MLFLOW_PORT')}"
        self.registry_url = f"http://{settings.admin_host}:{settings.get('REGISTRY_PORT')}"
        self.urls = {
            alias: f"http://{settings.client_host}:{settings.get(var)}"
            for alias, var in (("staging", "STAGING_PORT"), ("production", "PRODUCTION_PORT"))
        }

    @property
    def docker(self) -> bool:
        return self.mode == "docker"

    # ------------------------------------------------------------------ HTTP
    def http(
        self,
        url: str,
        *,
        method: str = "GET",
        body: dict | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> Http:
        data = json.dumps(body).encode() if body is not None else None
        # The lab's own http:// addresses, built from its settings.
        request = urllib.request.Request(  # noqa: S310
            url, data=data, method=method, headers=headers or {}
        )
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:  # noqa: S310
                return Http(r.status, r.read(), dict(r.headers))
        except urllib.error.HTTPError as exc:
            return Http(exc.code, exc.read(), dict(exc.headers))
        except OSError as exc:
            raise Unanswered(f"{url} does not answer ({exc})") from None

    def mlflow_headers(self) -> dict[str, str]:
        if not self.s.auth:
            return {}
        return {"Authorization": _basic("admin", self.s.get("MLFLOW_ADMIN_PASSWORD"))}

    def mlflow(self, path: str, method: str = "GET", **params) -> dict:
        """A call to MLflow's REST API (`/api/2.0/mlflow/...`); raises Unanswered on an error."""
        url = f"{self.mlflow_url}/api/2.0/mlflow/{path}"
        body = None
        if method == "GET" and params:
            url += "?" + urllib.parse.urlencode(params)
        elif params:
            body = params
        r = self.http(url, method=method, body=body, headers=self.mlflow_headers())
        if r.status != 200:
            raise Unanswered(f"MLflow {path}: HTTP {r.status} {r.body[:200]!r}")
        return r.json()

    def ensure_up(self) -> None:
        try:
            r = self.http(f"{self.mlflow_url}/health", timeout=5)
        except Unanswered:
            r = None
        if r is None or r.status != 200:
            raise LabDown(f"MLflow does not answer at {self.mlflow_url}: run make up first")

    # --------------------------------------------------------------- registry
    def aliases(self) -> dict[str, str]:
        model = self.mlflow("registered-models/get", name=self.model_name)["registered_model"]
        return {a["alias"]: str(a["version"]) for a in model.get("aliases", [])}

    def version(self, version: str) -> dict:
        mv = self.mlflow("model-versions/get", name=self.model_name, version=version)
        mv = mv["model_version"]
        mv["tags"] = {t["key"]: t["value"] for t in mv.get("tags", [])}
        return mv

    def versions(self) -> list[dict]:
        """Every version of the model, newest first, each with its tags as a dict."""
        found = self.mlflow(
            "model-versions/search", filter=f"name='{self.model_name}'", max_results=1000
        )
        out = []
        for mv in found.get("model_versions", []):
            mv["tags"] = {t["key"]: t["value"] for t in mv.get("tags", [])}
            out.append(mv)
        return sorted(out, key=lambda mv: int(mv["version"]), reverse=True)

    def drift_checks(self, experiment: str = "lab-monitoring") -> list[dict]:
        """The drift checks of this lab's model (runs of the monitoring experiment), oldest
        first: each its start (ms since the epoch) and tags (version, verdict, ...)."""
        try:
            found = self.mlflow("experiments/get-by-name", experiment_name=experiment)
        except Unanswered as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc):  # no check has run on this lab yet
                return []
            raise
        runs = self.mlflow(
            "runs/search",
            method="POST",
            experiment_ids=[found["experiment"]["experiment_id"]],
            filter=f"tags.model = '{self.model_name}'",
            max_results=1000,
        ).get("runs", [])
        out = []
        for run in runs:
            tags = {t["key"]: t["value"] for t in run.get("data", {}).get("tags", [])}
            out.append({"start": int(run["info"]["start_time"]), **tags})
        return sorted(out, key=lambda r: r["start"])

    def run(self, run_id: str) -> dict:
        run = self.mlflow("runs/get", run_id=run_id)["run"]
        data = run.get("data", {})
        return {
            "info": run["info"],
            "metrics": {m["key"]: m["value"] for m in data.get("metrics", [])},
            "params": {p["key"]: p["value"] for p in data.get("params", [])},
            "tags": {t["key"]: t["value"] for t in data.get("tags", [])},
        }

    def child_runs(self, run_id: str) -> list[dict]:
        experiment = self.run(run_id)["info"]["experiment_id"]
        found = self.mlflow(
            "runs/search",
            method="POST",
            experiment_ids=[experiment],
            filter=f"tags.mlflow.parentRunId = '{run_id}'",
            max_results=1000,
        )
        return [
            {
                "run_id": r["info"]["run_id"],
                "metrics": {m["key"]: m["value"] for m in r.get("data", {}).get("metrics", [])},
                "params": {p["key"]: p["value"] for p in r.get("data", {}).get("params", [])},
            }
            for r in found.get("runs", [])
        ]

    def artifact(self, run_id: str, path: str) -> bytes:
        """A run artifact through MLflow's artifact proxy."""
        uri = self.run(run_id)["info"]["artifact_uri"]  # mlflow-artifacts:/<exp>/<run>/artifacts
        if not uri.startswith("mlflow-artifacts:"):
            raise Unanswered(f"run {run_id} keeps its artifacts outside MLflow ({uri})")
        tail = uri.split(":", 1)[1].lstrip("/")
        url = f"{self.mlflow_url}/api/2.0/mlflow-artifacts/artifacts/{tail}/{path}"
        r = self.http(url, headers=self.mlflow_headers())
        if r.status != 200:
            raise Unanswered(f"artifact {path} of run {run_id}: HTTP {r.status}")
        return r.body

    # ----------------------------------------------------------- model servers
    def served(self, alias: str) -> dict:
        r = self.http(f"{self.urls[alias]}/model")
        if r.status != 200:
            raise Unanswered(f"the {alias} server answers /model with HTTP {r.status}")
        return r.json()

    def served_settled(self, alias: str, version: str) -> dict:
        """The server's /model answer once it serves `version`, or its last answer when it
        still does not after `settle_s`: each worker follows its alias on its own poll
        clock, so one may answer the previous version for a poll interval after another
        has switched."""
        deadline = time.monotonic() + self.settle_s
        while True:
            served = self.served(alias)
            if served.get("version") == version or time.monotonic() >= deadline:
                return served
            time.sleep(0.5)

    def predict(self, alias: str, rows: list) -> Http:
        return self.http(f"{self.urls[alias]}/predict", method="POST", body={"instances": rows})

    # ---------------------------------------------------------- image registry
    def digest(self, repository: str, tag: str) -> str | None:
        headers = {"Accept": MANIFEST_ACCEPT}
        if self.s.auth:
            headers["Authorization"] = _basic("lab", self.s.get("REGISTRY_PASSWORD"))
        url = f"{self.registry_url}/v2/mlops-lab/{repository}/manifests/{tag}"
        r = self.http(url, method="HEAD", headers=headers)
        if r.status != 200:
            return None
        return {k.lower(): v for k, v in r.headers.items()}.get("docker-content-digest")

    def image_size(self, repository: str, tag: str) -> int | None:
        from labctl.images import local_size

        return local_size(f"{self.s.get('LAB_REGISTRY')}/mlops-lab/{repository}:{tag}")

    # -------------------------------------------------------------- files, git
    def git(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["git", "-C", str(self.root), *args], capture_output=True, text=True, check=False
        )

    def start_commit(self) -> str:
        """The commit the workshop starts from: the tag `workshop-start` where the instructor
        set it, else the commit the lab's first model version was trained from."""
        tagged = self.git("rev-parse", "--verify", "--quiet", "workshop-start^{commit}")
        if tagged.returncode == 0:
            return tagged.stdout.strip()
        sha = self.version("1")["tags"].get("git_sha", "")
        if not self.clean_commit(sha):
            raise Unanswered(
                "no tag workshop-start and version 1 has no clean git_sha: "
                "git tag workshop-start <the commit the class started from>"
            )
        return sha

    def clean_commit(self, sha: str) -> bool:
        """A sha that names a commit of this repository, with nothing uncommitted in it."""
        if not sha or "-dirty" in sha or sha == "dev":
            return False
        return self.git("cat-file", "-e", f"{sha}^{{commit}}").returncode == 0

    def changed_since_start(self, sha: str, *paths: str) -> list[str]:
        """The files under `paths` that differ between the workshop's start and `sha`."""
        diff = self.git("diff", "--name-only", self.start_commit(), sha, "--", *paths)
        return diff.stdout.split()

    def show(self, sha: str, path: str) -> str:
        """A file as it was at a commit ('' when it did not exist there)."""
        r = self.git("show", f"{sha}:{path}")
        return r.stdout if r.returncode == 0 else ""

    def report(self, relative: str) -> dict | None:
        path = self.root / "reports" / relative
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def answers(self, section: str | None = None) -> dict:
        """What the student typed in answers.toml (the whole file, or one [section])."""
        path = self.root / "answers.toml"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise Unanswered(f"answers.toml cannot be read: {exc}") from None
        if section is None:
            return data
        value = data.get(section, {})
        return value if isinstance(value, dict) else {}

    def exercise_dir(self, number: int) -> Path:
        from labctl.book.runner import find

        return find(self.root, number).folder
