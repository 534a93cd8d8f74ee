"""The GitHub Actions workflows: what they call exists, and they keep the lab's rules.

Plain unit tests (no network, no Docker): they read .github/ and the Makefile as text.
The schema itself is checked by `make lint` (check-jsonschema, offline).
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from labctl.summary import REPORTS

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PIPELINE = WORKFLOWS / "lab-pipeline.yml"

# What the pipeline must do before what, wherever its jobs put the calls: a gate runs
# before the promotion it protects, and what a promotion put in place is checked after it.
# (make target, its VAR=value arguments), earlier call first.
STAGING = ("promote", {"TO": "staging"})
PRODUCTION = ("promote", {"TO": "production"})
MUST_PRECEDE = [
    (("train", {}), ("gate", {})),
    (("gate", {}), STAGING),
    (STAGING, ("e2e", {})),
    (STAGING, ("load", {})),
    (("e2e", {}), PRODUCTION),
    (("load", {}), PRODUCTION),
    (PRODUCTION, ("smoke", {"ALIAS": "production"})),
]

# Workflow knobs and the lab variables they set.
KNOBS = {
    "train_dataset": "TRAIN_DATASET",
    "label_noise": "LABEL_NOISE",
    "gate_min_accuracy": "GATE_MIN_ACCURACY",
    "load_max_p95_ms": "LOAD_MAX_P95_MS",
    "load_max_p99_ms": "LOAD_MAX_P99_MS",
}

# Folders that hold no source of the lab's own: tools' caches, the venv, the lab's data.
NOT_SOURCE = {".git", ".venv", ".lab", ".pytest_cache", ".ruff_cache", "reports", "node_modules"}

PINNED_USES = re.compile(
    r"^\s*(?:-\s+)?uses:\s*(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40})"
    r"\s+#\s*(?P<version>v\d+(?:\.\d+)*)\s*$"
)
SHELL_OPERATORS = {"&&", "||", ";", "|", "&", "(", ")", ";;", "|&"}
COMMAND_PREFIXES = {"then", "do", "else", "elif", "if", "while", "until", "!", "time", "{"}
MAKE_OPTIONS_WITH_ARGUMENT = {"-C", "-f", "-I", "-j", "-l", "-o", "-W", "--directory", "--file"}


# ---------------------------------------------------------------- helpers


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def triggers(workflow: dict) -> dict:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    on = workflow.get("on", workflow.get(True))
    return on if isinstance(on, dict) else {name: None for name in ([on] if on else [])}


def workflow_files() -> list[Path]:
    files = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
    assert files, f"no workflow in {WORKFLOWS}"
    return files


def steps(workflow: dict):
    """(job id, step) for every step of every job."""
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def makefile_targets(text: str) -> set[str]:
    """Rule targets of a Makefile (not variables, not special targets like .PHONY)."""
    targets = set()
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9_.\-/ ]*?)\s*::?(?!=)", line)
        if m and not line.startswith("\t"):
            targets.update(m.group(1).split())
    return targets


def make_calls(script: str) -> list[tuple[str, dict[str, str]]]:
    """Every target of every `make ...` command in a shell script, with that command's
    VAR=value arguments (options skipped)."""
    script = script.replace("\\\n", " ")
    called = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:  # unbalanced quotes: let the schema and the shell complain
            continue
        at_command = True
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if at_command and token == "make":
                i += 1
                targets, variables = [], {}
                while i < len(tokens) and tokens[i] not in SHELL_OPERATORS:
                    arg = tokens[i]
                    if arg in MAKE_OPTIONS_WITH_ARGUMENT:
                        i += 1
                    elif "=" in arg and not arg.startswith("-"):
                        name, value = arg.split("=", 1)
                        variables[name] = value
                    elif not arg.startswith("-"):
                        targets.append(arg)
                    i += 1
                called += [(target, variables) for target in targets]
                at_command = True
                continue
            if token in SHELL_OPERATORS or token in COMMAND_PREFIXES:
                at_command = True
            elif at_command and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", token):
                at_command = True  # VAR=value before the command
            else:
                at_command = False
            i += 1
    return called


def make_targets_called(script: str) -> list[str]:
    """The targets of every `make ...` command in a shell script."""
    return [target for target, _ in make_calls(script)]


def missing_targets(workflow_text: str, targets: set[str]) -> set[str]:
    workflow = yaml.safe_load(workflow_text)
    called = {
        target
        for _, step in steps(workflow)
        if "run" in step
        for target in make_targets_called(step["run"])
    }
    return called - targets


@pytest.fixture(scope="module")
def targets() -> set[str]:
    return makefile_targets((ROOT / "Makefile").read_text())


@pytest.fixture(scope="module")
def pipeline() -> dict:
    return load(PIPELINE)


# ------------------------------------------------- the helpers themselves


def test_the_make_call_parser_finds_targets_and_skips_options_and_variables():
    script = (
        "make --no-print-directory promote TO=staging\n"
        "set -e; make -C . gate GATE_MIN_ACCURACY=0.9 && make summary\n"
        "echo make not-a-call # make in a comment\n"
        "if make smoke ALIAS=production; then make \\\n  status; fi\n"
        "FORCE=1 make clean\n"
    )
    assert make_targets_called(script) == ["promote", "gate", "summary", "smoke", "status", "clean"]
    assert make_calls(script)[0] == ("promote", {"TO": "staging"})
    assert make_calls(script)[1] == ("gate", {"GATE_MIN_ACCURACY": "0.9"})


def test_a_workflow_calling_a_target_the_makefile_lacks_is_caught(targets):
    text = "on: push\njobs:\n  a:\n    steps:\n      - run: make up && make nonexistent\n"
    assert missing_targets(text, targets) == {"nonexistent"}


def test_the_makefile_parser_sees_rules_not_variables(targets):
    assert {"up", "lint", "test", "state-save", "state-restore", "summary"} <= targets
    assert not {"BIN", "VENV", "PYTHON", ".PHONY", "LAB"} & targets


# ------------------------------------------------------------- every workflow


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_make_target_a_workflow_calls_exists(path, targets):
    assert missing_targets(path.read_text(), targets) == set()


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_step_is_a_make_target_or_a_pinned_action(path):
    """Nothing of substance lives only in YAML: a run step is `make <target> [VAR=value]`."""
    for job_id, step in steps(load(path)):
        if "run" in step:
            commands = [c for c in step["run"].strip().splitlines() if c.strip()]
            assert len(commands) == 1 and commands[0].startswith("make "), (
                f"{path.name}: job {job_id}: run step is not a single make call: {step['run']!r}"
            )
        else:
            assert "uses" in step, f"{path.name}: job {job_id}: a step with neither run nor uses"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_sha_with_its_version(path):
    lines = [line for line in path.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
    assert lines, f"{path.name} uses no action"
    for line in lines:
        assert PINNED_USES.match(line), f"{path.name}: not pinned as <sha> # vX.Y.Z: {line.strip()}"


def test_one_action_is_pinned_to_one_sha_everywhere():
    pins: dict[str, set[tuple[str, str]]] = {}
    for path in workflow_files():
        for line in path.read_text().splitlines():
            m = PINNED_USES.match(line)
            if m:
                pins.setdefault(m["action"], set()).add((m["sha"], m["version"]))
    assert pins
    assert {action: pin for action, pin in pins.items() if len(pin) > 1} == {}


# The targets that write to the container registry (ghcr.io): the only reason for a write.
PUSHES_IMAGES = {"images-push", "images-tag"}


def permission_problems(workflow: dict) -> list[str]:
    """Read-only everywhere, except `packages: write` in a job that pushes or retags
    images; and a job that does must ask for it."""
    problems = []
    if workflow.get("permissions") != {"contents": "read"}:
        problems.append(f"workflow permissions {workflow.get('permissions')}")
    for job_id, job in workflow["jobs"].items():
        called = {t for s in job.get("steps", []) for t in make_targets_called(s.get("run", ""))}
        for scope, level in (job.get("permissions") or {}).items():
            if level != "read" and not (scope == "packages" and called & PUSHES_IMAGES):
                problems.append(f"job {job_id} asks {scope}: {level}")
        if called & PUSHES_IMAGES and (job.get("permissions") or {}).get("packages") != "write":
            problems.append(f"job {job_id} pushes images without packages: write")
    return problems


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_permissions_are_read_only_but_where_images_are_pushed(path):
    assert permission_problems(load(path)) == []


@pytest.mark.parametrize(
    ("job", "problem"),
    [
        ({"permissions": {"contents": "write"}, "steps": [{"run": "make images-push"}]},
         "asks contents: write"),
        ({"permissions": {"packages": "write"}, "steps": [{"run": "make up"}]},
         "asks packages: write"),
        ({"permissions": {"packages": "read"}, "steps": [{"run": "make images-tag"}]},
         "without packages: write"),
    ],
)  # fmt: skip
def test_the_permission_check_sees_needless_and_missing_writes(job, problem):
    workflow = {"permissions": {"contents": "read"}, "jobs": {"j": job}}
    assert any(problem in p for p in permission_problems(workflow))


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_job_has_a_timeout_and_the_workflow_a_concurrency_group(path):
    workflow = load(path)
    assert workflow.get("concurrency", {}).get("group")
    for job_id, job in workflow["jobs"].items():
        timeout = job.get("timeout-minutes")
        assert isinstance(timeout, int) and 0 < timeout <= 60, f"{path.name}: job {job_id}"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_checkout_keeps_no_credentials(path):
    checkouts = [
        (job_id, step)
        for job_id, step in steps(load(path))
        if step.get("uses", "").startswith("actions/checkout@")
    ]
    assert checkouts, f"{path.name} checks nothing out"
    for job_id, step in checkouts:
        assert (step.get("with") or {}).get("persist-credentials") is False, job_id


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_no_secret_is_needed_and_no_expression_is_pasted_into_a_shell(path):
    """Runs on any fork as is; inputs reach scripts as environment variables, never as code."""
    workflow = load(path)
    assert "secrets." not in path.read_text()
    for job_id, step in steps(workflow):
        assert "${{" not in step.get("run", ""), f"{path.name}: job {job_id}: {step['run']!r}"


# ------------------------------------------------------------ the pipeline


def needs(job: dict) -> list[str]:
    value = job.get("needs", [])
    return [value] if isinstance(value, str) else list(value)


def ancestors(jobs: dict, job_id: str) -> list[str]:
    """Every job `job_id` needs, transitively, nearest first."""
    found, todo = [], needs(jobs[job_id])
    while todo:
        job = todo.pop(0)
        if job not in found:
            found.append(job)
            todo += needs(jobs[job])
    return found


def chain_problems(jobs: dict) -> list[str]:
    """Why `jobs` are not one stop-the-line chain, in file order; empty when they are."""
    order = list(jobs)
    problems = []
    if needs(jobs[order[0]]):
        problems.append(f"the first job, {order[0]}, needs {needs(jobs[order[0]])}")
    for i, job_id in enumerate(order[1:], start=1):
        if len(needs(jobs[job_id])) != 1 or needs(jobs[job_id])[0] not in order[:i]:
            problems.append(f"{job_id} needs {needs(jobs[job_id])}, not one earlier job")
    needed = [n for job in jobs.values() for n in needs(job)]
    problems += [
        f"{n} is needed by several jobs: the line forks" for n in set(needed) if needed.count(n) > 1
    ]
    for job_id, job in jobs.items():
        # A job-level `if` or continue-on-error would let a stage run after a failure.
        if "if" in job or job.get("continue-on-error"):
            problems.append(f"{job_id} runs regardless of the stage before it")
    return problems


def is_upload(step: dict) -> bool:
    return step.get("uses", "").startswith("actions/upload-artifact@")


def is_download(step: dict) -> bool:
    return step.get("uses", "").startswith("actions/download-artifact@")


def _artifact(step: dict, key: str) -> str | None:
    return (step.get("with") or {}).get(key)


def job_calls(job: dict) -> list[tuple[int, str, dict[str, str]]]:
    """(step index, make target, VAR=value arguments) of every make call in a job."""
    return [
        (i, target, variables)
        for i, step in enumerate(job.get("steps", []))
        for target, variables in make_calls(step.get("run", ""))
    ]


def first_step(job: dict, target: str) -> int | None:
    return next((i for i, t, _ in job_calls(job) if t == target), None)


def saved_state(pipeline: dict) -> dict[str, str]:
    """Job -> the name of the artifact in which it uploads the lab's state."""
    state = pipeline["env"]["STATE_FILE"]
    return {
        job_id: _artifact(step, "name")
        for job_id, step in steps(pipeline)
        if is_upload(step) and _artifact(step, "path") == state
    }


