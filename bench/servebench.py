"""Serving benchmark: our server (gevent and sync workers, and recording what it serves for
the drift check) vs `mlflow models serve` vs the HTTP floor, side by side.

    make bench                      # or, from the repository root:
    .venv/bin/python -m bench.servebench

In one run on one machine it trains and registers a model on a private MLflow server,
starts the five servers on 127.0.0.1 with the same worker count, and loads each with the
same `wrk` settings, single rows and 64-row batches, alternating the order over several
rounds. It prints a table (requests/s, p50/p95/p99, failures, server and client CPU),
each server's resident memory per worker after the load, writes JSON and Markdown
reports, and ends with exactly these lines:

    ours/ours-sync rps ratio: X.XX
    ours-capture/ours rps ratio: X.XX
    ours/mlflow-serve invocations rps ratio: X.X
    ours/mlflow-serve rps ratio: X.X
    ours/floor rps ratio: X.X
    ours rss per worker: N MB

(single-row medians; the RSS is the median over our server's workers, each process's own
resident set as `ps` shows it, shared pages included).

`ours` serves without recording; `ours-capture` is the same server recording every
request (SERVING_CAPTURE_SAMPLE=1, as the lab runs it): its line is what capture costs.
`ours-invocations` is `ours` again, asked through MLflow's `POST /invocations` with the
very body `mlflow models serve` gets: its line compares the two servers on the same
protocol. Every load run is bounded in time and targets 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from labctl.processes import ROOT, free_port, start_gunicorn, start_mlflow, venv_bin, wait_http

BIN = venv_bin()
SERVERS = ("ours", "ours-invocations", "ours-capture", "ours-sync", "mlflow-serve", "floor")
# Servers asked through MLflow's scoring protocol (the rest through /predict), and the
# ones that are another server asked differently (same process, not started twice).
INVOCATIONS = {"ours-invocations", "mlflow-serve"}
SAME_AS = {"ours-invocations": "ours"}
SCENARIOS = {"single": 1, "batch64": 64}
HOST = "127.0.0.1"  # load goes to loopback only


@dataclass
class Sample:
    server: str
    scenario: str
    round: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests: int
    failures: int
    server_cpu_pct: float
    client_cpu_pct: float


def parse_wrk(output: str) -> dict:
    """The JSON line our wrk script prints (see wrk_report.lua)."""
    match = re.search(r"^WRK_JSON (\{.*\})$", output, re.MULTILINE)
    if not match:
        raise RuntimeError(f"wrk printed no results:\n{output[-2000:]}")
    return json.loads(match.group(1))


def to_sample(
    server: str, scenario: str, rnd: int, wrk: dict, server_cpu_s: float, client_cpu_s: float
) -> Sample:
    seconds = wrk["duration_us"] / 1e6
    failures = wrk["non2xx"] + wrk["connect"] + wrk["read"] + wrk["write"] + wrk["timeout"]
    return Sample(
        server=server,
        scenario=scenario,
        round=rnd,
        rps=wrk["requests"] / seconds,
        p50_ms=wrk["p50_us"] / 1000,
        p95_ms=wrk["p95_us"] / 1000,
        p99_ms=wrk["p99_us"] / 1000,
        requests=wrk["requests"],
        failures=failures,
        server_cpu_pct=100 * server_cpu_s / seconds,
        client_cpu_pct=100 * client_cpu_s / seconds,
    )


def medians(samples: list[Sample]) -> dict[tuple[str, str], dict]:
    """Median of each measure per (server, scenario); failures are summed."""
    out: dict[tuple[str, str], dict] = {}
    for key in {(s.server, s.scenario) for s in samples}:
        group = [s for s in samples if (s.server, s.scenario) == key]
        out[key] = {
            field: statistics.median(getattr(s, field) for s in group)
            for field in ("rps", "p50_ms", "p95_ms", "p99_ms", "server_cpu_pct", "client_cpu_pct")
        }
        out[key]["failures"] = sum(s.failures for s in group)
        out[key]["requests"] = sum(s.requests for s in group)
    return out


def ratio_lines(med: dict, rss: dict[str, list[float]]) -> list[str]:
    """The report's last lines; the last three are the ones the serving targets name."""
    ours = med[("ours", "single")]["rps"]
    mlflow_serve = med[("mlflow-serve", "single")]["rps"]
    return [
        f"ours/ours-sync rps ratio: {ours / med[('ours-sync', 'single')]['rps']:.2f}",
        f"ours-capture/ours rps ratio: {med[('ours-capture', 'single')]['rps'] / ours:.2f}",
        "ours/mlflow-serve invocations rps ratio: "
        f"{med[('ours-invocations', 'single')]['rps'] / mlflow_serve:.1f}",
        f"ours/mlflow-serve rps ratio: {ours / mlflow_serve:.1f}",
        f"ours/floor rps ratio: {ours / med[('floor', 'single')]['rps']:.1f}",
        f"ours rss per worker: {statistics.median(rss['ours']):.0f} MB",
    ]


