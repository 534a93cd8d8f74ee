"""Upgrade an existing MLflow database to this image's schema; leave a fresh one alone.

`mlflow db upgrade` expects the tables to exist, and `mlflow server` creates them on a
fresh database but refuses to start on an old schema: so upgrade only what exists.
serve.py calls main() before it starts the server (one interpreter, MLflow imported once).
"""

import os
import sys
import time

import sqlalchemy


def main() -> None:
    uri = os.environ["MLFLOW_BACKEND_STORE_URI"]
    engine = sqlalchemy.create_engine(uri)
    for attempt in range(30):  # Postgres may report healthy a moment before it takes logins
        try:
            with engine.connect():
                break
        except sqlalchemy.exc.OperationalError as exc:
            if "password authentication failed" in str(exc):
                # Postgres keeps the password its volume was created with: .env was replaced
                # (a new clone, a restored state) while the old volume stayed.
                sys.exit(
                    f"migrate: the database refused the lab's password: {exc}\n"
                    "migrate: its volume was created with another POSTGRES_PASSWORD than "
                    ".env's now. Put the old .env back, or start over with `make clean` "
                    "(deletes the lab's volumes: runs, models and images)"
                )
            if attempt == 29:
                sys.exit(f"migrate: database unreachable: {exc}")
            time.sleep(1)
    tables = set(sqlalchemy.inspect(engine).get_table_names())
    engine.dispose()
    if "alembic_version" not in tables:
        print("migrate: fresh database, the server will create the schema", flush=True)
        return
    print("migrate: upgrading the schema (no-op when already current)", flush=True)
    # What `mlflow db upgrade URI` runs, called here so that the URI (and the database
    # password in it) never appears in a process's arguments, which `ps` shows to anyone.
    from mlflow.store.db.utils import _upgrade_db, create_sqlalchemy_engine_with_retry

    _upgrade_db(create_sqlalchemy_engine_with_retry(uri))


if __name__ == "__main__":
    main()
