"""Exercise 8's check against a recorded lab in a real git repository: the student's
data.py and tests are real files run by the check, the report is built by the trainer's
own code, and the registry is recorded.

The check runs Python and pytest in subprocesses. The tests share those runs through a
cache keyed by everything a run reads (the data.py, the test file, the report), so each
distinct input runs once; test_the_solution_passes runs the check as it is, uncached.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from labctl.book import runner
from labctl.book.copies import python_argv
from tests.exercises.conftest import ROOT, failed, recorded_lab

FOLDER = ROOT / "exercises" / "08-data-validation"
PATCH = FOLDER / "solution" / "duplicate-rule.patch"
DATA_PY = "training/trainer/data.py"
TEST_PY = "training/tests/test_data.py"
FILES = ["training/trainer/__init__.py", DATA_PY, "training/trainer/report.py"]

# The recorded lab's tests: a few of the shipped ones (the real file takes a minute to
# run on a busy machine), then what a student adds.
START_TESTS = """import numpy as np
import pandas as pd
import pytest

from trainer import data
from trainer.data import DataValidationError


def _iris():
    return data.load("iris")


def _replace(ds, X=None, y=None):
    X = ds.X if X is None else X
    return data.Dataset(ds.name, X, ds.y if y is None else y, ds.target_names)


def test_iris_validates():
    data.validate(_iris())


def test_missing_values_are_rejected():
    ds = data.degrade(_iris(), label_noise=0, null_fraction=0.05, seed=1)
    with pytest.raises(DataValidationError, match="missing values"):
        data.validate(ds)
"""
STUDENT_TESTS = """

def test_a_few_duplicate_rows_pass():
    ds = _iris()
    rows = np.arange(5)
    X = pd.concat([ds.X, ds.X.iloc[rows]], ignore_index=True)
    y = pd.concat([ds.y, ds.y.iloc[rows]], ignore_index=True)
    data.validate(_replace(ds, X=X, y=y))


def test_many_duplicate_rows_are_rejected():
    ds = data.degrade(_iris(), label_noise=0, null_fraction=0, duplicate_fraction=0.3, seed=1)
    with pytest.raises(DataValidationError, match=r"46 duplicate rows \\(23\\.6% of 195\\)"):
        data.validate(ds)
"""

BEHAVIOUR = [
    "validate() still passes the four shipped datasets and their training rows",
    "validate() passes iris and digits with about 4 % duplicate rows",
    "validate() rejects iris and digits with about 10 % duplicate rows, saying duplicates",
    "rows that repeat the features under another label are not exact duplicates",
]
REPORT = "reports/data/validation.json: make train TRAIN_DUPLICATE_FRACTION=0.3"
TESTS = "training/tests/test_data.py passes, and fails against data.py"
VERSION = "a version trained from a commit with the rule passed it"
NO_LEAK = "no version trained with the rule in place has a duplicate_fraction above 0"

# What the job builds (trainer.report over trainer.data), run on the lab's copy.
BUILD = r"""
import json, sys
from trainer import data, report
name, knobs, sha = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
ds = data.degrade(data.without_holdout(data.load(name)), label_noise=knobs["label_noise"],
                  null_fraction=knobs["null_fraction"],
                  duplicate_fraction=knobs["duplicate_fraction"], seed=knobs["seed"])
