"""Shifted data on purpose: the syntax `make traffic SHIFT=…` and `TRAIN_SHIFT` share.

    petal length (cm)=+1.5              add 1.5 to every value of that feature
    petal length (cm)=-0.5, sepal width (cm)=*1.2
                                        subtract 0.5 from one, scale the other by 1.2

Entries are separated by commas or semicolons; a feature name is written as the dataset
names it (spaces and parentheses included). The gatekeeper applies the same shift to its
held-out rows when it judges a model trained on shifted data
(gatekeeper/gatekeeper/holdout.py holds its own copy of this parser;
tests/test_shift_agreement.py keeps the two in step).
"""

from __future__ import annotations

import math
import re

import pandas as pd

_ENTRY = re.compile(r"^(?P<feature>[^=]+?)\s*=\s*(?P<op>[+\-*])\s*(?P<value>[0-9.eE+\-]+)$")


class ShiftError(ValueError):
    """The shift cannot be read or names no such feature; the message says which part."""


def parse(text: str) -> tuple[tuple[str, str, float], ...]:
    """`"name=+1.5, other=*1.2"` as ((name, "+", 1.5), (other, "*", 1.2)); "" as ()."""
    entries = []
    for raw in re.split(r"[;,]", text or ""):
        raw = raw.strip()
        if not raw:
            continue
        m = _ENTRY.match(raw)
        if m is None:
            raise ShiftError(
                f"cannot read {raw!r}: write FEATURE=+N, FEATURE=-N or FEATURE=*N, "
                'e.g. "petal length (cm)=+1.5"'
            )
        try:
            value = float(m["value"])
        except ValueError:
            raise ShiftError(f"cannot read {raw!r}: {m['value']!r} is not a number") from None
        if not math.isfinite(value):
            raise ShiftError(f"cannot read {raw!r}: the amount must be a finite number")
        op = m["op"]
        if op == "-":
            op, value = "+", -value
        feature = m["feature"].strip()
        if any(f == feature for f, _, _ in entries):
            raise ShiftError(f"{feature!r} is shifted twice")
        entries.append((feature, op, value))
    return tuple(entries)


def describe(entries: tuple[tuple[str, str, float], ...]) -> str:
    """The canonical text of a parsed shift ("" for none): what runs record as a param."""
    return ", ".join(
        f"{f}={'*' if op == '*' else ('+' if v >= 0 else '-')}{abs(v) if op == '+' else v:g}"
        for f, op, v in entries
    )


def apply(X: pd.DataFrame, entries: tuple[tuple[str, str, float], ...]) -> pd.DataFrame:
    """A copy of X with each named column shifted; an unknown feature is a ShiftError."""
    unknown = [f for f, _, _ in entries if f not in X.columns]
    if unknown:
        raise ShiftError(
            f"no feature named {unknown[0]!r}; the features are: {', '.join(map(str, X.columns))}"
        )
    out = X.copy()
    for feature, op, value in entries:
        out[feature] = out[feature] * value if op == "*" else out[feature] + value
    return out
