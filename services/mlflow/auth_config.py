"""Write the configuration of MLflow's basic-auth app (classroom mode) to the path given.

Users and permissions go to MLFLOW_AUTH_DATABASE_URI, by default the tracking database
(their tables are separate: users, *_permissions, alembic_version_auth). Anyone signed in
may read every experiment and model (default_permission READ) and manages what they
create; the admin grants more. Passwords are hashed on purpose slowly, so a checked
login is remembered for a minute per server process.
"""

import configparser
import os
import sys

config = configparser.ConfigParser(interpolation=None)
config["mlflow"] = {
    "default_permission": "READ",
    "database_uri": os.environ.get("MLFLOW_AUTH_DATABASE_URI")
    or os.environ["MLFLOW_BACKEND_STORE_URI"],
    "admin_username": os.environ.get("MLFLOW_AUTH_ADMIN_USERNAME", "admin"),
    "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    "auth_cache_ttl_seconds": "60",
}
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    config.write(f)