@pytest.mark.parametrize(
    ("jobs", "problem"),
    [
        ({"a": {}, "b": {"needs": "a"}, "c": {"needs": "a"}}, "a is needed by several jobs"),
        ({"a": {}, "b": {}}, "b needs [], not one earlier job"),
        ({"a": {"needs": "b"}, "b": {}}, "the first job, a, needs ['b']"),
        ({"a": {}, "b": {"needs": ["a", "a"]}}, "b needs ['a', 'a'], not one earlier job"),
        ({"a": {}, "b": {"needs": "a", "if": "always()"}}, "b runs regardless"),
        ({"a": {}, "b": {"needs": "a", "continue-on-error": True}}, "b runs regardless"),
    ],
)
def test_the_chain_check_sees_forks_loose_ends_and_skipped_failures(jobs, problem):
    assert any(problem in p for p in chain_problems(jobs)), chain_problems(jobs)


def test_the_pipeline_is_one_chain_so_a_failed_stage_stops_the_rest(pipeline):
    assert chain_problems(pipeline["jobs"]) == []


def test_only_reporting_steps_run_after_a_failure(pipeline):
    """A step that runs after a failure (`always()`, `failure()`, `cancelled()`) may keep
    reports and logs; it must never let the line move on. Any other `if` only narrows
    when a step runs (GitHub adds `success()` to it)."""
    for job_id, step in steps(pipeline):
        assert not step.get("continue-on-error"), f"{job_id}: {step}"
        condition = str(step.get("if", ""))
        if any(f in condition for f in ("always()", "failure()", "cancelled()")):
            called = set(make_targets_called(step.get("run", "")))
            assert is_upload(step) or called <= {"summary", "logs"}, f"{job_id}: {step}"


