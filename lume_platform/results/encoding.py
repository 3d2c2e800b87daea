"""Lossless, pickle-free encoding of result values (numpy arrays, pandas objects, bytes) as JSON data.

Encoded values are plain JSON types (dict, list, str, int, float, bool, None), so the same document is
stored by MongoDB and by the embedded SQLite backend, and hashed canonically. Values JSON cannot hold
become a tagged object ``{"__lume_type__": <tag>, ...}``; the tag key is reserved in user data. A list
directly inside a list is tagged too, because FerretDB does not store nested arrays.
"""

from __future__ import annotations

import base64
import math
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from lume_platform.errors import ResultEncodingError

TYPE_TAG = "__lume_type__"

# BSON integers are signed 64-bit: refuse larger ones on every backend so that both behave alike.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _pandas() -> Any:
    """Return the pandas module if the caller has imported it; pandas is optional for the platform."""
    return sys.modules.get("pandas")


class _Unencodable(Exception):
    """Raised deep inside the encoder; ``path`` grows on the way out so the message names the value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise _Unencodable(f"keys must be strings, got {type(key).__name__} {key!r}")
    # Dots would make dotted filter paths ambiguous and '$' keys are operators to MongoDB.
    if not key or key[0] == "$" or "." in key or "\x00" in key:
        raise _Unencodable(f"key {key!r} must be non-empty, not start with '$', and contain no '.' or NUL")
    if key == TYPE_TAG:
        raise _Unencodable(f"key {TYPE_TAG!r} is reserved for encoded values")
    return key


def _encode_array(array: np.ndarray) -> dict[str, Any]:
    if array.dtype.hasobject:
        # An object array can only round-trip through pickle; its elements can go in a list instead.
        raise _Unencodable("numpy arrays of dtype object cannot be stored without pickle; "
                           "convert to a list or a numeric/string dtype")
    return {
        TYPE_TAG: "ndarray",
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "data": base64.b64encode(array.tobytes(order="C")).decode("ascii"),
    }


def _encode_series_values(series: Any) -> dict[str, Any]:
    values = series.to_numpy()
    if values.dtype.hasobject:
        return {"dtype": str(series.dtype), "values": _encode(values.tolist())}
    return {"dtype": str(series.dtype), "values": _encode_array(values)}


def _encode_index(index: Any) -> dict[str, Any]:
    if index.nlevels > 1:
        raise _Unencodable("a MultiIndex cannot be stored; call reset_index() first")
    return {**_encode_series_values(index.to_series()), "name": _encode(index.name)}


def _encode_pandas(value: Any, pandas: Any) -> dict[str, Any]:
    if isinstance(value, pandas.DataFrame):
        return {
            TYPE_TAG: "dataframe",
            "index": _encode_index(value.index),
            "columns": _encode_index(value.columns),
            # Positional, so that duplicate column names survive.
            "data": [_encode_series_values(value.iloc[:, i]) for i in range(value.shape[1])],
        }
    return {
        TYPE_TAG: "series",
        "name": _encode(value.name),
        "index": _encode_index(value.index),
        "values": _encode_series_values(value),
    }


def _encode_mapping(value: Mapping[Any, Any]) -> dict[str, Any]:
    encoded = {}
    for key, item in value.items():
        try:
            encoded[_check_key(key)] = _encode(item)
        except _Unencodable as error:
            error.path.insert(0, f".{key}")
            raise
    return encoded


def _encode_sequence(value: list[Any] | tuple[Any, ...]) -> list[Any]:
    encoded = []
    for index, item in enumerate(value):
        try:
            if isinstance(item, list | tuple):
                # FerretDB refuses arrays directly inside arrays (and MongoDB paths never walk into them):
                # an inner list becomes a tagged object, so that matrices store on every backend.
                encoded.append({TYPE_TAG: "list", "items": _encode_sequence(item)})
            else:
                encoded.append(_encode(item))
        except _Unencodable as error:
            error.path.insert(0, f"[{index}]")
            raise
    return encoded


def _encode(value: Any) -> Any:
    # Most result values are plain scalars, strings and small dicts: test those first.
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise _Unencodable(f"integer {value} does not fit in 64 bits")
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return {TYPE_TAG: "float", "value": repr(float(value))}
    if isinstance(value, Mapping):
        return _encode_mapping(value)
    if isinstance(value, list | tuple):
        return _encode_sequence(value)
    if isinstance(value, np.ndarray):
        return _encode_array(value)
    if isinstance(value, np.generic):
        return _encode(value.item())
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return {TYPE_TAG: "datetime", "iso": moment.astimezone(UTC).isoformat()}
    if isinstance(value, date):
        return {TYPE_TAG: "date", "iso": value.isoformat()}
    if isinstance(value, bytes | bytearray):
        return {TYPE_TAG: "bytes", "base64": base64.b64encode(bytes(value)).decode("ascii")}
    pandas = _pandas()
    if pandas is not None and isinstance(value, pandas.DataFrame | pandas.Series):
        return _encode_pandas(value, pandas)
    raise _Unencodable(f"cannot store a value of type {type(value).__module__}.{type(value).__qualname__} "
                       "(supported: JSON types, numpy arrays and scalars, pandas DataFrame/Series, "
                       "datetime, date, bytes)")


def encode_value(value: Any, where: str = "value") -> Any:
    """Encode ``value`` as JSON data; ``where`` names the value in error messages.

    Raises
    ------
    ResultEncodingError
        Naming the path of the first value with no lossless pickle-free encoding.
    """
    try:
        return _encode(value)
    except _Unencodable as error:
        raise ResultEncodingError(f"{where}{''.join(error.path)}: {error.reason}") from None


def _decode_array(encoded: Mapping[str, Any]) -> np.ndarray:
    raw = base64.b64decode(encoded["data"])
    return np.frombuffer(raw, dtype=np.dtype(encoded["dtype"])).reshape(encoded["shape"]).copy()


def _decode_series_values(encoded: Mapping[str, Any]) -> Any:
    values = encoded["values"]
    if isinstance(values, Mapping):
        return _decode_array(values)
    return [decode_value(v) for v in values]


def _require_pandas(tag: str) -> Any:
    try:
        import pandas
    except ImportError as error:
        message = f"a stored {tag} needs pandas to be read back: pip install pandas"
        raise ResultEncodingError(message) from error
    return pandas


def _decode_index(encoded: Mapping[str, Any], pandas: Any) -> Any:
    return pandas.Index(_decode_series_values(encoded), dtype=encoded["dtype"],
                        name=decode_value(encoded.get("name")))


def _decode_tagged(encoded: Mapping[str, Any]) -> Any:
    tag = encoded[TYPE_TAG]
    if tag == "ndarray":
        return _decode_array(encoded)
    if tag == "float":
        return float(encoded["value"])
    if tag == "datetime":
        return datetime.fromisoformat(encoded["iso"])
    if tag == "date":
        return date.fromisoformat(encoded["iso"])
    if tag == "bytes":
        return base64.b64decode(encoded["base64"])
    if tag == "list":
        return [decode_value(item) for item in encoded["items"]]
    if tag == "dataframe":
        pandas = _require_pandas(tag)
        index = _decode_index(encoded["index"], pandas)
        columns = [pandas.Series(_decode_series_values(column), dtype=column["dtype"], index=index)
                   for column in encoded["data"]]
        frame = pandas.DataFrame(dict(enumerate(columns)), index=index)
        frame.columns = _decode_index(encoded["columns"], pandas)
        return frame
    if tag == "series":
        pandas = _require_pandas(tag)
        values = encoded["values"]
        index = _decode_index(encoded["index"], pandas)
        return pandas.Series(_decode_series_values(values), dtype=values["dtype"], index=index,
                             name=decode_value(encoded["name"]))
    raise ResultEncodingError(f"unknown encoded value type {tag!r}: written by a newer LUME platform?")


def decode_value(value: Any) -> Any:
    """Invert :func:`encode_value`."""
    if isinstance(value, dict):
        if TYPE_TAG in value:
            return _decode_tagged(value)
        return {k: decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value