print(json.dumps(report.build(ds, data.check(ds), knobs=knobs, git_sha=sha, checked_at="t")))
"""


def knobs(duplicate_fraction: float) -> dict:
    return {
        "label_noise": 0.0,
        "null_fraction": 0.0,
        "duplicate_fraction": duplicate_fraction,
        "seed": 42,
    }


def build_report(lab, duplicate_fraction: float, sha: str) -> dict:
    source = (lab.root / DATA_PY).read_text()
    key = ("report", source, duplicate_fraction)
    if key not in _MEMO:
        _MEMO[key] = _build_report(lab, duplicate_fraction)
    return {**_MEMO[key], "git_sha": sha}


def _build_report(lab, duplicate_fraction: float) -> dict:
    sha = "set by build_report"
    argv = ["-c", BUILD, "iris", json.dumps(knobs(duplicate_fraction)), sha]
    r = subprocess.run(
        python_argv(sys.executable, [lab.root / "training"], *argv),  # not the installed one
        cwd=lab.root,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(r.stdout)


def matches(failures: list[str], *prefixes: str) -> bool:
    return all(any(f.startswith(p) for f in failures) for p in prefixes)


def add_version(lab, number: str, sha: str, duplicate_fraction: float, rep: dict | None):
    run = f"run{number}"
    lab.state["versions"][number] = {
        "version": number,
        "run_id": run,
        "tags": {"git_sha": sha, "dataset_fingerprint": rep["fingerprint"] if rep else ""},
    }
    lab.state["runs"][run] = {
        "metrics": {"accuracy": 0.97},
        "params": {"duplicate_fraction": str(duplicate_fraction)},
    }
    if rep is not None:
        lab.state["artifacts"][(run, "data/validation.json")] = rep


_MEMO: dict = {}


def check_module():
    """The check, with its subprocess runs cached by what they read."""
    module = runner.find(ROOT, 8).module("check")
    probe, run_tests = module.probe, module.run_tests

    def cached_probe(lab, source, report=None):
        key = ("probe", source, json.dumps(report, sort_keys=True))
        if key not in _MEMO:
            _MEMO[key] = probe(lab, source, report)
        return _MEMO[key]

    def cached_run_tests(lab, data_source):
        own = [(lab.root / rel).read_text() for rel in (DATA_PY, TEST_PY)]
        key = ("tests", *own, data_source)
        if key not in _MEMO:
            _MEMO[key] = run_tests(lab, data_source)
        return _MEMO[key]

    module.probe, module.run_tests = cached_probe, cached_run_tests
    return module


def failures(lab) -> list[str]:
    return [c.text for c in check_module().criteria(lab) if c.ok is False]


def fresh(git_lab):
    lab = git_lab(FILES, state=recorded_lab())
    (lab.root / TEST_PY).parent.mkdir(parents=True, exist_ok=True)
    (lab.root / TEST_PY).write_text(START_TESTS)
    lab.commit_all("workshop start, with a short test file")
    lab.run_git("tag", "-f", "workshop-start")
    start = lab.git("rev-parse", "--short=12", "HEAD").stdout.strip()
    for v in lab.state["versions"].values():
        v["tags"]["git_sha"] = start
    return lab, start


def solved(git_lab, rule_edit=None, test_edit=None):
    """The solution as a student would leave it: the rule and tests committed, clean data
    trained (a version), then the knob's failed report last."""
    lab, _ = fresh(git_lab)
    subprocess.run(
        ["git", "-C", str(lab.root), "apply", f"--include={DATA_PY}", str(PATCH)], check=True
    )
    (lab.root / TEST_PY).write_text(START_TESTS + STUDENT_TESTS)
    for rel, edit in ((DATA_PY, rule_edit), (TEST_PY, test_edit)):
        if edit is not None:
            path = lab.root / rel
            path.write_text(edit(path.read_text()))
    sha = lab.commit_all("duplicate rule")
    add_version(lab, "3", sha, 0.0, build_report(lab, 0.0, sha))
    lab.state["local_reports"]["data/validation.json"] = build_report(lab, 0.3, sha)
    return lab, sha