@pytest.mark.parametrize(
    ("before", "after"),
    MUST_PRECEDE,
    ids=lambda c: " ".join([c[0], *(f"{k}={v}" for k, v in c[1].items())]),
)
def test_each_gate_runs_before_the_promotion_it_protects(pipeline, before, after):
    order = list(pipeline["jobs"])

    def first(call: tuple[str, dict[str, str]]) -> tuple[int, int]:
        target, variables = call
        found = [
            (order.index(job_id), i)
            for job_id, job in pipeline["jobs"].items()
            for i, t, v in job_calls(job)
            if t == target and variables.items() <= v.items()
        ]
        assert found, f"the pipeline never calls make {target} {variables}"
        return min(found)

    assert first(before) < first(after)


def test_every_downloaded_artifact_was_uploaded_by_a_job_it_needs(pipeline):
    jobs = pipeline["jobs"]
    uploads = [(job_id, _artifact(s, "name")) for job_id, s in steps(pipeline) if is_upload(s)]
    names = [name for _, name in uploads]
    assert len(names) == len(set(names)), f"one artifact name, one upload: {names}"
    downloads = [(job_id, _artifact(s, "name")) for job_id, s in steps(pipeline) if is_download(s)]
    assert downloads
    for job_id, name in downloads:
        producers = [up for up, uploaded in uploads if uploaded == name]
        assert producers and set(producers) <= set(ancestors(jobs, job_id)), (job_id, name)


