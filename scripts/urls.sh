#!/usr/bin/env bash
# Print the lab's URLs (called by scripts/lab.sh and scripts/local.sh with the settings exported).
set -euo pipefail
mode=${1:-docker}
host=${LAB_BIND:-127.0.0.1}
[ "$host" = 0.0.0.0 ] && host=127.0.0.1
echo
echo "  mlops-lab is up ($mode mode)"
echo "  MLflow UI           http://$host:$MLFLOW_PORT            experiments, runs, models"
if [ "$mode" = docker ]; then
  if [ "$S3_BACKEND" = minio ]; then
    echo "  S3 console (MinIO)  http://$host:$S3_CONSOLE_PORT   (user/password: S3_ACCESS_KEY/S3_SECRET_KEY in .env)"
  else
    echo "  S3 API (SeaweedFS)  http://$host:$S3_PORT            (keys: S3_ACCESS_KEY/S3_SECRET_KEY in .env)"
  fi
  echo "  Image registry      http://$host:$REGISTRY_PORT/v2/_catalog  serving images by git sha, :staging, :production"
else
  echo "  Artifacts           .lab/artifacts (local folder, served through MLflow)"
fi
echo "  Staging server      http://$host:$STAGING_PORT/model      model @staging   (POST /predict)"
echo "  Production server   http://$host:$PRODUCTION_PORT/model      model @production (POST /predict)"
echo
echo "  Try:  curl -s -H 'Content-Type: application/json' \\"
echo "          -d '{\"instances\": [[5.1, 3.5, 1.4, 0.2]]}' http://$host:$PRODUCTION_PORT/predict"
echo "  Next: make status | make train | make gate | make promote TO=staging | make load | make help"
