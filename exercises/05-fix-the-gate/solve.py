"""Fixing the gate: the colleague's pull request merged (when it is not yet), the miss it
lets through shown on the lab, the fix and GATE_MIN_F1_MACRO committed, then the gates the
check reads: the weak-class model stopped, a strict F1 threshold stopping a model, and a
new candidate passing with the f1_macro row."""

from labctl.book.solving import apply_patch, commit, make

DECIDE = "gatekeeper/gatekeeper/decide.py"
PLANTED = "0001-simplify-recall.patch"
# What only the colleague's version of decide() says.
PLANTED_LINE = '_at_least("min_recall_per_class", m.get("recall_macro")'
# One class the model misses a third of the time, a macro recall that hides it; production
# scores 1.0 on the held-out rows, so the regression tolerance is opened for the recall
# check to be the one that decides.
WEAK_CLASS = ("LABEL_NOISE=0.2",)
RECALL_GATE = ("GATE_MIN_RECALL_PER_CLASS=0.8", "GATE_MAX_REGRESSION=0.15")
# A model that misses one held-out row: macro F1 0.976, below a strict 0.99 (one miss is a
# 0.026 accuracy drop against production, hence the tolerance of 0.03).
ONE_MISS = ("TRAIN_SEED=1",)
STRICT_F1 = ("GATE_MIN_F1_MACRO=0.99", "GATE_MAX_REGRESSION=0.03")


def solve(lab):
    folder = lab.exercise_dir(5)
    decide = (lab.root / DECIDE).read_text(encoding="utf-8")
    if "min_f1_macro" in decide:
        print("  the fix and GATE_MIN_F1_MACRO are in already")
        make(lab, "train", *WEAK_CLASS)
        make(lab, "gate", *RECALL_GATE, expect_failure=True)
    else:
        if PLANTED_LINE not in decide:
            touched = apply_patch(lab, folder / PLANTED)
            commit(lab, "gatekeeper: simplify the recall check (the colleague's PR)", touched)
        # The miss: the colleague's gate lets the weak class through.
        make(lab, "train", *WEAK_CLASS)
        make(lab, "gate", *RECALL_GATE)
        touched = apply_patch(lab, folder / "solution" / "fix.patch")
        commit(lab, "gatekeeper: the weakest class decides again; GATE_MIN_F1_MACRO", touched)
        # The same candidate, judged by the fixed gate.
        make(lab, "gate", *RECALL_GATE, expect_failure=True)
    make(lab, "train", *ONE_MISS)
    make(lab, "gate", *STRICT_F1, expect_failure=True)
    make(lab, "train")
    make(lab, "gate")
