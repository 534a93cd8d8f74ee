"""A recorded lab for the exercise checks: the answers a real lab gave, served by a fake
MLflow REST API (for the scripts students write) and a fake `Lab` (for the checks).

Fakes are for these unit tests only; the round trip against a real lab is in
tests/e2e/test_exercises.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from labctl.book import runner
from labctl.book.view import Http, Lab, Unanswered

ROOT = Path(__file__).resolve().parents[2]

GATE_REPORT = {
    "model": "lab-classifier",
    "version": "2",
    "verdict": "passed",
    "checked_at": "2026-11-26T02:00:00+00:00",
    "checks": [
        {"name": "accuracy", "value": 0.974, "threshold": ">= 0.85", "passed": True},
        {"name": "p99_latency_ms", "value": 0.412, "threshold": "<= 50.0", "passed": True},
        {"name": "regression_accuracy", "value": 0.0, "threshold": "<= 0.02", "passed": True},
    ],
    "measured": {"accuracy": 0.974358},
    "production": {"version": "1", "measured": {"accuracy": 0.974358}},
}


def recorded_lab() -> dict:
    """What a lab with v1 in production and v2 as a gated candidate answers."""
    return {
        "aliases": {"candidate": "2", "staging": "1", "production": "1"},
        "versions": {
            "1": {
                "version": "1",
                "run_id": "run1",
                "tags": {
                    "git_sha": "abc123abc123",
                    "gate.measured.accuracy": "0.974358",
                    "gate.checked_at": "2026-11-26T01:00:00+00:00",
                },
            },
            "2": {
                "version": "2",
                "run_id": "run2",
                "tags": {
                    "git_sha": "abc123abc123",
                    "gate.measured.accuracy": "0.974358",
                    "gate.checked_at": GATE_REPORT["checked_at"],
                },
            },
        },
        "runs": {
            "run1": {
                "metrics": {"accuracy": 0.921, "precision_macro": 0.93},
                "params": {"best_family": "logreg"},
            },
            "run2": {
                "metrics": {"accuracy": 0.947, "precision_macro": 0.95},
                "params": {"best_family": "logreg"},
            },
        },
        "children": {"run1": 5, "run2": 5},
        "artifacts": {
            ("run1", "gate/gate_report.json"): {
                **GATE_REPORT,
                "version": "1",
                "measured": {"accuracy": 0.974358},
            },
            ("run2", "gate/gate_report.json"): GATE_REPORT,
        },
        "served": {"staging": "1", "production": "1"},
        "digests": {"production": "sha256:aaa", "abc123abc123": "sha256:aaa"},
        "sizes": {"serving": 300, "training": 900},
        "answers": {},
        "local_reports": {"gate/gate_report.json": GATE_REPORT},
        "env_tracked": False,
    }


class _MlflowHandler(BaseHTTPRequestHandler):
    state: dict = {}

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        st = self.state
        missing = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "not found"}
        if url.path.endswith("/registered-models/alias"):
            version = st["aliases"].get(q.get("alias"))
            if version is None:
                return self._send(404, missing)
            return self._send(200, {"model_version": st["versions"][version]})
        if url.path.endswith("/model-versions/get"):
            mv = st["versions"].get(q.get("version"))
            return self._send(200, {"model_version": mv}) if mv else self._send(404, missing)
        if url.path.endswith("/runs/get"):
            run = st["runs"].get(q.get("run_id"))
            if run is None:
                return self._send(404, missing)
            metrics = [{"key": k, "value": v} for k, v in run["metrics"].items()]
            return self._send(200, {"run": {"info": {}, "data": {"metrics": metrics}}})
        return self._send(404, missing)


@pytest.fixture
def mlflow_api():
    """A fake MLflow REST API serving a recorded lab, for the scripts students write."""
    state = recorded_lab()
    handler = type("Handler", (_MlflowHandler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


class FakeLab(Lab):
    """A Lab whose reads come from a recorded lab instead of HTTP."""

    settle_s = 0.0  # a recorded server does not move while it is asked

    def __init__(self, tmp_path: Path, state: dict, mode: str = "local", mlflow_url: str = ""):
        self.state = state
        self.mode = mode
        self.root = tmp_path
        self.model_name = "lab-classifier"
        self.experiment = "mlops-lab"
        self.mlflow_url = mlflow_url or "http://127.0.0.1:9"
        self.s = SimpleNamespace(
            auth=False,
            get=lambda key, default="": {"MLFLOW_ADMIN_PASSWORD": "x" * 32}.get(key, default),
            lab_dir=tmp_path / ".lab",
        )
        shutil.copytree(ROOT / "exercises", tmp_path / "exercises", dirs_exist_ok=True)
        (tmp_path / "answers.toml").write_text("")

    def ensure_up(self):
        pass

    def aliases(self):
        return dict(self.state["aliases"])

    def version(self, version):
        return json.loads(json.dumps(self.state["versions"][version]))

    def versions(self):
        found = [json.loads(json.dumps(v)) for v in self.state["versions"].values()]
        return sorted(found, key=lambda v: int(v["version"]), reverse=True)

    def drift_checks(self):
        return sorted(self.state.get("drift_checks", []), key=lambda r: r["start"])

    def run(self, run_id):
        r = self.state["runs"][run_id]
        return {
            "info": {"experiment_id": "1"},
            "metrics": r["metrics"],
            "params": r["params"],
            "tags": {},
        }

    def child_runs(self, run_id):
        return [
            {"run_id": f"c{i}", "metrics": {}, "params": {}}
            for i in range(self.state["children"][run_id])
        ]

    def artifact(self, run_id, path):
        try:
            return json.dumps(self.state["artifacts"][(run_id, path)]).encode()
        except KeyError:
            raise Unanswered(f"no artifact {path}") from None

    def served(self, alias):
        return {
            "version": self.state["served"][alias],
            "run_id": self.state["versions"][self.state["served"][alias]]["run_id"],
        }

    def predict(self, alias, rows):
        return Http(
            200,
            json.dumps({"predictions": [0], "model_version": self.state["served"][alias]}).encode(),
        )

    def digest(self, repository, tag):
        return self.state["digests"].get(tag)

    def image_size(self, repository, tag):
        return self.state["sizes"].get(repository)

    def git(self, *args):
        if args[:2] == ("ls-files", "--error-unmatch"):
            return subprocess.CompletedProcess(args, 0 if self.state["env_tracked"] else 1, "", "")
        return subprocess.CompletedProcess(args, 0, "deadbeef\n", "")

    def report(self, relative):
        return self.state["local_reports"].get(relative)

    def write_answers(self, text: str) -> None:
        (self.root / "answers.toml").write_text(text)


@pytest.fixture
def fake_lab(tmp_path):
    def _make(mode="local", mlflow_url="", state=None):
        return FakeLab(tmp_path, state or recorded_lab(), mode, mlflow_url)

    return _make


class GitLab(FakeLab):
    """A recorded lab whose working tree is a real git repository (for the criteria that
    read commits): a copy of the given product files, committed and tagged workshop-start."""

    def __init__(self, tmp_path: Path, state: dict, mode: str, files: list[str]):
        super().__init__(tmp_path, state, mode)
        for rel in files:
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / rel, tmp_path / rel)
        (tmp_path / ".gitignore").write_text("answers.toml\n.lab/\n")
        self.run_git("init", "--quiet", "--initial-branch=main")
        self.commit_all("workshop start")
        self.run_git("tag", "workshop-start")

    def run_git(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["git", "-C", str(self.root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            capture_output=True,
            text=True,
            check=True,
        )

    def git(self, *args):
        return subprocess.run(
            ["git", "-C", str(self.root), *args], capture_output=True, text=True, check=False
        )

    def commit_all(self, message: str) -> str:
        self.run_git("add", "-A")
        self.run_git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.run_git("rev-parse", "--short=12", "HEAD").stdout.strip()


@pytest.fixture
def git_lab(tmp_path):
    """A recorded lab in a real git repository holding copies of `files`."""

    def _make(files, mode="local", state=None):
        return GitLab(tmp_path, state or recorded_lab(), mode, list(files))

    return _make


def results(lab, number):
    ex = runner.find(lab.root, number)
    return list(ex.module("check").criteria(lab))


def failed(lab, number) -> list[str]:
    return [c.text for c in results(lab, number) if c.ok is False]
