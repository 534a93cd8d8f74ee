"""What `make up` prints at the end, and `make urls` prints again."""

from __future__ import annotations

from labctl.settings import Settings


def text(settings: Settings, mode: str) -> str:
    h = settings.client_host
    a = settings.admin_host
    g = settings.get
    lines = [
        "",
        f"  mlops-lab is up ({mode} mode)",
        f"  MLflow UI           http://{a}:{g('MLFLOW_PORT')}            experiments, runs, models",
    ]
    if mode == "docker":
        if settings.s3_backend == "minio":
            lines.append(
                f"  S3 console (MinIO)  http://127.0.0.1:{g('S3_CONSOLE_PORT')}   "
                "(user/password: S3_ACCESS_KEY/S3_SECRET_KEY in .env)"
            )
        else:
            lines.append(
                f"  S3 API (SeaweedFS)  http://127.0.0.1:{g('S3_PORT')}            "
                "(keys: S3_ACCESS_KEY/S3_SECRET_KEY in .env)"
            )
        lines.append(
            f"  Image registry      http://{a}:{g('REGISTRY_PORT')}/v2/_catalog  "
            "serving images by git sha, :staging, :production"
        )
    else:
        lines.append("  Artifacts           .lab/artifacts (local folder, served through MLflow)")
    if settings.auth:
        lines.append(
            "  Logins (LAB_AUTH=1) MLflow: user admin, password MLFLOW_ADMIN_PASSWORD in .env;"
            "  make user NAME=alice adds a student"
        )
        if mode == "docker":
            lines.append(
                "                      registry: user lab, password REGISTRY_PASSWORD in .env"
            )
    lines += [
        f"  Staging server      http://{h}:{g('STAGING_PORT')}/            "
        "@staging: prediction page, POST /predict",
        f"  Production server   http://{h}:{g('PRODUCTION_PORT')}/            "
        "@production: prediction page, POST /predict",
        "",
        "  Try:  curl -s -H 'Content-Type: application/json' \\",
        "          -d '{\"instances\": [[5.1, 3.5, 1.4, 0.2]]}' "
        f"http://{h}:{g('PRODUCTION_PORT')}/predict",
        "  Next: make status | make train | make gate | make promote TO=staging | make load "
        "| make help",
    ]
    return "\n".join(lines)
