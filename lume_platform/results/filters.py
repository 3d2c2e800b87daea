"""The safe filter language of the results store: validation, translation to MongoDB, evaluation in Python.

A filter is a MongoDB-style document restricted to operators that neither run code nor scan without bound:
equality, ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$in``, ``$nin``, ``$exists``,
``$and`` and ``$or``, on dotted field paths. Operands are scalars (``None``, bool, number, string,
datetime); comparing whole sub-documents or arrays is not supported. Every filter is parsed into a small
tree first, so nothing reaches a backend unvalidated: the MongoDB backend gets a filter rebuilt from the
tree, the embedded backend evaluates the tree with MongoDB's matching rules (a condition on a path holds
if it holds for the value there or, when that value is an array, for one of its elements; ``None`` also
matches a missing field; ``$gt``-style comparisons only compare values of the same kind).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lume_platform.errors import ForbiddenQueryError, QueryError
from lume_platform.results.models import to_utc_milliseconds

COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")
RANGE_COMPARISONS = ("$gt", "$gte", "$lt", "$lte")
LOGICAL = ("$and", "$or")

# Why each well-known operator is refused; any other `$` name is refused as unknown.
FORBIDDEN_REASONS = {
    "$where": "it runs JavaScript on the server",
    "$function": "it runs JavaScript on the server",
    "$accumulator": "it runs JavaScript on the server",
    "$expr": "it evaluates aggregation expressions, which can run code and defeat indexes",
    "$regex": "an unanchored pattern scans every document without bound",
    "$text": "full-text search needs a text index the store does not keep",
    "$jsonSchema": "schema validation scans every document",
    "$elemMatch": "it is not part of the safe filter language; use dotted paths",
    "$not": "negation of arbitrary expressions is not part of the safe filter language; use $ne or $nin",
    "$nor": "negation of arbitrary expressions is not part of the safe filter language; use $ne or $nin",
    "$mod": "it is not part of the safe filter language",
    "$size": "it is not part of the safe filter language",
    "$all": "it is not part of the safe filter language; use $and of equalities",
    "$type": "it is not part of the safe filter language",
    "$comment": "it is not part of the safe filter language",
}

# The stored document's fields; only inputs and outputs have sub-fields.
SCALAR_FIELDS = ("flow_name", "flow_run_id", "result_type", "unique_hash", "created")
QUERYABLE_FIELDS = (*SCALAR_FIELDS, "inputs", "outputs", "tags")
NESTED_FIELDS = ("inputs", "outputs")

MAX_DEPTH = 32
MAX_IN_VALUES = 10_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Condition:
    """``path`` compared with ``operand`` by ``operator`` (one of :data:`COMPARISONS`)."""

    path: tuple[str, ...]
    operator: str
    operand: Any

    @property
    def field(self) -> str:
        """The dotted path."""
        return ".".join(self.path)


@dataclass(frozen=True)
class AllOf:
    """Every child holds (``$and``; also a filter document with several keys)."""

    children: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one child holds (``$or``)."""

    children: tuple[Node, ...]


Node = Condition | AllOf | AnyOf


def _refuse(operator: str) -> ForbiddenQueryError:
    reason = FORBIDDEN_REASONS.get(
        operator, f"unknown operator; allowed: {', '.join(COMPARISONS + LOGICAL)}"
    )
    return ForbiddenQueryError(operator, reason)


def parse_path(field: object) -> tuple[str, ...]:
    """Validate a dotted field path such as ``outputs.energy`` and split it.

    Raises
    ------
    QueryError
        If the path is empty, has an empty or ``$`` segment, or names no field of a stored result.
    """
    if not isinstance(field, str) or not field:
        raise QueryError(f"field names must be non-empty strings, got {field!r}")
    path = tuple(field.split("."))
    for segment in path:
        if not segment:
            raise QueryError(f"field {field!r} has an empty path segment")
        if segment.startswith("$"):
            raise _refuse(segment)
    if path[0] not in QUERYABLE_FIELDS:
        known = ", ".join(QUERYABLE_FIELDS)
        raise QueryError(f"unknown field {path[0]!r} in {field!r}; results have: {known}")
    if len(path) > 1 and path[0] not in NESTED_FIELDS:
        raise QueryError(f"field {path[0]!r} has no sub-fields (in {field!r})")
    return path


