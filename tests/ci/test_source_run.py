"""The rollback workflow's provenance check, against run metadata as GitHub's API returns it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".github" / "scripts" / "source_run.py"
REPO = "school/mlops-lab"
WORKFLOW = ".github/workflows/lab-pipeline.yml"

# The fields the check reads, as recorded from GET /repos/{owner}/{repo}/actions/runs/{id}.
TRUSTED = {
    "id": 1234567890,
    "name": "lab pipeline",
    "path": WORKFLOW,
    "event": "push",
    "head_branch": "main",
    "status": "completed",
    "conclusion": "success",
    "repository": {"full_name": REPO},
    "head_repository": {"full_name": REPO},
}


ARGS = ["--repository", REPO, "--default-branch", "main", "--workflow", WORKFLOW]


def check(run: dict | str, run_id: str = "1234567890") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--run-id", run_id, *ARGS],
        input=run if isinstance(run, str) else json.dumps(run),
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("event", ["push", "workflow_dispatch"])
def test_a_successful_pipeline_run_on_the_default_branch_is_trusted(event):
    r = check({**TRUSTED, "event": event})
    assert r.returncode == 0, r.stderr
    assert "trusted" in r.stdout


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"event": "pull_request"}, "started by 'pull_request'"),
        ({"event": "pull_request_target"}, "started by 'pull_request_target'"),
        ({"head_repository": {"full_name": "stranger/mlops-lab"}}, "comes from stranger/"),
        ({"head_branch": "feature"}, "ran on branch 'feature'"),
        ({"path": ".github/workflows/ci.yml"}, "is a run of '.github/workflows/ci.yml'"),
        ({"conclusion": "failure"}, "has not concluded successfully"),
        ({"status": "in_progress", "conclusion": None}, "has not concluded successfully"),
        ({"repository": {"full_name": "other/repo"}}, "not school/mlops-lab"),
    ],
)
def test_any_other_run_is_refused_with_its_reason(change, reason):
    r = check({**TRUSTED, **change})
    assert r.returncode == 1
    assert reason in r.stderr and "run 1234567890 refused" in r.stderr


@pytest.mark.parametrize(
    ("answer", "run_id", "reason"),
    [
        ("<html>rate limited</html>", "1234567890", "not a workflow run"),
        ("", "1234567890", "not a workflow run"),  # gh failed: nothing on the pipe
        (json.dumps({**TRUSTED, "id": 42}), "1234567890", "did not answer with run 1234567890"),
        (json.dumps(TRUSTED), "1234567890; rm -rf /", "must be a run number"),
    ],
)
def test_an_answer_that_is_not_the_run_asked_for_is_refused(answer, run_id, reason):
    r = check(answer, run_id)
    assert r.returncode == 1 and reason in r.stderr


def test_the_rollback_workflow_checks_the_run_before_downloading_its_state():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "lab-rollback.yml").read_text())
    steps = workflow["jobs"]["rollback"]["steps"]
    names = [s.get("name", "") + s.get("uses", "") + s.get("run", "") for s in steps]
    check_at = next(i for i, n in enumerate(names) if "make source-run" in n)
    download_at = next(i for i, n in enumerate(names) if "download-artifact" in n)
    assert check_at < download_at
    # No step gets the Actions runtime token (the build cache's write access).
    assert not any("ghaction-github-runtime" in n for n in names)
    assert "LAB_BUILD_CACHE" not in workflow.get("env", {})


def latest(runs: list[dict], tmp_path) -> tuple[subprocess.CompletedProcess, str]:
    output = tmp_path / "github_output"
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--latest", *ARGS],
        input=json.dumps({"total_count": len(runs), "workflow_runs": runs}),
        capture_output=True,
        text=True,
        check=False,
        env={"GITHUB_OUTPUT": str(output), "PATH": "/usr/bin:/bin"},
    )
    return r, output.read_text() if output.exists() else ""


def test_latest_picks_the_newest_trusted_run_and_writes_its_id(tmp_path):
    runs = [
        {**TRUSTED, "id": 3, "run_number": 30, "event": "pull_request"},  # newest, untrusted
        {**TRUSTED, "id": 2, "run_number": 20},
        {**TRUSTED, "id": 1, "run_number": 10},
    ]
    r, output = latest(runs, tmp_path)
    assert r.returncode == 0, r.stderr
    assert output == "run_id=2\n"


def test_latest_without_a_trusted_run_fails_saying_what_to_do(tmp_path):
    r, output = latest([{**TRUSTED, "id": 3, "run_number": 3, "head_branch": "x"}], tmp_path)
    assert r.returncode == 1 and output == ""
    assert "run the lab pipeline first" in r.stderr
