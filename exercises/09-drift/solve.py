"""Drift-triggered retraining: no solution until the lab has its drift check."""

from labctl.errors import LabError


def solve(lab):
    raise LabError(
        "exercise 9 waits for the lab's drift check (make traffic, make drift): "
        "there is no solution to apply yet"
    )
