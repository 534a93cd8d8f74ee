"""The GitHub Actions workflows: what they call exists, and they keep the lab's rules.

Plain unit tests (no network, no Docker): they read .github/ and the Makefile as text.
The schema itself is checked by `make lint` (check-jsonschema, offline).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PIPELINE = WORKFLOWS / "lab-pipeline.yml"

# The stop-the-line chain, in order: each job needs exactly the one before it.
PIPELINE_ORDER = [
    "build",
    "up",
    "train",
    "gate",
    "staging",
    "e2e",
    "load",
    "production",
    "smoke",
]

# Workflow knobs and the lab variables they set.
KNOBS = {
    "train_dataset": "TRAIN_DATASET",
    "label_noise": "LABEL_NOISE",
    "gate_min_accuracy": "GATE_MIN_ACCURACY",
    "load_max_p95_ms": "LOAD_MAX_P95_MS",
    "load_max_p99_ms": "LOAD_MAX_P99_MS",
}

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


def make_targets_called(script: str) -> list[str]:
    """The targets of every `make ...` command in a shell script (options and VAR=value skipped)."""
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
                while i < len(tokens) and tokens[i] not in SHELL_OPERATORS:
                    arg = tokens[i]
                    if arg in MAKE_OPTIONS_WITH_ARGUMENT:
                        i += 1
                    elif not arg.startswith("-") and "=" not in arg:
                        called.append(arg)
                    i += 1
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


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_permissions_are_read_only(path):
    workflow = load(path)
    assert workflow.get("permissions") == {"contents": "read"}
    for job_id, job in workflow["jobs"].items():
        for scope, level in (job.get("permissions") or {}).items():
            assert level == "read", f"{path.name}: job {job_id} asks {scope}: {level}"


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


def test_the_pipeline_is_the_stop_the_line_chain(pipeline):
    jobs = pipeline["jobs"]
    assert list(jobs) == PIPELINE_ORDER
    for before, job in zip([None, *PIPELINE_ORDER], PIPELINE_ORDER, strict=False):
        needs = jobs[job].get("needs")
        needs = [needs] if isinstance(needs, str) else needs
        assert needs == ([before] if before else None), f"{job} needs {needs}"
        assert "if" not in jobs[job], f"{job} has an if: a failed stage must skip the rest"
        assert not jobs[job].get("continue-on-error"), job


def test_each_stage_runs_its_make_target(pipeline):
    expected = {
        "build": ["build"],
        "up": ["up", "state-save"],
        "train": ["state-restore", "up", "train", "state-save"],
        "gate": ["state-restore", "up", "gate", "summary", "state-save"],
        "staging": ["state-restore", "up", "promote", "state-save"],
        "e2e": ["state-restore", "up", "e2e"],
        "load": ["state-restore", "up", "load", "summary"],
        "production": ["state-restore", "up", "promote", "state-save"],
        "smoke": ["state-restore", "up", "smoke"],
    }
    for job_id, wanted in expected.items():
        called = [
            target
            for step in pipeline["jobs"][job_id]["steps"]
            for target in make_targets_called(step.get("run", ""))
            if target in wanted
        ]
        assert called == wanted, f"{job_id}: {called}"
    runs = {
        job_id: [s["run"].strip() for s in job["steps"] if "run" in s]
        for job_id, job in pipeline["jobs"].items()
    }
    assert "make promote TO=staging" in runs["staging"]
    assert "make promote TO=production" in runs["production"]
    assert "make smoke ALIAS=production" in runs["smoke"]


def _artifact(step: dict, key: str) -> str | None:
    return (step.get("with") or {}).get(key)


def test_the_lab_state_is_handed_from_stage_to_stage(pipeline):
    """Each stage restores what an earlier stage saved; e2e and load change nothing kept."""
    saved, restored = {}, {}
    for job_id, step in steps(pipeline):
        uses = step.get("uses", "")
        is_state = _artifact(step, "path") == "lab-state.tgz"
        if uses.startswith("actions/upload-artifact@") and is_state:
            saved[job_id] = _artifact(step, "name")
        if uses.startswith("actions/download-artifact@"):
            restored[job_id] = _artifact(step, "name")
    assert saved == {
        "up": "lab-state-up",
        "train": "lab-state-train",
        "gate": "lab-state-gate",
        "staging": "lab-state-staging",
        "production": "lab-state-production",
    }
    assert restored == {
        "train": "lab-state-up",
        "gate": "lab-state-train",
        "staging": "lab-state-gate",
        "e2e": "lab-state-staging",
        "load": "lab-state-staging",
        "production": "lab-state-staging",
        "smoke": "lab-state-production",
    }
    # A stage only restores from a stage it (transitively) needs.
    for job_id, name in restored.items():
        source = name.removeprefix("lab-state-")
        assert PIPELINE_ORDER.index(source) < PIPELINE_ORDER.index(job_id)
    assert pipeline["env"]["STATE_FILE"] == "lab-state.tgz"


def test_reports_are_uploaded_and_summarised_even_when_the_gate_fails(pipeline):
    for job_id, report_path in (("gate", "reports/gate/"), ("load", "reports/load/")):
        job_steps = pipeline["jobs"][job_id]["steps"]
        uploads = [
            s
            for s in job_steps
            if s.get("uses", "").startswith("actions/upload-artifact@")
            and _artifact(s, "path") == report_path
        ]
        assert len(uploads) == 1 and uploads[0].get("if") == "always()", job_id
        summaries = [s for s in job_steps if s.get("run", "").strip() == "make summary"]
        assert len(summaries) == 1 and summaries[0].get("if") == "always()", job_id


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


def test_rollback_is_manual_and_restores_a_runs_production_state():
    rollback = load(WORKFLOWS / "lab-rollback.yml")
    assert set(triggers(rollback)) == {"workflow_dispatch"}
    [job] = rollback["jobs"].values()
    downloads = [s for s in job["steps"] if s.get("uses", "").startswith("actions/download-")]
    assert [_artifact(s, "name") for s in downloads] == ["lab-state-production"]
    assert _artifact(downloads[0], "run-id") == "${{ inputs.run_id }}"
    assert job["permissions"] == {"contents": "read", "actions": "read"}
    called = [t for s in job["steps"] for t in make_targets_called(s.get("run", ""))]
    assert called.index("state-restore") < called.index("up") < called.index("rollback")


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
        paths = {
            p.parent
            for p in ROOT.glob(pattern)
            if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
        }
        return {"/" + str(p.relative_to(ROOT)) if p != ROOT else "/" for p in paths}

    assert folders("github-actions") == {"/"}
    requirement_folders = found("**/requirements*.in") | found("**/requirements.txt")
    assert requirement_folders <= folders("pip")
    assert found("**/Dockerfile") <= folders("docker")
    assert "/compose" in folders("docker-compose")
