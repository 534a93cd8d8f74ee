"""Self-check of fixing the gate: the gatekeeper's decision run on cases chosen now, the
student's tests run against the colleague's bug planted again, the new threshold's
plumbing, and the gates the pipeline recorded with it."""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from labctl.book.copies import python_argv
from labctl.book.runner import criterion, skipped

READS_IMAGES = True  # docker mode: the gatekeeper image built from the fixed commit
# That criterion reads the registry as exercise 2's does (an image tagged by a commit):
# the docker round trip of exercise 2 takes it; this one's solution takes minutes.
DOCKER_ROUND_TRIP = False

# Run by the lab's .venv python with a copy of a gatekeeper folder imported first (not
# the lab's own): the decision and the configuration on the cases in argv[1], one JSON
# answer on stdout.
DRIVER = r"""
import dataclasses, json, re, sys
from pathlib import Path

case = json.loads(sys.argv[1])
out = {}


def attempt(name, fn):
    try:
        out[name] = fn()
    except Exception as exc:
        out[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}


from gatekeeper.decide import Evidence, Thresholds, decide

FIELDS = {f.name for f in dataclasses.fields(Thresholds)}
LENIENT = {
    "min_accuracy": 0.0, "min_precision_macro": 0.0, "min_recall_per_class": 0.0,
    "min_f1_macro": 0.0, "max_p99_latency_ms": 1e9, "max_model_size_mb": 1e9,
    "max_regression": 1.0,
}


def judge(metrics, strict):
    given = {k: v for k, v in LENIENT.items() if k in FIELDS}
    given.update(strict)  # a field the code lacks raises TypeError: that is the answer
    d = decide(Evidence(metrics=metrics, p99_latency_ms=1.0, model_size_mb=0.1),
               Thresholds(**given))
    rows = {c.name: {"value": c.value, "threshold": c.threshold, "passed": bool(c.passed)}
            for c in d.checks}
    return {"passed": bool(d.passed), "failed": [c.name for c in d.failed], "rows": rows}


for name, spec in case.get("decide", {}).items():
    attempt(name, lambda spec=spec: judge(spec["metrics"], spec["thresholds"]))


def config():
    from gatekeeper.config import ConfigError, GateConfig

    value = GateConfig.from_env({"GATE_MIN_F1_MACRO": case["f1_env"]}).thresholds.min_f1_macro
    try:
        GateConfig.from_env({"GATE_MIN_F1_MACRO": "1.5"})
        refused = ""
    except ConfigError as exc:
        refused = str(exc) or "ConfigError"
    return {"value": value, "refused": refused, "default": Thresholds().min_f1_macro}


def plumbing():
    import yaml

    root = Path(case["root"])
    compose = yaml.safe_load((root / "compose" / "compose.yaml").read_text(encoding="utf-8"))
    env = compose["services"]["gatekeeper"].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env if "=" in item)
    example = (root / ".env.example").read_text(encoding="utf-8")
    found = re.findall(r"^GATE_MIN_F1_MACRO=(.*)$", example, re.MULTILINE)
    return {"compose": env.get("GATE_MIN_F1_MACRO"), "example": found[-1] if found else None}


if "f1_env" in case:
    attempt("config", config)
if "root" in case:
    attempt("plumbing", plumbing)
print(json.dumps(out))
"""

# Appended to a copy of decide.py: the colleague's bug, whatever the code around it looks
# like now. The weakest-class check is judged on the macro recall again.
MUTANT = r"""

# ---- planted by the exercise check: min_recall_per_class on the macro recall ----
def _planted(decide):
    import dataclasses as _dc

    def mutated(evidence, thresholds):
        d = decide(evidence, thresholds)
        macro = evidence.metrics.get("recall_macro")
        minimum = thresholds.min_recall_per_class
        checks = tuple(
            _dc.replace(
                c,
                value=None if macro is None else round(macro, 6),
                passed=macro is not None and macro >= minimum,
            )
            if c.name == "min_recall_per_class"
            else c
            for c in d.checks
        )
        return _dc.replace(d, passed=all(c.passed for c in checks), checks=checks)

    return mutated


decide = _planted(decide)
"""

TIMEOUT_S = 300


def _python(lab) -> Path:
    python = lab.root / ".venv" / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(f"{python} is missing: run make venv")
    return python


