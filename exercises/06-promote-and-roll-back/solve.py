"""Promotion and rollback: the commands of the README, in order."""

import subprocess


def _make(lab, *args, expect_failure=False):
    print(f"  make {' '.join(args)}")
    r = subprocess.run(["make", "--no-print-directory", *args], cwd=lab.root, check=False)
    if (r.returncode == 0) == expect_failure:
        raise SystemExit(f"make {' '.join(args)} exited {r.returncode}")


def solve(lab):
    _make(lab, "train")
    _make(lab, "gate")
    _make(lab, "promote", "TO=staging")
    _make(lab, "promote", "TO=production", expect_failure=True)  # no latency gate yet
    _make(lab, "load", "LOCUST_RUN_TIME=5s")
    _make(lab, "promote", "TO=production")
    _make(lab, "rollback")