def rss_lines(rss: dict[str, list[float]]) -> list[str]:
    return [
        f"- {server}: {statistics.median(values):.0f} MB per worker "
        f"({', '.join(f'{v:.0f}' for v in values)})"
        for server, values in rss.items()
    ]


def table(med: dict) -> str:
    lines = [
        "| scenario | server | req/s | p50 ms | p95 ms | p99 ms | failures | server CPU % | "
        "client CPU % |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scenario in SCENARIOS:
        for server in SERVERS:
            m = med[(server, scenario)]
            lines.append(
                f"| {scenario} | {server} | {m['rps']:.0f} | {m['p50_ms']:.1f} | "
                f"{m['p95_ms']:.1f} | {m['p99_ms']:.1f} | {m['failures']} | "
                f"{m['server_cpu_pct']:.0f} | {m['client_cpu_pct']:.0f} |"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------- processes


def _start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def _tree_cpu(pid: int) -> float:
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def _worker_rss_mb(pid: int) -> list[float]:
    """RSS (MB) of a server's workers: the processes of its tree that have no children
    (gunicorn: master -> workers; mlflow models serve: mlflow -> uvicorn -> workers)."""
    import psutil

    found = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if not p.children():
                found.append(round(p.memory_info().rss / 1e6, 1))
        except psutil.NoSuchProcess:
            pass
    return sorted(found)


def run_wrk(url: str, body_file: Path, seconds: float, connections: int, threads: int):
    """One bounded wrk run; returns what our wrk script reports."""
    env = {**os.environ, "WRK_BODY_FILE": str(body_file)}
    proc = subprocess.Popen(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{max(1, round(seconds))}s",  # wrk takes whole seconds
            "--timeout",
            "5s",
            "-s",
            str(ROOT / "bench" / "wrk_report.lua"),
            url,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = proc.communicate(timeout=seconds + 60)
    return parse_wrk(out)


def _image_size() -> str:
    """Size of the serving image built from this commit (make build / make up), if any."""
    if not shutil.which("docker"):
        return "n/a (no docker CLI)"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout.strip()
        out = subprocess.run(
            ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return "n/a (no Docker engine)"
    for line in out.splitlines():
        name = line.split()[0]
        if "mlops-lab/serving:" in name and name.rsplit(":", 1)[1] in (sha, f"{sha}-dirty"):
            return line
    return f"n/a (no serving image for {sha}: make build)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per load run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per run")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, order alternating")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per server")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench"), help="report folder")
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("at least two rounds: one alternation of the order")
    if not shutil.which("wrk"):
        sys.exit("bench: needs wrk (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk)")

    tmp = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    procs: list[subprocess.Popen] = []
    base_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "SERVING_", "GUNICORN_"))
    }
    base_env.update(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow serve runs `uvicorn`
        MLFLOW_DISABLE_TELEMETRY="true",
        MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true",
    )
    try:
        # 1. a registered model on a private MLflow server
        mport = free_port(HOST)
        tracking = f"http://{HOST}:{mport}"
        procs.append(start_mlflow(tmp, mport, BIN, HOST, env=base_env))
        wait_http(f"{tracking}/health", 180, procs[-1])
        env = {**base_env, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_MODEL_NAME": "bench"}
        subprocess.run(
            [sys.executable, "-m", "trainer"], env=env, check=True, cwd=ROOT, capture_output=True
        )
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking)
        version = client.get_model_version_by_alias("bench", "candidate").version
        client.set_registered_model_alias("bench", "production", version)
        from mlflow.models import get_model_info

        os.environ["MLFLOW_TRACKING_URI"] = tracking
        features = get_model_info(f"models:/bench/{version}").signature.inputs.input_names()

        # 2. the three servers, same worker count
        ports = {s: free_port(HOST) for s in SERVERS if s not in SAME_AS}
        ports.update({s: ports[same] for s, same in SAME_AS.items()})
        workers = str(args.workers)
        procs.append(
            start_gunicorn(
                {
                    **env,
                    "SERVING_MODEL_ALIAS": "production",
                    "GUNICORN_WORKERS": workers,
                    "GUNICORN_BIND": f"{HOST}:{ports['ours']}",
                    "SERVING_POLL_INTERVAL_S": "60",
                    "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
                },
                tmp / "ours.log",
                BIN,
            )
        )
        pids = {"ours": procs[-1].pid}
        started = {"ours": procs[-1]}
        # The same server recording every request it answers, as the lab runs it.
        procs.append(
            start_gunicorn(
                {
                    **env,
                    "SERVING_MODEL_ALIAS": "production",
                    "GUNICORN_WORKERS": workers,
                    "GUNICORN_BIND": f"{HOST}:{ports['ours-capture']}",
                    "SERVING_POLL_INTERVAL_S": "60",
                    "SERVING_CAPTURE_DIR": str(tmp / "capture"),
                    "SERVING_CAPTURE_SAMPLE": "1",
                    "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics-capture"),
                },
                tmp / "ours-capture.log",
                BIN,
            )
        )
        pids["ours-capture"] = procs[-1].pid
        started["ours-capture"] = procs[-1]
        # The same server with sync workers: what gevent workers cost or gain.
        procs.append(
            start_gunicorn(
                {
                    **env,
                    "SERVING_MODEL_ALIAS": "production",
                    "GUNICORN_WORKERS": workers,
                    "GUNICORN_WORKER_CLASS": "sync",
                    "GUNICORN_BIND": f"{HOST}:{ports['ours-sync']}",
                    "SERVING_POLL_INTERVAL_S": "60",
                    "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics-sync"),
                },
                tmp / "ours-sync.log",
                BIN,
            )
        )
        pids["ours-sync"] = procs[-1].pid
        started["ours-sync"] = procs[-1]
        procs.append(
            _start(
                [
                    str(BIN / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    f"models:/bench/{version}",
                    "--env-manager",
                    "local",
                    "-w",
                    workers,
                    "-h",
                    HOST,
                    "-p",
                    str(ports["mlflow-serve"]),
                ],
                env,
                tmp / "mlflow-serve.log",
            )
        )
        pids["mlflow-serve"] = procs[-1].pid
        started["mlflow-serve"] = procs[-1]
        procs.append(
            start_gunicorn(
                {
                    **base_env,
                    "GUNICORN_WORKERS": workers,
                    "GUNICORN_BIND": f"{HOST}:{ports['floor']}",
                    "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics-floor"),
                },
                tmp / "floor.log",
                BIN,
                app="bench.floor_app:app",
            )
        )
        pids["floor"] = procs[-1].pid
        started["floor"] = procs[-1]
        pids.update({s: pids[same] for s, same in SAME_AS.items()})
        for server, proc in started.items():
            ready = "/health" if server == "mlflow-serve" else "/ready"
            wait_http(f"http://{HOST}:{ports[server]}{ready}", 180, proc)

        # 3. request bodies: the same rows in each server's format
        bodies: dict[tuple[str, str], Path] = {}
        for scenario, n in SCENARIOS.items():
            rows = [
                {f: round(4.0 + (i % 7) * 0.3 + j * 0.1, 2) for j, f in enumerate(features)}
                for i in range(n)
            ]
            for server in SERVERS:
                payload = (
                    {"dataframe_records": rows} if server in INVOCATIONS else {"instances": rows}
                )
                path = tmp / f"{server}-{scenario}.json"
                path.write_text(json.dumps(payload))
                bodies[(server, scenario)] = path

        # 4. rounds, alternating the order
        samples: list[Sample] = []
        for rnd in range(args.rounds):
            order = list(SERVERS) if rnd % 2 == 0 else list(reversed(SERVERS))
            for scenario in SCENARIOS:
                for server in order:
                    url = f"http://{HOST}:{ports[server]}" + (
                        "/invocations" if server in INVOCATIONS else "/predict"
                    )
                    run_wrk(
                        url, bodies[(server, scenario)], args.warmup, args.connections, args.threads
                    )
                    cpu0 = _tree_cpu(pids[server])
                    c0 = _children_cpu()
                    result = run_wrk(
                        url,
                        bodies[(server, scenario)],
                        args.duration,
                        args.connections,
                        args.threads,
                    )
                    client_cpu = _children_cpu() - c0
                    sample = to_sample(
                        server, scenario, rnd, result, _tree_cpu(pids[server]) - cpu0, client_cpu
                    )
                    samples.append(sample)
                    print(
                        f"round {rnd + 1} {scenario:8} {server:13} {sample.rps:7.0f} req/s "
                        f"p99 {sample.p99_ms:6.1f} ms failures {sample.failures}",
                        flush=True,
                    )
        rss = {s: _worker_rss_mb(pids[s]) for s in SERVERS if s not in SAME_AS}
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("BENCH_KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"bench: kept {tmp}")

    med = medians(samples)
    ratios = ratio_lines(med, rss)
    p99_ratio = med[("mlflow-serve", "single")]["p99_ms"] / max(
        med[("ours", "single")]["p99_ms"], 1e-9
    )
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "command": "python -m bench.servebench "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": vars(args),
        "worker_rss_mb": rss,
        "serving_image": _image_size(),
        "mlflow_serve_p99_over_ours": round(p99_ratio, 1),
    }
    report = "\n".join(
        [
            "# Serving benchmark",
            "",
            f"{info['date']} on {info['machine']}; `{info['command']}`; "
            f"{args.workers} workers per server, wrk {args.connections} connections, "
            f"{args.rounds} rounds of {args.duration:.0f} s (medians).",
            "",
            table(med),
            "",
            "Resident memory per worker after the load (RSS, MB):",
            "",
            *rss_lines(rss),
            "",
            f"- serving image: {info['serving_image']}",
            f"- p99, mlflow-serve / ours (single row): {p99_ratio:.1f}",
            *[f"- {line}" for line in ratios],
            "",
        ]
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps(
            {
                **info,
                "samples": [asdict(s) for s in samples],
                "medians": {f"{k[0]}/{k[1]}": v for k, v in med.items()},
            },
            indent=2,
        )
    )
    (out / "results.md").write_text(report)
    print()
    print(table(med))
    print()
    print("\n".join(rss_lines(rss)))
    print(f"serving image: {info['serving_image']}")
    print(f"p99 mlflow-serve/ours (single row): {p99_ratio:.1f}")
    print(f"reports: {out / 'results.md'}, {out / 'results.json'}")
    for line in ratios:
        print(line)
    return 0


def _children_cpu() -> float:
    """CPU seconds of every finished child so far: the delta around a run is wrk's own."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    sys.exit(main())