def test_the_solution_patch_applies_to_the_product():
    r = subprocess.run(
        ["git", "-C", str(ROOT), "apply", "--check", str(PATCH)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr


def test_a_fresh_lab_fails(git_lab):
    lab, _ = fresh(git_lab)
    found = failed(lab, 8)  # the check as it is, no cache
    assert matches(found, BEHAVIOUR[2], REPORT, TESTS, VERSION)
    assert not matches(found, BEHAVIOUR[0])  # the shipped data passes as it is


def test_the_solution_passes(git_lab):
    lab, _ = solved(git_lab)
    assert failed(lab, 8) == []  # the check as it is, no cache


def test_the_report_must_be_from_a_clean_commit_and_the_job(git_lab):
    lab, sha = solved(git_lab)
    rep = lab.state["local_reports"]["data/validation.json"]
    cases = [
        {**rep, "git_sha": f"{sha}-dirty-0123456789"},
        {**rep, "fingerprint": "0" * 16},  # written by hand, not by make train
        {**rep, "knobs": {**rep["knobs"], "duplicate_fraction": 0.2}},
        {**rep, "verdict": "passed"},
    ]
    for case in cases:
        lab.state["local_reports"]["data/validation.json"] = case
        assert matches(failures(lab), REPORT), case
    del lab.state["local_reports"]["data/validation.json"]
    assert matches(failures(lab), REPORT)


def test_a_report_from_a_commit_without_the_rule_fails(git_lab):
    lab, start = fresh(git_lab)
    rep = build_report(lab, 0.3, start)
    assert rep["verdict"] == "passed"  # the start lets duplicates through
    # A failed report copied from elsewhere, naming the start commit.
    lab.state["local_reports"]["data/validation.json"] = {
        **rep,
        "verdict": "failed",
        "checks": [*rep["checks"], {"name": "duplicates", "passed": False, "detail": "x"}],
    }
    assert matches(failures(lab), REPORT)


@pytest.mark.parametrize(
    ("old", "new", "criterion"),
    [
        ("share > MAX_DUPLICATE_SHARE", "share > 0", BEHAVIOUR[0]),  # no tolerance
        ("ds.X.assign(target=ds.y).duplicated()", "ds.X.duplicated()", BEHAVIOUR[3]),
        (  # every member of a group of copies counted
            "ds.X.assign(target=ds.y).duplicated()",
            "ds.X.assign(target=ds.y).duplicated(keep=False)",
            BEHAVIOUR[1],
        ),
        ("share > MAX_DUPLICATE_SHARE", "copies.sum() > 7", BEHAVIOUR[1]),  # a count
    ],
)
def test_rules_that_miss_the_contract_fail(git_lab, old, new, criterion):
    lab, _ = solved(git_lab, rule_edit=lambda s: s.replace(old, new))
    assert matches(failures(lab), criterion)


def test_tests_that_do_not_need_the_rule_fail(git_lab):
    # The rule committed without its tests.
    lab, _ = solved(git_lab, test_edit=lambda s: START_TESTS)
    assert matches(failures(lab), TESTS)


def test_tests_that_fail_on_the_students_own_rule_fail(git_lab):
    edit = lambda s: s.replace(r"\(23\.6% of 195\)", r"\(23\.5% of 195\)")  # noqa: E731
    lab, _ = solved(git_lab, test_edit=edit)
    assert matches(failures(lab), TESTS)


def test_a_version_trained_on_duplicates_with_the_rule_fails(git_lab):
    lab, sha = solved(git_lab)
    add_version(lab, "4", sha, 0.3, None)  # the rule let it through
    assert matches(failures(lab), NO_LEAK)
    lab.state["versions"]["4"]["tags"]["git_sha"] = f"{sha}-dirty-0123456789"
    assert matches(failures(lab), NO_LEAK)


def test_duplicates_trained_before_the_rule_are_the_leak_it_closes(git_lab):
    lab, _ = solved(git_lab)
    start = lab.state["versions"]["1"]["tags"]["git_sha"]
    add_version(lab, "4", start, 0.3, None)
    assert failures(lab) == []


def test_the_passing_version_must_come_from_the_rule_and_carry_its_report(git_lab):
    lab, sha = solved(git_lab)
    artifact = lab.state["artifacts"][("run3", "data/validation.json")]
    for case in (
        {**artifact, "fingerprint": "0" * 16},
        {**artifact, "checks": [c for c in artifact["checks"] if c["name"] != "duplicates"]},
    ):
        lab.state["artifacts"][("run3", "data/validation.json")] = case
        assert matches(failures(lab), VERSION)
    lab.state["artifacts"][("run3", "data/validation.json")] = artifact
    lab.state["versions"]["3"]["tags"]["git_sha"] = f"{sha}-dirty-0123456789"
    assert matches(failures(lab), VERSION)
