"""The data-validation exercise's solution: the duplicate rule and its tests, committed;
then clean data still trains, and duplicated data stops with the report naming the rule."""

from pathlib import Path

from labctl.book.solving import apply_patch, commit, make

FOLDER = Path(__file__).resolve().parent


def solve(lab):
    make(lab, "train", "TRAIN_NULL_FRACTION=0.05", expect_failure=True)
    touched = apply_patch(lab, FOLDER / "solution" / "duplicate-rule.patch")
    commit(lab, "Data validation rejects more than 5% exact duplicate rows", touched)
    make(lab, "train")
    make(lab, "train", "TRAIN_DUPLICATE_FRACTION=0.3", expect_failure=True)
