"""`python -m gatekeeper {gate,promote,record-load,rollback,smoke,status,approve,drift}`.

Exit codes: 0 pass/done, 1 gate failed or promotion refused (stop the line),
2 usage, configuration or infrastructure error. Nothing moves unless the exit is 0.
128 + N: `promote` or `rollback` was stopped by signal N (143 SIGTERM, 129 SIGHUP): an
alias and its image tag moved together or not at all.
`drift` moves nothing: 0 no drift, 1 drift, 2 cannot tell (too few rows, no reference).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from gatekeeper.config import ConfigError, GateConfig

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gatekeeper", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gate", help="judge @candidate (or --version) against the thresholds")
    g.add_argument("--version", help="model version to judge (default: @candidate)")
    pr = sub.add_parser("promote", help="move candidate->staging or staging->production")
    pr.add_argument("--to", required=True, choices=["staging", "production"])
    pr.add_argument("--version", help="model version to promote (default: the source alias)")
    pr.add_argument(
        "--skip-load-gate",
        metavar="REASON",
        default="",
        help="promote to production without a passed latency gate (the reason is recorded)",
    )
    pr.add_argument(
        "--check",
        action="store_true",
        help="check every rule and print the version and its git sha; move nothing",
    )
    rl = sub.add_parser("record-load", help="record a latency gate's result on a version")
    rl.add_argument("--version", required=True, help="the version the server was serving")
    rl.add_argument("--verdict", required=True, choices=["passed", "failed"])
    rl.add_argument("--p95-ms", type=float, required=True)
    rl.add_argument("--p99-ms", type=float, required=True)
    rl.add_argument("--alias", required=True, help="the server it was measured on")
    rl.add_argument("--sha256", default="", help="the model files' sha256 the server reported")
    rb = sub.add_parser("rollback", help="point @production back at the version it replaced")
    rb.add_argument(
        "--check",
        action="store_true",
        help="check every rule and print the version it would restore; move nothing",
    )
    sm = sub.add_parser("smoke", help="check a model server serves the version behind its alias")
    sm.add_argument("--url", required=True, help="base URL of the model server")
    sm.add_argument("--alias", required=True, help="the alias it should be serving")
    sm.add_argument("--version", help="the version it should serve (default: the alias's)")
    sm.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for it")
    st = sub.add_parser("status", help="which version each alias points to")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--version-of", metavar="ALIAS", help="print only this alias's version")
    ap = sub.add_parser("approve", help="record a person's approval of a version for production")
    ap.add_argument("--version", required=True, help="the version approved")
    ap.add_argument("--by", default="", help="who approves (default: GATE_ACTOR or the user)")
    sub.add_parser(
        "drift",
        help="compare what @production served with its training data (DRIFT_* settings)",
    )
    return p


def _print_status(rows: list[dict]) -> None:
    print(f"{'alias':<11} {'version':>7} {'accuracy':>8} {'f1':>6} {'gate':<10} {'git sha':<12}")
    for r in rows:
        if r["version"] is None:
            print(f"{r['alias']:<11} {'-':>7}")
            continue
        acc = "-" if r.get("accuracy") is None else f"{r['accuracy']:.3f}"
        f1 = "-" if r.get("f1_macro") is None else f"{r['f1_macro']:.3f}"
        print(
            f"{r['alias']:<11} {r['version']:>7} {acc:>8} {f1:>6} {r['gate']:<10} "
            f"{(r.get('git_sha') or '-'):<12}"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = GateConfig.from_env()
    except ConfigError as exc:
        print(f"gatekeeper: configuration error: {exc}", file=sys.stderr)
        return EXIT_ERROR

    import mlflow
    from mlflow import MlflowClient

    from gatekeeper import interrupts, lifecycle

    mlflow.set_tracking_uri(cfg.tracking_uri)
    client = MlflowClient()
    name = cfg.model_name
    if args.command == "drift":
        return _drift(client, cfg)
    try:
        if args.command == "gate":
            result = lifecycle.gate(client, cfg, args.version)
            print(result.report_md)
            if not result.decision.passed:
                failed = ", ".join(c.name for c in result.decision.failed)
                print(
                    f"gatekeeper: version {result.version} FAILED the gate ({failed}); "
                    "nothing was promoted",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            print(f"gatekeeper: version {result.version} passed the gate")
        elif args.command == "promote":
            with interrupts.StopSignals():  # stopped at any point, never half moved
                version, previous = lifecycle.promote(
                    client, cfg, args.to, args.version, args.skip_load_gate, check_only=args.check
                )
            if args.check:
                sha = client.get_model_version(name, version).tags.get("git_sha", "unknown")
                print(f"gatekeeper: may promote version={version} git_sha={sha} to @{args.to}")
                print(f"version={version} git_sha={sha} previous={previous or 'none'}")
            elif previous == version:
                print(f"gatekeeper: {name}@{args.to} already points to version {version}")
            else:
                print(
                    f"gatekeeper: {name}@{args.to} -> version {version} (was {previous or 'unset'})"
                )
        elif args.command == "record-load":
            lifecycle.record_load(
                client,
                cfg,
                args.version,
                args.verdict == "passed",
                args.p95_ms,
                args.p99_ms,
                args.alias,
                args.sha256,
            )
            verdict = client.get_model_version(name, args.version).tags.get("load.verdict")
            print(f"gatekeeper: version {args.version}: load.verdict={verdict}")
        elif args.command == "rollback":
            with interrupts.StopSignals():
                restored, rolled_back = lifecycle.rollback(client, cfg, check_only=args.check)
            if args.check:
                sha = client.get_model_version(name, restored).tags.get("git_sha", "unknown")
                print(f"gatekeeper: may roll back from version {rolled_back} to {restored}")
                print(f"version={restored} git_sha={sha} previous={rolled_back}")
                return EXIT_OK
            print(
                f"gatekeeper: {name}@production rolled back from version {rolled_back} "
                f"to version {restored}"
            )
        elif args.command == "smoke":
            from gatekeeper.smoke import SmokeFailed, smoke

            expected = args.version or lifecycle.alias_version(client, name, args.alias)
            try:
                print("gatekeeper: smoke ok: " + smoke(args.url, expected, args.timeout))
            except SmokeFailed as exc:
                print(f"gatekeeper: smoke FAILED: {exc}", file=sys.stderr)
                return EXIT_FAILED
        elif args.command == "approve":
            by = args.by or cfg.actor
            version, earlier = lifecycle.approve(client, cfg, args.version, by)
            again = f" (approved before by {earlier})" if earlier else ""
            print(f"gatekeeper: version {version} approved for production by {by}{again}")
        elif args.command == "status":
            if args.version_of:
                print(lifecycle.alias_version(client, name, args.version_of) or "")
                return EXIT_OK
            rows = lifecycle.status(client, cfg)
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                print(f"model {name} at {cfg.tracking_uri}")
                _print_status(rows)
    except interrupts.Stopped as exc:
        print(
            f"gatekeeper: {exc}: each alias moved together with its image tag or not at all; "
            "make status shows where they are",
            file=sys.stderr,
        )
        return exc.exit_code
    except lifecycle.Refused as exc:
        print(f"gatekeeper: refused: {exc}; nothing moved", file=sys.stderr)
        return EXIT_FAILED
    except lifecycle.UsageError as exc:
        print(f"gatekeeper: {exc}; nothing moved", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # infrastructure: MLflow, the registry, the network
        print(f"gatekeeper: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _drift(client, cfg: GateConfig) -> int:
    from gatekeeper.config import DriftConfig
    from gatekeeper.drift import DriftError
    from gatekeeper.monitor import check

    try:
        dcfg = DriftConfig.from_env()
    except ConfigError as exc:
        print(f"gatekeeper: configuration error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        outcome = check(client, cfg.model_name, dcfg)
    except DriftError as exc:
        print(f"gatekeeper: drift check: cannot tell: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # infrastructure: MLflow, the network, the capture folder
        print(f"gatekeeper: drift check: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    doc = outcome.document
    print(Path(outcome.files[1]).read_text(encoding="utf-8"))
    print(f"gatekeeper: reports in {dcfg.report_dir}/ (drift.html), run {doc['run_id']}")
    if outcome.comparison.drifted:
        print(
            f"gatekeeper: DRIFT on @{dcfg.alias} version {outcome.version}: "
            f"{', '.join(doc['drifted_features'])}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(f"gatekeeper: no drift on @{dcfg.alias} version {outcome.version}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
