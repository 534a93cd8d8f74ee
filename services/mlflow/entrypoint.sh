#!/bin/sh
# Bring the database schema up to this image's MLflow version, then serve (serve.py).
# Required: MLFLOW_BACKEND_STORE_URI, MLFLOW_ARTIFACTS_DESTINATION (s3://bucket), and the
# S3 settings boto3 reads (MLFLOW_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
# MLFLOW_AUTH=1 (classroom mode) serves MLflow's basic-auth app: its users and permissions
# live in the same database (their own tables), the admin account is created on the first
# start with MLFLOW_AUTH_ADMIN_PASSWORD, and MLFLOW_FLASK_SERVER_SECRET_KEY signs the web
# app's sessions.
set -eu
: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION}"
set --
if [ "${MLFLOW_AUTH:-}" = 1 ]; then
    : "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD (make up generates it)}"
    : "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY (make up generates it)}"
    MLFLOW_AUTH_CONFIG_PATH=/tmp/basic_auth.ini
    export MLFLOW_AUTH_CONFIG_PATH
    python /app/auth_config.py "$MLFLOW_AUTH_CONFIG_PATH"
    set -- --app-name basic-auth
fi
# The backend store URI holds the database password: mlflow reads it from the
# environment (MLFLOW_BACKEND_STORE_URI), so that no process's arguments show it.
# serve.py is `mlflow server` whose web server takes over its process (no idle parent).
export MLFLOW_BACKEND_STORE_URI
exec python /app/serve.py --migrate-first \
    --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
    --serve-artifacts \
    --host 0.0.0.0 \
    --port 5000 \
    --workers "${MLFLOW_WORKERS:-2}" \
    "$@"
