"""Content keys of node results: function identity and version, canonical literal inputs, upstream keys."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import inspect
import json
import math
import pathlib
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from lume_platform.graph.errors import GraphError
from lume_platform.graph.nodes import NodeFunction, Ref

# Bumped when the encoding below changes, so old entries are never read under new meanings.
KEY_SCHEME = "lume-graph-key/1"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def function_version(func: Callable[..., Any], explicit: str | None) -> str:
    """The version of a function in keys: the explicit one, else a hash of its source (or bytecode)."""
    if explicit is not None:
        return f"v:{explicit}"
    try:
        return "src:" + _sha256(inspect.getsource(func).encode())
    except (OSError, TypeError):
        # Functions defined in a REPL or built at run time have no source file; their bytecode and
        # constants still change when their behaviour does.
        code = getattr(func, "__code__", None)
        if code is None:
            raise GraphError(
                f"cannot derive a version for {func!r}: give it an explicit version with @node(version=...)"
            ) from None
        return "code:" + _sha256(code.co_code + repr(code.co_consts).encode())


def function_identity(function: NodeFunction[..., Any]) -> str:
    """``module:qualname@version``: what a node's key says about the code that computes it."""
    return f"{function.qualified_name}@{function_version(function.func, function.version)}"


def canonical(value: Any, resolve_ref: Callable[[Ref], Any] | None = None, where: str = "value") -> Any:
    """Encode ``value`` as a JSON structure that is equal exactly when the values are equal.

    Types are tagged so that ``1``, ``1.0``, ``True`` and ``"1"`` (or a list and a tuple) never share a
    key. ``resolve_ref`` encodes graph references (upstream keys, input values). Unknown types raise a
    GraphError naming ``where``: a key made from ``repr`` or pickle would be unstable or wrong.
    """

    def enc(item: Any, at: str) -> Any:
        if isinstance(item, Ref):
            if resolve_ref is None:
                raise GraphError(f"{at}: a graph reference cannot appear here")
            return ["ref", resolve_ref(item)]
        if item is None or isinstance(item, str):
            return item
        if isinstance(item, bool):
            return ["bool", item]
        if isinstance(item, enum.Enum):
            return ["enum", f"{type(item).__module__}:{type(item).__qualname__}", enc(item.value, at)]
        if isinstance(item, int):
            return ["int", str(item)]
        if isinstance(item, float):
            return ["float", repr(item) if math.isfinite(item) else str(item)]
        if isinstance(item, complex):
            return ["complex", repr(item)]
        if isinstance(item, (bytes, bytearray)):
            return ["bytes", _sha256(bytes(item))]
        if isinstance(item, tuple):
            return ["tuple", [enc(element, f"{at}[{i}]") for i, element in enumerate(item)]]
        if isinstance(item, list):
            return ["list", [enc(element, f"{at}[{i}]") for i, element in enumerate(item)]]
        if isinstance(item, Mapping):
            pairs = [[enc(key, f"{at} key"), enc(val, f"{at}[{key!r}]")] for key, val in item.items()]
            return ["dict", sorted(pairs, key=lambda pair: json.dumps(pair[0], sort_keys=True))]
        if isinstance(item, (set, frozenset)):
            members = [enc(element, f"{at} member") for element in item]
            return ["set", sorted(members, key=lambda member: json.dumps(member, sort_keys=True))]
        if isinstance(item, pathlib.PurePath):
            return ["path", item.as_posix()]
        if isinstance(item, (dt.datetime, dt.date, dt.time, dt.timedelta)):
            return [type(item).__name__, str(item)]
        if isinstance(item, uuid.UUID):
            return ["uuid", str(item)]
        if isinstance(item, NodeFunction):
            return ["function", function_identity(item)]
        if inspect.isfunction(item):
            return ["function", f"{item.__module__}:{item.__qualname__}@{function_version(item, None)}"]
        numpy_encoding = _encode_numpy(item, enc, at)
        if numpy_encoding is not None:
            return numpy_encoding
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            fields = {field.name: getattr(item, field.name) for field in dataclasses.fields(item)}
            return ["dataclass", f"{type(item).__module__}:{type(item).__qualname__}", enc(fields, at)]
        model_dump = getattr(item, "model_dump", None)
        if callable(model_dump):
            return ["model", f"{type(item).__module__}:{type(item).__qualname__}", enc(model_dump(), at)]
        raise GraphError(
            f"{at}: cannot derive a cache key from a {type(item).__module__}.{type(item).__qualname__}; "
            "pass JSON-like values, numpy arrays, dataclasses or pydantic models, or compute it in a node"
        )

    return enc(value, where)


def _encode_numpy(item: Any, enc: Callable[[Any, str], Any], at: str) -> Any | None:
    # numpy is imported lazily: graphs without arrays should not pay for it.
    module = type(item).__module__
    if not module.startswith("numpy"):
        return None
    import numpy as np

    if isinstance(item, np.ndarray):
        if item.dtype.hasobject:
            return ["ndarray-object", list(item.shape), enc(item.tolist(), at)]
        data = np.ascontiguousarray(item)
        return ["ndarray", data.dtype.str, list(data.shape), _sha256(data.tobytes())]
    if isinstance(item, np.generic):
        return ["numpy", item.dtype.str, enc(item.item(), at)]
    return None


def digest(structure: Any) -> str:
    """The sha256 of a canonical structure's compact, key-sorted JSON text."""
    text = json.dumps([KEY_SCHEME, structure], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _sha256(text.encode())


__all__ = ["KEY_SCHEME", "canonical", "digest", "function_identity", "function_version"]
