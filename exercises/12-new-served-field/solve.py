"""A new served field: /predict answers class probabilities (compiled for logistic
regression, sklearn's own otherwise), with its tests; committed, then a model trained at
that commit, gated and promoted to staging."""

from pathlib import Path

from labctl.book.solving import apply_patch, commit, make

PATCH = Path(__file__).parent / "solution" / "probabilities.patch"


def solve(lab):
    touched = apply_patch(lab, PATCH)
    commit(lab, "/predict answers class probabilities", touched)
    make(lab, "train")
    make(lab, "gate")
    make(lab, "promote", "TO=staging")
