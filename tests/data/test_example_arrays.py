"""Fine-tuning examples as flat arrays: equal examples back, refusals of what cannot be stored."""

from __future__ import annotations

import numpy as np
import pytest

from lmtrain.data.example_arrays import NotStorable, from_arrays, to_arrays


def _round_trip(examples):
    arrays, fields = to_arrays(examples)
    return from_arrays(arrays, fields, len(examples))


def test_integers_and_arrays_come_back_equal_with_their_dtypes_and_field_order():
    examples = [
        {
            "input_ids": np.arange(n, dtype=np.int64),
            "mask": np.ones(n, np.float32),
            "label": n % 3,
            "w": -(2**40),
            "s": n / 7,
        }
        for n in (3, 0, 7, 1)
    ]
    back = _round_trip(examples)
    assert len(back) == 4
    for a, b in zip(examples, back):
        assert list(a) == list(b)
        for name in a:
            if isinstance(a[name], np.ndarray):
                assert b[name].dtype == a[name].dtype and np.array_equal(a[name], b[name])
            else:
                assert type(b[name]) is type(a[name]) and b[name] == a[name]


def test_no_examples_and_one_example():
    assert _round_trip([]) == []
    (one,) = _round_trip([{"input_ids": np.array([5, 6], np.int32)}])
    assert one["input_ids"].tolist() == [5, 6] and one["input_ids"].dtype == np.int32


@pytest.mark.parametrize(
    "examples,said",
    [
        ([{"a": True}], "holds a bool"),
        ([{"a": "text"}], "holds a str"),
        ([{"a": 1}, {"a": 1.5}], "holds a float among ints"),
        ([{"a": None}], "holds a NoneType"),
        ([{"a": np.zeros((2, 2))}], "2-D array"),
        ([{"a": np.array(["x"])}], "1-D array of <U1"),
        ([{"a": np.zeros(2, np.int64)}, {"a": np.zeros(2, np.int32)}], "arrays of different kinds"),
        ([{"a": 1}, {"b": 1}], "different fields"),
        ([{"a": 2**70}], "beyond 64 bits"),
    ],
)
def test_what_cannot_be_stored_is_refused_naming_the_field(examples, said):
    with pytest.raises(NotStorable, match=said):
        to_arrays(examples)


def test_arrays_that_do_not_hold_the_examples_are_refused():
    arrays, fields = to_arrays([{"ids": np.arange(4), "label": 1}, {"ids": np.arange(2), "label": 0}])
    with pytest.raises(ValueError, match="offsets do not cut 6 values into 3 examples"):
        from_arrays(arrays, fields, 3)
    with pytest.raises(ValueError, match=r"2 ints \(int64\) for 3 examples"):
        from_arrays(arrays, fields[1:], 3)
    damaged = dict(arrays, **{"ids.offsets": np.array([0, 7, 6])})
    with pytest.raises(ValueError, match="offsets do not cut 6 values into 2 examples"):
        from_arrays(damaged, fields, 2)
    with pytest.raises(ValueError, match="unknown kind"):
        from_arrays(arrays, [("ids", "pickles")], 2)
