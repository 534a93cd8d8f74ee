"""A quality gate on the registry: look a model version up, read its run's metrics.

    MODEL_ALIAS=production python validate_quality.py     # or MODEL_VERSION=3

Exit 0: accuracy >= MIN_ACCURACY and precision_macro >= MIN_PRECISION; 1: not; 2: the
question cannot be answered (an unknown version or alias, MLflow not answering).
"""

import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


def api(path: str, **params) -> dict:
    base = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"MLFLOW_TRACKING_URI must be an http(s) URL, got {base!r}")
    url = f"{base}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url)  # noqa: S310 (http(s) only, checked above)
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if user:
        login = f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(login).decode())
    with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310
        return json.load(r)


def main() -> int:
    name = os.environ.get("MLFLOW_MODEL_NAME", "lab-classifier")
    min_accuracy = float(os.environ.get("MIN_ACCURACY", "0.90"))
    min_precision = float(os.environ.get("MIN_PRECISION", "0.85"))
    try:
        if os.environ.get("MODEL_VERSION"):
            mv = api("model-versions/get", name=name, version=os.environ["MODEL_VERSION"])
        else:
            alias = os.environ.get("MODEL_ALIAS", "production")
            mv = api("registered-models/alias", name=name, alias=alias)
        mv = mv["model_version"]
        run = api("runs/get", run_id=mv["run_id"])["run"]
    except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
        print(f"validate_quality: cannot answer: {exc}", file=sys.stderr)
        return 2
    metrics = {m["key"]: m["value"] for m in run["data"].get("metrics", [])}
    accuracy, precision = metrics.get("accuracy"), metrics.get("precision_macro")
    passed = (
        accuracy is not None
        and precision is not None
        and accuracy >= min_accuracy
        and precision >= min_precision
    )
    print(
        json.dumps(
            {
                "version": str(mv["version"]),
                "accuracy": accuracy,
                "precision_macro": precision,
                "passed": passed,
            }
        )
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
