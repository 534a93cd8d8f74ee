"""Promotion and rollback: the commands of the README, in order."""

from labctl.book.solving import make


def solve(lab):
    make(lab, "train")
    make(lab, "gate")
    make(lab, "promote", "TO=staging")
    make(lab, "promote", "TO=production", expect_failure=True)  # no latency gate yet
    make(lab, "load", "LOCUST_RUN_TIME=5s")
    make(lab, "promote", "TO=production")
    make(lab, "rollback")
