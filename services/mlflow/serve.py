"""`mlflow server` without its waiting parent: `python serve.py ARGS` = `mlflow server ARGS`
(`--migrate-first`, first: upgrade the database schema first, see migrate.py).

`mlflow server` builds the web server's command line and environment (the stores, the
artifact proxy, the basic-auth app), starts it as a child process and then only waits for
it, holding all of MLflow in memory: about 200 MB that serve nothing. Here the same code
builds the same command, and the web server replaces this process (os.execvpe): the
memory goes back, and stop signals reach uvicorn directly.

With MLflow's job runner on (MLFLOW_SERVER_ENABLE_JOB_EXECUTION, on by default) the
parent has work after the start, so this is then plain `mlflow server`. The lab keeps the
runner off.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> None:
    if argv[:1] == ["--migrate-first"]:  # the image: the schema first, in this process
        import migrate

        migrate.main()
        argv = argv[1:]
    import mlflow.server
    from mlflow.cli import cli
    from mlflow.environment_variables import MLFLOW_SERVER_ENABLE_JOB_EXECUTION

    if not MLFLOW_SERVER_ENABLE_JOB_EXECUTION.get() and hasattr(mlflow.server, "_exec_cmd"):

        def exec_server(cmd, extra_env=None, **_kwargs):
            env = {**os.environ, **(extra_env or {})}
            sys.stdout.flush()
            sys.stderr.flush()
            os.execvpe(cmd[0], list(cmd), env)  # noqa: S606 (the command mlflow built)

        mlflow.server._exec_cmd = exec_server
    cli.main(args=["server", *argv], prog_name="mlflow")


if __name__ == "__main__":
    main(sys.argv[1:])
