"""Exercise 12's check against a recorded lab in a real git repository, with small real
model servers: staging answering the model's own probabilities from a clean commit that
changed the server passes; a fresh lab and each shortcut fail.

The lab's server code is stood in for by a tiny Flask app and its test, so the check's
runs of the serving tests (and of the mutant that drops the probabilities) stay fast; the
model's own predict_proba, which the check asks a Python of the lab's venv for, is a
stand-in script that answers for the toy model the servers serve.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labctl.book.view import Lab
from tests.exercises.conftest import ROOT, GitLab, failed, recorded_lab, results

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
MB = 1_000_000


def toy_probabilities(row):
    """The served toy model: a softmax over the first three features."""
    top = max(row[:3])
    e = [math.exp(x - top) for x in row[:3]]
    return [x / sum(e) for x in e]


class Handler(BaseHTTPRequestHandler):
    """A model server with the lab's /predict contract; `mode` says what it gets wrong."""

    mode: dict = {}

    def log_message(self, *args):
        pass

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status, message):
        self._send(status, {"error": message, "status": status})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Type") != "application/json":
            return self._error(415, "Content-Type must be application/json")
        if len(raw) > MB:
            return self._error(413, "too large")
        if self.mode.get("unvalidated") and b"NaN" in raw:
            return self._error(500, "internal error: ValueError")

        def refuse(_):
            raise ValueError("not finite")

        try:
            rows = json.loads(raw, parse_constant=refuse)["instances"]
        except ValueError:
            return self._error(422 if b"NaN" in raw else 400, "body is not valid JSON")
        if not rows:
            return self._error(400, "no rows")
        table = []
        for row in rows:
            if isinstance(row, dict):
                if set(row) != set(FEATURES):
                    return self._error(422, "missing features")
                row = [row[f] for f in FEATURES]
            if len(row) != len(FEATURES) or not all(isinstance(x, int | float) for x in row):
                return self._error(422, "must be a number")
            table.append(row)
        probabilities = [toy_probabilities(r) for r in table]
        predictions = [p.index(max(p)) for p in probabilities]
        body = {"predictions": predictions}
        if self.mode.get("probabilities"):
            if self.mode.get("one_hot"):
                probabilities = [[float(i == p) for i in range(3)] for p in predictions]
            body.update(probabilities=probabilities, classes=[0, 1, 2])
        self._send(200, {**body, "model_version": self.mode["version"]})


def serve(mode: dict):
    handler = type("H", (Handler,), {"mode": mode})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


START_APP = """
from flask import Flask, jsonify, request


def create_app():
    app = Flask(__name__)

    @app.post("/predict")
    def predict():
        rows = request.get_json()["instances"]
        return jsonify(predictions=[int(r[0] > 1) for r in rows])

    return app
"""
NEW_APP = START_APP.replace(
    "return jsonify(predictions=[int(r[0] > 1) for r in rows])",
    "p = [[0.1, 0.9] if r[0] > 1 else [0.8, 0.2] for r in rows]\n"
    "        return jsonify(predictions=[int(r[0] > 1) for r in rows], probabilities=p,"
    " classes=[0, 1])",
)
BASE_TEST = """
from serving.app import create_app


def test_predicts():
    r = create_app().test_client().post("/predict", json={"instances": [[2.0]]})
    assert r.json["predictions"] == [1]
"""
PROBA_TEST = (
    BASE_TEST
    + """

def test_probabilities():
    r = create_app().test_client().post("/predict", json={"instances": [[2.0]]})
    assert r.json["probabilities"] == [[0.1, 0.9]] and r.json["classes"] == [0, 1]
"""
)
# The model's own predict_proba, as the check's Python of the lab's venv would answer.
OWN = f"""
import json, math, sys
spec = json.load(sys.stdin)
{__import__("inspect").getsource(toy_probabilities)}
print(json.dumps({{"classes": [0, 1, 2],
                  "probabilities": [toy_probabilities(r) for r in spec["rows"]]}}))
"""


class ServedLab(GitLab):
    """GitLab whose staging and production are small real servers."""

    def __init__(self, tmp_path, state, mode):
        super().__init__(tmp_path, state, mode, [])
        self.modes = {alias: {"version": state["served"][alias]} for alias in state["served"]}
        self.servers = {alias: serve(m) for alias, m in self.modes.items()}
        self.urls = {a: f"http://127.0.0.1:{s.server_address[1]}" for a, s in self.servers.items()}

    def served(self, alias):
        version = self.state["served"][alias]
        self.modes[alias]["version"] = version
        tags = self.state["versions"][version]["tags"]
        return {"version": version, "git_sha": tags.get("git_sha", ""), "features": FEATURES}

    predict = Lab.predict  # the real HTTP request, to the small server

    def write(self, rel, text):
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def close(self):
        for s in self.servers.values():
            s.shutdown()
            s.server_close()


def _write_server(lab, app, test):
    lab.write("serving/serving/__init__.py", "")
    lab.write("serving/serving/app.py", app)
    lab.write("serving/tests/test_app.py", test)


