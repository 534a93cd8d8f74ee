"""Gate, promote, rollback and status against the MLflow model registry.

Aliases are the only thing that decides what serves, so every command computes and
checks everything first and moves an alias last. A failure before that point leaves
every alias (and every image tag) exactly as it was.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from gatekeeper import holdout as holdout_set
from gatekeeper import interrupts, report, trusted
from gatekeeper.config import GateConfig
from gatekeeper.decide import Decision, Evidence, decide
from gatekeeper.images import Registry

log = logging.getLogger("gatekeeper")

CANDIDATE, STAGING, PRODUCTION = "candidate", "staging", "production"
ALIASES = (CANDIDATE, STAGING, PRODUCTION)
SOURCE_OF = {STAGING: CANDIDATE, PRODUCTION: STAGING}
REVOKED = "revoked"  # gate.verdict of a version rolled back out of production
APPROVED_BY, APPROVED_AT = "approval.by", "approval.at"

LATENCY_WARMUP, LATENCY_SAMPLES = 20, 300


class Refused(RuntimeError):
    """The operation is not allowed (exit 1): the line stops, nothing moved."""


class UsageError(RuntimeError):
    """The request cannot be carried out as asked (exit 2), e.g. a missing alias."""


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version an alias points to, or None if the alias (or the model) does not exist."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        missing_model = exc.error_code == "RESOURCE_DOES_NOT_EXIST"
        # MLflow reports a missing alias as INVALID_PARAMETER_VALUE "... alias X not found".
        missing_alias = exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)
        if missing_model or missing_alias:
            return None
        raise


def _signature_inputs(local_dir: Path) -> dict[str, str] | None:
    from mlflow.models import Model

    sig = Model.load(str(local_dir)).signature
    if sig is None or sig.inputs is None:
        return None
    return {str(s["name"]): str(s["type"]) for s in sig.inputs.to_dict()}


def _p99_latency_ms(local_dir: Path) -> float | None:
    """Offline p99 of one-row predictions on the model itself (a DataFrame row, as MLflow's
    sklearn pyfunc passes it), loaded on the gatekeeper's terms (trusted.py)."""
    from mlflow.models import Model

    from gatekeeper import trusted

    example = Model.load(str(local_dir)).load_input_example(str(local_dir))
    if example is None:
        return None
    model = trusted.load_estimator(local_dir)
    row = example.head(1) if hasattr(example, "head") else example
    for _ in range(LATENCY_WARMUP):
        model.predict(row)
    samples = []
    for _ in range(LATENCY_SAMPLES):
        t0 = time.perf_counter()
        model.predict(row)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return samples[min(len(samples) - 1, int(0.99 * len(samples)))]


def _download(name: str, version: str, dest: Path) -> Path:
    import mlflow.artifacts

    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=str(dest)
        )
    )


def _measure(local: Path, holdout: holdout_set.Holdout | None) -> tuple[dict, str, object]:
    """(metrics on the held-out set, why not measured, estimator) for trusted model files."""
    if holdout is None:
        return {}, "no held-out set", None
    estimator = trusted.load_estimator(local)
    try:
        return holdout_set.measure(estimator, holdout), "", estimator
    except holdout_set.HoldoutError as exc:
        return {}, str(exc), estimator


