"""The drift check: production's captured window against its version's reference profile.

    python -m gatekeeper drift      exit 0 no drift, 1 drift, 2 cannot tell (and why)

It reads the rows the model servers recorded (serving/capture.py) for the version behind
the alias, the reference profile training logged with that version
(training/trainer/profile.py), compares them (drift.py), writes reports/drift/ (JSON,
Markdown, HTML) and logs the result as a run of the monitoring experiment.
"""

from __future__ import annotations

import html
import json
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from gatekeeper import drift
from gatekeeper.config import DriftConfig

PROFILE_PATH = "reference/profile.json"
REPORTS = ("drift.json", "drift.md", "drift.html")


@dataclass(frozen=True)
class Window:
    features: list[str]
    rows: np.ndarray  # (n, len(features)), oldest first
    predictions: list
    files: int
    skipped_lines: int
    first_t: float | None
    last_t: float | None


def read_window(
    directory: str | Path, alias: str, version: str, max_rows: int, run_id: str = ""
) -> Window:
    """The most recent `max_rows` rows the alias's servers answered with `version` (and,
    given `run_id`, with that run's model: a restored lab numbers its versions again).

    Lines that do not parse, or whose rows, predictions or time are not what a server
    writes, are skipped and counted: a half-written last line (a server stopped mid-write)
    must not stop the check.
    """
    directory = Path(directory)
    batches: list[tuple[float, list[str], np.ndarray, list]] = []
    skipped = 0
    files = sorted(directory.glob(f"{alias}-*.jsonl")) if directory.is_dir() else []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:  # pruned by a server while we listed
            continue
        for line in text.splitlines():
            try:
                rec = json.loads(line)
                if str(rec["version"]) != version or (run_id and rec.get("run", run_id) != run_id):
                    continue
                feats, preds = [str(f) for f in rec["features"]], list(rec["predictions"])
                rows = np.asarray(rec["rows"], dtype="float64")
                t = float(rec["t"])
                if (
                    rows.ndim != 2
                    or len(rows) == 0
                    or rows.shape[1] != len(feats)
                    or len(preds) != len(rows)
                    or not np.isfinite(t)
                ):
                    raise ValueError
                batches.append((t, feats, rows, preds))
            except (ValueError, KeyError, TypeError):
                skipped += 1
    batches.sort(key=lambda b: b[0])
    features = batches[-1][1] if batches else []
    chosen: list[tuple[np.ndarray, list]] = []  # newest first
    count = 0
    first_t = None
    for t, feats, rows, preds in reversed(batches):
        if feats != features:
            continue  # another signature served under the same version number: not ours
        chosen.append((rows, preds))
        count += len(rows)
        first_t = t
        if count >= max_rows:
            break
    chosen.reverse()
    kept = (
        np.vstack([rows for rows, _ in chosen])
        if chosen
        else np.empty((0, len(features)), dtype="float64")
    )
    predictions = [p for _, preds in chosen for p in preds]
    if len(kept) > max_rows:
        cut = len(kept) - max_rows
        kept, predictions = kept[cut:], predictions[cut:]
    return Window(
        features=features,
        rows=kept,
        predictions=predictions,
        files=len(files),
        skipped_lines=skipped,
        first_t=first_t,
        last_t=batches[-1][0] if batches else None,
    )


def load_reference(client, model_name: str, version: str) -> tuple[dict, str]:
    """(profile, run id) of the training run behind `version`."""
    mv = client.get_model_version(model_name, version)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(mv.run_id, PROFILE_PATH, tmp)
        except Exception as exc:
            raise drift.DriftError(
                f"version {version} has no reference profile ({PROFILE_PATH} in run "
                f"{mv.run_id}: {type(exc).__name__}): it was trained before the lab "
                "logged one; train and promote a new version"
            ) from None
        profile = json.loads(Path(local).read_text(encoding="utf-8"))
    if profile.get("format") != 1 or not profile.get("columns") or not profile.get("sample"):
        raise drift.DriftError(f"version {version}'s reference profile is not one this check reads")
    return profile, mv.run_id