@pytest.fixture
def ex12_lab(tmp_path):
    """A lab at its start (a server without probabilities), and a function that commits
    the new field and records the version trained from it in staging."""
    made = []

    def make(mode="local"):
        lab = ServedLab(tmp_path, recorded_lab(), mode)
        made.append(lab)
        _write_server(lab, START_APP, BASE_TEST)
        lab.commit_all("the lab's server")
        lab.run_git("tag", "-f", "workshop-start")
        venv = lab.root / ".venv" / "bin"  # ignored by git, as in the lab
        venv.mkdir(parents=True)
        (venv / "own.py").write_text(OWN)
        # The check's question to the model (code that calls predict_proba) gets the stand-in;
        # anything else (the serving tests' runs) the real interpreter.
        own = f'exec {sys.executable} "$(dirname "$0")/own.py"'
        (venv / "python").write_text(
            f'#!/bin/sh\ncase "$1 $2" in "-c "*predict_proba*) {own};; esac\n'
            f'exec {sys.executable} "$@"\n'
        )
        (venv / "python").chmod(0o755)
        (lab.root / ".gitignore").write_text("answers.toml\n.lab/\n.venv/\n")
        lab.commit_all("ignore the venv")
        lab.run_git("tag", "-f", "workshop-start")

        def solved(app=NEW_APP, test=PROBA_TEST, **tags):
            _write_server(lab, app, test)
            sha = lab.commit_all("/predict answers class probabilities")
            lab.state["versions"]["3"] = {
                "version": "3",
                "run_id": "run3",
                "tags": {"git_sha": sha, "gate.verdict": "passed", **tags},
            }
            lab.state["runs"]["run3"] = {"metrics": {}, "params": {"best_family": "logreg"}}
            lab.state["aliases"].update(candidate="3", staging="3")
            lab.state["served"]["staging"] = "3"
            lab.modes["staging"]["probabilities"] = True
            lab.state["digests"].update(staging="sha256:new", **{sha: "sha256:new"})
            return sha

        return lab, solved

    yield make
    for lab in made:
        lab.close()


def test_fails_on_a_fresh_lab(fake_lab, ex12_lab):
    assert len(failed(fake_lab(), 12)) >= 4
    lab, _ = ex12_lab()
    bad = failed(lab, 12)
    assert bad == [
        "staging's /predict returns probabilities per row that sum to 1 and pick the prediction",
        "they are the served model's own predict_proba, in the order of classes",
        "staging's model was trained from a clean commit that changed serving/serving/",
        "the serving tests fail on a server that drops the probabilities",
    ]


def test_passes_with_the_solutions_evidence_in_local_mode(ex12_lab):
    lab, solved = ex12_lab()
    solved()
    assert failed(lab, 12) == []
    skipped = [c for c in results(lab, 12) if c.ok is None]
    assert len(skipped) == 2 and "both servers run the working tree" in skipped[1].hint


def test_passes_in_docker_mode_with_production_behind(ex12_lab):
    lab, solved = ex12_lab("docker")
    solved()
    assert failed(lab, 12) == []
    assert not [c for c in results(lab, 12) if c.ok is None]


def test_docker_mode_wants_the_commits_image_and_production_without(ex12_lab):
    lab, solved = ex12_lab("docker")
    solved()
    lab.state["digests"]["staging"] = "sha256:old"  # the image of another commit
    lab.modes["production"]["probabilities"] = True  # production has it already
    assert failed(lab, 12) == [
        "serving:staging is the image built from that commit",
        "production answers without probabilities",
    ]


def test_production_serving_the_staging_version_is_skipped(ex12_lab):
    lab, solved = ex12_lab("docker")
    solved()
    lab.state["aliases"]["production"] = "3"
    lab.state["served"]["production"] = "3"
    lab.modes["production"]["probabilities"] = True
    assert failed(lab, 12) == []


def test_probabilities_that_are_not_the_models_own_fail(ex12_lab):
    lab, solved = ex12_lab()
    solved()
    lab.modes["staging"]["one_hot"] = True  # sums to 1, picks the prediction, made up
    assert failed(lab, 12) == [
        "they are the served model's own predict_proba, in the order of classes"
    ]


def test_a_server_that_computes_before_validating_fails(ex12_lab):
    lab, solved = ex12_lab()
    solved()
    lab.modes["staging"]["unvalidated"] = True
    (c,) = [c for c in results(lab, 12) if c.ok is False]
    assert c.text.startswith("staging still answers bad input") and "NaN: HTTP 500" in c.hint


@pytest.mark.parametrize(
    ("sha", "criterion"),
    [
        ("0123456789ab-dirty-5f1c", "staging's model was trained from a clean commit"),
        ("start", "staging's model was trained from a clean commit"),  # no serving change
    ],
)
def test_a_model_not_from_a_clean_commit_of_the_change_fails(ex12_lab, sha, criterion):
    lab, solved = ex12_lab()
    solved()
    if sha == "start":
        sha = lab.git("rev-parse", "--short=12", "workshop-start").stdout.strip()
    lab.state["versions"]["3"]["tags"]["git_sha"] = sha
    assert [t for t in failed(lab, 12) if t.startswith(criterion)]


def test_tests_that_do_not_read_the_probabilities_fail(ex12_lab):
    lab, solved = ex12_lab()
    solved(test=BASE_TEST)
    assert failed(lab, 12) == ["the serving tests fail on a server that drops the probabilities"]


def test_failing_serving_tests_fail(ex12_lab):
    lab, solved = ex12_lab()
    solved(app=START_APP)  # the test asks for probabilities the committed server lacks
    assert "the serving tests pass on your working tree" in failed(lab, 12)


def test_the_solution_patch_applies_to_the_repository():
    patch = ROOT / "exercises" / "12-new-served-field" / "solution" / "probabilities.patch"
    r = subprocess.run(
        ["git", "-C", str(ROOT), "apply", "--check", str(patch)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