def collect(client: MlflowClient, cfg: GateConfig, version: str) -> tuple[Evidence, str | None]:
    """Measure a candidate version, and the current production version, on the held-out set."""
    mv = client.get_model_version(cfg.model_name, version)
    logged = dict(client.get_run(mv.run_id).data.metrics)
    prod_version = alias_version(client, cfg.model_name, PRODUCTION)
    holdout, holdout_error = None, ""
    try:
        # A candidate trained on a shifted window is judged, with production, on held-out
        # rows shifted the same way.
        holdout = holdout_set.load(mv.tags.get("dataset", ""), mv.tags.get("train_shift", ""))
    except holdout_set.HoldoutError as exc:
        holdout_error = str(exc)
    with tempfile.TemporaryDirectory() as tmp:
        local = _download(cfg.model_name, version, Path(tmp) / "candidate")
        size_mb = sum(f.stat().st_size for f in local.rglob("*") if f.is_file()) / 1e6
        sha256 = trusted.fingerprint(local)
        p99, refused, metrics, measure_error = None, "", {}, holdout_error
        try:  # the candidate is untrusted by definition: nothing in it may run
            trusted.check(local)
            p99 = _p99_latency_ms(local)
            if holdout is not None:
                metrics, measure_error, _ = _measure(local, holdout)
        except trusted.UntrustedModel as exc:
            refused = str(exc)
            measure_error = measure_error or "refused files are not loaded"
        cand_sig = _signature_inputs(local)
        prod_metrics: dict[str, float] = {}
        prod_error = ""
        compatible, detail = None, ""
        if prod_version is not None and prod_version != version:
            prod_local = _download(cfg.model_name, prod_version, Path(tmp) / "p")
            try:
                trusted.check(prod_local)
                prod_metrics, prod_error, _ = _measure(prod_local, holdout)
                if prod_error:
                    prod_error = f"production v{prod_version}: {prod_error}"
            except trusted.UntrustedModel as exc:
                prod_error = f"production v{prod_version} is not loadable here: {exc}"
            prod_sig = _signature_inputs(prod_local)
            compatible = cand_sig is not None and cand_sig == prod_sig
            if not compatible:
                missing = sorted(set(prod_sig or {}) - set(cand_sig or {}))
                extra = sorted(set(cand_sig or {}) - set(prod_sig or {}))
                detail = (
                    f"missing {missing[:3]}, extra {extra[:3]}"
                    if (missing or extra)
                    else ("input types differ")
                )
        elif prod_version == version:
            prod_version = None  # re-gating the production model: compare with nothing
    evidence = Evidence(
        metrics=metrics,
        p99_latency_ms=p99,
        model_size_mb=round(size_mb, 3),
        schema_compatible=compatible,
        schema_detail=detail,
        production_version=prod_version,
        production_metrics=prod_metrics,
        format_refused=refused,
        sha256=sha256,
        holdout=holdout.describe() if holdout is not None else {},
        measure_error=measure_error,
        production_measure_error=prod_error,
        logged_metrics=logged,
    )
    return evidence, mv.run_id


@dataclass(frozen=True)
class GateResult:
    version: str
    decision: Decision
    report_md: str


def gate(client: MlflowClient, cfg: GateConfig, version: str | None = None) -> GateResult:
    """Judge a version (default: @candidate), record the verdict; never moves an alias."""
    version = version or alias_version(client, cfg.model_name, CANDIDATE)
    if version is None:
        raise UsageError(f"{cfg.model_name} has no @{CANDIDATE}: train one first (make train)")
    if client.get_model_version(cfg.model_name, version).tags.get("gate.verdict") == REVOKED:
        raise Refused(
            f"version {version} was rolled back out of production (gate.verdict=revoked): "
            "it is not judged again; train a new candidate"
        )
    evidence, run_id = collect(client, cfg, version)
    decision = decide(evidence, cfg.thresholds)
    checked_at = now()
    json_text = report.to_json(
        cfg.model_name, version, decision, checked_at, cfg.thresholds, evidence
    )
    md_text = report.to_markdown(cfg.model_name, version, decision, checked_at, evidence)
    json_path, md_path = report.write(Path(cfg.report_dir), json_text, md_text)
    # The latest verdict under gate/, every verdict under gate/history/ (a re-gate with
    # other thresholds does not erase the earlier one).
    kept = report.history_name(version, checked_at)
    report.write(Path(cfg.report_dir) / "history" / kept, json_text, md_text)
    for path in (json_path, md_path):
        client.log_artifact(run_id, str(path), "gate")
        client.log_artifact(run_id, str(path), f"gate/history/{kept}")
    verdict = "passed" if decision.passed else "failed"
    # The verdict is written last: a version never reads `passed` without the fingerprint
    # of the files that passed (the model servers load only those: serving/trusted.py).
    tags = {
        trusted.FINGERPRINT_TAG: evidence.sha256,
        "gate.holdout_sha256": evidence.holdout.get("sha256", "none"),
        "gate.thresholds": json.dumps(asdict(cfg.thresholds), separators=(",", ":")),
        **{
            f"gate.measured.{k}": str(evidence.metrics[k])
            for k in ("accuracy", "f1_macro")
            if k in evidence.metrics
        },
        "gate.checked_at": checked_at,
        "gate.failed_checks": ",".join(c.name for c in decision.failed) or "none",
        "gate.verdict": verdict,
    }
    for key, value in tags.items():
        client.set_model_version_tag(cfg.model_name, version, key, value)
    return GateResult(version, decision, md_text)


