"""Result values survive encoding to JSON and back, without pickle; unstorable values are named."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lume_platform.errors import ResultEncodingError
from lume_platform.results.encoding import TYPE_TAG, decode_value, encode_value


def round_trip(value: Any) -> Any:
    """Encode, pass through strict JSON text (what both backends store), decode."""
    text = json.dumps(encode_value(value), allow_nan=False)
    assert "pickle" not in text
    return decode_value(json.loads(text))


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.arange(5, dtype=np.int8),
        np.array([1 + 2j, 3 - 4j], dtype=np.complex128),
        np.array([True, False]),
        np.array(["ab", "cde"]),
        np.array(3.5, dtype=np.float32),
        np.zeros((0, 3)),
        np.arange(20, dtype=">i4").reshape(4, 5)[:, ::2],  # big-endian, not contiguous
        np.array(["2024-01-01T00:00:00", "2024-06-01T12:30:00"], dtype="datetime64[s]"),
    ],
    ids=["float2d", "int8", "complex", "bool", "unicode", "0d", "empty", "strided-bigendian", "datetime64"],
)
def test_numpy_arrays_round_trip_with_dtype_and_shape(array: np.ndarray) -> None:
    restored = round_trip({"a": array})["a"]
    assert isinstance(restored, np.ndarray)
    assert restored.dtype == array.dtype
    assert restored.shape == array.shape
    np.testing.assert_array_equal(restored, array)


def test_decoded_arrays_are_writable() -> None:
    restored = round_trip(np.arange(3))
    restored[0] = 7
    assert restored[0] == 7


def test_numpy_scalars_become_python_numbers() -> None:
    encoded = encode_value({"f": np.float32(1.5), "i": np.int64(-3), "b": np.bool_(True)})
    assert encoded == {"f": 1.5, "i": -3, "b": True}
    assert type(encoded["i"]) is int and type(encoded["b"]) is bool


def test_dataframe_round_trips_with_dtypes_index_and_columns() -> None:
    frame = pd.DataFrame(
        {
            "energy": [1.0, np.nan, 3.5],
            "count": np.array([1, 2, 3], dtype=np.int32),
            "label": ["a", "b", "c"],
            "when": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
            "flag": [True, False, True],
        },
        index=pd.Index([10, 20, 30], name="shot"),
    )
    pd.testing.assert_frame_equal(round_trip(frame), frame)


def test_dataframe_with_duplicate_and_integer_column_names() -> None:
    frame = pd.DataFrame([[1, 2, 3]], columns=["a", "a", 7])
    pd.testing.assert_frame_equal(round_trip(frame), frame)


def test_series_round_trips_with_name_and_index() -> None:
    series = pd.Series([0.5, 1.5], index=["x", "y"], name="gain")
    pd.testing.assert_series_equal(round_trip(series), series)


def test_multiindex_is_refused_with_a_hint() -> None:
    frame = pd.DataFrame({"v": [1, 2]}, index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)]))
    with pytest.raises(ResultEncodingError, match=r"outputs\.table: a MultiIndex .*reset_index"):
        encode_value({"table": frame}, "outputs")


def test_non_finite_floats_survive_strict_json() -> None:
    restored = round_trip([float("nan"), float("inf"), float("-inf"), 1.0])
    assert np.isnan(restored[0]) and restored[1:] == [float("inf"), float("-inf"), 1.0]


def test_datetimes_become_aware_utc_and_dates_stay_dates() -> None:
    eastern = timezone(timedelta(hours=-5))
    restored = round_trip({"aware": datetime(2024, 1, 1, 7, 0, tzinfo=eastern),
                           "naive": datetime(2024, 1, 1, 12, 0), "day": date(2024, 2, 29)})
    assert restored["aware"] == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert restored["naive"] == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert restored["day"] == date(2024, 2, 29)


def test_bytes_and_nested_structures_round_trip() -> None:
    value = {"blob": b"\x00\xffdata", "nested": {"list": [1, "two", None, {"deep": np.arange(2)}]},
             "tuple": (1, 2)}
    restored = round_trip(value)
    assert restored["blob"] == b"\x00\xffdata"
    assert restored["tuple"] == [1, 2]
    np.testing.assert_array_equal(restored["nested"]["list"][3]["deep"], np.arange(2))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": [1, {"b": np.array([object()])}]}, r"inputs\.a\[1\]\.b: numpy arrays of dtype object"),
        ({"a": {1: 2}}, r"inputs\.a.*keys must be strings"),
        ({"x.y": 1}, r"key 'x\.y' must .*no '\.'"),
        ({"$gt": 1}, r"key '\$gt' must .*not start with '\$'"),
        ({TYPE_TAG: "ndarray"}, "reserved"),
        ({"big": 2**64}, r"inputs\.big: integer .* 64 bits"),
        ({"thing": object()}, r"inputs\.thing: cannot store a value of type builtins\.object"),
        ({"s": {1, 2}}, r"inputs\.s: cannot store a value of type builtins\.set"),
    ],
    ids=["object-array", "int-key", "dotted-key", "dollar-key", "reserved-key", "huge-int", "object", "set"],
)
def test_unstorable_values_are_refused_naming_where(value: Any, message: str) -> None:
    with pytest.raises(ResultEncodingError, match=message):
        encode_value(value, "inputs")


def test_nested_lists_round_trip_and_are_never_stored_as_nested_arrays() -> None:
    matrix = [[1, 2], [3, [4, 5]], []]
    encoded = encode_value(matrix)
    assert all(not isinstance(item, list) for item in encoded)
    assert round_trip({"m": matrix}) == {"m": [[1, 2], [3, [4, 5]], []]}
    assert round_trip({"t": ((1, 2), (3, 4))}) == {"t": [[1, 2], [3, 4]]}


def test_unknown_tag_is_a_clear_error() -> None:
    with pytest.raises(ResultEncodingError, match="unknown encoded value type 'hologram'"):
        decode_value({TYPE_TAG: "hologram"})
