"""Breaking the gate: the three runs the README describes (each gate is expected to fail)."""

from labctl.book.solving import make


def solve(lab):
    make(lab, "train", "LABEL_NOISE=0.4")
    make(lab, "gate", expect_failure=True)
    make(lab, "train", "TRAIN_DATASET=wine")
    make(lab, "gate", expect_failure=True)
    make(lab, "train")
    make(lab, "gate", "GATE_MAX_P99_LATENCY_MS=0.001", expect_failure=True)
