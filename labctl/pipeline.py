"""The lab's pipeline, written once for both backends.

    up        = prepare → tracking server → production found ? start servers : bootstrap
    bootstrap = train → gate → (promote → roll → smoke) for staging, then production
    promote   = move the alias (the gatekeeper refuses an ungated version) → roll → smoke
    rollback  = move @production back → roll → smoke

A backend (labctl.docker, labctl.local) says how each step runs; this module says in which
order, and what must never happen: a failed @production lookup must not look like "no
production model", or `up` would bootstrap over a lab that has one.
"""

from __future__ import annotations

from typing import Protocol

from labctl import lock, log, urls
from labctl.errors import CommandFailed, LabError
from labctl.runner import Result
from labctl.settings import Settings

ALIASES = ("staging", "production")


class Backend(Protocol):
    mode: str
    s: Settings

    def prepare(self) -> None: ...
    def start_tracking(self) -> None: ...
    def start_servers(self) -> None: ...
    def gatekeeper(self, *args: str, capture: bool = False) -> Result: ...
    def train(self) -> None: ...
    def roll(self, alias: str) -> None: ...
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


def promote(b: Backend, to: str) -> None:
    check_alias("TO", to)
    with lock.exclusive(b.s.lab_dir / "promote.lock", f"make promote TO={to}"):
        b.gatekeeper("promote", "--to", to)
        b.roll(to)
        smoke(b, to)


def rollback(b: Backend) -> None:
    """Production back to the version it replaced; the version taken out is revoked, and
    @staging leaves it when it pointed there, so both servers are rolled and checked."""
    with lock.exclusive(b.s.lab_dir / "promote.lock", "make rollback"):
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
    for alias in ALIASES:
        promote(b, alias)


def up(b: Backend) -> None:
    b.prepare()
    b.start_tracking()
    production = production_version(b)
    if production:
        log.info(f"production model found (version {production}): starting the model servers")
        b.start_servers()
    else:
        bootstrap(b)
    b.record_mode()
    print(urls.text(b.s, b.mode))
