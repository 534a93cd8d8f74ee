import numpy as np
import pytest

from serving.validation import RequestError, parse

F = ("a", "b", "c")
T = ("double", "double", "long")


def test_objects_and_lists_give_the_same_rows():
    arr = parse({"instances": [{"c": 3, "a": 1.5, "b": 2}, [4, 5, 6]]}, F, T, 10)
    assert arr.dtype == np.float64
    assert arr.tolist() == [[1.5, 2.0, 3.0], [4.0, 5.0, 6.0]]


def test_single_instance():
    assert parse({"instance": {"a": 1, "b": 2, "c": 3}}, F, T, 10).shape == (1, 3)


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ([1, 2, 3], 400, "must be a JSON object"),
        (None, 400, "must be a JSON object"),
        ({}, 400, "exactly one key"),
        ({"rows": []}, 400, "exactly one key"),
        ({"instances": [], "extra": 1}, 400, "exactly one key"),
        ({"instances": {"a": 1}}, 400, "must be a list"),
        ({"instances": []}, 400, "is empty"),
        ({"instances": [[1, 2, 3]] * 11}, 413, "11 rows exceeds the limit of 10"),
        ({"instances": [{"a": 1, "b": 2}]}, 422, r"row 0: missing features \['c'\]"),
        ({"instances": [{"a": 1, "b": 2, "c": 3, "d": 4}]}, 422, r"unknown features \['d'\]"),
        ({"instances": [{"a": 1, "b": 2, "x": 3}]}, 422, r"missing features \['c'\]; unknown"),
        ({"instances": [[1, 2]]}, 422, "expected 3 values"),
        ({"instances": [[1, 2, 3], "row"]}, 422, "row 1: must be an object"),
        ({"instances": [[1, "2", 3]]}, 422, "feature 'b' must be a number, got str"),
        ({"instances": [[1, None, 3]]}, 422, "feature 'b' must be a number, got NoneType"),
        ({"instances": [[True, 2, 3]]}, 422, "feature 'a' must be a number, got bool"),
        ({"instances": [[1, [2], 3]]}, 422, "got list"),
        ({"instances": [[1, float("nan"), 3]]}, 422, "feature 'b' must be finite, got nan"),
        ({"instances": [[float("inf"), 2, 3]]}, 422, "feature 'a' must be finite"),
        ({"instances": [[1, 2, 10**400]]}, 422, "too large"),
        ({"instances": [[1, 2, 3.5]]}, 422, "feature 'c' must be an integer"),
    ],
)
def test_rejections_name_the_problem(payload, status, message):
    with pytest.raises(RequestError, match=message) as info:
        parse(payload, F, T, 10)
    assert info.value.status == status


def test_integral_float_is_accepted_for_integer_columns():
    assert parse({"instances": [[1, 2, 3.0]]}, F, T, 10)[0, 2] == 3.0
