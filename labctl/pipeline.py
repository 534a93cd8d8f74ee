"""The lab's pipeline, written once for both backends.

    up        = prepare → tracking server → production found ? start servers : bootstrap
    bootstrap = train → gate → (promote → roll → smoke) for staging, then production
    promote   = move the alias (the gatekeeper refuses an ungated version, and for production
                one without a passed latency gate) → roll → smoke
    load      = Locust against a server → its verdict recorded on the version it served
    rollback  = move @production back → roll → smoke
    retrain-on-drift = drift check → only on drift: train on the shifted window → the
                pipeline (gate, staging, smoke, load, production)

A backend (labctl.docker, labctl.local) says how each step runs; this module says in which
order, and what must never happen: a failed @production lookup must not look like "no
production model", or `up` would bootstrap over a lab that has one.
"""

from __future__ import annotations

import json
from typing import Protocol

from labctl import lock, log, urls
from labctl.errors import CommandFailed, LabError
from labctl.runner import Result
from labctl.settings import Settings

ALIASES = ("staging", "production")
BOOTSTRAP_SKIP = "the lab's first production model (make up bootstraps it)"


class Backend(Protocol):
    mode: str
    s: Settings

    def prepare(self) -> None: ...
    def start_tracking(self) -> None: ...
    def start_servers(self) -> None: ...
    def gatekeeper(self, *args: str, capture: bool = False) -> Result: ...
    def train(self, shift: str | None = None) -> None: ...
    def roll(self, alias: str) -> None: ...
    # Before staging moves to `version` (empty: @candidate's): what serving it needs,
    # there (docker: the serving image of the commit that trained it).
    def ensure_version_image(self, version: str) -> None: ...
    def load(self, alias: str) -> None: ...
    def traffic(self, alias: str, shift: str) -> None: ...
    def drift(self) -> None: ...
    # Production changed the checked way: blue/green (labctl.docker), or a checking
    # server and a supervised swap (labctl.local).
    def settle_production(self) -> None: ...
    def prepare_production(self, version: str, sha: str) -> str: ...
    def abort_production(self) -> None: ...
    def switch_production(self) -> None: ...
    def production_alias(self) -> str: ...
    # The version @production points to, '' when unset: production_version(b) below, or
    # a faster read of the same (labctl.docker reads MLflow's REST API).
    def production_version(self) -> str: ...
    def server_url(self, alias: str) -> str: ...
    def record_mode(self) -> None: ...


