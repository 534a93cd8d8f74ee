"""Drift-triggered retraining: the README's commands, in order."""

from labctl.book.solving import make

SHIFT = "SHIFT=petal length (cm)=+1.5"


def solve(lab):
    make(lab, "traffic", SHIFT, "TRAFFIC_ROWS=1000")
    make(lab, "drift", expect_failure=True)
    make(lab, "retrain-on-drift", SHIFT)
    make(lab, "traffic", SHIFT, "TRAFFIC_ROWS=1000")
    make(lab, "drift")