def _image_registry(cfg: GateConfig) -> Registry | None:
    if not cfg.registry_url:
        return None
    auth = (cfg.registry_username, cfg.registry_password) if cfg.registry_username else None
    return Registry(cfg.registry_url, cfg.image_repository, auth=auth)


def _move(client: MlflowClient, cfg: GateConfig, alias: str, version: str) -> None:
    """Point the serving image tag, then the model alias, at `version`, or change nothing.

    The image tag moves first (it names the code); if the alias then fails to move, or a
    stop signal (Ctrl-C, SIGTERM, SIGHUP) cuts either move short, the tag is put back to
    the manifest it had, and a second signal waits for that (gatekeeper.interrupts).
    """
    registry = _image_registry(cfg)
    sha = ""
    if registry is not None:
        sha = client.get_model_version(cfg.model_name, version).tags.get("git_sha", "")
        if not sha or sha == "unknown":
            raise UsageError(f"version {version} has no git_sha tag: no image to promote with it")
    with interrupts.StopSignals() as stops:
        # Read before anything is written, so that a move cut short anywhere after this
        # line, even inside the retag, can be undone.
        previous = registry.get(alias) if registry is not None else None
        try:
            if registry is not None:
                registry.retag(sha, alias)
            client.set_registered_model_alias(cfg.model_name, alias, version)
        except BaseException:
            # An attribute, not a call, so nothing runs before it: from here on a stop
            # signal waits until the tag is back.
            stops.held = True
            if (
                registry is not None
                and previous is not None
                and not _alias_is(client, cfg, alias, version)
            ):
                registry.put(alias, previous)
            raise


def _alias_is(client: MlflowClient, cfg: GateConfig, alias: str, version: str) -> bool:
    """Whether the alias points to `version` after a failed or interrupted write (MLflow
    may have applied it before the reply was lost); unknown counts as not moved."""
    try:
        return alias_version(client, cfg.model_name, alias) == version
    except Exception:
        return False


def record_load(
    client: MlflowClient,
    cfg: GateConfig,
    version: str,
    passed: bool,
    p95_ms: float,
    p99_ms: float,
    alias: str,
    sha256: str = "",
) -> None:
    """Record the latency gate's verdict on the version the server said it was serving.

    The verdict is written last, as the gate's is: `load.verdict` never reads `passed`
    without the figures it was given for. A result measured on other files than the ones
    that passed the gate is recorded as failed."""
    tags = client.get_model_version(cfg.model_name, version).tags
    gated = tags.get(trusted.FINGERPRINT_TAG, "")
    if passed and sha256 and gated and sha256 != gated:
        log.warning("version %s: the server measured files other than the gated ones", version)
        passed = False
    for key, value in {
        "load.p95_ms": f"{p95_ms:.1f}",
        "load.p99_ms": f"{p99_ms:.1f}",
        "load.alias": alias,
        "load.model_sha256": sha256 or "unknown",
        "load.at": now(),
        "load.verdict": "passed" if passed else "failed",
    }.items():
        client.set_model_version_tag(cfg.model_name, version, key, value)


