"""Each exercise's check against a recorded lab: the solution passes, a fresh lab fails,
and the shortcuts a student might take fail."""

from __future__ import annotations

import shutil
import time

import pytest

from labctl.book import answers, runner
from labctl.book.view import LabDown
from tests.exercises.conftest import GATE_REPORT, ROOT, failed, recorded_lab, results

EX1 = """
[ex1]
production_version = "1"
production_run_id = "run1"
production_accuracy = 0.974
best_family = "logreg"
n_child_runs = 5
production_image_sha = "abc123abc123"
larger_image = "training"
"""


# ------------------------------------------------------------------ harness
def test_a_check_says_the_lab_is_down_and_exits_2(fake_lab, capsys):
    lab = fake_lab()

    def down():
        raise LabDown("MLflow does not answer at http://x: run make up first")

    lab.ensure_up = down
    assert runner.check(lab, 0) == runner.LAB_DOWN
    assert "the lab is not up" in capsys.readouterr().out


def test_a_pass_is_recorded_with_its_evidence_and_listed(fake_lab, capsys):
    lab = fake_lab()
    assert runner.check(lab, 0) == runner.NOT_YET
    assert runner.recorded(lab, 0) is None
    lab.write_answers('name = "Ada"\n')
    assert runner.check(lab, 0) == runner.DONE
    record = runner.recorded(lab, 0)
    assert record["exercise"] == "00-warm-up" and record["criteria"]
    lab.write_answers("")  # a later change does not erase the recorded pass
    assert runner.check(lab, 0) == runner.NOT_YET
    assert runner.recorded(lab, 0) == record
    runner.listing(lab)
    assert "done " in capsys.readouterr().out


def test_every_exercise_folder_has_its_parts():
    for ex in runner.exercises(ROOT):
        for part in ("README.md", "check.py", "solve.py"):
            assert (ex.folder / part).is_file(), f"{ex.slug} has no {part}"
        assert ex.title != ex.slug


def test_the_answers_writer_keeps_other_sections(tmp_path):
    (tmp_path / "answers.toml").write_text('name = "Ada"\n\n[ex9]\nnote = "mine"\n')
    answers.update(tmp_path, "ex1", {"n": 5, "ok": True, "x": 0.5, "s": 'a "quoted" one'})
    import tomllib

    data = tomllib.loads((tmp_path / "answers.toml").read_text())
    assert data == {
        "name": "Ada",
        "ex9": {"note": "mine"},
        "ex1": {"n": 5, "ok": True, "x": 0.5, "s": 'a "quoted" one'},
    }


def test_an_exercise_number_must_be_a_number():
    with pytest.raises(runner.LabError, match="make check EX=N with a number"):
        runner.parse_number("three")
    with pytest.raises(runner.LabError, match="no exercise 42"):
        runner.find(ROOT, 42)


# ---------------------------------------------------------------- warm-up
def test_warm_up_fails_on_a_fresh_lab_and_passes_with_a_name(fake_lab):
    lab = fake_lab()
    assert failed(lab, 0) == ["answers.toml has your name"]
    lab.write_answers('name = "Ada"\n')
    assert failed(lab, 0) == []


def test_warm_up_catches_a_tracked_env_and_a_server_behind_its_alias(fake_lab):
    state = recorded_lab()
    state["env_tracked"] = True
    state["served"]["production"] = "2"
    lab = fake_lab(state=state)
    lab.write_answers('name = "Ada"\n')
    assert set(failed(lab, 0)) == {
        ".env is not tracked by git and holds the secrets make up generated",
        "the production server serves the version @production names",
        "production answers a prediction from the @production version",
    }


def test_warm_up_in_docker_mode_compares_the_production_image(fake_lab):
    state = recorded_lab()
    state["digests"]["abc123abc123"] = "sha256:other"
    lab = fake_lab(mode="docker", state=state)
    lab.write_answers('name = "Ada"\n')
    assert failed(lab, 0) == [
        "the registry's serving:production is the image built from production's commit"
    ]


# ------------------------------------------------------------------- tour
def test_tour_passes_with_the_labs_answers_and_fails_fresh(fake_lab):
    lab = fake_lab(mode="docker")
    assert len(failed(lab, 1)) == 6
    lab.write_answers(EX1)
    assert failed(lab, 1) == []