def reference_columns(profile: dict) -> dict[str, np.ndarray]:
    sample = np.asarray(profile["sample"], dtype="float64")
    return {c: sample[:, j] for j, c in enumerate(profile["columns"])}


@dataclass(frozen=True)
class Outcome:
    version: str
    comparison: drift.Comparison
    window: Window
    document: dict
    files: list[Path]


def _thresholds(cfg: DriftConfig) -> drift.Thresholds:
    return drift.Thresholds(
        psi=cfg.psi, ks_alpha=cfg.ks_alpha, min_rows=cfg.min_rows, min_features=cfg.min_features
    )


def _time(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def document(
    model: str, version: str, profile: dict, window: Window, result: drift.Comparison, at: str
) -> dict:
    return {
        "model": model,
        "version": version,
        "verdict": "drift" if result.drifted else "no drift",
        "checked_at": at,
        "thresholds": asdict(result.thresholds),
        "reference": {
            "dataset": profile.get("dataset"),
            "shift": profile.get("shift") or "",
            "rows": result.reference_rows,
        },
        "window": {
            "rows": result.current_rows,
            "from": _time(window.first_t),
            "to": _time(window.last_t),
            "files": window.files,
            "skipped_lines": window.skipped_lines,
        },
        "drifted_features": result.drifted_features,
        "mean_psi": round(result.mean_psi, 6),
        "features": [f.as_dict() for f in result.features],
        "predictions": _prediction_shares(profile, window.predictions),
    }


def _prediction_shares(profile: dict, predictions: list) -> dict:
    """Share of each class among the answers, beside its share among the training labels."""
    names = list(profile.get("classes", {}))
    counts: dict[str, int] = {}
    for p in predictions:
        key = names[p] if isinstance(p, int) and 0 <= p < len(names) else str(p)
        counts[key] = counts.get(key, 0) + 1
    total = max(len(predictions), 1)
    return {
        name: {
            "reference": profile.get("classes", {}).get(name, 0.0),
            "window": round(counts.get(name, 0) / total, 6),
        }
        for name in [*names, *(k for k in counts if k not in names)]
    }


def to_markdown(doc: dict) -> str:
    w, t = doc["window"], doc["thresholds"]
    verdict = "**DRIFT**" if doc["verdict"] == "drift" else "no drift"
    lines = [
        f"### Drift check: {doc['model']} version {doc['version']}: {verdict}",
        "",
        f"Window: the last {w['rows']} rows served ({w['from']} to {w['to']}), against the "
        f"{doc['reference']['rows']} rows version {doc['version']} was trained on"
        + (f" (shift: {doc['reference']['shift']})" if doc["reference"]["shift"] else "")
        + ".",
        f"A feature drifts when PSI >= {t['psi']} and the KS test's p < {t['ks_alpha']}; "
        f"the window drifts when {t['min_features']} or more features do.",
        "",
        "| feature | PSI | KS statistic | KS p-value | mean (reference → window) | drifted |",
        "|---|---:|---:|---:|---|:---:|",
    ]
    for f in doc["features"]:
        lines.append(
            f"| {f['feature']} | {f['psi']:.3f} | {f['ks_statistic']:.3f} | "
            f"{f['ks_pvalue']:.2g} | {f['reference_mean']:.3f} → {f['current_mean']:.3f} | "
            f"{'**yes**' if f['drifted'] else 'no'} |"
        )
    lines += ["", "| class | share in training | share of answers |", "|---|---:|---:|"]
    for name, s in doc["predictions"].items():
        lines.append(f"| {name} | {s['reference']:.2f} | {s['window']:.2f} |")
    return "\n".join(lines) + "\n"


def _bars_svg(f: dict) -> str:
    """Reference and window shares per bin, side by side, as an inline SVG."""
    ref, cur = f["reference_shares"], f["current_shares"]
    n = len(ref)
    width, height, pad = 420, 140, 20
    top = max([*ref, *cur, 0.01])
    slot = (width - 2 * pad) / max(n, 1)
    parts = [
        f'<svg viewBox="0 0 {width} {height + 30}" width="{width}" height="{height + 30}" '
        f'role="img" aria-label="{html.escape(f["feature"])}: shares per bin">'
    ]
    for i, (r, c) in enumerate(zip(ref, cur, strict=True)):
        x = pad + i * slot
        for j, (value, cls) in enumerate(((r, "ref"), (c, "cur"))):
            h = (height - 10) * value / top
            parts.append(
                f'<rect class="{cls}" x="{x + 2 + j * (slot - 4) / 2:.1f}" '
                f'y="{height - h:.1f}" width="{(slot - 4) / 2:.1f}" height="{h:.1f}">'
                f"<title>{'training' if cls == 'ref' else 'window'}: {value:.1%}</title></rect>"
            )
    edges = f["edges"]
    labels = ["below"] + [f"≤{e:g}" for e in edges[1:]] + ["above"] if edges else []
    for i, label in enumerate(labels[:n]):
        x = pad + i * slot + slot / 2
        parts.append(
            f'<text x="{x:.1f}" y="{height + 16}" text-anchor="middle">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
.verdict{padding:.8rem 1rem;border-radius:6px;font-weight:600;font-size:1.2rem}
.verdict.drift{background:#fde2e1;color:#8a1c17}
.verdict.none{background:#e3f4e1;color:#1d5e1a}
table{border-collapse:collapse;margin:1rem 0}
td,th{padding:.3rem .7rem;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}
tr.bad td{color:#8a1c17;font-weight:600}
figure{display:inline-block;margin:.5rem 1rem .5rem 0}
figcaption{font-weight:600}
rect.ref{fill:#8aa9c9}
rect.cur{fill:#e07a5f}
text{font-size:10px;fill:#555}
.key span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 1rem;vertical-align:middle}
"""


def to_html(doc: dict) -> str:
    """One self-contained page (no scripts, no network): the verdict, a table, and one chart
    per feature of the training data's shares per bin beside the window's."""
    e = html.escape
    drifted = doc["verdict"] == "drift"
    rows = "".join(
        f"<tr class={'bad' if f['drifted'] else 'ok'}><td>{e(f['feature'])}</td>"
        f"<td>{f['psi']:.3f}</td><td>{f['ks_statistic']:.3f}</td><td>{f['ks_pvalue']:.2g}</td>"
        f"<td>{f['reference_mean']:.3f} → {f['current_mean']:.3f}</td>"
        f"<td>{'drift' if f['drifted'] else 'stable'}</td></tr>"
        for f in doc["features"]
    )
    charts = "".join(
        f"<figure><figcaption>{e(f['feature'])}: PSI {f['psi']:.3f}"
        f"{' (drift)' if f['drifted'] else ''}</figcaption>{_bars_svg(f)}</figure>"
        for f in doc["features"]
    )
    w, t = doc["window"], doc["thresholds"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Drift check: {e(doc["model"])} v{e(doc["version"])}: {e(doc["verdict"])}</title>
<style>
{STYLE}</style></head><body>
<h1>Drift check: {e(doc["model"])} version {e(doc["version"])}</h1>
<p class="verdict {"drift" if drifted else "none"}">{
        "Drift: " + e(", ".join(doc["drifted_features"])) if drifted else "No drift"
    }</p>
<p>The last {w["rows"]} rows served ({e(str(w["from"]))} to {e(str(w["to"]))}) against the
{doc["reference"]["rows"]} rows the version was trained on{
        " (shift: " + e(doc["reference"]["shift"]) + ")" if doc["reference"]["shift"] else ""
    }. A feature drifts when PSI &ge; {t["psi"]} and the Kolmogorov-Smirnov test's
p &lt; {t["ks_alpha"]}; the window drifts when {t["min_features"]} or more features do.
Checked {e(doc["checked_at"])}.</p>
<table><tr><th>feature</th><th>PSI</th><th>KS statistic</th><th>KS p-value</th>
<th>mean (training → window)</th><th></th></tr>{rows}</table>
<p class="key">Shares of rows per bin (bins cut at the training data's deciles):
<span style="background:#8aa9c9"></span>training <span style="background:#e07a5f"></span>window</p>
{charts}
</body></html>
"""


def write(report_dir: str | Path, doc: dict) -> list[Path]:
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    texts = (json.dumps(doc, indent=2) + "\n", to_markdown(doc), to_html(doc))
    for name, text in zip(REPORTS, texts, strict=True):
        (out / name).write_text(text, encoding="utf-8")
        files.append(out / name)
    return files


def log_run(client, cfg: DriftConfig, doc: dict, files: list[Path]) -> str:
    """The check as a run of the monitoring experiment: verdict, figures and reports."""
    exp = client.get_experiment_by_name(cfg.experiment)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(cfg.experiment)
    run = client.create_run(
        exp_id,
        run_name=f"drift-v{doc['version']}",
        tags={
            "model": doc["model"],
            "version": doc["version"],
            "verdict": doc["verdict"],
            "drifted_features": ",".join(doc["drifted_features"]) or "none",
        },
    )
    rid = run.info.run_id
    for key, value in {
        "alias": cfg.alias,
        "window_rows": doc["window"]["rows"],
        "psi_threshold": cfg.psi,
        "ks_alpha": cfg.ks_alpha,
        "min_features": cfg.min_features,
    }.items():
        client.log_param(rid, key, value)
    client.log_metric(rid, "drift", 1.0 if doc["verdict"] == "drift" else 0.0)
    client.log_metric(rid, "mean_psi", doc["mean_psi"])
    client.log_metric(rid, "drifted_features", len(doc["drifted_features"]))
    for i, f in enumerate(doc["features"]):
        client.log_metric(rid, f"psi_feature_{i}", f["psi"])
    for path in files:
        client.log_artifact(rid, str(path), "drift")
    client.set_terminated(rid)
    return rid


def check(client, model_name: str, cfg: DriftConfig) -> Outcome:
    """Compare, write the reports and log the run; raises drift.DriftError when it cannot."""
    from gatekeeper.lifecycle import alias_version

    for stale in REPORTS:  # a check that cannot tell must not leave an older verdict behind
        (Path(cfg.report_dir) / stale).unlink(missing_ok=True)
    version = alias_version(client, model_name, cfg.alias)
    if version is None:
        raise drift.DriftError(f"{model_name} has no @{cfg.alias}: nothing serves to compare")
    profile, run_id = load_reference(client, model_name, version)
    window = read_window(cfg.capture_dir, cfg.alias, version, cfg.window_rows, run_id)
    if len(window.rows) < cfg.min_rows:
        raise drift.DriftError(
            f"{len(window.rows)} rows captured for @{cfg.alias} version {version} in "
            f"{cfg.capture_dir} and the check needs at least {cfg.min_rows}: send traffic "
            f"(make traffic ALIAS={cfg.alias}) and run it again"
        )
    reference = reference_columns(profile)
    current = {f: window.rows[:, j] for j, f in enumerate(window.features)}
    result = drift.compare(reference, current, _thresholds(cfg))
    at = datetime.now(UTC).isoformat(timespec="seconds")
    doc = document(model_name, version, profile, window, result, at)
    files = write(cfg.report_dir, doc)
    doc["run_id"] = log_run(client, cfg, doc, files)
    return Outcome(version, result, window, doc, files)
