"""Self-check of the data-validation exercise: the duplicate rule run on data chosen now,
the student's tests run against the rules as they were at the start, the report the job
left when the rule stopped it, and the registry (nothing trained on duplicates since)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from labctl.book.copies import python_argv
from labctl.book.runner import criterion

DATA_PY = "training/trainer/data.py"
TEST_PY = "training/tests/test_data.py"

# Run inside the lab's .venv, on a copy of one data.py (imported instead of the lab's own
# trainer): what validate() says about data built here (argv[1] = JSON of the report's
# dataset and knobs, to recompute its fingerprint).
PROBE = r"""
import json, sys
import numpy as np
import pandas as pd
from trainer import data

def outcome(ds):
    try:
        data.validate(ds)
    except data.DataValidationError as exc:
        return {"raised": True, "message": str(exc)}
    except Exception as exc:
        return {"raised": True, "message": f"{type(exc).__name__}: {exc}", "crashed": True}
    return {"raised": False, "message": ""}

def with_copies(ds, share, relabel=False):
    # Copies of distinct rows, so that `share` of the rows repeat an earlier one (the
    # copies plus the duplicates the dataset ships with), shuffled.
    n = len(ds.y)
    shipped = int(ds.X.assign(target=ds.y).duplicated().sum())
    k = max(0, round((share * n - shipped) / (1 - share)))
    rng = np.random.default_rng(8)
    rows = rng.choice(n, size=k, replace=False)
    y_copy = ds.y.iloc[rows].to_numpy()
    if relabel:
        y_copy = (y_copy + 1) % len(ds.target_names)
    X = pd.concat([ds.X, ds.X.iloc[rows]], ignore_index=True)
    y = pd.Series(np.concatenate([ds.y.to_numpy(), y_copy]), name="target")
    order = rng.permutation(len(y))
    X, y = X.iloc[order].reset_index(drop=True), y.iloc[order].reset_index(drop=True)
    return data.Dataset(ds.name, X, y, ds.target_names), k

out = {}
for name in ("iris", "wine", "breast_cancer", "digits"):
    full = data.load(name)
    out[f"shipped:{name}"] = outcome(full)
    out[f"training rows:{name}"] = outcome(data.without_holdout(full))
for name in ("iris", "digits"):
    full = data.load(name)
    for label, share, relabel in (("4%", 0.04, False), ("10%", 0.10, False),
                                  ("10% relabelled", 0.10, True)):
        ds, k = with_copies(full, share, relabel)
        out[f"{name} + {label}"] = {**outcome(ds), "copies": k}
iris = data.load("iris")
X = iris.X.copy(); X.iloc[3, 1] = np.nan
out["missing value"] = outcome(data.Dataset("iris", X, iris.y, iris.target_names))
X = iris.X.copy(); X.iloc[0, 2] = -1.0
out["out of range"] = outcome(data.Dataset("iris", X, iris.y, iris.target_names))
wanted = json.loads(sys.argv[1]) if len(sys.argv) > 1 else None
if wanted:
    try:
        k = wanted["knobs"]
        ds = data.degrade(
            data.without_holdout(data.load(wanted["dataset"])),
            label_noise=float(k["label_noise"]),
            null_fraction=float(k["null_fraction"]),
            duplicate_fraction=float(k["duplicate_fraction"]),
            seed=int(k["seed"]),
        )
        out["fingerprint"] = data.fingerprint(ds)
    except Exception as exc:
        out["fingerprint"] = f"none: {type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def _python(lab) -> str:
    venv = lab.root / ".venv" / "bin" / "python"
    return str(venv if venv.exists() else sys.executable)


def _env(path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": os.environ.get("HOME", str(path)),
    }


def probe(lab, source: str, report: dict | None = None) -> dict:
    """What one version of data.py says about the check's data sets."""
    with tempfile.TemporaryDirectory(prefix="ex08-") as tmp:
        pkg = Path(tmp) / "trainer"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        (pkg / "data.py").write_text(source)
        argv = python_argv(_python(lab), [tmp], "-c", PROBE)
        if report:
            argv.append(json.dumps(report))
        try:
            r = subprocess.run(
                argv, cwd=tmp, env=_env(Path(tmp)), capture_output=True, text=True, timeout=180
            )
        except subprocess.TimeoutExpired:
            raise ValueError("data.py took more than 180 s on the check's data") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise ValueError(f"data.py does not run: {last}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# Appended to the student's own data.py: the same rules with the duplicate rule switched
# off (out of RULES, and its error swallowed wherever validate() raises it).
SWITCH_OFF = """

RULES = tuple(r for r in RULES if "duplicat" not in getattr(r, "__name__", "").lower())
_ex08_validate = validate


def validate(ds):
    try:
        _ex08_validate(ds)
    except DataValidationError as exc:
        if "duplicat" not in str(exc).lower():
            raise
"""


def rejects_duplicates(results: dict) -> bool:
    """The data.py behind `results` has the rule: both 10% cases raise about duplicates,
    both 4% cases pass."""
    return all(
        results[f"{name} + 10%"]["raised"]
        and "duplicat" in results[f"{name} + 10%"]["message"].lower()
        and not results[f"{name} + 4%"]["raised"]
        for name in ("iris", "digits")
    )


def run_tests(lab, data_source: str | None) -> subprocess.CompletedProcess:
    """The student's test_data.py on a copy of training/, with data.py replaced by
    `data_source` when given."""
    with tempfile.TemporaryDirectory(prefix="ex08-") as tmp:
        work = Path(tmp) / "training"
        shutil.copytree(lab.root / "training" / "trainer", work / "trainer")
        (work / "tests").mkdir()
        shutil.copy(lab.root / TEST_PY, work / "tests" / "test_data.py")
        if data_source is not None:
            (work / "trainer" / "data.py").write_text(data_source)
        pytest = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
        argv = python_argv(_python(lab), [work], *pytest)
        try:
            return subprocess.run(
                argv, cwd=work, env=_env(work), capture_output=True, text=True, timeout=300
            )
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, 124, "", "the tests took more than 300 s")