def test_each_stage_continues_from_the_state_the_nearest_stage_before_it_saved(pipeline):
    """Restoring an older state would silently undo a stage (a promotion, a new model)."""
    jobs, saved = pipeline["jobs"], saved_state(pipeline)
    assert saved
    for job_id, job in jobs.items():
        job_steps = job.get("steps", [])
        restore = first_step(job, "state-restore")
        if restore is None:
            continue
        nearest = next(a for a in ancestors(jobs, job_id) if a in saved)
        fetched = [(i, _artifact(s, "name")) for i, s in enumerate(job_steps) if is_download(s)]
        assert [name for _, name in fetched] == [saved[nearest]], job_id
        assert fetched[0][0] < restore < first_step(job, "up"), job_id


def test_the_first_job_to_bring_the_lab_up_creates_it_and_every_later_one_restores_it(pipeline):
    ups = [job_id for job_id, job in pipeline["jobs"].items() if first_step(job, "up") is not None]
    assert ups
    assert first_step(pipeline["jobs"][ups[0]], "state-restore") is None, ups[0]
    for job_id in ups[1:]:
        assert first_step(pipeline["jobs"][job_id], "state-restore") is not None, job_id


def test_a_saved_state_is_uploaded_right_after_and_must_exist(pipeline):
    state = pipeline["env"]["STATE_FILE"]
    for job_id, job in pipeline["jobs"].items():
        save = first_step(job, "state-save")
        uploads = [
            (i, s)
            for i, s in enumerate(job.get("steps", []))
            if is_upload(s) and _artifact(s, "path") == state
        ]
        assert (save is None) == (uploads == []), job_id
        for i, step in uploads:
            assert save < i and _artifact(step, "if-no-files-found") == "error", job_id


