"""A new model family: an SVC pipeline added to the grid (it wins on cv_f1_macro), the
test that pins the families updated, committed, trained, gated and promoted to staging."""

from pathlib import Path

from labctl.book import answers
from labctl.book.solving import apply_patch, commit, make

PATCH = Path(__file__).parent / "solution" / "svc.patch"


def solve(lab):
    touched = apply_patch(lab, PATCH)
    commit(lab, "Add an SVC pipeline to the training grid", touched)
    make(lab, "train")
    make(lab, "gate")
    make(lab, "promote", "TO=staging")
    served = lab.served_settled("staging", lab.aliases()["staging"])
    family = lab.version(served["version"])["tags"].get("model_family", "")
    values = {"family": family, "predict_path": served["predict_path"]}
    answers.update(lab.root, "ex11", values)
    for key, value in values.items():
        print(f"  {key} = {value!r}")
