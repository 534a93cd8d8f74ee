"""The local backend: the same lab as supervised processes, for machines without Docker.

    MLflow server   .venv's mlflow, SQLite in .lab/mlflow.db, artifacts proxied to .lab/artifacts
    serving-*       gunicorn processes, one per alias, on STAGING_PORT and PRODUCTION_PORT
    jobs            python -m trainer / gatekeeper / locust from .venv

Each server runs under `python -m labctl.supervise` (restarts on crash); its PID is
recorded in .lab/run/<name>.pid, and `down` stops exactly those PIDs, never processes
found by name. A model server's supervisor holds its listening socket (--listen), so
connections made while gunicorn restarts wait for the next one instead of being refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from labctl import doctor, log, processes, supervise
from labctl.errors import LabError
from labctl.runner import Result, Runner
from labctl.settings import MLFLOW_READER_USER, Settings, ensure_env, reload

SERVICES = ("mlflow", "serving-staging", "serving-production")
PORT_VAR = {
    "mlflow": "MLFLOW_PORT",
    "serving-staging": "STAGING_PORT",
    "serving-production": "PRODUCTION_PORT",
}
START_TIMEOUT_S = 180
# What a model server imports (and the page files it reads) from the working tree when
# it starts.
SERVING_CODE = ("serving/serving", "serving/gunicorn.conf.py")
SERVING_SUFFIXES = (".py", ".html", ".css", ".js", ".svg")

BANNER = """LOCAL MODE: the lab runs as processes on this machine, without Docker.
  MLflow on SQLite and a local artifact folder (.lab/), servers under gunicorn.
  Left out: Postgres, the S3 store, the image registry (no images are built or
  promoted: only model aliases move), container isolation."""


def process_command(pid: int) -> str:
    """The command line of a live process, or '' (Linux /proc, else ps)."""
    proc = Path(f"/proc/{pid}/cmdline")
    if proc.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            return proc.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""
    try:
        return subprocess.run(
            ["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return ""


class LocalBackend:
    mode = "local"

    def __init__(self, settings: Settings, runner: Runner):
        self.s = settings
        self.runner = runner
        self.run_dir = settings.lab_dir / "run"
        self.log_dir = settings.lab_dir / "logs"
        self.bin = settings.root / ".venv" / "bin"
        url = f"http://{settings.admin_host}:{settings.get('MLFLOW_PORT')}"
        self.job_env = {
            "MLFLOW_TRACKING_URI": url,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
            "GATE_REGISTRY_URL": "",  # no image registry in local mode
            "GATE_REPORT_DIR": str(settings.root / "reports" / "gate"),
            "TRAIN_REPORT_DIR": str(settings.root / "reports" / "data"),
        }
        self.runner.env.update(self.job_env)

    # ------------------------------------------------------------ processes
    def port(self, name: str) -> int:
        return self.s.port(PORT_VAR[name])

    def pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def running_pid(self, name: str) -> int | None:
        """The recorded PID, if that process is alive and is still our supervisor for it."""
        try:
            text = self.pidfile(name).read_text()
        except OSError:
            return None
        digits = "".join(c for c in text if c.isdigit())
        if not digits:
            return None
        pid = int(digits)
        cmd = process_command(pid)
        # scripts/supervise.py: a lab started before labctl, still stoppable after an update
        supervisor = "labctl.supervise" in cmd or "scripts/supervise.py" in cmd
        if supervisor and str(self.pidfile(name)) in cmd:
            return pid
        return None

    def clear_stale(self, name: str) -> None:
        path = self.pidfile(name)
        if path.exists() and self.running_pid(name) is None:
            log.info(f"removing stale PID file for {name} (the process is gone)")
            path.unlink(missing_ok=True)

    def port_taken(self, name: str) -> bool:
        return processes.port_in_use(self.port(name), self.s.host_for(PORT_VAR[name]))

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        listen: str | None = None,
        env_file: Path | None = None,
    ) -> None:
        """Start `argv` under a supervisor. `listen`: a host whose socket on this service's
        port the supervisor holds and hands to each server it starts (GUNICORN_BIND=fd://N),
        so the port stays open across the server's restarts. `env_file`: settings the
        supervisor reads again at each start (production's pinned version)."""
        self.clear_stale(name)
        pid = self.running_pid(name)
        if pid is not None:
            log.info(f"{name} already running (PID {pid})")
            return
        port = self.port(name)
        if self.port_taken(name):
            raise LabError(
                f"port {port} for {name} is already in use by another program: stop it, "
                "or set a free port in .env"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        options = []
        if listen is not None:
            host = listen.strip("[]")
            options = ["--listen", f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
        if env_file is not None:
            options += ["--env-file", str(env_file)]
        with open(self.log_dir / f"{name}.log", "ab") as errlog:
            subprocess.Popen(  # detached: it outlives this command, `make down` stops it
                [
                    sys.executable,
                    "-m",
                    "labctl.supervise",
                    "--pidfile",
                    str(self.pidfile(name)),
                    "--log",
                    str(self.log_dir / f"{name}.log"),
                    *options,
                    "--",
                    *argv,
                ],
                cwd=self.s.root,
                env={**self.runner.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errlog,  # the supervisor's own failure, if any
                start_new_session=True,
            )
        log.info(f"started {name} (log: .lab/logs/{name}.log)")

    def wait_http(self, name: str, url: str, timeout: float = START_TIMEOUT_S) -> None:
        """Wait for an endpoint; fail with the log's tail instead of hanging."""

        started = time.monotonic()

        def alive() -> bool:  # the supervisor writes its PID file as it starts
            return time.monotonic() - started < 4 or self.running_pid(name) is not None

        try:
            processes.wait_http(url, timeout, alive=alive)
        except (RuntimeError, TimeoutError) as exc:
            self.print_log_tail(name)
            raise LabError(f"{name} did not come up: {exc} (log above)") from exc

    def print_log_tail(self, name: str, lines: int = 30) -> None:
        path = self.log_dir / f"{name}.log"
        try:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return
        print("\n".join(tail), file=sys.stderr)

    def stop_all(self) -> None:
        self._stop_checker()
        stopped = False
        for name in SERVICES:
            self.clear_stale(name)
            pid = self.running_pid(name)
            if pid is None:
                continue
            if processes.stop_pid(pid, timeout=30):
                log.info(f"{name} (PID {pid}) did not stop in 30 s; killed it")
            self.pidfile(name).unlink(missing_ok=True)
            log.info(f"stopped {name} (PID {pid})")
            stopped = True
        if not stopped:
            log.info("nothing was running")

    # ----------------------------------------------------------------- verbs
    def doctor(self) -> tuple[list[str], str]:
        running = [PORT_VAR[n] for n in SERVICES if self.running_pid(n) is not None]
        return doctor.local_doctor(self.s, running)

    def prepare(self) -> None:
        for line in BANNER.splitlines():
            log.info(line)
        changed = ensure_env(self.s)
        if changed:
            log.info(changed)
            reload(self.s, self.runner)
            self.runner.env.update(self.job_env)
        # Always: it does nothing when .venv is current, and installs what an older one
        # lacks (the components, installed editable) before any process starts.
        self.runner.run(["make", "--no-print-directory", "venv"])
        for sub in ("data", "gate", "load", "drift"):
            (self.s.root / "reports" / sub).mkdir(parents=True, exist_ok=True)
        for name in SERVICES:  # preflight: refuse before starting anything
            self.clear_stale(name)
            if self.running_pid(name) is None and self.port_taken(name):
                raise LabError(
                    f"port {self.port(name)} for {name} is already in use by another program: "
                    "stop it, or set a free port in .env"
                )

    def start_tracking(self) -> None:
        (self.s.lab_dir / "artifacts").mkdir(parents=True, exist_ok=True)
        argv = processes.mlflow_server_command(
            self.bin, self.s.lab_dir, self.port("mlflow"), host=self.s.admin_bind
        )
        env = dict(processes.MLFLOW_SERVER_ENV)
        if self.s.auth:  # classroom mode: MLflow's basic-auth app, users in .lab/
            argv += ["--app-name", "basic-auth"]
            env.update(self.auth_env())
        self.start("mlflow", argv, env=env)
        self.wait_http("mlflow", f"http://{self.s.admin_host}:{self.port('mlflow')}/health")
        if self.s.auth:
            from labctl import accounts

            accounts.ensure_reader(self.s)

    def auth_env(self) -> dict[str, str]:
        """MLflow's basic-auth configuration (the docker image writes the same file)."""
        ini = self.s.lab_dir / "mlflow-auth.ini"
        processes.write_auth_config(ini, f"sqlite:///{self.s.lab_dir / 'mlflow-auth.db'}")
        return {
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.s.get("MLFLOW_ADMIN_PASSWORD"),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self.s.get("MLFLOW_SECRET_KEY"),
        }

    def serving_code(self) -> str:
        """sha256 of the serving code in the working tree (a server runs it as it was when
        the server started)."""
        h = hashlib.sha256()
        for rel in SERVING_CODE:
            base = self.s.root / rel
            found = (
                sorted(p for p in base.rglob("*") if p.suffix in SERVING_SUFFIXES)
                if base.is_dir()
                else [base]
            )
            for path in (p for p in found if p.is_file()):
                h.update(path.relative_to(self.s.root).as_posix().encode() + b"\0")
                h.update(hashlib.sha256(path.read_bytes()).digest())
        return h.hexdigest()

    def codefile(self, name: str) -> Path:
        return self.run_dir / f"{name}.code"

    def serving_up(self, alias: str) -> None:
        name = f"serving-{alias}"
        port = self.port(name)
        self.clear_stale(name)
        if self.running_pid(name) is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.codefile(name).write_text(self.serving_code() + "\n")
        self.start(
            name,
            processes.gunicorn_command(self.bin),
            # Production serves the version pinned there (a checked change moves it).
            env_file=self.production_env_file if alias == "production" else None,
            # The supervisor holds the socket: a restarting server costs no refused connection.
            listen=self.s.bind,
            env={
                "SERVING_MODEL_ALIAS": alias,
                "PROMETHEUS_MULTIPROC_DIR": str(self.s.lab_dir / f"metrics-{alias}"),
                # The last good model: the server restarts and serves while MLflow is down.
                "SERVING_CACHE_DIR": str(self.s.lab_dir / f"serving-cache-{alias}"),
                # What it answered, for the drift check (SERVING_CAPTURE_SAMPLE=0: nothing).
                "SERVING_CAPTURE_DIR": str(self.capture_dir),
                # The servers only read the registry: a read-only account in classroom mode.
                "MLFLOW_TRACKING_USERNAME": MLFLOW_READER_USER,
                "MLFLOW_TRACKING_PASSWORD": self.s.get("MLFLOW_READER_PASSWORD"),
            },
        )
        self.wait_http(name, f"http://{self.s.client_host}:{port}/ready")

    def start_servers(self) -> None:
        self.serving_up("staging")
        self.start_production()

    # ---------------------------------------------------------- production
    # Production is pinned to one version (SERVING_MODEL_VERSION in an env file its
    # supervisor reads at each start) and changed the checked way (labctl.pipeline): the
    # new version is started on a second server on a free port and smoke-tested there,
    # then the alias moves, then the production server is replaced by the supervisor
    # without a gap and in one event for all its workers (labctl.supervise, SIGHUP).
    blue_green = True

    @property
    def production_env_file(self) -> Path:
        return self.run_dir / "serving-production.env"

    def pinned_production(self) -> str:
        try:
            text = self.production_env_file.read_text()
        except OSError:
            return ""
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "SERVING_MODEL_VERSION" and value.strip().isdigit():
                return value.strip()
        return ""

    def _production_cache(self, version: str) -> Path:
        """Each pinned version keeps its own last good copy: a server starting beside the
        running one (a switch) never prunes the copy the running one restarts from."""
        return self.s.lab_dir / "serving-cache-production" / f"v{version}"

    def _pin_production(self, version: str) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.production_env_file.with_suffix(".tmp")
        tmp.write_text(
            "# Written by make (labctl.local): the version the production server serves.\n"
            f"SERVING_MODEL_VERSION={version}\n"
            f"SERVING_CACHE_DIR={self._production_cache(version)}\n"
        )
        tmp.replace(self.production_env_file)

    def _forget_other_caches(self, version: str) -> None:
        keep = self._production_cache(version)
        for folder in keep.parent.glob("v*"):
            if folder != keep:
                shutil.rmtree(folder, ignore_errors=True)

    def production_version(self) -> str:
        from labctl.pipeline import production_version

        return production_version(self)

    def production_alias(self) -> str:
        version = self.production_version()
        if not version:
            raise LabError("the registry has no @production to serve: run make up to bootstrap")
        return version

    def start_production(self) -> None:
        """The production server, on @production's version. A running one on another
        version (the alias moved while nothing watched) is moved the checked way."""
        version = self.production_alias()
        self.clear_stale("serving-production")
        if self.running_pid("serving-production") is None:
            self._pin_production(version)
            self.serving_up("production")
            return
        pinned = self.pinned_production()
        if pinned == version:
            self.serving_up("production")  # running: waits until it answers
            return
        log.warn(
            f"@production is version {version} but production serves "
            f"{('version ' + pinned) if pinned else 'its alias'}: moving it to {version}, "
            "checked first"
        )
        try:
            url = self.prepare_production(version, "")
            self.gatekeeper("smoke", "--url", url, "--alias", "production", "--version", version)
        except BaseException:
            self.abort_production()
            raise
        self.switch_production()

    def settle_production(self) -> None:
        """Before a production change: no checking server left behind, and production on
        its alias. Before the first production model (the bootstrap) nothing to settle."""
        self._stop_checker()
        if self.running_pid("serving-production") is not None:
            self.start_production()

    @property
    def _checker_pidfile(self) -> Path:
        return self.run_dir / "serving-production-check.pid"

    def prepare_production(self, version: str, sha: str) -> str:
        """A second production server pinned to `version`, on a free loopback port, one
        worker, nothing captured; returns its URL. Clients still reach only production."""
        self._stop_checker()
        port = processes.free_port()
        check_dir = self.s.lab_dir / "serving-production-check"
        shutil.rmtree(check_dir, ignore_errors=True)
        env = {
            **self.runner.env,
            "SERVING_MODEL_ALIAS": "production",
            "SERVING_MODEL_VERSION": version,
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(check_dir / "metrics"),
            "SERVING_CACHE_DIR": str(check_dir / "cache"),
            "SERVING_CAPTURE_SAMPLE": "0",
            "MLFLOW_TRACKING_USERNAME": MLFLOW_READER_USER,
            "MLFLOW_TRACKING_PASSWORD": self.s.get("MLFLOW_READER_PASSWORD"),
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"starting a production server on version {version} to check it (port {port})")
        with open(self.log_dir / "serving-production-check.log", "ab") as out:
            self._checker = subprocess.Popen(
                processes.gunicorn_command(self.bin),
                cwd=self.s.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._checker_pidfile.write_text(f"{self._checker.pid}\n")
        url = f"http://127.0.0.1:{port}"
        try:
            processes.wait_http(f"{url}/ready", START_TIMEOUT_S, proc=self._checker)
        except (RuntimeError, TimeoutError) as exc:
            self.print_log_tail("serving-production-check")
            raise LabError(
                f"the production server on version {version} did not come up: {exc}"
            ) from exc
        return url

    def _stop_checker(self) -> None:
        checker = getattr(self, "_checker", None)
        if checker is not None:
            processes.stop(checker)
            self._checker = None
        else:
            try:
                pid = int(self._checker_pidfile.read_text().strip())
            except (OSError, ValueError):
                pid = 0
            if pid and "gunicorn" in process_command(pid):  # left by an interrupted change
                processes.stop_pid(pid, timeout=20)
        self._checker_pidfile.unlink(missing_ok=True)
        shutil.rmtree(self.s.lab_dir / "serving-production-check", ignore_errors=True)

    def abort_production(self) -> None:
        """The checked version failed: its server stops; production never served it."""
        self._stop_checker()
        log.warn(f"production stays on version {self.pinned_production() or '(none)'}")

    def switch_production(self) -> None:
        """Production onto the version just checked (or @production's): the supervisor
        starts a new server beside the running one and swaps them in one event. If the
        new one fails, the running one serves on, on its version."""
        self._stop_checker()
        version = self.production_alias()
        before = self.pinned_production()
        self._pin_production(version)
        name = "serving-production"
        self.clear_stale(name)
        pid = self.running_pid(name)
        if pid is None:  # the bootstrap: nothing serves yet
            self.serving_up("production")
            return
        if "--env-file" not in process_command(pid):
            # A server started before production was pinned: its supervisor cannot swap
            # servers (SIGHUP would end it). Restart it, once, with a short gap.
            log.warn("production's server predates pinned versions: restarting it once")
            processes.stop_pid(pid, timeout=30)
            self.pidfile(name).unlink(missing_ok=True)
            self.serving_up("production")
            self._forget_other_caches(version)
            log.good(f"production serves version {version}")
            return
        previous = supervise.replace_outcome(self.pidfile(name)).get("generation")
        log.info(f"switching production to version {version}")
        os.kill(pid, signal.SIGHUP)
        result = supervise.wait_replaced(
            self.pidfile(name),
            previous,
            START_TIMEOUT_S,
            alive=lambda: self.running_pid(name) is not None,
        )
        if result["result"] != "ok":
            if before:
                self._pin_production(before)
            self.print_log_tail(name)
            raise LabError(
                f"production could not switch to version {version} ({result.get('reason')}); "
                f"it serves version {before or '(unknown)'} as before (log above)"
            )
        # The new server runs the working tree's serving code (a later roll keeps it).
        self.codefile(name).write_text(self.serving_code() + "\n")
        self._forget_other_caches(version)
        log.good(f"production serves version {version}")

    def python(self, *args: str, capture: bool = False) -> Result:
        return self.runner.run([str(self.bin / "python"), *args], capture=capture)

    def gatekeeper(self, *args: str, capture: bool = False) -> Result:
        return self.python("-m", "gatekeeper", *args, capture=capture)

    def train(self, shift: str | None = None) -> None:
        env = {"TRAIN_SHIFT": shift} if shift is not None else None
        self.runner.run([str(self.bin / "python"), "-m", "trainer"], env=env)

    @property
    def capture_dir(self) -> Path:
        return self.s.lab_dir / "capture"

    def traffic(self, alias: str, shift: str) -> None:
        self.runner.run(
            [str(self.bin / "python"), "-m", "trainer.traffic"],
            env={"TRAFFIC_URL": self.server_url(alias), "TRAFFIC_SHIFT": shift},
        )

    def drift(self) -> None:
        reports = self.s.root / "reports" / "drift"
        reports.mkdir(parents=True, exist_ok=True)
        self.runner.run(
            [str(self.bin / "python"), "-m", "gatekeeper", "drift"],
            env={"DRIFT_CAPTURE_DIR": str(self.capture_dir), "DRIFT_REPORT_DIR": str(reports)},
        )

    def ensure_version_image(self, version: str) -> None:
        """Local mode serves from the venv: no image to fetch."""

    def roll(self, alias: str) -> None:
        """Staging follows its alias, production its pinned version; make sure this one
        runs and answers, on the working tree's serving code: a server started on other
        code is restarted (docker mode rolls a server onto the image of its version's
        commit)."""
        name = f"serving-{alias}"
        self.clear_stale(name)
        pid = self.running_pid(name)
        if pid is not None:
            try:
                started_on = self.codefile(name).read_text().strip()
            except OSError:
                started_on = ""  # started before the lab kept this: its code is unknown
            if started_on != self.serving_code():
                log.info(f"the serving code changed since {name} started: restarting it")
                processes.stop_pid(pid, timeout=30)
                self.pidfile(name).unlink(missing_ok=True)
        self.serving_up(alias)

    def server_url(self, alias: str) -> str:
        return f"http://{self.s.client_host}:{self.port(f'serving-{alias}')}"

    def load(self, alias: str) -> None:
        reports = self.s.root / "reports" / "load"
        reports.mkdir(parents=True, exist_ok=True)
        self.runner.run(
            [
                str(self.bin / "locust"),
                "--config",
                str(self.s.root / "loadtests" / "locust.conf"),
                "--host",
                self.server_url(alias),
                "--csv",
                str(reports / "locust"),
                "--html",
                str(reports / "locust.html"),
            ],
            env={"LOAD_REPORT_DIR": str(reports)},
        )

    def build(self) -> None:
        log.info("local mode builds no images (nothing to do)")

    def record_mode(self) -> None:
        self.s.lab_dir.mkdir(exist_ok=True)
        (self.s.lab_dir / "mode").write_text("local\n")

    def down(self) -> None:
        self.stop_all()
        (self.s.lab_dir / "mode").unlink(missing_ok=True)

    def clean(self) -> None:
        self.stop_all()
        shutil.rmtree(self.s.lab_dir, ignore_errors=True)
        shutil.rmtree(self.s.root / "reports", ignore_errors=True)

    def ps(self) -> None:
        print(f"{'SERVICE':<20} {'PID':<8} {'PORT':<7} STATE")
        for name in SERVICES:
            pid = self.running_pid(name)
            state = "running" if pid is not None else "stopped"
            print(f"{name:<20} {pid if pid is not None else '-'!s:<8} {self.port(name):<7} {state}")

    def logs(self, service: str) -> None:
        names = [service] if service else list(SERVICES)
        for name in names:
            print(f"==> .lab/logs/{name}.log <==")
            path = self.log_dir / f"{name}.log"
            if path.exists():
                print("\n".join(path.read_text(errors="replace").splitlines()[-100:]))
            else:
                print("(no log)")

    def state_save(self) -> None:
        raise LabError(_NO_STATE.format(verb="state-save"))

    def state_restore(self) -> None:
        raise LabError(_NO_STATE.format(verb="state-restore"))


_NO_STATE = (
    "{verb} works in docker mode only (it moves Docker volumes); the local lab's state "
    "is the .lab/ folder with .env"
)
