"""The command line: `python -m labctl VERB [options]`; the Makefile's targets call it.

Options default to the Makefile's variables (TO, ALIAS, LOAD_ALIAS, SERVICE, FORCE…), so
`make promote TO=production` and `python -m labctl promote --to production` are the same.
Exit codes follow the jobs: 0 done, 1 the line stopped (gate failed, promotion refused,
smoke failed), 2 a usage, configuration or infrastructure error.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable

from labctl import log, pipeline, urls
from labctl.errors import EXIT_ERROR, CommandFailed, LabError
from labctl.runner import Runner
from labctl.settings import ROOT, Settings, load, resolve_mode

VERBS: dict[str, str] = {
    "up": "start the lab (builds, starts, bootstraps a production model on first run)",
    "down": "stop the lab, keep every run, model and image",
    "restart": "down, then up",
    "ps": "show the lab's services",
    "logs": "show recent logs (--service NAME for one service)",
    "doctor": "check Docker, Compose, ports, memory and disk",
    "build": "build the images and push them to the local registry, tagged by git sha",
    "train": "train a new candidate",
    "gate": "run the quality gate on @candidate (exit 1 stops the line)",
    "pipeline": "the stop-the-line chain: train, gate, staging, load, production",
    "promote": "promote --to staging (candidate->staging) or production (staging->production)",
    "rollback": "point @production back at the previous production version",
    "status": "show which version each alias points to",
    "smoke": "smoke-test a model server (--alias staging|production)",
    "load": "Locust latency gate against a server (--alias, default staging)",
    "traffic": "send a server dataset rows, shifted where asked (--alias, --shift)",
    "drift": "drift check on @production: 0 no drift, 1 drift, 2 cannot tell (reports/drift/)",
    "retrain-on-drift": "drift check; on drift only, the pipeline on the shifted window (--to)",
    "approve": "record a person's approval of a version for production (--version, --by)",
    "urls": "print the lab's URLs",
    "summary": "the gate and latency reports as Markdown ($GITHUB_STEP_SUMMARY on GitHub)",
    "state-save": "stop the lab, save its volumes and .env to one file (docker mode)",
    "state-restore": "restore a saved lab into fresh volumes (docker mode)",
    "images-push": "CI: push this commit's images to LAB_REMOTE_IMAGES (docker mode)",
    "images-tag": "CI: move LAB_REMOTE_IMAGES' serving:staging/:production to the aliases",
    "images-login": "CI: docker login to LAB_REMOTE_IMAGES' registry (REMOTE_IMAGES_TOKEN)",
    "e2e": "end-to-end tests against the running lab (they change it: asks first; --force)",
    "clean": "delete the lab's data (asks first; --force skips the question)",
    "mode": "print the mode the lab runs in (docker or local)",
    "user": "classroom mode: add an MLflow login (--name, --password; prints the password)",
    "exercises": "list the exercise book with each exercise's status on this lab",
    "check": "self-check an exercise (--ex N): 0 done, 1 not yet, 2 the lab is not up",
    "solve": "apply the instructor's solution to an exercise (--ex N)",
    "bundle": "classroom kit: every image, the venv's wheels (and a state) in one file",
    "bundle-load": "load a classroom bundle: make up and make test then need no network",
    "mirror": "classroom: a pull-through cache of Docker Hub for the room (--port)",
}


def parser(environ: dict[str, str]) -> argparse.ArgumentParser:
    env = environ.get
    p = argparse.ArgumentParser(prog="labctl", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs = {name: sub.add_parser(name, help=text) for name, text in VERBS.items()}
    # No argparse `choices`: they are not checked against defaults, which come from make
    # variables; the pipeline checks every alias and names the variable.
    verbs["promote"].add_argument("--to", default=env("TO") or "staging", help="(TO=)")
    verbs["promote"].add_argument(
        "--skip-load-gate",
        action="store_true",
        default=env("SKIP_LOAD_GATE", "").strip().lower() in ("1", "true", "yes"),
        help="production without a passed latency gate, recorded on the version (SKIP_LOAD_GATE=1)",
    )
    verbs["promote"].add_argument(
        "--version", default="", help="promote this version, not the source alias's (VERSION=)"
    )
    verbs["smoke"].add_argument("--alias", default=env("ALIAS") or "staging", help="(ALIAS=)")
    verbs["load"].add_argument(
        "--alias", default=env("LOAD_ALIAS") or "staging", help="(LOAD_ALIAS=)"
    )
    verbs["traffic"].add_argument("--alias", default=env("ALIAS") or "production", help="(ALIAS=)")
    for name in ("traffic", "retrain-on-drift"):
        verbs[name].add_argument(
            "--shift", default=env("SHIFT") or "", help='(SHIFT="petal length (cm)=+1.5")'
        )
    verbs["retrain-on-drift"].add_argument(
        "--to", default=env("TO") or "production", help="how far the new model goes (TO=staging)"
    )
    verbs["approve"].add_argument("--version", default=env("VERSION") or "", help="(VERSION=)")
    verbs["approve"].add_argument("--by", default=env("BY") or "", help="(BY=)")
    verbs["logs"].add_argument("--service", default=env("SERVICE") or "", help="(SERVICE=)")
    force = env("FORCE", "").strip().lower() in ("1", "true", "yes")
    for name in ("clean", "state-restore", "e2e"):
        verbs[name].add_argument("--force", action="store_true", default=force, help="(FORCE=1)")
    # Not from the environment: shells often export NAME (WSL does), or a PASSWORD.
    verbs["user"].add_argument("--name", default="", help="(make user NAME=)")
    verbs["user"].add_argument("--password", default="", help="(make user PASSWORD=)")
    verbs["e2e"].add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    for name in ("check", "solve"):
        verbs[name].add_argument("--ex", default=env("EX") or "", help="(EX=)")
    for name in ("bundle", "bundle-load"):
        verbs[name].add_argument(
            "--file", default=env("BUNDLE") or "", help="(BUNDLE=, mlops-lab-bundle-<arch>.tar)"
        )
    verbs["bundle"].add_argument("--arch", default=env("BUNDLE_ARCH") or "", help="(BUNDLE_ARCH=)")
    verbs["bundle"].add_argument(
        "--state", default=env("BUNDLE_STATE") or "", help="a make state-save file (BUNDLE_STATE=)"
    )
    verbs["mirror"].add_argument("--port", default=env("MIRROR_PORT") or "", help="(MIRROR_PORT=)")
    return p


def backend_for(mode: str, settings: Settings, runner: Runner):
    if mode == "docker":
        from labctl.docker import DockerBackend

        return DockerBackend(settings, runner)
    from labctl.local import LocalBackend

    return LocalBackend(settings, runner)


def confirm_clean(mode: str, ask: Callable[[str], str] = input) -> bool:
    if not sys.stdin.isatty():
        raise LabError(
            "make clean deletes every run, model and image: run it in a terminal or with FORCE=1"
        )
    what = "the lab's volumes" if mode == "docker" else "the local lab's data in .lab/"
    answer = ask(f"Delete {what} (every run, model and image)? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def confirm_e2e(settings: Settings, mode: str, ask: Callable[[str], str] = input) -> bool:
    """The end-to-end suite trains, promotes, rolls back and restarts the lab it runs on:
    on a student's lab that rewrites what the exercise checks read. Ask first."""
    url = f"http://{settings.admin_host}:{settings.get('MLFLOW_PORT')}"
    what = (
        f"the {mode} lab at {url}: it trains, promotes, rolls back and restarts it, "
        "and moves the aliases exercise checks read"
    )
    if not sys.stdin.isatty():
        raise LabError(
            f"make e2e changes {what}; run it in a terminal to be asked, or with FORCE=1 "
            "on a lab you can throw away"
        )
    return ask(f"make e2e changes {what}. Run it here? [y/N] ").strip().lower() in ("y", "yes")


