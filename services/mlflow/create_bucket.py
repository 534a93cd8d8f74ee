"""Create the artifact bucket if it is missing (the bucket-init job; idempotent, no `mc`).

Retries while the S3 store finishes starting: some servers report healthy a few seconds
before they accept requests.
"""

import os
import sys
import time

import boto3
from botocore.exceptions import BotoCoreError, ClientError

bucket = os.environ.get("S3_BUCKET", "mlflow")
s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"])
deadline = time.monotonic() + float(os.environ.get("S3_INIT_TIMEOUT_S", "60"))
while True:
    try:
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket in existing:
            print(f"s3-init: bucket {bucket!r} already exists")
        else:
            s3.create_bucket(Bucket=bucket)
            print(f"s3-init: created bucket {bucket!r}")
        s3.head_bucket(Bucket=bucket)
        sys.exit(0)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
            sys.exit(f"s3-init: the S3 store refused our credentials ({code}): check .env")
        error = exc
    except BotoCoreError as exc:
        error = exc
    if time.monotonic() > deadline:
        sys.exit(f"s3-init: S3 store not ready: {error}")
    time.sleep(1)