@pytest.mark.parametrize(
    ("change", "criterion"),
    [
        # The accuracy the run logged, not the gate's measurement.
        ("production_accuracy = 0.921", "production_accuracy is the gate's own measurement"),
        ('production_version = "2"', "production_version is the version @production names"),
        ("n_child_runs = 3", "best_family and n_child_runs describe that run's grid"),
        # HEAD's commit instead of the one whose image production runs.
        ('production_image_sha = "deadbeef"', "production_image_sha names production's image"),
        ('larger_image = "serving"', "larger_image names the larger"),
    ],
)
def test_tour_catches_each_wrong_answer(fake_lab, change, criterion):
    lab = fake_lab(mode="docker")
    key = change.split(" = ")[0]
    text = "\n".join(change if line.startswith(f"{key} =") else line for line in EX1.splitlines())
    lab.write_answers(text)
    (bad,) = failed(lab, 1)
    assert bad.startswith(criterion)


def test_tour_skips_the_image_criteria_in_local_mode(fake_lab):
    lab = fake_lab(mode="local")
    lab.write_answers(EX1)
    skipped = [c.text for c in results(lab, 1) if c.ok is None]
    assert len(skipped) == 2 and failed(lab, 1) == []


# --------------------------------------------------------- the quality gate
EX3 = """
[ex3]
p99_latency_ms = 0.412
compared_with_version = "1"
accuracy_drop = 0.0
"""

HARD_CODED = "import sys\nprint('{\"passed\": true}')\nsys.exit(0)\n"
READS_THE_REPORT = """
import json, sys
r = json.load(open("reports/gate/gate_report.json"))
out = {"version": r["version"], "accuracy": 0.947, "precision_macro": 0.95, "passed": True}
print(json.dumps(out))
sys.exit(0 if r["verdict"] == "passed" else 1)
"""


def _with_script(lab, text: str | None) -> None:
    target = lab.exercise_dir(3) / "validate_quality.py"
    if text is None:
        shutil.copy(lab.exercise_dir(3) / "solution" / "validate_quality.py", target)
    else:
        target.write_text(text)


def test_quality_gate_passes_with_the_solution(fake_lab, mlflow_api):
    url, _ = mlflow_api
    lab = fake_lab(mlflow_url=url)
    assert "exercises/03-quality-gate/validate_quality.py exists" in failed(lab, 3)
    lab.write_answers(EX3)
    _with_script(lab, None)
    assert failed(lab, 3) == []


@pytest.mark.parametrize("script", [HARD_CODED, READS_THE_REPORT], ids=["hard-coded", "report"])
def test_quality_gate_scripts_that_do_not_ask_the_registry_fail(fake_lab, mlflow_api, script):
    url, _ = mlflow_api
    lab = fake_lab(mlflow_url=url)
    lab.write_answers(EX3)
    _with_script(lab, script)
    assert len(failed(lab, 3)) >= 2


def test_quality_gate_refuses_answers_from_a_report_the_gate_did_not_write(fake_lab, mlflow_api):
    url, _ = mlflow_api
    recorded = recorded_lab()
    # A report copied from elsewhere: not the one MLflow holds for the candidate.
    recorded["local_reports"]["gate/gate_report.json"] = {**GATE_REPORT, "checked_at": "x"}
    lab = fake_lab(mlflow_url=url, state=recorded)
    lab.write_answers(EX3)
    _with_script(lab, None)
    assert (
        failed(lab, 3)
        == ["@candidate was gated against a production model (make gate wrote its report)"]
        or "@candidate was gated" in failed(lab, 3)[0]
    )


# ------------------------------------------------------------ breaking the gate
def _failed_version(state, n, params, failed, thresholds=None):
    import json

    state["versions"][n] = {
        "version": n,
        "run_id": f"run{n}",
        "tags": {
            "gate.verdict": "failed",
            "gate.failed_checks": ",".join(failed),
            "gate.thresholds": json.dumps(thresholds or {"max_p99_latency_ms": 50.0}),
        },
    }
    state["runs"][f"run{n}"] = {"metrics": {}, "params": {"dataset": "iris", **params}}


def broken_lab():
    state = recorded_lab()
    state["versions"]["1"]["tags"]["gate.verdict"] = "passed"
    _failed_version(state, "3", {"label_noise": "0.4"}, ["accuracy", "precision_macro"])
    _failed_version(state, "4", {"dataset": "wine", "label_noise": "0.0"}, ["schema_compatible"])
    _failed_version(
        state, "5", {"label_noise": "0.0"}, ["p99_latency_ms"], {"max_p99_latency_ms": 0.001}
    )
    return state