# Where each report of `make summary` is written on GitHub: the workflow and the make call.
REPORTED_BY = {
    "gate": (PIPELINE, "gate"),
    "load": (PIPELINE, "load"),
    "drift": (WORKFLOWS / "lab-drift.yml", "retrain-on-drift"),
}


def test_every_summarised_report_is_written_by_a_workflow():
    assert set(REPORTED_BY) == set(REPORTS)


@pytest.mark.parametrize(("name", "report"), sorted(REPORTS.items()))
def test_each_gate_report_is_summarised_and_kept_even_when_the_gate_fails(name, report):
    workflow, target = REPORTED_BY[name]
    jobs = {
        job_id: job
        for job_id, job in load(workflow)["jobs"].items()
        if first_step(job, target) is not None
    }
    assert jobs, f"no job runs make {target}"
    for job_id, job in jobs.items():
        job_steps = job["steps"]
        gate = first_step(job, target)
        summaries = [i for i, t, _ in job_calls(job) if t == "summary"]
        assert len(summaries) == 1 and summaries[0] > gate, job_id
        assert job_steps[summaries[0]].get("if") == "always()", job_id
        kept = [
            s
            for s in job_steps[gate:]
            if is_upload(s) and Path(_artifact(s, "path")) == report.parent
        ]
        assert len(kept) == 1 and kept[0].get("if") == "always()", job_id


def test_the_knobs_are_dispatch_inputs_passed_as_environment(pipeline):
    inputs = triggers(pipeline)["workflow_dispatch"]["inputs"]
    assert set(KNOBS) <= set(inputs)
    passed = {
        name: value
        for _, step in steps(pipeline)
        for name, value in (step.get("env") or {}).items()
    }
    for knob, variable in KNOBS.items():
        assert passed.get(variable) == "${{ inputs." + knob + " }}", variable


def test_the_knob_defaults_are_the_labs_defaults(pipeline):
    """The Actions UI shows .env.example's values, so a run with defaults is a plain run."""
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    )
    inputs = triggers(pipeline)["workflow_dispatch"]["inputs"]
    for knob, variable in KNOBS.items():
        assert str(inputs[knob]["default"]) == example[variable], knob


def test_the_pipeline_runs_on_push_pull_request_and_by_hand(pipeline):
    assert {"push", "pull_request", "workflow_dispatch"} <= set(triggers(pipeline))


# ---------------------------------------------------------------- the others


def test_ci_lints_and_tests_on_push_and_pull_request():
    ci = load(WORKFLOWS / "ci.yml")
    assert {"push", "pull_request"} <= set(triggers(ci))
    called = {t for _, s in steps(ci) for t in make_targets_called(s.get("run", ""))}
    assert {"lint", "test"} <= called


