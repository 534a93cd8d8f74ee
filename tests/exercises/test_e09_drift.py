"""Exercise 9's check on recorded labs: the loop drift found, retrained, alarm gone."""

import pytest

from tests.exercises.conftest import failed, recorded_lab

SHIFT = "petal length (cm)=+1.5"
T_PROMOTED_1 = "2026-11-26T01:00:00+00:00"
# Drift found at 01:20, the retrained version promoted at 01:30, no drift at 01:40 (ms).
R1, W_AT, R2 = 1795656000000, "2026-11-26T01:30:00+00:00", 1795657200000


def looped_lab() -> dict:
    state = recorded_lab()
    state["versions"]["1"]["tags"]["promoted.production.at"] = T_PROMOTED_1
    state["versions"]["3"] = {
        "version": "3",
        "run_id": "run3",
        "tags": {"train_shift": SHIFT, "gate.verdict": "passed", "promoted.production.at": W_AT},
    }
    state["aliases"].update(staging="3", production="3")
    state["drift_checks"] = [
        {"start": R1, "version": "1", "verdict": "drift", "drifted_features": "petal length (cm)"},
        {"start": R2, "version": "3", "verdict": "no drift", "drifted_features": "none"},
    ]
    return state


def test_a_fresh_lab_fails_and_the_whole_loop_passes(fake_lab):
    assert failed(fake_lab(), 9) != []
    assert failed(fake_lab(state=looped_lab()), 9) == []


@pytest.mark.parametrize(
    "broken",
    [
        # The drift alarm came before that version was in production.
        lambda s: s["drift_checks"][0].update(start=1795653000000),
        # Retrained without the shift: the same data as before.
        lambda s: s["versions"]["3"]["tags"].pop("train_shift"),
        # Promoted before the alarm: not a retrain on drift.
        lambda s: s["versions"]["3"]["tags"].update(
            {"promoted.production.at": "2026-11-26T01:10:00+00:00"}
        ),
        # The later check still found drift.
        lambda s: s["drift_checks"][1].update(verdict="drift"),
        # The "no drift" check ran before the new version was in production.
        lambda s: s["drift_checks"][1].update(start=1795656300000),
        # Rolled back to the old version since.
        lambda s: s["aliases"].update(production="1"),
    ],
)
def test_each_part_of_the_loop_is_needed(fake_lab, broken):
    state = looped_lab()
    broken(state)
    assert failed(fake_lab(state=state), 9) != []