def _scalar(value: Any, field: str, operator: str, *, allow_none: bool = True) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise QueryError(f"{field} {operator}: integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QueryError(f"{field} {operator}: {value} cannot be compared")
        return value
    if isinstance(value, datetime):
        return to_utc_milliseconds(value)
    if isinstance(value, Mapping | list | tuple):
        raise QueryError(f"{field} {operator}: comparing whole documents or arrays is not supported; "
                         "compare single fields with dotted paths, or list values with $in")
    raise QueryError(f"{field} {operator}: cannot compare with a {type(value).__name__}")


def _created_operand(value: Any, field: str, operator: str) -> Any:
    # The CLI and the dashboard pass times as ISO-8601 text; compare them as times.
    if isinstance(value, str):
        try:
            return to_utc_milliseconds(datetime.fromisoformat(value))
        except ValueError as error:
            raise QueryError(f"{field} {operator}: {value!r} is not an ISO-8601 time") from error
    return value


def _operand(path: tuple[str, ...], operator: str, value: Any) -> Any:
    field = ".".join(path)
    if operator == "$exists":
        if not isinstance(value, bool):
            raise QueryError(f"{field} $exists: expects true or false, got {value!r}")
        return value
    if operator in ("$in", "$nin"):
        if not isinstance(value, list | tuple):
            raise QueryError(f"{field} {operator}: expects a list, got {type(value).__name__}")
        if len(value) > MAX_IN_VALUES:
            raise QueryError(f"{field} {operator}: at most {MAX_IN_VALUES} values, got {len(value)}")
        if path == ("created",):
            value = [_created_operand(v, field, operator) for v in value]
        return tuple(_scalar(v, field, operator) for v in value)
    if path == ("created",):
        value = _created_operand(value, field, operator)
    if operator in RANGE_COMPARISONS:
        operand = _scalar(value, field, operator, allow_none=False)
        if isinstance(operand, bool):
            raise QueryError(f"{field} {operator}: expects a number, string or time, got {value!r}")
        return operand
    return _scalar(value, field, operator)


def _parse_field(field: str, value: Any) -> list[Node]:
    path = parse_path(field)
    if isinstance(value, Mapping) and value and all(isinstance(k, str) and k.startswith("$") for k in value):
        conditions: list[Node] = []
        for operator, operand in value.items():
            if operator not in COMPARISONS:
                raise _refuse(operator)
            conditions.append(Condition(path, operator, _operand(path, operator, operand)))
        return conditions
    if isinstance(value, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in value):
        raise QueryError(f"{field}: do not mix operators and plain fields in one condition")
    return [Condition(path, "$eq", _operand(path, "$eq", value))]


def _parse_document(document: Any, depth: int) -> AllOf:
    if depth > MAX_DEPTH:
        raise QueryError(f"filter nests deeper than {MAX_DEPTH} levels")
    if not isinstance(document, Mapping):
        raise QueryError(f"a filter must be a mapping of fields to conditions, got {type(document).__name__}")
    children: list[Node] = []
    for key, value in document.items():
        if not isinstance(key, str):
            raise QueryError(f"filter keys must be strings, got {key!r}")
        if key in LOGICAL:
            if not isinstance(value, list | tuple) or not value:
                raise QueryError(f"{key} expects a non-empty list of filters")
            parts = tuple(_parse_document(part, depth + 1) for part in value)
            children.append(AllOf(parts) if key == "$and" else AnyOf(parts))
        elif key.startswith("$"):
            raise _refuse(key)
        else:
            children.extend(_parse_field(key, value))
    return AllOf(tuple(children))


def parse_filter(document: Mapping[str, Any] | None) -> AllOf:
    """Validate a filter document and return its tree; ``None`` or ``{}`` matches everything.

    Raises
    ------
    ForbiddenQueryError
        Naming the first operator outside the safe language.
    QueryError
        For any other malformed part (unknown field, operand of the wrong kind, too deep…).
    """
    return _parse_document({} if document is None else document, 0)


def to_mongo(node: Node, renamed: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A MongoDB filter rebuilt from a validated tree (never the caller's document as given).

    ``renamed`` maps stored field names to the backend's (the MongoDB backend keeps the hash in ``_id``).
    Equality is written in the plain ``{field: value}`` form, the one servers most readily serve from an
    index (FerretDB's SQLite backend uses its ``_id`` index for nothing else).
    """
    renamed = renamed or {}
    if isinstance(node, Condition):
        field = renamed.get(node.field, node.field)
        operand = list(node.operand) if isinstance(node.operand, tuple) else node.operand
        if node.operator == "$eq":
            return {field: operand}
        return {field: {node.operator: operand}}
    parts = [to_mongo(child, renamed) for child in node.children]
    if isinstance(node, AnyOf):
        return {"$or": parts}
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$and": parts}


class _Missing:
    """A path that leads nowhere (distinct from a stored ``None``)."""


MISSING = _Missing()


def resolve(document: Any, path: Sequence[str]) -> Iterator[Any]:
    """Every value a dotted path reaches, MongoDB-style: paths walk into the elements of arrays."""
    if not path:
        yield document
        return
    head, rest = path[0], path[1:]
    if isinstance(document, dict):
        yield from resolve(document[head], rest) if head in document else iter((MISSING,))
    elif isinstance(document, list):
        # As FerretDB does: elements without the field are skipped; the path is missing only if no
        # element has it (MongoDB itself may also count such elements as null).
        found: list[Any] = []
        if head.isdigit() and int(head) < len(document):
            found.extend(v for v in resolve(document[int(head)], rest) if v is not MISSING)
        for element in document:
            # Paths walk into sub-documents of an array, never into nested arrays.
            if isinstance(element, dict):
                found.extend(v for v in resolve(element, path) if v is not MISSING)
        yield from found or (MISSING,)
    else:
        yield MISSING


def _kind(value: Any) -> str | None:
    """The comparison bracket of a value: range operators only compare values of one kind."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "datetime"
    return None


def _equal(stored: Any, operand: Any) -> bool:
    if operand is None:
        return stored is None or stored is MISSING
    kind = _kind(operand)
    return kind is not None and _kind(stored) == kind and stored == operand


def _leaves(candidates: Iterator[Any]) -> Iterator[Any]:
    # A terminal array matches through itself (never, for scalar operands) or through its elements.
    for candidate in candidates:
        yield candidate
        if isinstance(candidate, list):
            yield from candidate


def _compare(stored: Any, operator: str, operand: Any) -> bool:
    kind = _kind(operand)
    if kind is None or _kind(stored) != kind:
        return False
    if operator == "$gt":
        return bool(stored > operand)
    if operator == "$gte":
        return bool(stored >= operand)
    if operator == "$lt":
        return bool(stored < operand)
    return bool(stored <= operand)


def _condition_holds(condition: Condition, document: Mapping[str, Any]) -> bool:
    operator, operand = condition.operator, condition.operand
    values = list(_leaves(resolve(document, condition.path)))
    if operator == "$eq":
        return any(_equal(v, operand) for v in values)
    if operator == "$ne":
        return not any(_equal(v, operand) for v in values)
    if operator == "$in":
        return any(_equal(v, o) for v in values for o in operand)
    if operator == "$nin":
        return not any(_equal(v, o) for v in values for o in operand)
    if operator == "$exists":
        return any(v is not MISSING for v in values) == operand
    return any(_compare(v, operator, operand) for v in values)


def matches(node: Node, document: Mapping[str, Any]) -> bool:
    """Whether a stored document (``created`` as a datetime) satisfies a validated filter tree."""
    if isinstance(node, Condition):
        return _condition_holds(node, document)
    if isinstance(node, AnyOf):
        return any(matches(child, document) for child in node.children)
    return all(matches(child, document) for child in node.children)


SortSpec = str | Sequence[str | tuple[str, int]] | None


def parse_sort(sort: SortSpec) -> list[tuple[str, int]]:
    """Normalise ``"created"``, ``"-created"`` or ``[("created", -1), "flow_name"]`` to (field, ±1) pairs."""
    if sort is None:
        return []
    items: Sequence[str | tuple[str, int]] = [sort] if isinstance(sort, str) else sort
    keys: list[tuple[str, int]] = []
    for item in items:
        if isinstance(item, str):
            field, direction = (item[1:], -1) if item.startswith("-") else (item, 1)
        elif isinstance(item, tuple | list) and len(item) == 2:
            field, direction = item[0], item[1]
        else:
            raise QueryError(f"sort keys are 'field', '-field' or (field, 1|-1), got {item!r}")
        if direction not in (1, -1) or isinstance(direction, bool):
            raise QueryError(f"sort direction for {field!r} must be 1 or -1, got {direction!r}")
        parse_path(field)
        keys.append((field, direction))
    return keys


# MongoDB's order of kinds when sorting mixed values.
_KIND_RANK = {None: 1, "number": 2, "string": 3, "object": 4, "array": 5, "bool": 8, "datetime": 9}


def _sort_rank(value: Any) -> tuple[int, Any]:
    if value is None or value is MISSING:
        return (_KIND_RANK[None], 0)
    if isinstance(value, dict):
        return (_KIND_RANK["object"], repr(sorted(value.items(), key=lambda kv: kv[0])))
    if isinstance(value, list):
        return (_KIND_RANK["array"], repr(value))
    return (_KIND_RANK[_kind(value)], value)


def sort_key(document: Mapping[str, Any], field: str, direction: int) -> tuple[int, Any]:
    """MongoDB's sort key: for arrays, the smallest element ascending and the largest descending."""
    values = list(resolve(document, field.split(".")))
    flat = [e for v in values for e in (v if isinstance(v, list) and v else [v])]
    ranks = [_sort_rank(v) for v in flat]
    return min(ranks) if direction == 1 else max(ranks)


def distinct_key(value: Any) -> str:
    """Identity of a value for ``distinct``: numbers by value (1 == 1.0), others by kind and content."""
    kind = _kind(value)
    if kind == "number":
        number = int(value) if isinstance(value, float) and value.is_integer() else value
        return f"number:{number!r}"
    if kind is not None:
        return f"{kind}:{value!r}"
    return f"{type(value).__name__}:{value!r}"