def test_rollback_is_manual_and_restores_a_runs_production_state(pipeline):
    rollback = load(WORKFLOWS / "lab-rollback.yml")
    assert set(triggers(rollback)) == {"workflow_dispatch"}
    [job] = rollback["jobs"].values()
    # The state the pipeline saved right after promoting to production.
    [promoter] = [
        job_id
        for job_id, pjob in pipeline["jobs"].items()
        if any(t == "promote" and v.get("TO") == "production" for _, t, v in job_calls(pjob))
    ]
    downloads = [s for s in job["steps"] if is_download(s)]
    assert [_artifact(s, "name") for s in downloads] == [saved_state(pipeline)[promoter]]
    assert _artifact(downloads[0], "run-id") == "${{ inputs.run_id }}"
    assert job["permissions"] == {"contents": "read", "actions": "read", "packages": "write"}
    called = [t for s in job["steps"] for t in make_targets_called(s.get("run", ""))]
    assert called.index("state-restore") < called.index("up") < called.index("rollback")
    assert called.index("rollback") < called.index("images-tag")


def test_dependabot_covers_actions_every_requirements_folder_and_every_dockerfile():
    config = load(ROOT / ".github" / "dependabot.yml")

    def folders(ecosystem: str) -> set[str]:
        out = set()
        for update in config["updates"]:
            if update["package-ecosystem"] == ecosystem:
                out.update(update.get("directories", []))
                if "directory" in update:
                    out.add(update["directory"])
        return out

    def found(pattern: str) -> set[str]:
        """Folders holding `pattern` files in the repository's own tree (.ci/ included)."""
        paths = {
            p.parent for p in ROOT.glob(pattern) if not set(p.relative_to(ROOT).parts) & NOT_SOURCE
        }
        return {"/" + str(p.relative_to(ROOT)) if p != ROOT else "/" for p in paths}

    assert folders("github-actions") == {"/"}
    # Both ways: every folder is covered, and no entry names a folder that moved away.
    requirement_folders = found("**/requirements*.in") | found("**/requirements.txt")
    assert requirement_folders == folders("pip")
    assert found("**/Dockerfile") == folders("docker")
    # Only a compose file naming images has something to update (not one that includes).
    naming_images = {
        folder
        for folder in found("**/compose.yaml")
        if "image:" in (ROOT / folder.lstrip("/") / "compose.yaml").read_text()
    }
    assert naming_images and folders("docker-compose") == naming_images


def test_make_test_collects_every_test_file_but_the_end_to_end_ones():
    """CI runs `make test`, which names no path: pytest collects its `testpaths` only, and a
    test file outside them never runs. The end-to-end tests run through `make e2e`."""
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    collected = [ROOT / p for p in options["ini_options"]["testpaths"]]
    collected.append(ROOT / "tests" / "e2e")
    test_files = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if d not in NOT_SOURCE]
        test_files += [
            Path(folder) / f for f in files if re.fullmatch(r"test_.*\.py|.*_test\.py", f)
        ]
    assert len(test_files) > 20
    left_out = [
        str(path.relative_to(ROOT))
        for path in test_files
        if not any(path == root or path.is_relative_to(root) for root in collected)
    ]
    assert not left_out, f"not in pyproject.toml's testpaths: {sorted(left_out)}"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_alias_move_is_followed_by_the_remote_tags(path):
    """ghcr.io's serving:staging and :production follow the aliases, as the course's
    pipeline retags them: each job that promotes or rolls back calls make images-tag after
    it, and the job that builds pushes the images it built."""
    for job_id, job in load(path)["jobs"].items():
        calls = job_calls(job)
        moved = [i for i, t, _ in calls if t in ("promote", "rollback", "retrain-on-drift")]
        tagged = [i for i, t, _ in calls if t == "images-tag"]
        if moved:
            assert tagged and max(tagged) > max(moved), f"{path.name}: job {job_id}"
        built = [i for i, t, _ in calls if t == "build"]
        if built:
            pushed = [i for i, t, _ in calls if t == "images-push"]
            assert pushed and min(pushed) > max(built), f"{path.name}: job {job_id}"
