"""Exercise 10's check against a recorded lab in a real git repository, with a fake model
server behind the check's proxy: the solution passes, a fresh lab fails, and the
shortcuts fail (a smoke with a fixed exit code, the workshop's smoke, a test file that
tests nothing, a broken version that reached production, a dirty sha)."""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from labctl.book.view import Http
from tests.exercises.conftest import ROOT, results

FOLDER = ROOT / "exercises" / "10-stop-the-line"
MODEL = "serving/serving/model.py"
SMOKE = "gatekeeper/gatekeeper/smoke.py"
TEST = "gatekeeper/tests/test_smoke.py"
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
PIPELINE = [
    "a version from a commit with the break (# ex10-fault) and your smoke passed the gate, "
    "went to staging, and never to production",
    "@staging is a newer version, from a later commit without the break, and the staging "
    "server serves it",
    "production serves a version from a commit without the break",
    "the staging server does not round its inputs (rows chosen now, and the same rows "
    "rounded, get different answers)",
    "the production server does not round its inputs (rows chosen now, and the same rows "
    "rounded, get different answers)",
    f"{SMOKE} is committed, changed since the workshop's start, with {TEST}",
]
SMOKES = [
    "your smoke on a proxy that forwards everything: the smoke passes",
    "your smoke on a server that rounds each input to a whole unit: the smoke stops it",
    "your smoke on a server whose /model names version 999: the smoke stops it",
    "your smoke on a server whose /health answers 500: the smoke stops it",
    "your smoke on a server that answers bad input with 500, not 422: the smoke stops it",
]
TESTS = [
    f"{TEST} passes on your smoke",
    f"{TEST} fails on the workshop's smoke (which compares no prediction)",
]


def species(row) -> int:
    """The fake model: three classes by petal length and width."""
    return 0 if row[2] < 2.5 else 1 if row[3] < 1.7 else 2


