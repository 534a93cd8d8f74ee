"""Self-check of a new served field: staging answers class probabilities (the model's own,
on rows chosen now), from a clean commit that changed the server, with every 4xx contract
kept; production has not got it yet; the serving tests pin it."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from labctl.book.copies import python_argv
from labctl.book.runner import criterion, skipped

# digest(serving:staging) == digest(serving:<sha>) reads the image registry.
READS_IMAGES = True

ROWS = 8
NOT_COPIED = (".git", ".venv", ".lab", "reports", "__pycache__", "*.egg-info", ".ruff_cache")
TOLERANCE = 1e-6

# Loads the served version from the registry and asks the model itself (run with the
# lab's .venv): argv = tracking URI, model name, version; stdin = {"features", "rows"}.
OWN_PROBABILITIES = """
import json, sys
import mlflow.sklearn
import pandas as pd
uri, name, version = sys.argv[1:4]
mlflow.set_tracking_uri(uri)
spec = json.load(sys.stdin)
model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
frame = pd.DataFrame(spec["rows"], columns=spec["features"])
print(json.dumps({"classes": model.classes_.tolist(),
                  "probabilities": model.predict_proba(frame).tolist()}))
"""

# A pytest plugin for the mutant: a server whose /predict answers lose their
# probabilities (whatever builds the JSON body: jsonify or a returned dict).
MUTANT_PLUGIN = """
from flask.json.provider import DefaultJSONProvider

_response = DefaultJSONProvider.response
DROP = ("probabilities", "classes")


def response(self, *args, **kwargs):
    if len(args) == 1 and isinstance(args[0], dict):
        args = ({k: v for k, v in args[0].items() if k not in DROP},)
    kwargs = {k: v for k, v in kwargs.items() if k not in DROP}
    return _response(self, *args, **kwargs)


DefaultJSONProvider.response = response
"""


def _python(root: Path) -> str:
    python = root / ".venv" / "bin" / "python"
    return str(python if python.exists() else sys.executable)


def check_rows(n_features: int, seed: int | None = None) -> list[list[float]]:
    """Rows chosen now: spread over the range of the lab's datasets' measurements."""
    rng = random.Random(seed)  # noqa: S311 (rows to predict, not a secret)
    return [[round(rng.uniform(0.1, 8.0), 3) for _ in range(n_features)] for _ in range(ROWS)]


def valid_probabilities(body: dict, n_rows: int) -> dict | str:
    """The evidence when `body` holds a probability row per prediction that sums to 1 and
    whose most likely class is the prediction; else why not."""
    probabilities, classes = body.get("probabilities"), body.get("classes")
    predictions = body.get("predictions")
    if not isinstance(probabilities, list) or not isinstance(classes, list) or not classes:
        return "no probabilities and classes lists in the answer"
    if len(probabilities) != n_rows or len(predictions or []) != n_rows:
        return f"{len(probabilities)} probability rows for {n_rows} rows"
    for i, (row, prediction) in enumerate(zip(probabilities, predictions, strict=True)):
        if not isinstance(row, list) or len(row) != len(classes):
            return f"row {i}: not one probability per class"
        if any(not isinstance(p, int | float) or p < 0 for p in row):
            return f"row {i}: a probability that is not a number >= 0"
        if abs(sum(row) - 1.0) > TOLERANCE:
            return f"row {i}: probabilities sum to {sum(row)}"
        top = max(row)
        likeliest = [c for c, p in zip(classes, row, strict=True) if p >= top - 1e-9]
        if prediction not in likeliest:
            return f"row {i}: predicted {prediction!r}, most likely {likeliest}"
    return {"rows": n_rows, "classes": classes}


def bad_inputs(features: list[str]) -> list[tuple[str, bytes, str, int]]:
    """The e2e bad-input table (tests/e2e/test_lab.py), for this model's features."""
    n = len(features)

    def js(value) -> bytes:
        return json.dumps(value).encode()

    return [
        ("broken JSON", b"{oops", "application/json", 400),
        ("a CSV body", b"1,2,3", "text/csv", 415),
        ("a row too short", js({"instances": [[1] * max(n - 2, 1)]}), "application/json", 422),
        ("a missing feature", js({"instances": [{features[-1]: 1}]}), "application/json", 422),
        ("a string", js({"instances": [[*([1] * (n - 1)), "four"]]}), "application/json", 422),
        ("NaN", f'{{"instances": [[{"1, " * (n - 1)}NaN]]}}'.encode(), "application/json", 422),
        ("no rows", js({"instances": []}), "application/json", 400),
        ("2 MB", b"x" * 2_000_000, "application/json", 413),
    ]


