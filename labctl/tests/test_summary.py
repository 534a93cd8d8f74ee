"""labctl.summary: the gates' own Markdown reports, put together (plain unit tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.summary import REPORTS, summary

GATE_MD = "### Quality gate: lab-classifier v2: FAILED\n\n| check | value |\n"
LOAD_MD = "### Latency gate (Locust): PASSED\n\n| metric | value |\n"


def write_reports(root: Path, gate: str | None = GATE_MD, load: str | None = LOAD_MD) -> Path:
    for target, text in (("gate", gate), ("load", load)):
        if text is not None:
            (root / REPORTS[target]).parent.mkdir(parents=True, exist_ok=True)
            (root / REPORTS[target]).write_text(text)
    return root


def test_it_prints_each_report_as_written_in_order(tmp_path, capsys):
    assert summary(write_reports(tmp_path), env={}) == 0
    assert capsys.readouterr().out == GATE_MD + "\n" + LOAD_MD + "\n"


def test_it_appends_to_the_github_step_summary(tmp_path, capsys):
    target = tmp_path / "step_summary.md"
    target.write_text("earlier step\n")
    env = {"GITHUB_STEP_SUMMARY": str(target)}
    assert summary(write_reports(tmp_path / "lab"), env) == 0
    assert target.read_text() == "earlier step\n" + GATE_MD + "\n" + LOAD_MD + "\n"
    out = capsys.readouterr()
    assert out.out == "" and "appended to $GITHUB_STEP_SUMMARY" in out.err


@pytest.mark.parametrize(
    ("gate", "load", "shown", "skipped"),
    [
        (GATE_MD, None, [GATE_MD], ["latency_gate.md (make load did not run here)"]),
        (None, LOAD_MD, [LOAD_MD], ["gate_report.md (make gate did not run here)"]),
        (GATE_MD, "", [GATE_MD], ["latency_gate.md is empty"]),
    ],
)
def test_a_missing_report_is_skipped_with_a_note(tmp_path, capsys, gate, load, shown, skipped):
    assert summary(write_reports(tmp_path, gate, load), env={}) == 0
    out = capsys.readouterr()
    assert out.out == "".join(text + "\n" for text in shown)
    for note in skipped:
        assert note in out.err


def test_no_report_at_all_writes_nothing_and_never_fails(tmp_path, capsys):
    target = tmp_path / "step_summary.md"
    assert summary(tmp_path, {"GITHUB_STEP_SUMMARY": str(target)}) == 0
    assert not target.exists()
    out = capsys.readouterr()
    assert out.out == "" and "no gate, latency or drift report" in out.err


def test_an_unreadable_report_is_named_not_fatal(tmp_path, capsys):
    write_reports(tmp_path, gate=None)
    (tmp_path / REPORTS["gate"]).mkdir(parents=True)  # a folder where the file should be
    assert summary(tmp_path, env={}) == 0
    out = capsys.readouterr().out
    assert f"### {REPORTS['gate']}\n\nCould not read this report:" in out
    assert out.endswith(LOAD_MD + "\n")