def _env(package_root: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(package_root)),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _copy_gatekeeper(source: Path, dest: Path) -> Path:
    """A copy of a gatekeeper folder (the package and its tests) to run without touching
    the student's tree."""
    shutil.copytree(
        source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache")
    )
    return dest


def _drive(lab, package_root: Path, case: dict) -> dict:
    try:
        r = subprocess.run(
            python_argv(_python(lab), [package_root], "-c", DRIVER, json.dumps(case)),
            cwd=package_root,
            env=_env(package_root),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ValueError("importing gatekeeper.decide took more than 120 s") from None
    lines = [x for x in r.stdout.splitlines() if x.startswith("{")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise ValueError(f"gatekeeper.decide does not import: {tail[:300]}")
    return json.loads(lines[-1])


def _cases(rng: random.Random) -> dict:
    """Decisions to ask for, with figures chosen now."""
    n = rng.choice((3, 4))
    # Two models, each with one weak class, not the same one: a fix that looks at one
    # class only (or at a fixed position) misses one of them.
    weak_at = rng.sample(range(n), 2)
    weak = round(rng.uniform(0.30, 0.55), 3)
    recalls = [[1.0] * n, [1.0] * n]
    for model, at in zip(recalls, weak_at, strict=True):
        model[at] = weak
    macro = round((n - 1 + weak) / n, 6)  # >= 0.766: well above the threshold
    threshold = round(rng.uniform(weak + 0.1, macro - 0.05), 3)
    spread = [round(rng.uniform(0.82, 0.98), 3) for _ in range(n)]
    good_threshold = round(min(spread) - 0.02, 3)
    f1 = round(rng.uniform(0.85, 0.95), 3)

    def metrics(per_class, f1_macro=0.95):
        m = {"accuracy": 0.95, "precision_macro": 0.95, "f1_macro": f1_macro}
        m["recall_macro"] = round(sum(per_class) / len(per_class), 6)
        m.update({f"recall_class_{i}": v for i, v in enumerate(per_class)})
        return m

    return {
        "weak": {
            "metrics": metrics(recalls[0]),
            "thresholds": {"min_recall_per_class": threshold},
        },
        "weak_elsewhere": {
            "metrics": metrics(recalls[1]),
            "thresholds": {"min_recall_per_class": threshold},
        },
        "spread": {
            "metrics": metrics(spread),
            "thresholds": {"min_recall_per_class": good_threshold},
        },
        "f1_low": {
            "metrics": metrics(spread, f1),
            "thresholds": {"min_f1_macro": round(f1 + 0.03, 3)},
        },
        "f1_high": {
            "metrics": metrics(spread, f1),
            "thresholds": {"min_f1_macro": round(f1 - 0.03, 3)},
        },
    }


def _weak_fails(answer: dict, cases: dict) -> dict | bool:
    for name in ("weak", "weak_elsewhere", "spread"):
        if "error" in answer[name]:
            raise ValueError(f"decide() on the {name} case: {answer[name]['error']}")
    m = cases["weak"]["metrics"]
    if (
        "min_recall_per_class" in answer["weak"]["failed"]
        and "min_recall_per_class" in answer["weak_elsewhere"]["failed"]
        and answer["spread"]["passed"]
    ):
        return {
            "weakest_class": min(v for k, v in m.items() if k.startswith("recall_class_")),
            "recall_macro": m["recall_macro"],
            "threshold": cases["weak"]["thresholds"]["min_recall_per_class"],
        }
    return False


def _f1_checked(answer: dict, cases: dict) -> dict | bool:
    low, high = answer["f1_low"], answer["f1_high"]
    for got in (low, high):
        if "error" in got:
            raise ValueError(f"decide() with Thresholds(min_f1_macro=...): {got['error']}")
    row = low["rows"].get("f1_macro")
    if row is None:
        raise ValueError("decide() returns no check named f1_macro")
    minimum = cases["f1_low"]["thresholds"]["min_f1_macro"]
    ok = (
        low["failed"] == ["f1_macro"]
        and high["passed"]
        and _number_in(row["threshold"], minimum)
        and row["value"] is not None
        and abs(float(row["value"]) - cases["f1_low"]["metrics"]["f1_macro"]) < 1e-6
    )
    return {"f1_macro": row["value"], "threshold": row["threshold"]} if ok else False


def _number_in(text, number: float) -> bool:
    """A threshold cell (">= 0.8") names `number`."""
    found = re.findall(r"-?\d+(?:\.\d+)?(?:[eE]-?\d+)?", str(text))
    return any(abs(float(x) - float(number)) < 1e-9 for x in found)


def _pytest(lab, tree: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = ["-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, "gatekeeper/tests"]
    try:
        return subprocess.run(
            python_argv(_python(lab), [tree / "gatekeeper"], *argv),
            cwd=tree,
            env=_env(tree / "gatekeeper"),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ValueError(f"the gatekeeper tests ran longer than {TIMEOUT_S} s") from None


def _summary(r: subprocess.CompletedProcess) -> str:
    lines = [x for x in r.stdout.strip().splitlines() if x.strip()]
    return lines[-1].strip("= ") if lines else f"exit {r.returncode}"


def _report(lab, mv: dict) -> dict | None:
    """The gate report in a version's run, when it is the judgement its tags record."""
    try:
        report = json.loads(lab.artifact(mv["run_id"], "gate/gate_report.json"))
    except Exception:  # no report, or not JSON: not this version
        return None
    if not isinstance(report, dict) or report.get("checked_at") != mv["tags"].get(
        "gate.checked_at"
    ):
        return None
    return report


def _row(report: dict, name: str) -> dict | None:
    return next((c for c in report.get("checks", []) if c.get("name") == name), None)


def _tag_thresholds(mv: dict) -> dict:
    try:
        value = json.loads(mv["tags"].get("gate.thresholds", "{}"))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _archive(lab, sha: str, dest: Path) -> Path:
    """The gatekeeper package as it is in commit `sha` (git archive: reads only)."""
    r = subprocess.run(
        ["git", "-C", str(lab.root), "archive", "--format=tar", sha, "gatekeeper/gatekeeper"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if r.returncode != 0:
        raise ValueError(f"commit {sha} has no gatekeeper/gatekeeper folder")
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        try:
            tar.extractall(dest, filter="data")
        except TypeError:  # Python before 3.11.4: no filters (the archive is git's own)
            tar.extractall(dest)  # noqa: S202
    return dest / "gatekeeper"


def criteria(lab):
    rng = random.SystemRandom()
    cases = _cases(rng)
    f1_env = round(rng.uniform(0.81, 0.97), 2)
    facts: dict = {}
    tmp = Path(tempfile.mkdtemp(prefix="ex05-check-"))
    try:
        yield from _criteria(lab, cases, f1_env, facts, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _criteria(lab, cases, f1_env, facts, tmp):
    def tree_answer():
        """The working tree's answers, asked once (a failure is the answer too)."""
        if "tree" not in facts:
            try:
                copy = _copy_gatekeeper(lab.root / "gatekeeper", tmp / "tree" / "gatekeeper")
                case = {"decide": cases, "f1_env": str(f1_env), "root": str(lab.root)}
                facts["tree"] = _drive(lab, copy, case)
            except (OSError, ValueError) as exc:
                facts["tree"] = exc
        if isinstance(facts["tree"], Exception):
            raise facts["tree"]
        return facts["tree"]

    yield criterion(
        "decide() stops a model whose weakest class is below GATE_MIN_RECALL_PER_CLASS, "
        "however high its macro recall (figures chosen now)",
        lambda: _weak_fails(tree_answer(), cases),
        "the weakest class decides: min over recall_class_*, not recall_macro "
        "(gatekeeper/gatekeeper/decide.py)",
    )
    yield criterion(
        "decide() has a check named f1_macro: below Thresholds.min_f1_macro fails, "
        "at or above passes",
        lambda: _f1_checked(tree_answer(), cases),
        "add min_f1_macro to Thresholds and _at_least('f1_macro', ...) to decide()",
    )

    def config_reads_it():
        got = tree_answer()["config"]
        if "error" in got:
            raise ValueError(f"GateConfig.from_env: {got['error']}")
        if abs(float(got["value"]) - f1_env) > 1e-9:
            return False
        if not got["refused"]:
            raise ValueError("GATE_MIN_F1_MACRO=1.5 is accepted: a minimum above 1 is refused")
        return {"GATE_MIN_F1_MACRO": str(f1_env), "min_f1_macro": got["value"]}

    yield criterion(
        "GateConfig.from_env reads GATE_MIN_F1_MACRO (a value chosen now) and refuses one above 1",
        config_reads_it,
        "gatekeeper/gatekeeper/config.py: min_f1_macro=_float(env, 'GATE_MIN_F1_MACRO', ...)",
    )

    def plumbed():
        got = tree_answer()["plumbing"]
        if "error" in got:
            raise ValueError(f"compose/compose.yaml or .env.example: {got['error']}")
        default = tree_answer()["config"].get("default")
        compose = re.fullmatch(r"\$\{GATE_MIN_F1_MACRO:-([^}]*)\}", str(got["compose"] or ""))
        example = (got["example"] or "").strip()
        try:
            ok = (
                compose is not None
                and float(compose.group(1)) == float(default)
                and float(example) == float(default)
            )
        except (TypeError, ValueError):
            ok = False
        return {"compose": got["compose"], ".env.example": example} if ok else False

    yield criterion(
        "the gatekeeper's environment in compose/compose.yaml and .env.example carry "
        "GATE_MIN_F1_MACRO with the code's default",
        plumbed,
        "GATE_MIN_F1_MACRO: ${GATE_MIN_F1_MACRO:-0.80} under the gatekeeper's environment, "
        "GATE_MIN_F1_MACRO=0.80 in .env.example: a variable Compose is not told about never "
        "reaches the container",
    )

    def tests_catch_the_bug():
        tree = tmp / "tests-tree"
        _copy_gatekeeper(lab.root / "gatekeeper", tree / "gatekeeper")
        if (lab.root / "pyproject.toml").is_file():
            shutil.copy(lab.root / "pyproject.toml", tree / "pyproject.toml")
        mutant = tmp / "tests-mutant"
        shutil.copytree(tree, mutant)
        decide_py = mutant / "gatekeeper" / "gatekeeper" / "decide.py"
        decide_py.write_text(decide_py.read_text(encoding="utf-8") + MUTANT, encoding="utf-8")
        planted = _drive(lab, mutant / "gatekeeper", {"decide": {"weak": cases["weak"]}})
        if planted["weak"].get("passed") is not True:
            raise ValueError(f"the bug could not be planted in your decide.py: {planted['weak']}")
        on_tree = _pytest(lab, tree)
        if on_tree.returncode != 0:
            raise ValueError(f"your gatekeeper tests do not pass on your tree: {_summary(on_tree)}")
        on_mutant = _pytest(lab, mutant, "-x")
        if on_mutant.returncode != 1:
            why = "all pass" if on_mutant.returncode == 0 else _summary(on_mutant)
            raise ValueError(f"with the macro recall planted again: {why}")
        return {"on your tree": _summary(on_tree), "with the bug": _summary(on_mutant)}

    yield criterion(
        "gatekeeper/tests pass on your tree, and at least one fails when the colleague's bug "
        "is planted again in a copy",
        tests_catch_the_bug,
        "write the test first: one weak class with a high macro recall must fail "
        "min_recall_per_class",
    )

    def versions():
        if "versions" not in facts:
            facts["versions"] = lab.versions()
        return facts["versions"]

    def weak_class_stopped():
        for mv in versions():
            tags = mv["tags"]
            if tags.get("gate.verdict") != "failed":
                continue
            if "min_recall_per_class" not in tags.get("gate.failed_checks", "").split(","):
                continue
            report = _report(lab, mv)
            if not report:
                continue
            measured = report.get("measured", {})
            per_class = [v for k, v in measured.items() if k.startswith("recall_class_")]
            minimum = report.get("thresholds", {}).get("min_recall_per_class")
            row = _row(report, "min_recall_per_class") or {}
            macro = measured.get("recall_macro")
            if not per_class or minimum is None or macro is None:
                continue
            if (
                min(per_class) < minimum <= macro
                and row.get("passed") is False
                and row.get("value") is not None
                and abs(float(row["value"]) - min(per_class)) < 1e-6
            ):
                return {
                    "version": mv["version"],
                    "weakest_class": min(per_class),
                    "recall_macro": macro,
                    "threshold": minimum,
                }
        return False

    yield criterion(
        "the fixed gate stopped a version whose weakest class is below the threshold while its "
        "macro recall is above it",
        weak_class_stopped,
        "after the fix, gate the LABEL_NOISE=0.2 candidate again: "
        "make gate GATE_MIN_RECALL_PER_CLASS=0.8 GATE_MAX_REGRESSION=0.15",
    )

    def f1_gated(mv: dict, verdict: str) -> dict | None:
        """The f1_macro row of a version's report, consistent with its tags."""
        tags = mv["tags"]
        if tags.get("gate.verdict") != verdict or "min_f1_macro" not in _tag_thresholds(mv):
            return None
        report = _report(lab, mv)
        if not report:
            return None
        minimum = report.get("thresholds", {}).get("min_f1_macro")
        row = _row(report, "f1_macro")
        if minimum is None or row is None or row.get("value") is None:
            return None
        if _tag_thresholds(mv)["min_f1_macro"] != minimum or not _number_in(
            row.get("threshold"), minimum
        ):
            return None
        return {"version": mv["version"], "f1_macro": row["value"], "min_f1_macro": minimum, **row}

    def passed_with_f1():
        candidate = lab.aliases().get("candidate")
        ordered = sorted(versions(), key=lambda mv: mv["version"] != candidate)
        for mv in ordered:
            found = f1_gated(mv, "passed")
            if found and found["passed"] and float(found["f1_macro"]) >= found["min_f1_macro"]:
                facts["passed"] = mv
                return {k: found[k] for k in ("version", "f1_macro", "min_f1_macro")}
        return False

    yield criterion(
        "a version (@candidate first) passed a gate whose report has an f1_macro row, with the "
        "threshold it used recorded in the report and on the version",
        passed_with_f1,
        "commit, then make train && make gate",
    )

    def fixed_commit():
        mv = facts.get("passed")
        if mv is None:
            raise ValueError("no version passed a gate with an f1_macro check yet")
        sha = mv["tags"].get("git_sha", "")
        if not lab.clean_commit(sha):
            raise ValueError(f"version {mv['version']} has git_sha {sha!r}: not a clean commit")
        changed = lab.changed_since_start(sha, "gatekeeper/gatekeeper")
        if not changed:
            raise ValueError(f"commit {sha} has the start's gatekeeper: commit your fix, retrain")
        package = _archive(lab, sha, tmp / "at-commit")
        answer = _drive(lab, package, {"decide": cases})
        if _weak_fails(answer, cases) and _f1_checked(answer, cases):
            facts["sha"] = sha
            return {"version": mv["version"], "git_sha": sha, "changed": changed}
        return False

    yield criterion(
        "that version was trained from a clean commit whose gatekeeper has the fix and the "
        "f1_macro check (its decide() run on the same cases)",
        fixed_commit,
        "commit the fix and the new check before make train: the model names its commit",
    )

    def strict_f1_stopped():
        default = tree_answer()["config"].get("default", 0.8)
        for mv in versions():
            if "f1_macro" not in mv["tags"].get("gate.failed_checks", "").split(","):
                continue
            found = f1_gated(mv, "failed")
            if (
                found
                and found["passed"] is False
                and float(found["f1_macro"]) < found["min_f1_macro"]
                and found["min_f1_macro"] != default
            ):
                return {k: found[k] for k in ("version", "f1_macro", "min_f1_macro")}
        return False

    yield criterion(
        "a GATE_MIN_F1_MACRO set on the command line reached the gate and stopped a version "
        "on f1_macro",
        strict_f1_stopped,
        "make train TRAIN_SEED=1 && make gate GATE_MIN_F1_MACRO=0.99 GATE_MAX_REGRESSION=0.03",
    )

    text = "the registry holds the gatekeeper image built from that commit"
    if not lab.docker:
        yield skipped(text, "local mode runs the gatekeeper from the tree, not from an image")
    else:

        def image_built():
            sha = facts.get("sha")
            if not sha:
                raise ValueError("no clean commit with the fix gated a version yet")
            digest = lab.digest("gatekeeper", sha)
            return {"image": f"mlops-lab/gatekeeper:{sha}", "digest": digest} if digest else False

        yield criterion(text, image_built, "make gate at that commit builds and pushes its images")