def post_raw(url: str, data: bytes, content_type: str, timeout: float = 20):
    """(status, parsed JSON body or None) of a raw POST; (None, reason) on no answer."""
    request = urllib.request.Request(  # noqa: S310 (the lab's own http:// address)
        url, data=data, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:  # noqa: S310
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except OSError as exc:
        return None, str(exc)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def run_serving_tests(root: Path, mutant: bool = False, timeout: int = 600):
    """The serving tests of `root`'s working tree, in a temporary copy; with `mutant`, the
    HTTP tests against a server that drops the probabilities from its answers. Returns
    (exit code, last lines of the output); exit code None when they did not finish."""
    with tempfile.TemporaryDirectory(prefix="ex12-") as tmp:
        # The whole working tree (the serving tests rely on the repository's layout and
        # pytest settings), without git, the venv and the lab's data.
        copy = Path(tmp) / "tree"
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns(*NOT_COPIED), symlinks=True)
        argv = ["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
        # Imported first: the copy's serving package (not the lab's own), the mutant's plugin.
        path = [str(copy / "serving")]
        target = "serving/tests"
        if mutant:
            # Only the HTTP tests can see what the server answers (the README asks for one).
            target = "serving/tests/test_app.py"
            (copy / "plugins").mkdir()
            (copy / "plugins" / "ex12_mutant.py").write_text(MUTANT_PLUGIN)
            path.append(str(copy / "plugins"))
            argv += ["-p", "ex12_mutant"]
        try:
            r = subprocess.run(
                python_argv(_python(root), path, *argv, target),
                cwd=copy,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, f"no result within {timeout} s"
    return r.returncode, " | ".join((r.stdout + r.stderr).strip().splitlines()[-3:])


def criteria(lab):
    facts: dict = {}

    def staging_probabilities():
        served = lab.served("staging")
        rows = check_rows(len(served["features"]))
        facts.update(served=served, rows=rows)
        r = lab.predict("staging", rows)
        if r.status != 200:
            raise ValueError(f"staging answered HTTP {r.status}: {r.body[:200]!r}")
        body = r.json()
        facts["body"] = body
        found = valid_probabilities(body, len(rows))
        if isinstance(found, str):
            family = lab.version(served["version"])["tags"].get("model_family", "?")
            raise ValueError(f"{found} (staging serves version {served['version']}, {family})")
        return found

    yield criterion(
        "staging's /predict returns probabilities per row that sum to 1 and pick the prediction",
        staging_probabilities,
        "return probabilities (and classes) from /predict, commit, retrain and promote to "
        "staging; a model without predict_proba (SVC) has none",
    )

    def the_models_own():
        served, body = facts["served"], facts["body"]
        # Docker mode: MLflow offers downloads from the S3 store at its address inside the
        # compose network, which this machine cannot resolve; stream through MLflow instead.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
        }
        if lab.s.auth:
            env.update(
                MLFLOW_TRACKING_USERNAME="admin",
                MLFLOW_TRACKING_PASSWORD=lab.s.get("MLFLOW_ADMIN_PASSWORD"),
            )
        argv = [_python(lab.root), "-c", OWN_PROBABILITIES, lab.mlflow_url, lab.model_name]
        r = subprocess.run(
            [*argv, served["version"]],
            input=json.dumps({"features": served["features"], "rows": facts["rows"]}),
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if r.returncode != 0:
            raise ValueError(f"the model could not be asked: {r.stderr.strip()[-300:]}")
        own = json.loads(r.stdout.strip().splitlines()[-1])
        if own["classes"] != body["classes"]:
            return False
        worst = max(
            abs(a - b)
            for mine, theirs in zip(own["probabilities"], body["probabilities"], strict=True)
            for a, b in zip(mine, theirs, strict=True)
        )
        return {"version": served["version"], "max_difference": worst} if worst < 1e-6 else False

    yield criterion(
        "they are the served model's own predict_proba, in the order of classes",
        the_models_own,
        "answer model.predict_proba(rows) with classes_ in the same order, on every path",
    )

    def from_a_clean_commit():
        served = facts["served"]
        sha = served["git_sha"]
        tagged = lab.version(served["version"])["tags"].get("git_sha")
        if sha != tagged or not lab.clean_commit(sha):
            return False
        changed = lab.changed_since_start(sha, "serving/serving/")
        return {"git_sha": sha, "changed": changed} if changed else False

    yield criterion(
        "staging's model was trained from a clean commit that changed serving/serving/",
        from_a_clean_commit,
        "commit your change to serving/, then make train && make gate && make promote TO=staging",
    )

    if lab.docker:

        def image():
            sha = facts["served"]["git_sha"]
            staging = lab.digest("serving", "staging")
            return (
                {"digest": staging} if staging and staging == lab.digest("serving", sha) else False
            )

        yield criterion(
            "serving:staging is the image built from that commit",
            image,
            "make promote TO=staging retags serving:<sha of the model> as serving:staging",
        )
    else:
        yield skipped("serving:staging is the image built from that commit", "local mode")

    aliases = lab.aliases()
    if not lab.docker:
        yield skipped(
            "production answers without probabilities",
            "local mode: both servers run the working tree's code, production included",
        )
    elif aliases.get("production") == aliases.get("staging"):
        yield skipped(
            "production answers without probabilities", "production serves the staging version"
        )
    else:

        def production_without():
            r = lab.predict("production", facts.get("rows") or check_rows(4))
            body = r.json()
            ok = r.status == 200 and "predictions" in body and "probabilities" not in body
            return {"production": body.get("model_version")} if ok else False

        yield criterion(
            "production answers without probabilities",
            production_without,
            "production runs the image of its own model's commit: it changes when promoted",
        )

    def contracts_kept():
        features = facts.get("served", {}).get("features") or lab.served("staging")["features"]
        url = f"{lab.urls['staging']}/predict"
        for name, data, content_type, expected in bad_inputs(features):
            status, body = post_raw(url, data, content_type)
            if status != expected or not isinstance(body, dict) or not body.get("error"):
                raise ValueError(f"{name}: HTTP {status} {str(body)[:120]}, expected {expected}")
        return {"cases": len(bad_inputs(features))}

    yield criterion(
        "staging still answers bad input with a JSON 4xx (the e2e table)",
        contracts_kept,
        "validation comes before predict_proba: keep every error path as it was",
    )

    def tests_pass():
        code, tail = run_serving_tests(lab.root)
        facts["tests"] = code == 0
        if code != 0:
            raise ValueError(f"exit {code}: {tail}")
        return {"exit": code}

    yield criterion(
        "the serving tests pass on your working tree",
        tests_pass,
        ".venv/bin/pytest -q serving/tests",
    )

    def mutant_caught():
        if not facts.get("tests"):
            return False
        code, tail = run_serving_tests(lab.root, mutant=True)
        return {"exit": code, "output": tail} if code == 1 else False

    yield criterion(
        "the serving tests fail on a server that drops the probabilities",
        mutant_caught,
        "add a test in serving/tests/test_app.py that posts rows and reads probabilities",
    )
