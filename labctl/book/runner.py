"""Find exercises, run their checks, record passes, apply solutions."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from labctl.book.view import Lab, LabDown, Unanswered
from labctl.errors import LabError

DONE, NOT_YET, LAB_DOWN = 0, 1, 2
FOLDER = re.compile(r"^(\d{2})-[a-z0-9-]+$")


@dataclass
class Criterion:
    """One thing an exercise asks for. `ok` is None when it does not apply here (skipped,
    with the reason in `hint`)."""

    text: str
    ok: bool | None
    hint: str = ""
    evidence: dict = field(default_factory=dict)


def criterion(text: str, test: Callable[[], object], hint: str = "") -> Criterion:
    """Evaluate `test` (truthy: met; a dict: met, and the evidence). An endpoint that does
    not answer, or an answer of the wrong shape, fails the criterion with the reason."""
    try:
        value = test()
    except Unanswered as exc:
        return Criterion(text, False, f"{exc}; {hint}" if hint else str(exc))
    except KeyError as exc:  # an answer or a field that is not there
        why = f"{exc} is missing"
        return Criterion(text, False, f"{hint} ({why})" if hint else why)
    except (TypeError, ValueError, IndexError, AttributeError, StopIteration, OSError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        return Criterion(text, False, f"{hint} ({why})" if hint else why)
    if isinstance(value, dict):
        return Criterion(text, True, "", value)
    return Criterion(text, bool(value), "" if value else hint)


def skipped(text: str, reason: str) -> Criterion:
    return Criterion(text, None, reason)


@dataclass(frozen=True)
class Exercise:
    number: int
    folder: Path

    @property
    def slug(self) -> str:
        return self.folder.name

    def module(self, name: str):
        path = self.folder / f"{name}.py"
        if not path.is_file():
            raise LabError(f"{self.slug} has no {name}.py")
        spec = importlib.util.spec_from_file_location(f"exercise_{self.number:02d}_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    @property
    def title(self) -> str:
        for line in (self.folder / "README.md").read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                return line[2:].strip()
        return self.slug


def exercises(root: Path) -> list[Exercise]:
    found = []
    for folder in sorted((root / "exercises").iterdir()):
        m = FOLDER.match(folder.name)
        if m and folder.is_dir():
            found.append(Exercise(int(m.group(1)), folder))
    return found


def find(root: Path, number: int) -> Exercise:
    for ex in exercises(root):
        if ex.number == number:
            return ex
    known = ", ".join(str(e.number) for e in exercises(root))
    raise LabError(f"no exercise {number} (there are {known}): make exercises lists them")


def parse_number(raw: str) -> int:
    if not raw.strip().isdigit():
        raise LabError(f"which exercise? make check EX=N with a number, got EX={raw!r}")
    return int(raw)


def record_file(lab: Lab, number: int) -> Path:
    return lab.s.lab_dir / "checks" / f"{number:02d}.json"


def recorded(lab: Lab, number: int) -> dict | None:
    try:
        return json.loads(record_file(lab, number).read_text())
    except (OSError, ValueError):
        return None


def evaluate(lab: Lab, ex: Exercise) -> list[Criterion]:
    """Every criterion of an exercise. A check that stops half-way (an answers.toml that
    does not parse, an endpoint that does not answer) reports that as a criterion not
    met, with the reason, instead of a traceback."""
    lab.ensure_up()
    results: list[Criterion] = []
    try:
        for c in ex.module("check").criteria(lab):
            results.append(c)
    except LabDown:
        raise
    except Exception as exc:  # anything a check meets is reported, not raised
        results.append(
            Criterion("the rest of the check could not run", False, f"{type(exc).__name__}: {exc}")
        )
    return results


def mark(c: Criterion) -> str:
    return {True: "✓", False: "✗", None: "-"}[c.ok]


def report(ex: Exercise, results: Iterable[Criterion], out=None) -> bool:
    out = out or sys.stdout
    results = list(results)
    print(f"Exercise {ex.number}: {ex.title}", file=out)
    for c in results:
        line = f"  {mark(c)} {c.text}"
        if c.ok is False and c.hint:
            line += f"\n      hint: {c.hint}"
        elif c.ok is None:
            line += f" (skipped: {c.hint})"
        print(line, file=out)
    done = bool(results) and all(c.ok is not False for c in results)
    met = sum(1 for c in results if c.ok)
    todo = sum(1 for c in results if c.ok is False)
    print(
        f"  {'done' if done else 'not yet'}: {met} met, {todo} to do"
        + (f", {len(results) - met - todo} skipped" if len(results) - met - todo else ""),
        file=out,
    )
    return done


def check(lab: Lab, number: int) -> int:
    ex = find(lab.root, number)
    try:
        results = evaluate(lab, ex)
    except LabDown as exc:
        print(f"Exercise {ex.number}: the lab is not up: {exc}")
        return LAB_DOWN
    done = report(ex, results)
    if done:
        path = record_file(lab, number)
        path.parent.mkdir(parents=True, exist_ok=True)
        head = lab.git("rev-parse", "HEAD").stdout.strip()
        path.write_text(
            json.dumps(
                {
                    "exercise": ex.slug,
                    "passed_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
                    "mode": lab.mode,
                    "git_head": head,
                    "criteria": [asdict(c) for c in results],
                },
                indent=2,
            )
            + "\n"
        )
        print(f"  recorded in {path.relative_to(lab.root)}")
    return DONE if done else NOT_YET


def listing(lab: Lab) -> int:
    print(f"{'EX':<3} {'exercise':<58} status")
    for ex in exercises(lab.root):
        rec = recorded(lab, ex.number)
        status = f"done {rec['passed_at'][:16]}" if rec else f"not yet (make check EX={ex.number})"
        print(f"{ex.number:<3} {ex.title[:58]:<58} {status}")
    print("\nThe tasks: exercises/NN-*/README.md. Answers you type go in answers.toml.")
    return 0


def solve(lab: Lab, number: int) -> int:
    ex = find(lab.root, number)
    lab.ensure_up()
    print(f"Exercise {ex.number}: applying the instructor's solution ({ex.slug}/solve.py)")
    ex.module("solve").solve(lab)
    print(f"Done: make check EX={number}")
    return 0
