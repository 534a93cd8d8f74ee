import pandas as pd
import pytest

from trainer import data, shift
from trainer.shift import ShiftError


def test_parses_additions_subtractions_and_scales():
    assert shift.parse("petal length (cm)=+1.5, sepal width (cm)=-0.5; x=*1.2") == (
        ("petal length (cm)", "+", 1.5),
        ("sepal width (cm)", "+", -0.5),
        ("x", "*", 1.2),
    )
    assert shift.parse("") == shift.parse("  ") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("petal length (cm)", "write FEATURE=\\+N"),
        ("petal length (cm)=1.5", "write FEATURE=\\+N"),
        ("x=+abc", "write FEATURE"),
        ("x=+1e999", "finite"),
        ("x=+1.2.3", "not a number"),
        ("x=+1, x=*2", "shifted twice"),
    ],
)
def test_refuses_what_it_cannot_read_saying_which_part(text, message):
    with pytest.raises(ShiftError, match=message):
        shift.parse(text)


def test_the_canonical_text_reads_back_as_the_same_shift():
    for text in ("a=+1.5", "a=-0.25, b=*3", "petal length (cm)=+1e-3"):
        entries = shift.parse(text)
        assert shift.parse(shift.describe(entries)) == entries


def test_apply_shifts_only_the_named_columns_of_a_copy():
    X = pd.DataFrame({"a": [1.0, 2.0], "b": [10.0, 20.0]})
    out = shift.apply(X, shift.parse("a=+1.5, b=*0.5"))
    assert out["a"].tolist() == [2.5, 3.5] and out["b"].tolist() == [5.0, 10.0]
    assert X["a"].tolist() == [1.0, 2.0]


def test_apply_names_the_features_when_one_is_unknown():
    X = data.load("iris").X
    with pytest.raises(ShiftError, match="no feature named 'petal size'; the features are: sepal"):
        shift.apply(X, shift.parse("petal size=+1"))
