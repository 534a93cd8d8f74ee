"""The docker backend: the Compose stack, its images in the local registry, its state file."""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from labctl import doctor, images, log, production, state
from labctl.errors import CommandFailed, LabError
from labctl.runner import Result, Runner
from labctl.settings import REGISTRY_USER, Settings, ensure_env, reload

# Every image the lab builds, by compose service, with its repository in the registry.
BUILT = {
    "mlflow": "mlflow",
    "serving-image": "serving",
    "training": "training",
    "gatekeeper": "gatekeeper",
    "locust": "loadtests",
}
ALL_PROFILES = ("build", "jobs", "load", "minio", "seaweedfs")
# How long the proxy may take to answer for the new colour after its reload, and how long
# the old colour keeps running after that for the responses it still owes.
SWITCH_TIMEOUT_S = 30
DRAIN_S = 2.0
# Answers with the new configuration in a row, each on a new connection, before a reload
# counts as done.
RELOAD_CONFIRMATIONS = 10
MANIFEST_ACCEPT = (
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.manifest.v1+json"
)
# The uid of the images' non-root user: as root (CI), jobs run as it and own the reports.
IMAGE_UID = "10001"
# The folders under reports/ the jobs write through bind mounts (compose/compose.yaml).
REPORT_DIRS = ("data", "gate", "load", "drift")


def served_version(url: str) -> str | None:
    """The version a model server (or the proxy) says it serves on /model; None if it does
    not answer."""
    try:
        # The URL is the lab's own http:// address, built from its settings.
        with urllib.request.urlopen(url, timeout=3) as r:  # noqa: S310
            return str(json.loads(r.read()).get("version"))
    except (OSError, ValueError, http.client.HTTPException):
        return None


def proxy_generation(url: str) -> str | None:
    """The generation of the configuration the proxy answers with (/proxy/generation)."""
    try:
        with urllib.request.urlopen(url, timeout=3) as r:  # noqa: S310 (the lab's http URL)
            return r.read().decode().strip()
    except (OSError, ValueError, http.client.HTTPException):
        return None


