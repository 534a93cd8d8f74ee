"""Loading the model in gunicorn's master before forking (`--preload`): what it saves in
memory, and what it does to hot reload. Side by side in one run, same model, same
settings (serving/gunicorn.conf.py, two workers):

    .venv/bin/python -m bench.preload [--out docs/bench]

1. a private MLflow server and a model trained by the lab's trainer, as @production;
2. the model server started twice, without and with `--preload`; per process, RSS, PSS
   (each shared page counted once, split between its sharers) and USS (private pages),
   from /proc/<pid>/smaps_rollup (Linux);
3. @production moved to a second version: does each server follow it?

Writes preload.md and preload.json to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from labctl.processes import (
    ROOT,
    free_port,
    gunicorn_command,
    start_gunicorn,
    start_mlflow,
    stop,
    wait_http,
)

HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
FOLLOW_S = 15  # how long a server gets to follow an alias move (it polls every second)


def memory_mb(pid: int) -> dict[str, float]:
    """RSS, PSS and USS of one process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0])  # kB
    uss = fields["Private_Clean"] + fields["Private_Dirty"]
    return {
        "rss": round(fields["Rss"] / 1024, 1),
        "pss": round(fields["Pss"] / 1024, 1),
        "uss": round(uss / 1024, 1),
    }


def children(pid: int) -> list[int]:
    r = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return sorted(int(p) for p in r.stdout.split())


def train(env: dict) -> str:
    """A new version, registered as @candidate by the trainer; returns its number."""
    subprocess.run(
        [sys.executable, "-m", "trainer"], env=env, check=True, cwd=ROOT, capture_output=True
    )
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    return client.get_model_version_by_alias(env["MLFLOW_MODEL_NAME"], "candidate").version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench"), help="report folder")
    args = parser.parse_args(argv)
    if not Path("/proc/self/smaps_rollup").exists():
        sys.exit("bench.preload: needs Linux (/proc/<pid>/smaps_rollup)")

    tmp = Path(tempfile.mkdtemp(prefix="mlops-preload-"))
    procs: list[subprocess.Popen] = []
    base_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "SERVING_", "GUNICORN_"))
    }
    base_env.update(MLFLOW_DISABLE_TELEMETRY="true", MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true")
    results: dict[str, dict] = {}
    try:
        mport = free_port(HOST)
        tracking = f"http://{HOST}:{mport}"
        procs.append(start_mlflow(tmp, mport, BIN, HOST, env=base_env))
        wait_http(f"{tracking}/health", 180, procs[-1])
        env = {**base_env, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_MODEL_NAME": "preload"}
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking)
        first = train(env)
        client.set_registered_model_alias("preload", "production", first)

        # The lab's settings, plus preload_app; its metrics folder is made here, not
        # emptied on start (the preloaded app has opened its files in it by then).
        preload_conf = tmp / "preload.conf.py"
        preload_conf.write_text(
            f"exec(open({str(ROOT / 'serving' / 'gunicorn.conf.py')!r}).read())\n"
            "preload_app = True\n"
            "def on_starting(server):\n"
            "    os.makedirs(os.environ['PROMETHEUS_MULTIPROC_DIR'], exist_ok=True)\n"
        )
        servers = {}
        for name, conf in (("per worker", None), ("preload", preload_conf)):
            port = free_port(HOST)
            metrics = tmp / f"metrics-{port}"
            metrics.mkdir()
            server_env = {
                **env,
                "SERVING_MODEL_ALIAS": "production",
                "GUNICORN_WORKERS": "2",
                "GUNICORN_BIND": f"{HOST}:{port}",
                "SERVING_POLL_INTERVAL_S": "1",
                "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            }
            if conf is None:
                procs.append(start_gunicorn(server_env, tmp / f"{port}.log", BIN))
            else:
                command = gunicorn_command(BIN)
                command[command.index("-c") + 1] = str(conf)
                with open(tmp / f"{port}.log", "ab") as log:
                    procs.append(
                        subprocess.Popen(
                            command, env=server_env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
                        )
                    )
            url = f"http://{HOST}:{port}"
            wait_http(f"{url}/ready", 180, procs[-1])
            servers[name] = (procs[-1].pid, url)
        time.sleep(2)  # settled: imports done, first requests served below
        row = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
        for name, (master, url) in servers.items():
            for _ in range(50):
                requests.post(f"{url}/predict", json=row, timeout=10).raise_for_status()
            workers = children(master)
            per = [memory_mb(pid) for pid in workers]
            results[name] = {
                "master": memory_mb(master),
                "workers": per,
                "total_pss_mb": round(memory_mb(master)["pss"] + sum(w["pss"] for w in per), 1),
            }

        second = train(env)
        client.set_registered_model_alias("preload", "production", second)
        deadline = time.monotonic() + FOLLOW_S
        followed = dict.fromkeys(servers, False)
        while time.monotonic() < deadline and not all(followed.values()):
            for name, (_, url) in servers.items():
                answers = {
                    requests.post(f"{url}/predict", json=row, timeout=10).json()["model_version"]
                    for _ in range(20)
                }
                followed[name] = answers == {second}
            time.sleep(0.5)
        for name in servers:
            results[name]["follows_alias_move"] = followed[name]
    finally:
        for proc in reversed(procs):
            stop(proc)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "preload.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Loading the model before forking (`--preload`)",
        "",
        f"`python -m bench.preload`, {time.strftime('%Y-%m-%d')}: the lab's model server, two "
        "workers, the lab's trained model; MB from /proc/<pid>/smaps_rollup after 50 requests.",
        "",
        "| server | master PSS | worker RSS | worker PSS | worker USS (private) | total PSS "
        f"| follows an alias move within {FOLLOW_S} s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        w = r["workers"]
        lines.append(
            f"| {name} | {r['master']['pss']} | {' / '.join(str(x['rss']) for x in w)} | "
            f"{' / '.join(str(x['pss']) for x in w)} | {' / '.join(str(x['uss']) for x in w)} "
            f"| {r['total_pss_mb']} | {'yes' if r['follows_alias_move'] else 'no'} |"
        )
    (out / "preload.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