def test_break_the_gate_passes_with_three_failures_and_fails_fresh(fake_lab):
    assert len(failed(fake_lab(), 4)) == 4  # fresh: no failed version, v1 never gated here
    assert failed(fake_lab(state=broken_lab()), 4) == []


def test_break_the_gate_does_not_count_a_failed_version_that_was_promoted(fake_lab):
    state = broken_lab()
    state["versions"]["3"]["tags"]["promoted.staging.at"] = "2026-11-26T00:00:00+00:00"
    (bad,) = failed(fake_lab(state=state), 4)
    assert bad.startswith("a version trained with LABEL_NOISE")


def test_break_the_gate_wants_the_threshold_that_stopped_it_recorded(fake_lab):
    state = broken_lab()
    state["versions"]["5"]["tags"]["gate.thresholds"] = '{"max_p99_latency_ms": 50.0}'
    (bad,) = failed(fake_lab(state=state), 4)
    assert bad.startswith("a clean version failed only on p99_latency_ms")


# ------------------------------------------------------- promotion and rollback
def rolled_back_lab():
    state = recorded_lab()
    state["versions"]["2"]["tags"].update(
        {
            "gate.verdict": "revoked",
            "load.verdict": "passed",
            "load.alias": "staging",
            "promoted.production.previous": "1",
            "promoted.production.load_gate": "passed",
            "promoted.production.at": "2026-11-26T02:00:00+00:00",
            "rolled_back.at": "2026-11-26T02:05:00+00:00",
        }
    )
    return state


def test_promote_and_roll_back_passes_after_a_rollback_and_fails_fresh(fake_lab):
    assert len(failed(fake_lab(mode="docker"), 6)) == 2
    assert failed(fake_lab(mode="docker", state=rolled_back_lab()), 6) == []


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        # Pushed past the latency gate with the override.
        ("promoted.production.load_gate", "skipped: SKIP_LOAD_GATE=1"),
        # A rollback recorded before the promotion it undid.
        ("rolled_back.at", "2026-11-26T01:00:00+00:00"),
        ("gate.verdict", "passed"),
    ],
)
def test_promote_and_roll_back_wants_the_whole_story(fake_lab, tag, value):
    state = rolled_back_lab()
    state["versions"]["2"]["tags"][tag] = value
    assert len(failed(fake_lab(state=state), 6)) == 2


def test_promote_and_roll_back_wants_production_back_and_its_image(fake_lab):
    state = rolled_back_lab()
    state["served"]["production"] = "2"  # the server never went back
    state["digests"]["production"] = "sha256:other"
    assert len(failed(fake_lab(mode="docker", state=state), 6)) == 2


def test_a_malformed_answers_file_is_a_criterion_not_a_traceback(fake_lab, capsys):
    lab = fake_lab()
    lab.write_answers("[ex1\nproduction_version = 1\n")
    assert runner.check(lab, 1) == runner.NOT_YET
    out = capsys.readouterr().out
    assert "✗ the rest of the check could not run" in out and "answers.toml" in out


def test_the_tour_does_not_pass_an_image_answer_without_a_registry(fake_lab):
    state = recorded_lab()
    state["digests"] = {}  # the registry answers nothing
    lab = fake_lab(mode="docker", state=state)
    lab.write_answers(EX1)
    assert "production_image_sha names production's image" in " ".join(failed(lab, 1))


def test_a_server_whose_workers_lag_is_asked_again_until_it_serves_the_version(fake_lab):
    lab = fake_lab()
    lab.settle_s = 5.0
    answers_given = iter(["1", "2", "1", "2"])  # two workers, one still on the old version
    lab.served = lambda alias: {"version": next(answers_given)}
    assert lab.served_settled("staging", "1") == {"version": "1"}
    assert lab.served_settled("staging", "1") == {"version": "1"}  # asked twice: 2, then 1


def test_a_server_that_never_serves_the_version_gives_its_last_answer_in_time(fake_lab):
    lab = fake_lab()
    lab.settle_s = 1.0
    lab.served = lambda alias: {"version": "1"}
    t0 = time.monotonic()
    assert lab.served_settled("staging", "2") == {"version": "1"}
    assert 1.0 <= time.monotonic() - t0 < 3.0
