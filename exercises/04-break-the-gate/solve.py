"""Breaking the gate: the three runs the README describes (each gate is expected to fail)."""

import subprocess


def _make(lab, *args, expect_failure=False):
    print(f"  make {' '.join(args)}")
    r = subprocess.run(["make", "--no-print-directory", *args], cwd=lab.root, check=False)
    if expect_failure and r.returncode == 0:
        raise SystemExit(f"make {' '.join(args)} passed; the gate should have stopped it")
    if not expect_failure and r.returncode != 0:
        raise SystemExit(f"make {' '.join(args)} failed")


def solve(lab):
    _make(lab, "train", "LABEL_NOISE=0.4")
    _make(lab, "gate", expect_failure=True)
    _make(lab, "train", "TRAIN_DATASET=wine")
    _make(lab, "gate", expect_failure=True)
    _make(lab, "train")
    _make(lab, "gate", "GATE_MAX_P99_LATENCY_MS=0.001", expect_failure=True)
