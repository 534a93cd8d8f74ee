"""Self-check of the smoke test that really tests: the student's smoke run against a proxy
that breaks the staging server in five ways chosen now, their tests run against the
workshop's smoke, and the pipeline's trace of a broken serving commit stopped at staging."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from labctl.book.copies import python_argv
from labctl.book.runner import criterion, skipped

# Criteria read the image registry in docker mode.
READS_IMAGES = True
# serving:staging == serving:<sha> is exercise 12's image criterion too, whose docker round
# trip takes it; this one's solution takes minutes.
DOCKER_ROUND_TRIP = False

MARKER = "# ex10-fault"
MODEL_FILE = "serving/serving/model.py"
SMOKE_FILE = "gatekeeper/gatekeeper/smoke.py"
TEST_FILE = "gatekeeper/tests/test_smoke.py"
SMOKE_TIMEOUT_S = 15  # the smoke's own wait for a version (the stale case waits this long)
RUN_TIMEOUT_S = 240  # one run of the student's smoke or tests, imports included

# What the proxy in front of the staging server does, and the exit the smoke must give.
MODES = [
    ("passthrough", 0, "a proxy that forwards everything: the smoke passes"),
    ("quantize", 1, "a server that rounds each input to a whole unit: the smoke stops it"),
    ("stale", 1, "a server whose /model names version 999: the smoke stops it"),
    ("health", 1, "a server whose /health answers 500: the smoke stops it"),
    ("bad-input", 1, "a server that answers bad input with 500, not 422: the smoke stops it"),
]
# Iris-like rows for the probe of a server that rounds (feature ranges of the dataset).
IRIS_RANGES = [(4.3, 7.9), (2.0, 4.4), (1.0, 6.9), (0.1, 2.5)]


# ------------------------------------------------------------------ the proxy
class _Proxy(BaseHTTPRequestHandler):
    upstream = ""
    mode = "passthrough"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _forward(self, method: str, body: bytes | None) -> tuple[int, bytes, str]:
        request = urllib.request.Request(  # noqa: S310 (the lab's own http:// server)
            self.upstream + self.path, data=body, method=method
        )
        if body is not None:
            request.add_header("Content-Type", self.headers.get("Content-Type", ""))
        try:
            with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310
                return r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers.get("Content-Type", "")
        except OSError as exc:
            return 502, json.dumps({"error": f"upstream: {exc}"}).encode(), "application/json"

    def do_GET(self):
        if self.mode == "health" and self.path.startswith("/health"):
            return self._send(500, b'{"status": "error"}')
        status, body, ctype = self._forward("GET", None)
        if self.mode == "stale" and self.path.startswith("/model") and status == 200:
            info = json.loads(body)
            info["version"] = "999"
            body = json.dumps(info).encode()
        self._send(status, body, ctype)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.mode == "quantize" and self.path.startswith("/predict"):
            body = _quantized(body)
        status, answer, ctype = self._forward("POST", body)
        if self.mode == "bad-input" and status == 422:
            status, answer = 500, b'{"error": "internal error", "status": 500}'
        self._send(status, answer, ctype)


def _round(value):
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return float(round(value))


def _quantized(body: bytes) -> bytes:
    """The planted fault, done by the proxy: every input rounded to a whole unit."""
    try:
        payload = json.loads(body)
        rows = payload["instances"]
        payload["instances"] = [
            {k: _round(v) for k, v in row.items()}
            if isinstance(row, dict)
            else [_round(v) for v in row]
            if isinstance(row, list)
            else row
            for row in rows
        ]
        return json.dumps(payload).encode()
    except (ValueError, KeyError, TypeError, AttributeError):
        return body


class _Running:
    """A proxy in front of `upstream` on a free port, for one run."""

    def __init__(self, upstream: str, mode: str):
        handler = type("Handler", (_Proxy,), {"upstream": upstream.rstrip("/"), "mode": mode})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------- running student code
def _python(lab) -> str:
    venv = lab.root / ".venv" / "bin" / "python"
    return str(venv if venv.exists() else sys.executable)


def _env(lab, copy: Path) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(copy)),
        "PYTHONDONTWRITEBYTECODE": "1",
        "MLFLOW_TRACKING_URI": lab.mlflow_url,
        "MLFLOW_MODEL_NAME": lab.model_name,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # The lab's MLflow is local: an error is worth reporting, not minutes of retries.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
        "GATE_REGISTRY_URL": "",
        # Docker mode: MLflow offers downloads from the S3 store at its address inside the
        # compose network, which this machine cannot resolve; stream through MLflow instead.
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
    }
    if lab.s.auth:
        env["MLFLOW_TRACKING_USERNAME"] = "admin"
        env["MLFLOW_TRACKING_PASSWORD"] = lab.s.get("MLFLOW_ADMIN_PASSWORD")
    return env


def _copy_tree(lab, dest: Path) -> Path:
    """The working tree's gatekeeper (and the test settings), copied: the student's code
    runs from the copy, and nothing is written into the lab."""
    shutil.copytree(
        lab.root / "gatekeeper",
        dest / "gatekeeper",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache"),
    )
    shutil.copy(lab.root / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _run(lab, copy: Path, argv: list[str]) -> tuple[int | str, str]:
    """`python *argv` in the copy, its gatekeeper imported instead of the lab's own."""
    try:
        r = subprocess.run(
            python_argv(_python(lab), [copy / "gatekeeper"], *argv),
            cwd=copy,
            env=_env(lab, copy),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"no answer within {RUN_TIMEOUT_S} s", ""
    return r.returncode, (r.stderr.strip() or r.stdout.strip())[-300:]


def _workshop_smoke(lab) -> str:
    """The student's smoke.py with the workshop's smoke function put back: every helper is
    still there, but nothing compares a prediction."""
    start = lab.show(lab.start_commit(), SMOKE_FILE)
    if "def smoke(" not in start:
        raise ValueError(f"{SMOKE_FILE} has no smoke() at the workshop's start")
    start = "\n".join(
        line for line in start.splitlines() if not line.startswith("from __future__")
    ).replace("def smoke(", "def _workshop_smoke(")
    mine = (lab.root / SMOKE_FILE).read_text(encoding="utf-8")
    return (
        f"{mine}\n\n# The workshop's smoke, put back by the self-check.\n{start}\n\n"
        "def smoke(url, expected_version=None, timeout_s=120.0, *args, **kwargs):\n"
        "    return _workshop_smoke(url, expected_version, timeout_s)\n"
    )


# ------------------------------------------------------------------ criteria
def _is_ancestor(lab, older: str, newer: str) -> bool:
    return lab.git("merge-base", "--is-ancestor", older, newer).returncode == 0


def _rounds_inputs(lab, alias: str) -> dict:
    """Ask a server about rows and the same rows rounded to whole units: a server that
    rounds its inputs gives the same answers to both."""
    features = lab.served(alias)["features"]
    if len(features) != len(IRIS_RANGES):
        raise ValueError(f"the {alias} server takes {len(features)} features, not iris's 4")
    rng = random.Random()  # noqa: S311 (rows chosen now, not a secret)
    rows = [[round(rng.uniform(lo, hi), 1) for lo, hi in IRIS_RANGES] for _ in range(100)]
    rounded = [[float(round(v)) for v in row] for row in rows]
    r = lab.predict(alias, [dict(zip(features, row, strict=True)) for row in rows + rounded])
    if r.status != 200:
        raise ValueError(f"the {alias} server answers /predict with HTTP {r.status}")
    answers = r.json()["predictions"]
    differ = sum(1 for a, b in zip(answers[:100], answers[100:], strict=True) if a != b)
    return {"rows": 100, "changed_by_rounding": differ}


def criteria(lab):
    facts: dict = {}

    def broken_version_stopped():
        start_smoke = lab.show(lab.start_commit(), SMOKE_FILE)
        for mv in lab.versions():
            t, sha = mv["tags"], mv["tags"].get("git_sha", "")
            if not lab.clean_commit(sha) or MARKER not in lab.show(sha, MODEL_FILE):
                continue
            promoted = sorted(k for k in t if k.startswith("promoted."))
            ok = (
                t.get("gate.verdict") == "passed"
                and "promoted.staging.at" in t
                and not any(k.startswith("promoted.production") for k in promoted)
                and lab.show(sha, SMOKE_FILE) not in ("", start_smoke)
            )
            if ok:
                facts["broken"] = (mv["version"], sha)
                return {"version": mv["version"], "git_sha": sha}
        return False

    yield criterion(
        f"a version from a commit with the break ({MARKER}) and your smoke passed the gate, "
        "went to staging, and never to production",
        broken_version_stopped,
        "commit your smoke first, then git apply exercises/10-stop-the-line/break-serving.patch, "
        "commit, and make train && make gate && make promote TO=staging (it must stop at the "
        "smoke)",
    )

    def staging_repaired():
        if "broken" not in facts:
            return False
        b_version, b_sha = facts["broken"]
        version = lab.aliases()["staging"]
        sha = lab.version(version)["tags"].get("git_sha", "")
        served = lab.served_settled("staging", version)
        ok = (
            int(version) > int(b_version)
            and lab.clean_commit(sha)
            and MARKER not in lab.show(sha, MODEL_FILE)
            and lab.show(sha, MODEL_FILE) != ""
            and lab.git("rev-parse", sha).stdout != lab.git("rev-parse", b_sha).stdout
            and _is_ancestor(lab, b_sha, sha)
            and served.get("version") == version
            and served.get("git_sha") == sha
        )
        if ok:
            facts["staging_sha"] = sha
            return {"version": version, "git_sha": sha}
        return False

    yield criterion(
        "@staging is a newer version, from a later commit without the break, and the staging "
        "server serves it",
        staging_repaired,
        "git revert the break, then make train && make gate && make promote TO=staging",
    )

    def production_clean():
        version = lab.aliases()["production"]
        sha = lab.version(version)["tags"].get("git_sha", "")
        served = lab.served_settled("production", version)
        ok = (
            served.get("version") == version
            and served.get("git_sha") == sha
            and lab.show(sha, MODEL_FILE) != ""
            and MARKER not in lab.show(sha, MODEL_FILE)
        )
        return {"version": version, "git_sha": sha} if ok else False

    yield criterion(
        "production serves a version from a commit without the break",
        production_clean,
        "a version with the break must never reach production",
    )

    for alias in ("staging", "production"):

        def answers_unrounded(alias=alias):
            probe = _rounds_inputs(lab, alias)
            return probe if probe["changed_by_rounding"] > 0 else False

        yield criterion(
            f"the {alias} server does not round its inputs (rows chosen now, and the same "
            "rows rounded, get different answers)",
            answers_unrounded,
            f"the {alias} server answers as if it rounded: is it running the break? "
            "(local mode: a promotion restarts the server on the working tree's serving code)",
        )

    if lab.docker:

        def image():
            sha = facts["staging_sha"]
            tagged = lab.digest("serving", "staging")
            return {"digest": tagged} if tagged and tagged == lab.digest("serving", sha) else False

        yield criterion(
            "serving:staging is the image of @staging's commit",
            image,
            "promotion retags the image of the version's commit as :staging",
        )
    else:
        yield skipped("serving:staging is the image of @staging's commit", "local mode")

    yield criterion(
        f"{SMOKE_FILE} is committed, changed since the workshop's start, with {TEST_FILE}",
        lambda: (
            bool(lab.changed_since_start("HEAD", SMOKE_FILE)) and bool(lab.show("HEAD", TEST_FILE))
        ),
        "commit both: the pipeline runs what is committed",
    )

    if not (lab.root / SMOKE_FILE).is_file():
        return
    with tempfile.TemporaryDirectory(prefix="ex10-check-") as tmp:
        yield from _runs(lab, Path(tmp))


def _runs(lab, tmp: Path):
    """The student's smoke in every proxy mode, and their tests on their smoke and on the
    workshop's, all at once (each is mostly Python starting up), then judged in order."""
    mine, workshop = _copy_tree(lab, tmp / "mine"), _copy_tree(lab, tmp / "workshop")
    (workshop / SMOKE_FILE).write_text(_workshop_smoke(lab), encoding="utf-8")
    pytest = ["-m", "pytest", "-q", "-p", "no:cacheprovider", TEST_FILE]
    has_tests = (mine / TEST_FILE).is_file()

    def smoke_through(mode):
        with _Running(lab.urls["staging"], mode) as proxy:
            argv = ["-m", "gatekeeper", "smoke", "--url", proxy.url]
            return _run(lab, mine, [*argv, "--alias", "staging", "--timeout", str(SMOKE_TIMEOUT_S)])

    with ThreadPoolExecutor(max_workers=len(MODES) + 2) as pool:
        smokes = {mode: pool.submit(smoke_through, mode) for mode, _, _ in MODES}
        if has_tests:
            own = pool.submit(_run, lab, mine, pytest)
            other = pool.submit(_run, lab, workshop, pytest)

    for mode, expected, text in MODES:

        def judged(mode=mode, expected=expected):
            code, said = smokes[mode].result()
            ok = code == 0 if expected == 0 else isinstance(code, int) and code != 0
            if not ok:
                raise ValueError(f"exit {code}: {said}")
            return {"mode": mode, "exit": code}

        yield criterion(
            f"your smoke on {text}",
            judged,
            "python -m gatekeeper smoke --url ... --alias staging runs your smoke.py",
        )

    def tests_pass():
        if not has_tests:
            return False
        code, said = own.result()
        if code != 0:
            raise ValueError(f"exit {code}: {said}")
        return {"exit": code}

    yield criterion(
        f"{TEST_FILE} passes on your smoke",
        tests_pass,
        "write it with a fake server (a ThreadingHTTPServer on port 0), and run it: "
        f".venv/bin/pytest {TEST_FILE}",
    )

    def catches_the_workshop_smoke():
        if not has_tests:
            return False
        code, _ = other.result()
        return {"exit": code} if isinstance(code, int) and code != 0 else False

    yield criterion(
        f"{TEST_FILE} fails on the workshop's smoke (which compares no prediction)",
        catches_the_workshop_smoke,
        "add a test where the fake server answers 200 with wrong predictions",
    )
