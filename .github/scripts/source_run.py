"""Check where a lab state comes from before the rollback workflow restores it.

Reads a workflow run as GitHub's REST API returns it (`gh api repos/OWNER/REPO/actions/
runs/ID`) on stdin and exits 0 only for a run of the lab pipeline, on the default branch
of this repository, started by a push or by hand, that concluded successfully. Anything
else (a pull request, a fork, another workflow, a failed or unfinished run) exits 1 and
says why: its state would hand that run's `.env` and images to the default branch.

    gh api repos/$REPO/actions/runs/$RUN_ID | python3 .github/scripts/source_run.py \\
        --run-id "$RUN_ID" --repository "$REPO" --default-branch main \\
        --workflow .github/workflows/lab-pipeline.yml

(`make source-run` in the rollback workflow.) With `--latest` it reads a list of the
workflow's runs instead (`gh api repos/$REPO/actions/workflows/lab-pipeline.yml/runs?...`),
picks the newest run that passes every check, prints it, and writes `run_id=N` to
$GITHUB_OUTPUT when set (`make latest-source-run` in the drift workflow).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

TRUSTED_EVENTS = ("push", "workflow_dispatch")


def problems(run: dict, repository: str, default_branch: str, workflow: str) -> list[str]:
    found = []
    head_repo = (run.get("head_repository") or {}).get("full_name") or "an unknown repository"
    if run.get("repository", {}).get("full_name") != repository or head_repo != repository:
        found.append(f"its code comes from {head_repo}, not {repository}")
    if run.get("event") not in TRUSTED_EVENTS:
        found.append(f"it was started by {run.get('event')!r}, not a push or by hand")
    if run.get("head_branch") != default_branch:
        found.append(f"it ran on branch {run.get('head_branch')!r}, not {default_branch!r}")
    if run.get("path") != workflow:
        found.append(f"it is a run of {run.get('path')!r}, not {workflow}")
    if run.get("status") != "completed" or run.get("conclusion") != "success":
        found.append(
            f"it has not concluded successfully ({run.get('status')}, {run.get('conclusion')})"
        )
    return found


def latest(args: argparse.Namespace) -> int:
    """The newest trusted run among a list of runs; 1 when there is none."""
    try:
        runs = json.load(sys.stdin).get("workflow_runs", [])
    except (ValueError, AttributeError) as exc:
        print(f"source_run: not a list of workflow runs ({exc})", file=sys.stderr)
        return 1
    runs = sorted(
        (r for r in runs if isinstance(r, dict)), key=lambda r: r.get("run_number", 0), reverse=True
    )
    for run in runs:
        if not problems(run, args.repository, args.default_branch, args.workflow):
            run_id = str(run.get("id"))
            print(f"source_run: run {run_id} of {args.workflow} on {args.default_branch}: trusted")
            output = os.environ.get("GITHUB_OUTPUT")
            if output:
                with open(output, "a", encoding="utf-8") as out:
                    out.write(f"run_id={run_id}\n")
            return 0
    print(
        f"source_run: no successful run of {args.workflow} on {args.default_branch} started "
        "by a push or by hand: run the lab pipeline first",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-id", default="")
    p.add_argument("--latest", action="store_true", help="read a list of runs, pick the newest")
    p.add_argument("--repository", required=True)
    p.add_argument("--default-branch", required=True)
    p.add_argument("--workflow", required=True)
    args = p.parse_args(argv)
    if args.latest:
        return latest(args)
    if not args.run_id.isdigit():
        print(f"source_run: RUN_ID must be a run number (got {args.run_id!r})", file=sys.stderr)
        return 1
    try:
        run = json.load(sys.stdin)
    except ValueError as exc:
        print(f"source_run: not a workflow run ({exc})", file=sys.stderr)
        return 1
    if not isinstance(run, dict) or str(run.get("id")) != args.run_id:
        print(f"source_run: GitHub did not answer with run {args.run_id}", file=sys.stderr)
        return 1
    found = problems(run, args.repository, args.default_branch, args.workflow)
    run_id = args.run_id
    for problem in found:
        print(f"source_run: run {run_id} refused: {problem}", file=sys.stderr)
    if not found:
        print(f"source_run: run {run_id} of {args.workflow} on {args.default_branch}: trusted")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