class Server(BaseHTTPRequestHandler):
    """A fake model server for version 3 of the recorded lab."""

    def log_message(self, *args):
        pass

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            return self._send(200, {"status": "ok"})
        info = {"name": "lab-classifier", "version": "3", "features": FEATURES}
        return self._send(200, {**info, "predict_path": "numpy-native"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        try:
            rows = [[float(r[f]) for f in FEATURES] for r in body["instances"]]
        except (KeyError, TypeError):
            return self._send(422, {"error": "bad input"})
        self._send(200, {"predictions": [species(r) for r in rows], "model_version": "3"})


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


# Smokes a student might write, as the `gatekeeper smoke` command (standard library only).
SMOKE_MAIN = """
import json, sys, urllib.error, urllib.request
url = sys.argv[sys.argv.index("--url") + 1]
def call(path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(url + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}
KIND = "%s"
if KIND in ("always0", "always1"):
    sys.exit(0 if KIND == "always0" else 1)
status, info = call("/model")
if info.get("version") != "3":
    sys.exit(1)
if KIND == "compares" and call("/health")[0] != 200:
    sys.exit(1)
rows = [[1.0] * 4, [2.0] * 4]
if KIND == "compares":
    rows = [[5.0 + i / 20, 3.0, 1.0 + i / 8, 0.1 + i / 20] for i in range(50)]
status, out = call("/predict", {"instances": [dict(zip(info["features"], r)) for r in rows]})
if status != 200 or len(out["predictions"]) != len(rows):
    sys.exit(1)
if KIND == "compares":
    model = [0 if r[2] < 2.5 else 1 if r[3] < 1.7 else 2 for r in rows]
    if out["predictions"] != model:
        sys.exit(1)
sys.exit(0 if call("/predict", {"instances": [{"nope": 1}]})[0] == 422 else 1)
"""


def recorded(lab, shas: dict[str, str]) -> dict:
    """The registry after the solution: v2 from the broken commit stopped at staging, v3
    from the revert on staging, v1 in production."""
    state = lab.state
    state["aliases"] = {"candidate": "3", "staging": "3", "production": "1"}
    passed = {"gate.verdict": "passed"}
    state["versions"] = {
        "1": {
            "version": "1",
            "run_id": "run1",
            "tags": {"git_sha": shas["start"], **passed, "promoted.production.at": "t1"},
        },
        "2": {
            "version": "2",
            "run_id": "run2",
            "tags": {"git_sha": shas["broken"], **passed, "promoted.staging.at": "t2"},
        },
        "3": {
            "version": "3",
            "run_id": "run3",
            "tags": {"git_sha": shas["reverted"], **passed, "promoted.staging.at": "t3"},
        },
    }
    state["served"] = {"staging": "3", "production": "1"}
    state["rounds"] = {"staging": False, "production": False}
    state["digests"] = {"staging": "sha256:s", shas["reverted"]: "sha256:s"}
    return state


class Ex10Lab:
    """Wires a git_lab to the fake server: /model with features and git sha, /predict by
    the fake model (on rounded rows where the state says the server rounds)."""

    def __init__(self, lab, url):
        self.lab = lab
        lab.urls = {"staging": url, "production": url}
        lab.served = self.served
        lab.predict = self.predict

    def served(self, alias):
        version = self.lab.state["served"][alias]
        sha = self.lab.state["versions"][version]["tags"]["git_sha"]
        return {"version": version, "git_sha": sha, "features": FEATURES}

    def predict(self, alias, rows):
        rows = [[float(r[f]) for f in FEATURES] for r in rows]
        if self.lab.state["rounds"][alias]:
            rows = [[float(round(v)) for v in r] for r in rows]
        return Http(200, json.dumps({"predictions": [species(r) for r in rows]}).encode())


def git_apply(lab, patch: Path) -> None:
    subprocess.run(["git", "-C", str(lab.root), "apply", str(patch)], check=True)


def stub_smoke(lab, kind: str) -> None:
    """A `gatekeeper smoke` of the given kind in the lab's tree (no test file)."""
    (lab.root / "gatekeeper" / "gatekeeper" / "__main__.py").write_text(SMOKE_MAIN % kind)


def solved(git_lab, server, kind="compares", tests=False):
    """A lab where the exercise was done: smoke committed, break committed and promoted,
    then reverted and promoted. `tests` uses the real gatekeeper and the solution's patch."""
    files = [MODEL, SMOKE, "pyproject.toml", "gatekeeper/gatekeeper/__init__.py"]
    if tests:
        gk = ROOT / "gatekeeper"
        files = [MODEL, "pyproject.toml", "gatekeeper/pyproject.toml"]
        files += [str(p.relative_to(ROOT)) for p in gk.glob("gatekeeper/*.py")]
        files += ["gatekeeper/tests/__init__.py", "gatekeeper/tests/conftest.py"]
        files = [f for f in files if (ROOT / f).exists()]
    lab = git_lab(files)
    start = lab.git("rev-parse", "--short=12", "HEAD").stdout.strip()
    if tests:
        git_apply(lab, FOLDER / "solution" / "smoke.patch")
    else:
        stub_smoke(lab, kind)
        (lab.root / SMOKE).write_text("# the student's smoke\n")
        (lab.root / TEST).parent.mkdir(parents=True, exist_ok=True)
        (lab.root / TEST).write_text("def test_nothing():\n    pass\n")
    lab.commit_all("the smoke compares")
    git_apply(lab, FOLDER / "break-serving.patch")
    broken = lab.commit_all("serving: quantize inputs")
    lab.run_git("revert", "--no-edit", "HEAD")
    reverted = lab.run_git("rev-parse", "--short=12", "HEAD").stdout.strip()
    recorded(lab, {"start": start, "broken": broken, "reverted": reverted})
    Ex10Lab(lab, server)
    return lab


def verdicts(lab) -> dict[str, bool | None]:
    return {c.text: c.ok for c in results(lab, 10)}


def test_the_patches_apply_to_the_product():
    for patch in (FOLDER / "break-serving.patch", FOLDER / "solution" / "smoke.patch"):
        r = subprocess.run(
            ["git", "-C", str(ROOT), "apply", "--check", str(patch)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert r.returncode == 0, f"{patch.name}: {r.stderr}"
    assert "# ex10-fault" in (FOLDER / "break-serving.patch").read_text()


def test_a_fresh_lab_fails(git_lab, server):
    lab = git_lab([MODEL, SMOKE, "pyproject.toml", "gatekeeper/gatekeeper/__init__.py"])
    stub_smoke(lab, "workshop")  # the workshop's smoke: version, two rows, 422
    lab.commit_all("the workshop's smoke, as a stub")
    lab.run_git("tag", "-f", "workshop-start")
    Ex10Lab(lab, server)
    lab.state["served"] = {"staging": "1", "production": "1"}
    lab.state["rounds"] = {"staging": False, "production": False}
    got = verdicts(lab)
    assert got[PIPELINE[0]] is False and got[PIPELINE[1]] is False and got[PIPELINE[5]] is False
    assert got[SMOKES[0]] is True  # it passes a good server...
    assert got[SMOKES[1]] is False  # ...and a rounding one
    assert got[SMOKES[3]] is False  # and an unhealthy one
    assert got[TESTS[0]] is False and got[TESTS[1]] is False


def test_the_solution_passes_with_a_smoke_that_compares(git_lab, server):
    lab = solved(git_lab, server)
    got = verdicts(lab)
    skipped = "serving:staging is the image of @staging's commit"
    assert got.pop(skipped) is None  # local mode
    # The stub's test file tests nothing: it passes on any smoke, so it catches nothing.
    assert got.pop(TESTS[0]) is True and got.pop(TESTS[1]) is False
    assert all(got.values()), [t for t, ok in got.items() if not ok]


@pytest.mark.parametrize(
    ("kind", "met"),
    [("always0", {0}), ("always1", {1, 2, 3, 4}), ("workshop", {0, 2, 4})],
)
def test_a_smoke_with_a_fixed_exit_or_no_comparison_fails(git_lab, server, kind, met):
    lab = solved(git_lab, server, kind)
    got = verdicts(lab)
    assert {i for i, text in enumerate(SMOKES) if got[text]} == met


def test_a_server_that_rounds_is_seen_whatever_the_tags_say(git_lab, server):
    lab = solved(git_lab, server)
    lab.state["rounds"]["production"] = True  # e.g. make restart with the break in the tree
    got = verdicts(lab)
    assert got[PIPELINE[4]] is False and got[PIPELINE[3]] is True


def test_a_broken_version_that_reached_production_fails(git_lab, server):
    lab = solved(git_lab, server)
    lab.state["versions"]["2"]["tags"]["promoted.production.at"] = "t4"
    assert verdicts(lab)[PIPELINE[0]] is False


def test_a_dirty_or_unknown_sha_is_no_evidence(git_lab, server):
    lab = solved(git_lab, server)
    tags = lab.state["versions"]["2"]["tags"]
    tags["git_sha"] += "-dirty"
    assert verdicts(lab)[PIPELINE[0]] is False
    tags["git_sha"] = "0123456789ab"
    assert verdicts(lab)[PIPELINE[0]] is False


def test_staging_still_on_the_broken_version_fails(git_lab, server):
    lab = solved(git_lab, server)
    lab.state["aliases"]["staging"] = "2"
    lab.state["served"]["staging"] = "2"
    lab.state["rounds"]["staging"] = True
    got = verdicts(lab)
    assert got[PIPELINE[1]] is False and got[PIPELINE[3]] is False


def test_docker_mode_wants_the_staging_image_of_the_commit(git_lab, server):
    lab = solved(git_lab, server)
    lab.mode = "docker"
    text = "serving:staging is the image of @staging's commit"
    assert verdicts(lab)[text] is True
    lab.state["digests"]["staging"] = "sha256:other"
    assert verdicts(lab)[text] is False


def test_the_real_solution_and_its_tests_catch_the_workshop_smoke(git_lab, server):
    """The solution's test file passes on its smoke and fails on the workshop's; a test
    file that tests nothing does not count (no test file at all: test_a_fresh_lab_fails)."""
    lab = solved(git_lab, server, tests=True)
    stub_smoke(lab, "always0")  # the smoke runs are not under test here: keep them quick
    got = verdicts(lab)
    assert got[TESTS[0]] is True and got[TESTS[1]] is True
    (lab.root / TEST).write_text("def test_nothing():\n    pass\n")
    got = verdicts(lab)
    assert got[TESTS[0]] is True and got[TESTS[1]] is False


def test_staging_back_on_a_version_from_before_the_break_fails(git_lab, server):
    """Repairing means a newer version from a later commit, not pointing staging back."""
    lab = solved(git_lab, server)
    lab.state["aliases"]["staging"] = "1"
    lab.state["served"]["staging"] = "1"
    assert verdicts(lab)[PIPELINE[1]] is False
