"""Training and the gate read a shift the same way (the packages share no code)."""

import inspect

import pytest

from gatekeeper import shift as gate_shift
from trainer import data
from trainer import shift as train_shift

CASES = ["", "petal length (cm)=+1.5", "petal length (cm)=-0.5; sepal width (cm)=*1.2"]


def test_the_two_copies_are_the_same_code():
    for name in ("parse", "describe", "apply"):
        assert inspect.getsource(getattr(train_shift, name)) == inspect.getsource(
            getattr(gate_shift, name)
        ), f"{name} differs between training/trainer/shift.py and gatekeeper/gatekeeper/shift.py"


@pytest.mark.parametrize("text", CASES)
def test_both_parse_and_apply_a_shift_alike(text):
    X = data.load("iris").X
    assert train_shift.parse(text) == gate_shift.parse(text)
    entries = train_shift.parse(text)
    assert train_shift.apply(X, entries).equals(gate_shift.apply(X, entries))