class DockerBackend:
    mode = "docker"

    def __init__(self, settings: Settings, runner: Runner):
        self.s = settings
        self.runner = runner
        # Set once this process brought the tracking stack up and saw it healthy: the
        # servers and jobs started after that skip Compose's dependency round (a few
        # seconds each: the one-shot bucket job runs again, every health check is awaited).
        self.tracking_ready = False

    # ------------------------------------------------------------------ helpers
    def compose(self, *args: str, profiles: tuple[str, ...] = ()) -> list[str]:
        # The production colours' versions and tags, which compose/compose.yaml reads.
        state = production.load(self.s.lab_dir) or production.Production()
        self.runner.env.update(state.env())
        files = ["-f", str(self.s.root / "compose" / "compose.yaml")]
        if self.s.auth:  # classroom mode: the registry behind a login
            files += ["-f", str(self.s.root / "compose" / "classroom.yaml")]
        argv = [
            "docker",
            "compose",
            # labctl passes every setting in the environment, checked; Compose must not
            # read .env on its own (it accepts lines labctl refuses).
            "--env-file",
            os.devnull,
            "--project-directory",
            str(self.s.root),
            *files,
            "--project-name",
            self.project(),
            "--profile",
            self.s.s3_backend,
        ]
        for p in profiles:
            argv += ["--profile", p]
        return argv + list(args)

    def run_as(self) -> str:
        if os.getuid() == 0:
            return f"{IMAGE_UID}:{IMAGE_UID}"
        return f"{os.getuid()}:{os.getgid()}"

    def prepare_reports(self) -> None:
        for sub in REPORT_DIRS:
            path = self.s.root / "reports" / sub
            path.mkdir(parents=True, exist_ok=True)
            if os.getuid() == 0:  # files too: local mode may have written them as root
                chown_tree(path, int(IMAGE_UID))

    def project(self) -> str:
        return self.s.get("COMPOSE_PROJECT_NAME", "mlops-lab")

    def running(self) -> bool:
        r = self.runner.run(self.compose("ps", "-q"), check=False, capture=True, quiet=True)
        return r.returncode == 0 and bool(r.stdout.strip())

    # ----------------------------------------------------------------- verbs
    def doctor(self) -> tuple[list[str], str]:
        return doctor.docker_doctor(self.s, self.runner, self.running)

    def prepare(self) -> None:
        """Preflight, secrets, the registry and this commit's images."""
        log.info("docker mode: preflight")
        problems, summary = self.doctor()
        for p in problems:
            log.problem(p)
        if problems:
            raise LabError("fix the problems above, then run make up again")
        log.good(summary)
        self.ensure_env()
        self.prepare_reports()
        # The database and the S3 store get ready while the images are checked (or built).
        self.runner.run(self.compose("up", "-d", "postgres", self.s.s3_backend))
        self.start_registry()
        self.provide_images()

    def provide_images(self) -> None:
        """This commit's five images in the local registry, the cheapest way: already
        there (a warm start), in the engine (a loaded classroom bundle, a registry volume
        removed), pulled from LAB_REMOTE_IMAGES (a CI job after the build job), or built."""
        sha = self.s.get("GIT_SHA")
        if self.registry_has_images():
            log.info(f"the local registry holds this commit's images ({sha}): not rebuilding")
            return
        if reusable_tag(sha) and all(self.engine_has(repo, sha) for repo in BUILT.values()):
            log.info(f"the engine holds this commit's images ({sha}): pushing, not rebuilding")
            self.push_images()
            return
        if reusable_tag(sha) and self.s.get("LAB_REMOTE_IMAGES") and self.pull_remote(sha):
            return
        self.build_images()

    def ensure_env(self) -> None:
        changed = ensure_env(self.s)
        if changed:
            log.info(changed)
            self.reload()

    def reload(self) -> None:
        reload(self.s, self.runner)

    def start_registry(self) -> None:
        """The image registry; in classroom mode behind its htpasswd, Docker logged in."""
        if not self.s.auth:
            self.runner.run(self.compose("up", "-d", "--wait", "registry"))
            return
        from labctl import accounts

        changed = accounts.write_htpasswd(self.s, self.runner, self.state_image())
        up = ["up", "-d", "--wait", *(["--force-recreate"] if changed else []), "registry"]
        self.runner.run(self.compose(*up))
        registry = self.s.get("LAB_REGISTRY")
        log.info(f"classroom mode: logging Docker in to the lab's registry {registry}")
        self.runner.run(
            ["docker", "login", "--username", REGISTRY_USER, "--password-stdin", registry],
            input=self.s.get("REGISTRY_PASSWORD").encode(),
            capture=True,  # "Login Succeeded"; a refusal still prints why
        )

    def start_tracking(self) -> None:
        log.info(f"starting Postgres, the S3 store ({self.s.s3_backend}) and MLflow")
        self.runner.run(self.compose("up", "-d", "--wait", "mlflow"))
        self.tracking_ready = True
        if self.s.auth:
            from labctl import accounts

            accounts.ensure_reader(self.s)

    def _pull_up(self, *services: str) -> None:
        """Bring servers onto the images their tags name (recreated only if one changed)."""
        self.runner.run(self.compose("pull", "--quiet", *services))
        self.runner.run(self.compose("up", "-d", "--wait", *self._no_deps(), *services))

    def _no_deps(self) -> list[str]:
        return ["--no-deps"] if self.tracking_ready else []

    def _job(self, profile: str, *args: str, **kwargs) -> Result:
        """A one-shot job as the user who owns the reports; its exit code is the verdict."""
        return self.runner.run(
            self.compose(
                "run",
                "--rm",
                "--no-TTY",
                *self._no_deps(),
                "--user",
                self.run_as(),
                *args,
                profiles=(profile,),
            ),
            **kwargs,
        )

    blue_green = True

    def start_servers(self) -> None:
        targets = self._alias_targets()
        self.restore_serving_tags(targets)
        # Staging loads its model while production starts; both are waited for.
        self.runner.run(self.compose("pull", "--quiet", "serving-staging"))
        # The hold too, once its folder exists (Docker would create a missing one as root).
        hold = ["serving-hold"] if (self.s.lab_dir / "proxy").is_dir() else []
        self.runner.run(self.compose("up", "-d", *self._no_deps(), "serving-staging", *hold))
        if "staging" in targets:
            version, sha = targets["staging"]
            self._check_image_tag(
                "staging",
                sha,
                f"the staging server serves version {version} on serving:staging, not on "
                "the image of its commit; the next promotion to staging retags :staging",
            )
        self.start_production(targets)
        self.runner.run(self.compose("up", "-d", "--wait", *self._no_deps(), "serving-staging"))

    def _alias_targets(self) -> dict[str, tuple[str, str]]:
        """alias -> (version, git sha) for each alias that is set, read from MLflow's REST
        API on the published port (a job container would take seconds to say the same).
        MLflow not answering in a command that did not start it (make promote on a
        stopped lab): started first, as a job container's dependencies would be."""
        from labctl.book.view import Lab, Unanswered

        lab = Lab(self.s, self.mode)
        url = f"{lab.mlflow_url}/api/2.0/mlflow/registered-models/get?" + urllib.parse.urlencode(
            {"name": lab.model_name}
        )
        try:
            try:
                r = lab.http(url, headers=lab.mlflow_headers())
            except Unanswered:
                if self.tracking_ready:
                    raise
                self.start_tracking()
                r = lab.http(url, headers=lab.mlflow_headers())
            if r.status == 404 and b"RESOURCE_DOES_NOT_EXIST" in r.body:
                return {}  # no model registered yet: nothing has an alias
            if r.status != 200:
                raise Unanswered(f"HTTP {r.status} {r.body[:200]!r}")
            aliases = r.json()["registered_model"].get("aliases", [])
            return {
                str(a["alias"]): (
                    str(a["version"]),
                    lab.version(str(a["version"]))["tags"].get("git_sha", ""),
                )
                for a in aliases
            }
        except (Unanswered, ValueError, KeyError) as exc:
            raise LabError(
                f"cannot read the model's aliases from MLflow ({exc}); nothing was changed: "
                "check make logs SERVICE=mlflow"
            ) from exc

    def production_version(self) -> str:
        return self._alias_targets().get("production", ("", ""))[0]

    def _check_image_tag(self, alias: str, sha: str, consequence: str) -> None:
        """Warn when the registry's serving:<alias> is not the image of @alias's commit."""
        tagged, built = (
            self.registry_digest("serving", alias),
            self.registry_digest("serving", sha),
        )
        if tagged != built:
            log.warn(
                f"the registry's serving:{alias} ({tagged or 'missing'}) is not the image "
                f"of @{alias}'s commit {sha} ({built or 'missing'}): {consequence}"
            )

    # ---------------------------------------------------------- production
    def _production_target(
        self, targets: dict[str, tuple[str, str]] | None = None
    ) -> tuple[str, str]:
        """(version, git sha) that @production names, from the registry."""
        targets = self._alias_targets() if targets is None else targets
        if "production" in targets:
            return targets["production"]
        raise LabError("the registry has no @production to serve: run make up to bootstrap")

    def start_production(self, targets: dict[str, tuple[str, str]] | None = None) -> None:
        """The live colour and the proxy in front of it, settled on @production.

        A lab without a saved state (first start, restored state) starts blue on
        @production. A switch that was interrupted is finished or undone: the colour that
        matches @production is made live alone and undrained, any other one stops. When
        no colour matches (the alias moved while the lab was down, through the UI or a
        script), production is brought onto the alias the checked way."""
        state = production.load(self.s.lab_dir)
        version, sha = self._production_target(targets)
        target = {"version": version, "tag": sha}
        if state is None or state.serving() is None:
            state = production.Production("blue", {"blue": target})
            production.save(self.s.lab_dir, state)
        if (  # a switch cut short after its move
            state.serving() != target
            and state.colours.get(state.idle) == target
            and self._running(f"serving-{state.idle}")
        ):
            log.warn(f"finishing an interrupted switch to {state.idle} (version {version})")
            state.live = state.idle
            production.save(self.s.lab_dir, state)
        live = state.serving() or {}
        self._pull_up(f"serving-{state.live}")
        self._drain(state.live, False)
        self._reload_proxy(state.live)
        if state.idle in state.colours or self._running(f"serving-{state.idle}"):
            self.runner.run(self.compose("stop", f"serving-{state.idle}"), check=False)
            state.colours.pop(state.idle, None)
            production.save(self.s.lab_dir, state)
        self._check_image_tag(
            "production",
            sha,
            f"production serves serving:{sha}; the next promotion or rollback retags :production",
        )
        if live != target:
            log.warn(
                f"@production is version {version} ({sha}) but production serves version "
                f"{live.get('version')} ({live.get('tag')}): moving production to {version}, "
                "checked first"
            )
            try:
                url = self.prepare_production(version, sha)
                self.gatekeeper(
                    "smoke", "--url", url, "--alias", "production", "--version", version
                )
            except BaseException:
                self.abort_production()
                raise
            self.switch_production()

    def settle_production(self) -> None:
        """Before a production change: no half-done switch left behind. Before the first
        production model (the bootstrap) there is nothing to settle."""
        state = production.load(self.s.lab_dir)
        if state is not None and state.serving() is not None:
            self.start_production()

    def production_alias(self) -> str:
        return self._production_target()[0]

    def _running(self, service: str) -> bool:
        r = self.runner.run(
            self.compose("ps", "--status", "running", "-q", service),
            check=False,
            capture=True,
            quiet=True,
        )
        return r.returncode == 0 and bool(r.stdout.strip())

    def _up_proxy(self) -> None:
        """The proxy is an upstream image, pulled by `up` when missing (never re-pulled:
        it is pinned), and left running when its configuration did not change."""
        self.runner.run(self.compose("up", "-d", "--wait", "serving-production"))

    def prepare_production(self, version: str, sha: str) -> str:
        """Start the idle colour pinned to `version` on its commit's image; returns the URL
        the gatekeeper reaches it at. Clients still reach only the live colour."""
        if not sha or sha == "unknown":
            raise LabError(f"version {version} has no git_sha: no image to serve it with")
        # Before the first production model (the bootstrap), blue is the idle colour.
        state = production.load(self.s.lab_dir) or production.Production("green")
        if state.serving() is None:
            state = production.Production("green")
        idle = state.idle
        state.colours[idle] = {"version": version, "tag": sha}
        production.save(self.s.lab_dir, state)
        self.ensure_serving_image(version, sha)
        log.info(f"starting production's idle colour ({idle}) on version {version} ({sha})")
        self.runner.run(self.compose("pull", "--quiet", f"serving-{idle}"))
        self.runner.run(
            self.compose(
                "up", "-d", "--wait", "--force-recreate", *self._no_deps(), f"serving-{idle}"
            )
        )
        return f"http://serving-{idle}:8080"

    def abort_production(self) -> None:
        """The idle colour failed its checks: stop it; clients never reached it."""
        state = production.load(self.s.lab_dir)
        if state is None:
            return
        idle = state.idle
        self.runner.run(self.compose("stop", f"serving-{idle}"), check=False)
        state.colours.pop(idle, None)
        production.save(self.s.lab_dir, state)
        log.warn(f"production stays on {state.live}: the {idle} colour was stopped")

    def _reload_proxy(self, live: str, backup: str | None = None) -> None:
        """Write the proxy's upstream file, reload nginx, and wait until it answers with the
        new file's generation on fresh connections (its old workers no longer accept)."""
        generation = production.write_upstream(self.s.lab_dir, live, backup)
        self._up_proxy()  # started by the first promotion
        self.runner.run(self.compose("kill", "--signal", "HUP", "serving-production"))
        url = f"http://{self.s.client_host}:{self.s.get('PRODUCTION_PORT')}/proxy/generation"
        deadline, seen = time.monotonic() + SWITCH_TIMEOUT_S, 0
        while seen < RELOAD_CONFIRMATIONS:
            seen = seen + 1 if proxy_generation(url) == generation else 0
            if time.monotonic() > deadline:
                raise LabError(
                    f"the production proxy did not load its new configuration within "
                    f"{SWITCH_TIMEOUT_S} s: see make logs SERVICE=serving-production"
                )
            time.sleep(0.02 if seen else 0.1)

    def _drain(self, colour: str, drained: bool) -> None:
        """Create (or remove) the file that retires a colour: from that moment each of its
        workers answers 503 and the proxy passes requests on (serving SERVING_DRAIN_FILE)."""
        code = (
            "open('/tmp/drained', 'w').close()"
            if drained
            else "import os; os.path.exists('/tmp/drained') and os.remove('/tmp/drained')"
        )
        self.runner.run(
            self.compose("exec", "-T", f"serving-{colour}", "python", "-c", code), quiet=True
        )

    def switch_production(self) -> None:
        """Move clients from the live colour to the verified idle one in one event, then stop
        the old colour once its last requests are done:

        1. the proxy gets the new colour as backup (a reload that changes no route);
        2. the old colour is drained: every request it gets from then on is answered 503
           and passed on to the backup, for all its workers at the same moment;
        3. once the proxy answers for the new version, the new colour alone (a reload that
           changes no route either), and the old colour stops.
        """
        state = production.load(self.s.lab_dir)
        if state is None or state.idle not in state.colours:
            raise LabError("no verified idle colour to switch production to")
        old, new = state.live, state.idle
        expected = state.colours[new]["version"]
        # The bootstrap (nothing serves yet), or a live colour that is down: nothing to
        # drain, the proxy goes straight to the new colour.
        first = state.serving() is None or not self._running(f"serving-{old}")
        if first:
            self._reload_proxy(new)
        else:
            self._reload_proxy(old, backup=new)
            self._drain(old, True)
        url = f"http://{self.s.client_host}:{self.s.get('PRODUCTION_PORT')}/model"
        deadline = time.monotonic() + SWITCH_TIMEOUT_S
        while served_version(url) != expected:
            if time.monotonic() > deadline:
                if not first:
                    self._drain(old, False)
                    self._reload_proxy(old)
                raise LabError(
                    f"the production proxy did not switch to {new} (version {expected}) "
                    f"within {SWITCH_TIMEOUT_S} s: it stays on {old}; see make logs "
                    "SERVICE=serving-production"
                )
            time.sleep(0.2)
        state.live = new
        production.save(self.s.lab_dir, state)
        self._reload_proxy(new)
        log.good(f"production switched to {new} (version {expected})")
        if not first:
            time.sleep(DRAIN_S)  # the old nginx workers' last responses
            self.runner.run(self.compose("stop", f"serving-{old}"))
        state.colours.pop(old, None)
        production.save(self.s.lab_dir, state)

    def gatekeeper(self, *args: str, capture: bool = False) -> Result:
        self.ensure_images()  # the gatekeeper of the code in the tree, not an older one
        return self._job("jobs", "gatekeeper", *args, capture=capture)

    def train(self, shift: str | None = None) -> None:
        self.ensure_images()
        self.prepare_reports()
        env = {"TRAIN_SHIFT": shift} if shift is not None else None
        self._job("jobs", "training", env=env)

    def traffic(self, alias: str, shift: str) -> None:
        self.ensure_images()
        self._job(
            "jobs", "traffic", env={"TRAFFIC_URL": self.server_url(alias), "TRAFFIC_SHIFT": shift}
        )

    def drift(self) -> None:
        self.ensure_images()
        self.prepare_reports()
        self._job("jobs", "drift")

    def roll(self, alias: str) -> None:
        """Bring a server onto the image its tag now names (recreated only if it changed);
        production is switched by switch_production instead."""
        if alias == "production":
            return
        self._pull_up(f"serving-{alias}")

    def server_url(self, alias: str) -> str:
        """Where the job containers reach a server: the compose network."""
        return f"http://serving-{alias}:8080"

    def load(self, alias: str) -> None:
        self.ensure_images()
        self.prepare_reports()
        self._job("load", "locust", env={"LOAD_TARGET": self.server_url(alias)})

    def build(self) -> None:
        self.ensure_env()
        self.start_registry()
        self.build_images()

    def record_mode(self) -> None:
        self.s.lab_dir.mkdir(exist_ok=True)
        (self.s.lab_dir / "mode").write_text("docker\n")

    def down(self) -> None:
        self.runner.run(self.compose("down", "--remove-orphans", profiles=ALL_PROFILES))
        (self.s.lab_dir / "mode").unlink(missing_ok=True)

    def clean(self) -> None:
        self.runner.run(
            self.compose("down", "--volumes", "--remove-orphans", profiles=ALL_PROFILES)
        )
        shutil.rmtree(self.s.root / "reports", ignore_errors=True)
        shutil.rmtree(self.s.lab_dir, ignore_errors=True)
        if self.s.auth:  # the login `make up` stored in Docker's configuration
            logout = ["docker", "logout", self.s.get("LAB_REGISTRY")]
            self.runner.run(logout, check=False, quiet=True)

    def ps(self) -> None:
        self.runner.run(self.compose("ps"))

    def logs(self, service: str) -> None:
        self.runner.run(self.compose("logs", "--tail=200", *([service] if service else [])))

    # ---------------------------------------------------------------- images
    def build_images(self) -> None:
        log.info(f"building images for {self.s.get('GIT_SHA')}")
        services = list(BUILT)
        cache = self.s.get("LAB_BUILD_CACHE")
        if cache:
            self.bake_images(cache)
        else:
            self.runner.run(
                self.compose("build", *services, profiles=("build", "jobs", "load")),
                env={"DOCKER_BUILDKIT": "1"},
            )
        self.push_images()

    def push_images(self) -> None:
        log.info(f"pushing the images to the local registry ({self.s.get('LAB_REGISTRY')})")
        self.runner.run(self.compose("push", "--quiet", *BUILT, profiles=("build", "jobs", "load")))

    def local_ref(self, repo: str, tag: str) -> str:
        return f"{self.s.get('LAB_REGISTRY')}/mlops-lab/{repo}:{tag}"

    def remote_ref(self, repo: str, tag: str) -> str:
        # Image references are lower case; GitHub's OWNER/REPO need not be.
        return f"{self.s.get('LAB_REMOTE_IMAGES').rstrip('/').lower()}/{repo}:{tag}"

    def images_login(self) -> None:
        """docker login to LAB_REMOTE_IMAGES' registry with REMOTE_IMAGES_USER and
        REMOTE_IMAGES_TOKEN (GitHub: the actor and the job's token)."""
        remote = self.s.get("LAB_REMOTE_IMAGES")
        if not remote:
            log.info("LAB_REMOTE_IMAGES is not set: images are built here, no login needed")
            return
        user, token = self.s.get("REMOTE_IMAGES_USER"), self.s.get("REMOTE_IMAGES_TOKEN")
        if not (user and token):
            raise LabError(
                "LAB_REMOTE_IMAGES is set: REMOTE_IMAGES_USER and REMOTE_IMAGES_TOKEN must "
                "name the login (on GitHub: github.actor and github.token)"
            )
        host = remote.split("/", 1)[0]
        self.runner.run(
            ["docker", "login", "--username", user, "--password-stdin", host],
            input=token.encode(),
            capture=True,
        )
        log.good(f"docker is logged in to {host}")

    def engine_has(self, repo: str, tag: str) -> bool:
        """The Docker engine holds `<registry>/mlops-lab/<repo>:<tag>` (built or loaded)."""
        return images.has_image(self.runner, self.local_ref(repo, tag))

    def pull_remote(self, tag: str, repos: tuple[str, ...] | None = None) -> bool:
        """Copy images from LAB_REMOTE_IMAGES (where CI's build job pushed them) into the
        local registry; False, with a warning, when the remote does not have one of them."""
        repos = repos or tuple(BUILT.values())
        log.info(f"pulling the images of {tag} from {self.s.get('LAB_REMOTE_IMAGES')}")
        for repo in repos:
            remote = self.remote_ref(repo, tag)
            if not self.runner.ok(["docker", "pull", "--quiet", remote]):
                log.warn(f"{remote} could not be pulled")
                return False
            self.runner.run(["docker", "tag", remote, self.local_ref(repo, tag)])
            self.runner.run(["docker", "push", "--quiet", self.local_ref(repo, tag)], capture=True)
        return True

    def images_push(self) -> None:
        """CI's build job: this commit's images to LAB_REMOTE_IMAGES (ghcr.io/OWNER/REPO),
        and each alias's serving tag after a promotion, as a real pipeline moves them."""
        if not self.s.get("LAB_REMOTE_IMAGES"):
            # A fork's pull request on GitHub: no token that may push, each job builds.
            log.info(
                "LAB_REMOTE_IMAGES is not set: nothing to push (each CI job builds the "
                "images; set LAB_REMOTE_IMAGES=ghcr.io/owner/repo to push them there)"
            )
            return
        sha = self.s.get("GIT_SHA")
        if not reusable_tag(sha):
            raise LabError(
                f"GIT_SHA={sha}: only a clean commit's images are pushed (commit your changes)"
            )
        self.start_registry()
        self.provide_images()
        for repo in BUILT.values():
            self._push_remote(repo, sha, sha)

    def _push_remote(self, repo: str, source_tag: str, tag: str) -> None:
        local, remote = self.local_ref(repo, source_tag), self.remote_ref(repo, tag)
        if not self.engine_has(repo, source_tag):
            self.runner.run(["docker", "pull", "--quiet", local], capture=True)
        self.runner.run(["docker", "tag", local, remote])
        log.info(f"pushing {remote}")
        self.runner.run(["docker", "push", "--quiet", remote], capture=True)

    def images_tag_remote(self) -> None:
        """Point the remote serving:staging and :production at the images their aliases'
        versions were built from (after make promote or make rollback in CI)."""
        if not self.s.get("LAB_REMOTE_IMAGES"):
            log.info("LAB_REMOTE_IMAGES is not set: no remote tags to move")
            return
        for alias, (version, sha) in sorted(self._alias_targets().items()):
            if alias in ("staging", "production") and sha:
                log.info(f"remote serving:{alias} -> {sha} (version {version})")
                # The commit's tag too: a version trained here (a drift retrain on a commit
                # no build job pushed) can then be served from the remote after a restore.
                self._push_remote("serving", sha, sha)
                self._push_remote("serving", sha, alias)

    def restore_serving_tags(self, targets: dict[str, tuple[str, str]]) -> None:
        """A restored state carries no images: each alias's serving image (tagged by the
        sha of the commit that trained its version) must be in the local registry, and
        serving:<alias> must name it. Copied from LAB_REMOTE_IMAGES when missing."""
        for alias in ("staging", "production"):
            if alias not in targets:
                continue
            version, sha = targets[alias]
            if not sha or sha == "unknown":
                continue
            self.ensure_serving_image(version, sha)
            if not self.registry_has("serving", alias):
                log.info(f"tagging serving:{sha} as serving:{alias} in the local registry")
                self.registry_retag("serving", sha, alias)
        if not self.registry_has("serving", "staging"):
            # No staging version (or one without a commit): the staging server runs on
            # this commit's image, and follows its alias from there.
            self.registry_retag("serving", self.s.get("GIT_SHA"), "staging")

    def ensure_version_image(self, version: str) -> None:
        """Before staging moves to `version` (empty: @candidate's): the serving image of
        the commit that trained it, in the local registry (a restored lab holds only
        what make up fetched). A version MLflow does not know is left to the gatekeeper,
        which says so."""
        from labctl.book.view import Lab, Unanswered

        if not version:
            version = self._alias_targets().get("candidate", ("", ""))[0]
        if not version:
            return
        try:
            sha = Lab(self.s, self.mode).version(version)["tags"].get("git_sha", "")
        except (Unanswered, KeyError, ValueError):
            return
        if sha and sha != "unknown":
            self.ensure_serving_image(version, sha)

    def ensure_serving_image(self, version: str, sha: str) -> None:
        """The serving image of the commit that trained `version`, in the local registry:
        there already, or copied from LAB_REMOTE_IMAGES; refused, naming both, if neither."""
        if self.registry_has("serving", sha):
            return
        if self.s.get("LAB_REMOTE_IMAGES") and self.pull_remote(sha, ("serving",)):
            return
        raise LabError(
            f"version {version} was trained by commit {sha}, and its serving image is "
            "neither in the local registry nor at LAB_REMOTE_IMAGES: set LAB_REMOTE_IMAGES "
            f"to where CI pushed it, or check out {sha} and run make build"
        )

    def registry_retag(self, repo: str, source: str, target: str) -> None:
        """Copy the manifest of `<repo>:<source>` to `<repo>:<target>` (a `docker tag` +
        `docker push` without pulling), through the registry's HTTP API."""
        base = f"http://127.0.0.1:{self.s.port('REGISTRY_PORT')}/v2/mlops-lab/{repo}/manifests"
        headers = self._registry_headers()
        try:
            # The lab's own registry, http on the loopback.
            get = urllib.request.Request(  # noqa: S310
                f"{base}/{source}", headers={**headers, "Accept": MANIFEST_ACCEPT}
            )
            with urllib.request.urlopen(get, timeout=10) as r:  # noqa: S310
                body, media = r.read(), r.headers.get("Content-Type", "")
            put = urllib.request.Request(  # noqa: S310
                f"{base}/{target}",
                data=body,
                method="PUT",
                headers={**headers, "Content-Type": media.split(";")[0].strip()},
            )
            with urllib.request.urlopen(put, timeout=10):  # noqa: S310
                pass
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise LabError(f"retagging {repo}:{source} as {repo}:{target} failed: {exc}") from exc

    def _registry_headers(self) -> dict[str, str]:
        if not self.s.auth:
            return {}
        login = f"{REGISTRY_USER}:{self.s.get('REGISTRY_PASSWORD')}".encode()
        return {"Authorization": "Basic " + base64.b64encode(login).decode()}

    def bake_images(self, cache: str) -> None:
        """LAB_BUILD_CACHE=gha: `docker buildx bake` from the compose file, Actions cache.

        Same contexts, args, secret and tags as `compose build`, one cache scope per image
        so that one image's export does not overwrite another's. Needs a docker-container
        builder and the Actions runtime variables; `--load` hands the images to the engine.
        """
        if cache != "gha":
            raise LabError(
                f"LAB_BUILD_CACHE must be empty (plain compose build) or gha (got {cache!r})"
            )
        if not self.runner.ok(["docker", "buildx", "version"]):
            raise LabError("LAB_BUILD_CACHE=gha needs the docker buildx plugin")
        if not self.s.get("ACTIONS_RUNTIME_TOKEN"):
            raise LabError(
                "LAB_BUILD_CACHE=gha needs the GitHub Actions runtime variables "
                "(ACTIONS_RUNTIME_TOKEN, ACTIONS_RESULTS_URL): run "
                "crazy-max/ghaction-github-runtime first, or unset LAB_BUILD_CACHE"
            )
        sets: list[str] = []
        for target in BUILT:
            sets += [
                "--set",
                f"{target}.cache-from=type=gha,scope=mlops-lab-{target}",
                "--set",
                f"{target}.cache-to=type=gha,scope=mlops-lab-{target},mode=max",
            ]
        log.info("docker buildx bake with the GitHub Actions cache (LAB_BUILD_CACHE=gha)")
        self.runner.run(
            [
                "docker",
                "buildx",
                "bake",
                "--file",
                str(self.s.root / "compose" / "compose.yaml"),
                "--load",
                *sets,
                *BUILT,
            ]
        )

    def registry_has(self, repo: str, tag: str) -> bool:
        return self.registry_digest(repo, tag) is not None

    def registry_digest(self, repo: str, tag: str) -> str | None:
        """The digest the registry gives `mlops-lab/<repo>:<tag>`, None when it has none."""
        url = f"http://127.0.0.1:{self.s.port('REGISTRY_PORT')}/v2/mlops-lab/{repo}/manifests/{tag}"
        headers = {"Accept": MANIFEST_ACCEPT, **self._registry_headers()}
        req = urllib.request.Request(url, method="HEAD", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 (http, loopback)
                return r.headers.get("Docker-Content-Digest") or "unknown"
        except (urllib.error.URLError, OSError, http.client.HTTPException):
            return None

    def registry_has_images(self) -> bool:
        """All five images of this commit are in the registry (a clean tree only: a
        -dirty tag does not say which edits it was built from)."""
        sha = self.s.get("GIT_SHA")
        if not reusable_tag(sha):
            return False
        return all(self.registry_has(repo, sha) for repo in BUILT.values())

    def ensure_images(self) -> None:
        """Models are tagged with the sha that trained them and promotion retags that sha's
        serving image: after a commit, build that sha's images before training with it."""
        if self.registry_has("serving", self.s.get("GIT_SHA")):
            return
        self.start_registry()
        self.provide_images()

    # ----------------------------------------------------------------- state
    def state_file(self) -> Path:
        f = Path(self.s.get("STATE_FILE", "lab-state.tgz"))
        return f if f.is_absolute() else self.s.root / f

    def state_image(self) -> str:
        """An image with bash and tar that the lab pulls anyway: the Python base image."""
        return self.s.get("PYTHON_IMAGE") or images.default_python_image(
            (self.s.root / "compose" / "compose.yaml").read_text(encoding="utf-8")
        )

    def state_container(self, mounts: list[str], entrypoint: str, *args: str) -> list[str]:
        """A throwaway container of an image the lab already has, with no network, that
        does the tar work on the lab's volumes: nothing is installed on the host."""
        return [
            "docker", "run", "--rm", "-i", "--network", "none", *mounts,
            "--entrypoint", entrypoint, self.state_image(), *args,
        ]  # fmt: skip

    def state_save(self) -> None:
        file = self.state_file()
        project = self.project()
        vols = state.volumes(self.s.s3_backend)
        if not self.s.env_file.is_file():
            raise LabError("no .env here: there is no lab to save (make up first)")
        mounts: list[str] = []
        for v in vols:
            if not self.runner.ok(["docker", "volume", "inspect", f"{project}_{v}"]):
                raise LabError(
                    f"volume {project}_{v} does not exist: is a lab of project {project!r} "
                    f"with S3_BACKEND={self.s.s3_backend} up? (make up first)"
                )
            mounts += ["-v", f"{project}_{v}:/state/{v}:ro"]
        log.info("stopping the lab so that the database and the stores are consistent on disk")
        self.down()
        meta = state.meta_archive(
            state.manifest_text(project, self.s.s3_backend, self.s.get("GIT_SHA")),
            self.s.env_file.read_bytes(),
        )
        log.info(f"saving {' '.join(vols)} and .env to {file}")
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_name(file.name + ".partial")
        # meta/ goes in on stdin and the archive comes out on stdout: no host folder is
        # bind-mounted, so this works with whichever engine the docker CLI talks to.
        script = (
            "tar -xf - -C /state && "
            f"tar -C /state -cf - --numeric-owner meta {' '.join(vols)} | gzip -1"
        )
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                self.runner.run(
                    self.state_container(mounts, "bash", "-o", "pipefail", "-c", script),
                    input=meta,
                    stdout=out,
                )
        except CommandFailed as exc:
            partial.unlink(missing_ok=True)
            raise LabError("saving the lab state failed (see above)") from exc
        partial.replace(file)
        size = file.stat().st_size / 1048576
        log.info(
            f"saved {size:.1f} MiB to {file}; it holds this lab's generated secrets (.env): "
            "keep it private"
        )
        log.info("the lab is stopped: make up starts it again here, make state-restore elsewhere")

    def state_restore(self) -> None:
        file = self.state_file()
        fields, saved_env = state.read_meta(file)
        m = state.check_manifest(fields, str(file), self.s.from_environ("S3_BACKEND"))
        state.check_saved_env(
            saved_env,
            (self.s.root / ".env.example").read_text(encoding="utf-8"),
            str(file),
            trust_images=self.s.flag("TRUST_STATE_IMAGES"),
        )
        log.info(f"checking {file} from end to end before changing anything")
        state.verify_archive(file, m.volumes)
        self.s.env["S3_BACKEND"] = m.backend
        self.runner.env["S3_BACKEND"] = m.backend
        project = self.project()
        force = self.s.flag("FORCE")
        # Overwrite nothing unless asked, and check everything before changing anything.
        replace_env = False
        if self.s.env_file.exists() and self.s.env_file.read_bytes() != saved_env:
            if not force:
                raise LabError(
                    ".env differs from the saved one, and the saved database only opens with "
                    "the saved passwords: move .env away, or FORCE=1 (keeps yours as "
                    ".env.before-restore)"
                )
            replace_env = True
        existing = [
            f"{project}_{v}"
            for v in m.volumes
            if self.runner.ok(["docker", "volume", "inspect", f"{project}_{v}"])
        ]
        if existing:
            if not force:
                raise LabError(
                    f"volume(s) {' '.join(existing)} already exist and restoring would replace "
                    "their data: make clean first, or FORCE=1"
                )
            log.info(f"FORCE=1: stopping the lab and removing {' '.join(existing)}")
            try:
                self.down()
            except CommandFailed:
                log.warn("stopping the lab failed; removing the volumes anyway")
            self.runner.run(["docker", "volume", "rm", *existing], stdout=subprocess.DEVNULL)
        # Which production colour served what belonged to the lab being replaced: make up
        # starts production afresh on the restored @production.
        production.state_file(self.s.lab_dir).unlink(missing_ok=True)
        log.info(
            f"restoring {' '.join(m.volumes)} (saved {m.saved_at} from git sha {m.git_sha}, "
            f"S3_BACKEND={m.backend}) into project {project!r}"
        )
        mounts: list[str] = []
        for v in m.volumes:
            # The labels Compose puts on the volumes it creates, so that it adopts these.
            self.runner.run(
                [
                    "docker",
                    "volume",
                    "create",
                    "--label",
                    f"com.docker.compose.project={project}",
                    "--label",
                    f"com.docker.compose.volume={v}",
                    f"{project}_{v}",
                ],
                stdout=subprocess.DEVNULL,
            )
            mounts += ["-v", f"{project}_{v}:/state/{v}"]
        extract = ["-xzf", "-", "-C", "/state", "--numeric-owner", "--same-owner"]
        extract += ["--same-permissions", *m.volumes]
        try:
            with open(file, "rb") as f:
                self.runner.run(
                    self.state_container(mounts, "tar", *extract),
                    stdin=f,
                )
        except CommandFailed as exc:
            raise LabError(
                "restoring the volumes failed (see above); make clean FORCE=1 removes what "
                "was written"
            ) from exc
        if replace_env:
            self.s.env_file.replace(self.s.root / ".env.before-restore")
        if not self.s.env_file.exists():
            fd = os.open(self.s.env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(saved_env)
        if m.git_sha != self.s.get("GIT_SHA"):
            log.info(
                f"note: the state comes from git sha {m.git_sha} and this checkout is "
                f"{self.s.get('GIT_SHA')} (make up builds this one's images)"
            )
        log.info("restored: make up starts the lab on it (it finds the production model)")


def reusable_tag(sha: str) -> bool:
    """A tag that names exactly one source: a clean commit's (a -dirty tag does not say
    which edits it was built from)."""
    return bool(sha) and sha != "dev" and "-dirty" not in sha


def chown_tree(root: Path, uid: int) -> None:
    """`chown -R` that never follows a link: a job container writes into these folders,
    and a link it planted must not hand a host file to its user."""
    os.chown(root, uid, uid, follow_symlinks=False)
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, uid, follow_symlinks=False)


def docker_answers(runner: Runner) -> bool:
    return shutil.which("docker") is not None and runner.ok(["docker", "info"])