def _summary(r: subprocess.CompletedProcess) -> str:
    lines = (r.stdout or r.stderr).strip().splitlines()
    return lines[-1] if lines else f"exit {r.returncode}"


def criteria(lab):
    cache: dict = {}
    # Every probe also recomputes the report's fingerprint: one run per distinct data.py.
    last = lab.report("data/validation.json")
    wanted = (
        {"dataset": last.get("dataset"), "knobs": last.get("knobs")}
        if isinstance(last, dict)
        else None
    )

    def probed(source: str) -> dict:
        if source not in cache:
            cache[source] = probe(lab, source, wanted)
        return cache[source]

    def tree() -> dict:
        return probed((lab.root / DATA_PY).read_text(encoding="utf-8"))

    def at(sha: str) -> dict:
        return probed(lab.show(sha, DATA_PY))

    def has_rule(sha: str) -> bool:
        """Whether data.py at a commit rejects duplicates (False where it does not run)."""
        try:
            return rejects_duplicates(at(sha))
        except ValueError:
            return False

    def shipped_pass():
        failing = {
            k: v["message"]
            for k, v in tree().items()
            if k.split(":")[0] in ("shipped", "training rows") and v["raised"]
        }
        if failing:
            raise ValueError(f"rejected: {failing}")
        return True

    yield criterion(
        "validate() still passes the four shipped datasets and their training rows",
        shipped_pass,
        "iris ships one duplicate row (0.7 %): a rule with no tolerance rejects it",
    )

    def few_pass():
        r = tree()
        raised = {k: r[k]["message"] for k in ("iris + 4%", "digits + 4%") if r[k]["raised"]}
        if raised:
            raise ValueError(f"rejected: {raised}")
        return {k: f"{r[k]['copies']} copies" for k in ("iris + 4%", "digits + 4%")}

    yield criterion(
        "validate() passes iris and digits with about 4 % duplicate rows",
        few_pass,
        "count the rows that repeat an earlier row (pandas duplicated()), as a share of all "
        "rows, and reject only above 5 %",
    )

    def many_rejected():
        r = tree()
        for k in ("iris + 10%", "digits + 10%"):
            if r[k].get("crashed"):
                raise ValueError(f"{k}: {r[k]['message']} (raise DataValidationError)")
            if not r[k]["raised"] or "duplicat" not in r[k]["message"].lower():
                return False
        return {k: r[k]["message"] for k in ("iris + 10%", "digits + 10%")}

    yield criterion(
        "validate() rejects iris and digits with about 10 % duplicate rows, saying duplicates",
        many_rejected,
        "in training/trainer/data.py, a rule that raises DataValidationError with a message "
        "naming the duplicate rows, listed in RULES",
    )

    def relabelled_pass():
        r = tree()
        raised = {
            k: r[k]["message"]
            for k in ("iris + 10% relabelled", "digits + 10% relabelled")
            if r[k]["raised"]
        }
        if raised:
            raise ValueError(f"rejected: {raised}")
        return True

    yield criterion(
        "rows that repeat the features under another label are not exact duplicates",
        relabelled_pass,
        "an exact duplicate repeats the features and the label: X.assign(target=y)",
    )

    def old_rules_hold():
        r = tree()
        ok = (
            r["missing value"]["raised"]
            and "missing" in r["missing value"]["message"]
            and r["out of range"]["raised"]
            and "outside" in r["out of range"]["message"]
        )
        return ok

    yield criterion(
        "validate() still rejects missing values and values out of range",
        old_rules_hold,
        "keep the rules that were there: add yours beside them",
    )

    def tests_catch_the_missing_rule():
        start = lab.start_commit()
        original = lab.show(start, DATA_PY)
        if not original:
            raise ValueError(f"{DATA_PY} is not in the workshop's start commit {start[:12]}")
        current = run_tests(lab, None)
        if current.returncode != 0:
            raise ValueError(f"your tests fail on your own data.py: {_summary(current)}")
        mutant = run_tests(lab, original)
        if mutant.returncode == 2:
            raise ValueError(
                "against the start's data.py your test file does not even load "
                f"({_summary(mutant)}): import new names inside the tests that use them"
            )
        if mutant.returncode != 1:
            return False
        own = (lab.root / DATA_PY).read_text(encoding="utf-8")
        if "RULES" not in own:
            raise ValueError("data.py has no RULES: keep the rules in it")
        switched_off = run_tests(lab, own + SWITCH_OFF)
        if switched_off.returncode != 1:
            raise ValueError(
                "with your duplicate rule switched off, your tests still "
                f"{'pass' if switched_off.returncode == 0 else 'do not run'} "
                f"({_summary(switched_off)}): add a test that needs the rule"
            )
        return {
            "on your data.py": _summary(current),
            "on the start's": _summary(mutant),
            "with your rule switched off": _summary(switched_off),
        }

    yield criterion(
        f"{TEST_PY} passes, and fails against data.py as it was at the start and with "
        "your duplicate rule switched off",
        tests_catch_the_missing_rule,
        "add a failure test (many duplicates raise) and a success test (a few pass) that "
        "call data.validate",
    )

    def report_names_the_rule():
        rep = lab.report("data/validation.json")
        if rep is None:
            raise ValueError("no reports/data/validation.json: make train writes it")
        failed = [
            c
            for c in rep["checks"]
            if c["passed"] is False and "duplicat" in f"{c['name']} {c['detail']}".lower()
        ]
        sha = rep["git_sha"]
        if rep["verdict"] != "failed" or not failed:
            return False
        if float(rep["knobs"]["duplicate_fraction"]) < 0.3:
            raise ValueError(f"duplicate_fraction {rep['knobs']['duplicate_fraction']} < 0.3")
        if not lab.clean_commit(sha):
            raise ValueError(f"git_sha {sha!r} is not a commit (commit your rule, then train)")
        then = at(sha)
        if not rejects_duplicates(then):
            raise ValueError(f"data.py at {sha} does not reject duplicate rows")
        if then["fingerprint"] != rep["fingerprint"]:
            raise ValueError(
                f"the report's fingerprint {rep['fingerprint']} is not the data its knobs "
                f"make ({then['fingerprint']}): was this report written by make train?"
            )
        return {"rule": failed[0]["name"], "git_sha": sha, "checked_at": rep["checked_at"]}

    yield criterion(
        "reports/data/validation.json: make train TRAIN_DUPLICATE_FRACTION=0.3 stopped on "
        "the duplicate rule, from a commit that has it",
        report_names_the_rule,
        "commit the rule, then make train TRAIN_DUPLICATE_FRACTION=0.3 last (a later make "
        "train writes a new report)",
    )

    versions: list = []

    def registry():
        if not versions:
            for mv in lab.versions():
                params = lab.run(mv["run_id"])["params"]
                versions.append((mv, params))
        return versions

    def clean_data_still_trains():
        for mv, params in registry():
            sha = mv["tags"].get("git_sha", "")
            if float(params.get("duplicate_fraction", 0) or 0) != 0 or not lab.clean_commit(sha):
                continue
            if not has_rule(sha):
                continue
            rep = json.loads(lab.artifact(mv["run_id"], "data/validation.json"))
            rule = [c for c in rep["checks"] if "duplicat" in c["name"].lower()]
            if (
                rep["verdict"] == "passed"
                and rule
                and rule[0]["passed"] is True
                and rep["fingerprint"] == mv["tags"].get("dataset_fingerprint")
            ):
                return {"version": mv["version"], "git_sha": sha, "rule": rule[0]["detail"]}
        return False

    yield criterion(
        "a version trained from a commit with the rule passed it (the run's data/validation.json)",
        clean_data_still_trains,
        "after committing the rule, make train (without the knob) must still pass; the rule "
        "must be in RULES so the report lists it",
    )

    def nothing_with_duplicates():
        leaked = []
        for mv, params in registry():
            if float(params.get("duplicate_fraction", 0) or 0) <= 0:
                continue
            sha = mv["tags"].get("git_sha", "")
            # Before the rule existed the knob went through: that is the leak it closes.
            if lab.clean_commit(sha) and not has_rule(sha):
                continue
            leaked.append(mv["version"])
        if leaked:
            raise ValueError(f"versions {leaked} were trained on duplicated rows with the rule")
        return {"versions": len(registry())}

    yield criterion(
        "no version trained with the rule in place has a duplicate_fraction above 0",
        nothing_with_duplicates,
        "a version with duplicate_fraction > 0 from a commit with the rule (or from "
        "uncommitted code) means the rule let duplicates through",
    )