def promote(
    client: MlflowClient,
    cfg: GateConfig,
    target: str,
    version: str | None = None,
    skip_load_gate: str = "",
    check_only: bool = False,
) -> tuple[str, str | None]:
    """Move `target` (staging or production) to a gated version; return (new, previous).

    Production also wants a passed latency gate (`load.verdict`, written by `make load`)
    on that version, unless `skip_load_gate` gives the reason to go without one; the
    reason is recorded on the version."""
    if target not in SOURCE_OF:
        raise UsageError(f"can only promote to {' or '.join(SOURCE_OF)}, not {target!r}")
    source = SOURCE_OF[target]
    at_source = alias_version(client, cfg.model_name, source)
    if version is not None and target == PRODUCTION and version != at_source:
        # Production takes only what staging served (and was smoke- and load-tested).
        raise Refused(
            f"version {version} is not @{source} (which is {at_source or 'unset'}): promote it "
            f"to {source} first"
        )
    version = version or at_source
    if version is None:
        raise UsageError(f"{cfg.model_name} has no @{source} to promote to @{target}")
    mv = client.get_model_version(cfg.model_name, version)
    verdict = mv.tags.get("gate.verdict")
    if verdict == REVOKED:
        raise Refused(
            f"version {version} was rolled back out of production (gate.verdict=revoked, "
            f"{mv.tags.get('rolled_back.at', 'at an unknown time')}): train a new candidate"
        )
    if verdict != "passed":
        raise Refused(
            f"version {version} has not passed the gate (gate.verdict={verdict or 'never gated'})"
        )
    previous = alias_version(client, cfg.model_name, target)
    if previous == version:
        return version, previous
    if target == PRODUCTION and cfg.require_approval and not mv.tags.get(APPROVED_BY):
        raise Refused(
            f"version {version} has no approval, and production requires one "
            f"(PROMOTE_REQUIRE_APPROVAL=1): someone who reviewed it runs "
            f"make approve VERSION={version} BY=<name>"
        )
    load_verdict = mv.tags.get("load.verdict")
    if target == PRODUCTION and load_verdict != "passed" and not skip_load_gate:
        raise Refused(
            f"version {version} has not passed the latency gate (load.verdict="
            f"{load_verdict or 'never load-tested'}): run make load against staging first, "
            "or promote with SKIP_LOAD_GATE=1 to go without it (recorded on the version)"
        )
    if check_only:  # every rule checked, nothing written
        return version, previous
    # Written before the move so that rollback can always find its way back; harmless if
    # the move then fails, since rollback only reads it from the current production version.
    client.set_model_version_tag(
        cfg.model_name, version, f"promoted.{target}.previous", previous or "none"
    )
    if target == PRODUCTION:
        load_gate = "passed" if load_verdict == "passed" else f"skipped: {skip_load_gate}"
        client.set_model_version_tag(
            cfg.model_name, version, "promoted.production.load_gate", load_gate
        )
    _move(client, cfg, target, version)
    stamp = now()
    _record(
        client,
        cfg,
        version,
        {
            f"promoted.{target}.at": stamp,
            f"promoted.{target}.by": cfg.actor,
            f"promoted.{target}.from": f"@{source}",
            **(
                {f"promoted.{target}.approved_by": mv.tags[APPROVED_BY]}
                if mv.tags.get(APPROVED_BY)
                else {}
            ),
        },
    )
    return version, previous


def approve(client: MlflowClient, cfg: GateConfig, version: str, by: str) -> tuple[str, str | None]:
    """Record that `by` approved `version` (a number, or an alias: the version it points
    to) for production; returns (the version, an earlier approver if any: the new approval
    is recorded over it). Only a version that passed the gate
    can be approved: an approval is a human's yes on top of the machine's, not instead."""
    by = by.strip()
    if not by:
        raise UsageError("an approval needs a name: make approve VERSION=N BY=<name>")
    if version in ALIASES:  # VERSION=staging: the version that alias points to now
        alias, version = version, alias_version(client, cfg.model_name, version)
        if version is None:
            raise UsageError(f"{cfg.model_name} has no @{alias} to approve")
    try:
        mv = client.get_model_version(cfg.model_name, version)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise UsageError(f"{cfg.model_name} has no version {version}") from None
        raise
    verdict = mv.tags.get("gate.verdict")
    if verdict != "passed":
        raise Refused(
            f"version {version} cannot be approved: gate.verdict="
            f"{verdict or 'never gated'} (only a version that passed the gate can be)"
        )
    earlier = mv.tags.get(APPROVED_BY)
    client.set_model_version_tag(cfg.model_name, version, APPROVED_AT, now())
    # The approver last: a version never reads approved without the time it was.
    client.set_model_version_tag(cfg.model_name, version, APPROVED_BY, by)
    return version, earlier