def production_version(b: Backend) -> str:
    """The version @production points to, '' when unset; an unreadable registry is an error."""
    try:
        result = b.gatekeeper("status", "--version-of", "production", capture=True)
    except CommandFailed as exc:
        raise LabError(
            f"cannot read @production from MLflow (the gatekeeper exited {exc.returncode}, "
            "see above); nothing was started over the lab: check make logs SERVICE=mlflow"
        ) from exc
    lines = [line.strip() for line in result.stdout.replace("\r", "").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    version = lines[-1]
    if not version.isdigit():
        raise LabError(f"cannot read @production from MLflow (got {version!r})")
    return version


def check_alias(variable: str, alias: str) -> str:
    if alias not in ALIASES:
        raise LabError(f"{variable} must be staging or production (got {alias!r})")
    return alias


def smoke(b: Backend, alias: str) -> None:
    check_alias("ALIAS", alias)
    b.gatekeeper("smoke", "--url", b.server_url(alias), "--alias", alias)


def checked_target(b: Backend, *args: str) -> tuple[str, str]:
    """Run a gatekeeper command with --check (every rule, nothing moved) and return the
    (version, git sha) it names."""
    out = b.gatekeeper(*args, "--check", capture=True).stdout.replace("\r", "")
    for line in reversed(out.splitlines()):
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("version", "").isdigit():
            return fields["version"], fields.get("git_sha", "")
    raise LabError(f"the gatekeeper's check named no version: {out.strip()[-200:]!r}")


def _verified_production_change(
    b: Backend, check: tuple[str, ...], move: tuple[str, ...], pin_version: bool = False
) -> None:
    """Blue/green: the new version on the idle colour, smoke-tested there, then the alias
    moves and the proxy switches. A failure before the move stops the idle colour and
    leaves production (alias, image tag, traffic) exactly as it was; a move that happened
    although its command failed or was interrupted is switched to, so that the alias and
    what production serves never part."""
    b.settle_production()  # nothing half-done from an interrupted change
    version, sha = checked_target(b, *check)
    if pin_version and "--version" not in move:
        # Move exactly what was checked, even if the source alias moved since.
        move = (*move, "--version", version)
    try:
        url = b.prepare_production(version, sha)
        b.gatekeeper("smoke", "--url", url, "--alias", "production", "--version", version)
    except BaseException:
        b.abort_production()
        raise
    try:
        b.gatekeeper(*move)
    except BaseException:
        try:
            moved = b.production_alias() == version
        except Exception:  # MLflow cannot say: make up settles it once it can
            moved = False
        if moved:
            log.warn(f"@production moved to version {version}: switching production to it")
            b.switch_production()
        else:
            b.abort_production()
        raise
    b.switch_production()


def promote(b: Backend, to: str, skip_load_gate: str = "", version: str = "") -> None:
    """Move @staging to @candidate's version (or VERSION=N, any gated version), or
    @production to @staging's (VERSION=N then names the version expected there: the
    gatekeeper refuses it if staging holds another)."""
    check_alias("TO", to)
    version = version.strip()
    if version and not version.isdigit():
        raise LabError(f"VERSION must be a model version number, got {version!r}")
    skip = ("--skip-load-gate", skip_load_gate) if skip_load_gate else ()
    pinned = ("--version", version) if version else ()
    with lock.exclusive(b.s.lab_dir / "promote.lock", f"make promote TO={to}"):
        if to == "production" and getattr(b, "blue_green", False):
            args = ("promote", "--to", to, *skip, *pinned)
            _verified_production_change(b, args, args, pin_version=True)
        else:
            if to == "staging":
                b.ensure_version_image(version)
            b.gatekeeper("promote", "--to", to, *skip, *pinned)
            b.roll(to)
        smoke(b, to)


def load(b: Backend, alias: str) -> None:
    """Run the latency gate against a server, then record its verdict (and p95/p99) on the
    version the server said it was serving: production takes only a version that passed."""
    check_alias("LOAD_ALIAS", alias)
    result_file = b.s.root / "reports" / "load" / "latency_gate.json"
    result_file.unlink(missing_ok=True)
    failure: CommandFailed | None = None
    try:
        b.load(alias)
    except CommandFailed as exc:  # a failed gate is recorded too, then reported
        failure = exc
    try:
        result = json.loads(result_file.read_text())
    except (OSError, ValueError):
        if failure is not None:
            raise failure from None
        raise LabError(f"the load test wrote no result ({result_file}): nothing recorded") from None
    version = str(result.get("version") or "")
    if not version.isdigit():
        log.warn(f"the {alias} server did not say which version it served: nothing recorded")
    else:
        b.gatekeeper(
            "record-load",
            "--version",
            version,
            "--verdict",
            "passed" if result.get("passed") and failure is None else "failed",
            "--p95-ms",
            str(float(result.get("p95_ms", 0.0))),
            "--p99-ms",
            str(float(result.get("p99_ms", 0.0))),
            "--alias",
            alias,
            "--sha256",
            str(result.get("model_sha256") or ""),
        )
    if failure is not None:
        raise failure


def rollback(b: Backend) -> None:
    """Production back to the version it replaced; the version taken out is revoked, and
    @staging leaves it when it pointed there, so both servers are rolled and checked."""
    with lock.exclusive(b.s.lab_dir / "promote.lock", "make rollback"):
        if getattr(b, "blue_green", False):
            _verified_production_change(b, ("rollback",), ("rollback",))
        else:
            b.gatekeeper("rollback")
        for alias in ("production", "staging"):
            b.roll(alias)
            smoke(b, alias)


def bootstrap(b: Backend) -> None:
    log.info(
        "no production model yet: running the bootstrap pipeline "
        "(train → gate → staging → smoke → production)"
    )
    b.train()
    b.gatekeeper("gate")
    promote(b, "staging")
    # The first production model goes without a latency gate, so that a class is not kept
    # waiting; the reason is recorded on the version, and every later promotion needs one.
    promote(b, "production", skip_load_gate=BOOTSTRAP_SKIP)


def up(b: Backend) -> None:
    b.prepare()
    b.start_tracking()
    production = b.production_version()
    if production:
        log.info(f"production model found (version {production}): starting the model servers")
        with lock.exclusive(b.s.lab_dir / "promote.lock", "make up"):
            b.start_servers()
    else:
        bootstrap(b)
    b.record_mode()
    print(urls.text(b.s, b.mode))


def gate(b: Backend) -> None:
    if b.mode == "docker":
        b.prepare_reports()
    else:
        (b.s.root / "reports" / "gate").mkdir(parents=True, exist_ok=True)
    b.gatekeeper("gate")


PIPELINE_STAGES = (
    "train",
    "gate",
    "promote to staging (smoke test included)",
    "load test staging",
    "promote to production (smoke test included)",
)


def run_pipeline(b: Backend, train_shift: str | None = None, until: str = "production") -> None:
    """The stop-the-line chain, as CI runs it, on this lab: each stage runs only if the one
    before it passed, and the stage that stopped the line is named with its exit code.
    `train_shift` (TRAIN_SHIFT's syntax) trains on a shifted window; None: the settings'.
    `until="staging"` ends after staging's load test (production then waits for someone)."""
    check_alias("TO", until)
    steps = (
        lambda: b.train(train_shift),
        lambda: gate(b),
        lambda: promote(b, "staging"),
        lambda: load(b, "staging"),
        lambda: promote(b, "production"),
    )
    if until == "staging":
        steps = steps[:-1]
    total = len(steps)
    stages = PIPELINE_STAGES[:total]
    for number, (name, step) in enumerate(zip(stages, steps, strict=True), 1):
        log.info(f"pipeline stage {number}/{total}: {name}")
        try:
            step()
        except (CommandFailed, LabError) as exc:
            code = exc.returncode if isinstance(exc, CommandFailed) else exc.code
            skipped = ", ".join(stages[number:]) or "none"
            log.problem(
                f"the line stopped at stage {number}/{total}, {name} (exit {code}); "
                f"not run: {skipped}"
            )
            raise
        log.good(f"stage {number}/{total} passed: {name}")
    if until == "staging":
        log.good("the pipeline passed: the new model is on staging, load-tested")
    else:
        log.good("the pipeline passed: the new model is in production")


def traffic(b: Backend, alias: str, shift: str) -> None:
    check_alias("ALIAS", alias)
    b.traffic(alias, shift)


def drift(b: Backend) -> None:
    """The drift check on @production; CommandFailed with exit 1 when it found drift."""
    b.drift()


def _drift_verdict(b: Backend) -> str:
    """The verdict of the drift check that just ran ('' when it wrote none: the check
    deletes its reports before it starts)."""
    try:
        doc = json.loads((b.s.root / "reports" / "drift" / "drift.json").read_text("utf-8"))
    except (OSError, ValueError):
        return ""
    return doc.get("verdict", "") if isinstance(doc, dict) else ""


def retrain_on_drift(b: Backend, shift: str, to: str = "production") -> bool:
    """Drift check, then only on drift the whole stop-the-line chain (up to `to`), training
    on the newer window: the dataset with `shift` applied (TRAIN_SHIFT). Returns whether
    it retrained; no drift: nothing runs."""
    check_alias("TO", to)
    log.info("retrain on drift: checking @production for drift")
    try:
        b.drift()
    except CommandFailed as exc:
        if exc.returncode != 1:  # cannot tell (too few rows, no reference): stop here
            raise
        # 1 is also how Python and `docker compose run` fail: retrain only on a verdict.
        if _drift_verdict(b) != "drift":
            raise LabError(
                "the drift check exited 1 without writing a drift verdict in "
                "reports/drift/drift.json: it failed, nothing retrained (see its output above)"
            ) from None
        window = f"TRAIN_SHIFT={shift!r}" if shift else "the dataset as it ships (no SHIFT given)"
        log.info(f"drift found: retraining on the newer window, {window}")
        if not shift:
            log.warn("without SHIFT the new model trains on the same data as the one it replaces")
        run_pipeline(b, train_shift=shift, until=to)
        return True
    log.good("no drift on @production: nothing retrained, production unchanged")
    return False