def add_user(settings: Settings, name: str, password: str) -> None:
    from labctl import accounts

    if not name:
        raise LabError("which user? make user NAME=alice (PASSWORD=... to choose the password)")
    password = accounts.add_user(settings, name, password)
    url = f"http://{settings.admin_host}:{settings.get('MLFLOW_PORT')}"
    log.good(f"MLflow user {name!r} created: sign in at {url}")
    print(f"  username: {name}\n  password: {password}")
    print(
        f"  (they read every experiment and model and manage what they create; from Python: "
        f"MLFLOW_TRACKING_USERNAME={name} MLFLOW_TRACKING_PASSWORD=...)"
    )


def run(args: argparse.Namespace, settings: Settings, runner: Runner) -> int:
    verb = args.verb
    if verb == "summary":
        from labctl import summary

        return summary.summary(settings.root, settings.env)

    if verb in ("bundle", "bundle-load", "mirror"):  # Docker's images, whatever the mode
        from labctl import bundle

        if verb == "bundle":
            bundle.create(settings, runner, args.file, args.arch, args.state)
        elif verb == "bundle-load":
            bundle.load(settings, runner, args.file)
        else:
            bundle.mirror(settings, runner, args.port)
        return 0

    from labctl.docker import docker_answers

    mode = resolve_mode(settings, lambda: docker_answers(runner))
    if verb == "mode":
        print(mode)
        return 0
    if verb == "e2e":
        pytest = settings.root / ".venv" / "bin" / "pytest"
        if not pytest.exists():
            raise LabError("run make venv first")
        if not args.force and not confirm_e2e(settings, mode):
            log.info("make e2e not run")
            return 0
        extra = args.pytest_args or shlex.split(settings.get("PYTEST_ARGS"))
        return runner.run(
            [str(pytest), "-m", "e2e", "tests/e2e", "-p", "no:cacheprovider", *extra],
            # GIT_SHA empty: each `make` a test runs names the commit it runs at, so a model
            # trained after a test's commit (an exercise's solution) is tagged with that one.
            env={"LAB_ACTIVE_MODE": mode, "GIT_SHA": ""},
            check=False,
        ).returncode

    if verb in ("exercises", "check", "solve"):
        from labctl.book import runner as book
        from labctl.book.view import Lab

        lab = Lab(settings, mode)
        if verb == "exercises":
            return book.listing(lab)
        number = book.parse_number(args.ex)
        return book.check(lab, number) if verb == "check" else book.solve(lab, number)

    b = backend_for(mode, settings, runner)
    if verb == "up":
        pipeline.up(b)
    elif verb == "down":
        b.down()
        kept = "in the volumes" if mode == "docker" else "in .lab/"
        log.info(f"stopped; data kept {kept} (make clean removes it)")
    elif verb == "restart":
        b.down()
        pipeline.up(b)
    elif verb == "clean":
        if not args.force and not confirm_clean(mode):
            log.info("nothing deleted")
            return 0
        b.clean()
        log.info("data removed (.env kept: delete it yourself to get new secrets)")
    elif verb == "doctor":
        problems, summary_line = b.doctor()
        for p in problems:
            log.problem(p)
        if problems:
            return 1
        log.good(f"{mode} mode: {summary_line}")
    elif verb == "ps":
        b.ps()
    elif verb == "logs":
        b.logs(args.service)
    elif verb == "build":
        b.build()
    elif verb == "train":
        b.train()
    elif verb == "gate":
        pipeline.gate(b)
    elif verb == "pipeline":
        pipeline.run_pipeline(b)
    elif verb == "promote":
        skip = "SKIP_LOAD_GATE=1" if args.skip_load_gate else ""
        pipeline.promote(b, args.to, skip, version=args.version)
    elif verb == "rollback":
        pipeline.rollback(b)
    elif verb == "status":
        b.gatekeeper("status")
    elif verb == "smoke":
        pipeline.smoke(b, args.alias)
    elif verb == "load":
        pipeline.load(b, args.alias)
    elif verb == "traffic":
        pipeline.traffic(b, args.alias, args.shift)
    elif verb == "drift":
        pipeline.drift(b)
    elif verb == "retrain-on-drift":
        retrained = pipeline.retrain_on_drift(b, args.shift, args.to)
        output = settings.env.get("GITHUB_OUTPUT")
        if output:  # GitHub Actions: the next job runs only if a new model was trained
            with open(output, "a", encoding="utf-8") as out:
                out.write(f"retrained={'true' if retrained else 'false'}\n")
    elif verb == "approve":
        version = args.version.strip()
        if not (version.isdigit() or version in pipeline.ALIASES):
            raise LabError(
                "which version? make approve VERSION=N BY=<name> (or VERSION=staging for the "
                f"version @staging points to; got {version!r})"
            )
        by = ("--by", args.by) if args.by.strip() else ()
        b.gatekeeper("approve", "--version", version, *by)
    elif verb == "urls":
        print(urls.text(settings, mode))
    elif verb == "user":
        add_user(settings, args.name, args.password)
    elif verb == "state-save":
        b.state_save()
    elif verb == "state-restore":
        settings.env["FORCE"] = "1" if args.force else "0"
        b.state_restore()
    elif verb in ("images-push", "images-tag", "images-login"):
        if b.mode != "docker":
            raise LabError(f"{verb} moves docker images: it needs LAB_MODE=docker")
        {"images-push": b.images_push, "images-tag": b.images_tag_remote,
         "images-login": b.images_login}[verb]()  # fmt: skip
    return 0


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None, root=ROOT) -> int:
    environ = dict(os.environ if environ is None else environ)
    args = parser(environ).parse_args(argv)
    try:
        settings = load(root, environ)
        for w in settings.warnings:
            log.warn(w)
        return run(args, settings, Runner(settings.root, settings.env))
    except LabError as exc:
        log.error(str(exc))
        return exc.code
    except CommandFailed as exc:
        log.error(str(exc))
        return exc.returncode if 0 < exc.returncode < 128 else EXIT_ERROR
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except EOFError:
        log.error("no answer (end of input): nothing was changed")
        return EXIT_ERROR
    except (OSError, ValueError) as exc:  # a file or folder the lab cannot use
        log.error(f"{type(exc).__name__}: {exc}")
        return EXIT_ERROR