def _record(client: MlflowClient, cfg: GateConfig, version: str, tags: dict[str, str]) -> None:
    """History tags, written after a move: the move happened and must be reported as done
    (the server still has to be rolled and smoke-tested), so a failure here only warns."""
    for key, value in tags.items():
        try:
            client.set_model_version_tag(cfg.model_name, version, key, value)
        except Exception as exc:
            log.warning(
                "version %s: could not record %s=%s (%s); the move itself is done",
                version,
                key,
                value,
                exc,
            )


def rollback(client: MlflowClient, cfg: GateConfig, check_only: bool = False) -> tuple[str, str]:
    """Point @production back at the version it replaced, and revoke the version taken out:
    it can never be promoted again, and @staging leaves it (for the restored version).
    Returns (restored, rolled_back)."""
    current = alias_version(client, cfg.model_name, PRODUCTION)
    if current is None:
        raise UsageError(f"{cfg.model_name} has no @{PRODUCTION}: nothing to roll back")
    tags = client.get_model_version(cfg.model_name, current).tags
    previous = tags.get(f"promoted.{PRODUCTION}.previous", "none")
    if previous == "none":
        raise Refused(f"version {current} has no earlier production version to roll back to")
    # Revoked first: if anything below fails, the version is already out of the line, and
    # running rollback again finishes the move.
    restored = client.get_model_version(cfg.model_name, previous).tags
    if restored.get("gate.verdict") == REVOKED:
        raise Refused(f"version {previous}, which {current} replaced, was revoked itself")
    registry = _image_registry(cfg)
    sha = restored.get("git_sha", "")
    # Checked before anything changes: the move must be possible.
    if registry is not None and (not sha or sha == "unknown" or registry.get(sha) is None):
        raise UsageError(
            f"version {previous} has no serving image ({sha or 'no git_sha'}) in the "
            "registry to roll back to"
        )
    if check_only:  # every rule checked, nothing written
        return previous, current
    stamp = now()
    staging = alias_version(client, cfg.model_name, STAGING)
    client.set_model_version_tag(cfg.model_name, current, "gate.verdict", REVOKED)
    _move(client, cfg, PRODUCTION, previous)
    if staging == current:  # staging leaves it too, for the version production runs
        try:
            _move(client, cfg, STAGING, previous)
        except Exception as exc:  # production is back; staging's version can go no further
            log.warning(
                "@%s still points to the revoked version %s (%s): promote a new candidate",
                STAGING,
                current,
                exc,
            )
    _record(client, cfg, current, {"rolled_back.at": stamp, "rolled_back.by": cfg.actor})
    _record(client, cfg, previous, {"restored_by_rollback.at": stamp})
    return previous, current


def status(client: MlflowClient, cfg: GateConfig) -> list[dict]:
    """One row per alias: version, key metrics, gate verdict, git sha and image digest."""
    registry = _image_registry(cfg)
    rows = []
    for alias in ALIASES:
        version = alias_version(client, cfg.model_name, alias)
        row: dict = {"alias": alias, "version": version}
        if version is not None:
            mv = client.get_model_version(cfg.model_name, version)
            # The gate's measurement once gated; before that, what the run logged.
            metrics = dict(client.get_run(mv.run_id).data.metrics)
            for key in ("accuracy", "f1_macro"):
                if f"gate.measured.{key}" in mv.tags:
                    metrics[key] = float(mv.tags[f"gate.measured.{key}"])
            row.update(
                accuracy=metrics.get("accuracy"),
                f1_macro=metrics.get("f1_macro"),
                gate=mv.tags.get("gate.verdict", "not gated"),
                git_sha=mv.tags.get("git_sha"),
                run_id=mv.run_id,
            )
        if registry is not None and alias != CANDIDATE:
            row["image_digest"] = registry.digest(alias)
        rows.append(row)
    return rows
