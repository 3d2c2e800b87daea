"""The safe filter language: what it refuses, how it rebuilds MongoDB filters, how it matches in Python."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from lume_platform.errors import ForbiddenQueryError, QueryError
from lume_platform.results.filters import (
    FORBIDDEN_REASONS,
    matches,
    parse_filter,
    parse_sort,
    sort_key,
    to_mongo,
)

# Every well-known operator that runs code or scans without bound, plus made-up ones.
FORBIDDEN = [*FORBIDDEN_REASONS, "$foo", "$lookup", "$set"]


@pytest.mark.parametrize("operator", FORBIDDEN)
def test_forbidden_operator_at_top_level_is_named(operator: str) -> None:
    with pytest.raises(ForbiddenQueryError, match=f"'\\{operator}'") as caught:
        parse_filter({operator: "anything"})
    assert caught.value.operator == operator


@pytest.mark.parametrize("operator", FORBIDDEN)
def test_forbidden_operator_on_a_field_is_named(operator: str) -> None:
    with pytest.raises(ForbiddenQueryError) as caught:
        parse_filter({"outputs.energy": {operator: 1}})
    assert caught.value.operator == operator


@pytest.mark.parametrize("operator", ["$where", "$function", "$expr", "$regex"])
def test_forbidden_operator_nested_in_logic_is_found(operator: str) -> None:
    nested = {"$and": [{"flow_name": "f"}, {"$or": [{"inputs.x": 1}, {"inputs.y": {operator: "."}}]}]}
    with pytest.raises(ForbiddenQueryError) as caught:
        parse_filter(nested)
    assert caught.value.operator == operator


def test_where_with_javascript_reason() -> None:
    with pytest.raises(ForbiddenQueryError, match="runs JavaScript"):
        parse_filter({"$where": "sleep(10000)"})


def test_dollar_segment_in_a_path_is_refused() -> None:
    with pytest.raises(ForbiddenQueryError, match=r"'\$where'"):
        parse_filter({"inputs.$where": 1})


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"flow_name.x": "f"}, "has no sub-fields"),
        ({"inputs..x": 1}, "empty path segment"),
        ({"inputs": {"a": 1}}, "comparing whole documents"),
        ({"outputs.y": [1, 2]}, "comparing whole documents or arrays"),
        ({"outputs.y": {"$in": 3}}, r"\$in: expects a list"),
        ({"outputs.y": {"$gt": True}}, r"\$gt: expects a number, string or time"),
        ({"outputs.y": {"$gt": None}}, r"\$gt: cannot compare with a NoneType"),
        ({"outputs.y": {"$exists": 1}}, r"\$exists: expects true or false"),
        ({"outputs.y": {"$eq": float("nan")}}, "cannot be compared"),
        ({"outputs.y": {"$eq": 2**70}}, "64 bits"),
        ({"outputs.y": {"$gt": 1, "z": 2}}, "do not mix operators"),
        ({"$and": []}, r"\$and expects a non-empty list"),
        ({"$or": {"a": 1}}, r"\$or expects a non-empty list"),
        ({"created": {"$gt": "yesterday"}}, "not an ISO-8601 time"),
        ({"outputs.y": {"$in": list(range(10_001))}}, "at most 10000 values"),
    ],
)
def test_malformed_filters_are_explained(document: dict[str, Any], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_filter(document)


def test_not_a_mapping_is_refused() -> None:
    with pytest.raises(QueryError, match="must be a mapping"):
        parse_filter(["flow_name", "f"])  # type: ignore[arg-type]


def test_deep_nesting_is_bounded() -> None:
    document: dict[str, Any] = {"flow_name": "f"}
    for _ in range(40):
        document = {"$and": [document]}
    with pytest.raises(QueryError, match="nests deeper"):
        parse_filter(document)


def test_mongo_filter_is_rebuilt_from_the_tree() -> None:
    moment = datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    tree = parse_filter(
        {
            "flow_name": "f",
            "outputs.e": {"$gte": 1, "$lt": 5},
            "$or": [{"tags": {"$in": ("a", "b")}}, {"created": {"$gt": moment}}],
        }
    )
    assert to_mongo(tree) == {
        "$and": [
            {"flow_name": "f"},
            {"outputs.e": {"$gte": 1}},
            {"outputs.e": {"$lt": 5}},
            {
                "$or": [
                    {"tags": {"$in": ["a", "b"]}},
                    # BSON keeps milliseconds: the operand is truncated so both backends compare alike.
                    {"created": {"$gt": datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)}},
                ]
            },
        ]
    }
    assert to_mongo(parse_filter(None)) == {}
    assert to_mongo(parse_filter({"flow_name": "f"})) == {"flow_name": "f"}
    assert to_mongo(parse_filter({"unique_hash": {"$in": ["h"]}}), {"unique_hash": "_id"}) == {
        "_id": {"$in": ["h"]}
    }


def test_created_accepts_iso_text_as_a_time() -> None:
    tree = parse_filter({"created": {"$gte": "2024-01-01T00:00:00-05:00"}})
    assert to_mongo(tree) == {"created": {"$gte": datetime(2024, 1, 1, 5, 0, tzinfo=UTC)}}
    assert to_mongo(parse_filter({"created": "2024-01-01T05:00:00Z"})) == {
        "created": datetime(2024, 1, 1, 5, 0, tzinfo=UTC)
    }


DOCUMENT = {
    "flow_name": "scan",
    "flow_run_id": None,
    "created": datetime(2024, 1, 1, tzinfo=UTC),
    "tags": ["nightly", "cu_hxr"],
    "inputs": {"x": 1, "name": "quad", "flag": True, "nested": {"deep": 2.5}},
    "outputs": {"y": [1, 5, 9], "points": [{"e": 1.0}, {"e": 3.0}, {"q": 1}], "none": None},
}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({}, True),
        ({"flow_name": "scan"}, True),
        ({"flow_name": "other"}, False),
        ({"inputs.x": 1.0}, True),  # numbers compare by value
        ({"inputs.x": True}, False),  # but booleans are not numbers
        ({"inputs.flag": 1}, False),
        ({"inputs.flag": True}, True),
        ({"inputs.nested.deep": {"$gt": 2, "$lt": 3}}, True),
        ({"inputs.name": {"$gt": 1}}, False),  # ranges only compare values of one kind
        ({"inputs.name": {"$gt": "a"}}, True),
        ({"outputs.y": 5}, True),  # an array matches through its elements
        ({"outputs.y": {"$gt": 8}}, True),
        ({"outputs.y": {"$gt": 9}}, False),
        ({"outputs.y": {"$ne": 5}}, False),
        ({"outputs.y": {"$nin": [2, 3]}}, True),
        ({"outputs.y.1": 5}, True),  # numeric segments index arrays
        ({"outputs.points.e": 3.0}, True),  # paths walk into sub-documents of arrays
        ({"outputs.points.e": {"$lt": 0}}, False),
        # Elements without the field are skipped (FerretDB's rule), so this is not a null match.
        ({"outputs.points.q": None}, False),
        ({"outputs.points.q": {"$exists": True}}, True),
        ({"outputs.points.z": None}, True),
        ({"outputs.missing": None}, True),  # None matches a missing field …
        ({"outputs.none": None}, True),  # … and a stored null
        ({"outputs.none": {"$exists": True}}, True),
        ({"outputs.missing": {"$exists": False}}, True),
        ({"outputs.missing": {"$ne": None}}, False),
        ({"flow_run_id": {"$in": [None, "abc"]}}, True),
        ({"tags": "nightly"}, True),
        ({"tags": {"$in": ["weekly", "cu_hxr"]}}, True),
        ({"created": {"$gte": datetime(2024, 1, 1, tzinfo=UTC)}}, True),
        ({"created": {"$gt": "2023-12-31T23:00:00-02:00"}}, False),
        ({"created": {"$gt": 5}}, False),
        ({"$or": [{"flow_name": "x"}, {"inputs.x": 1}]}, True),
        ({"$and": [{"flow_name": "scan"}, {"inputs.x": 2}]}, False),
    ],
)
def test_python_matching_follows_mongodb_rules(document: dict[str, Any], expected: bool) -> None:
    assert matches(parse_filter(document), DOCUMENT) is expected


def test_naive_datetime_operands_are_utc() -> None:
    eastern = timezone(timedelta(hours=-5))
    naive = parse_filter({"created": datetime(2024, 1, 1, 5)})
    aware = parse_filter({"created": datetime(2024, 1, 1, 0, tzinfo=eastern)})
    assert to_mongo(naive) == to_mongo(aware)


def test_sort_specifications() -> None:
    assert parse_sort(None) == []
    assert parse_sort("-created") == [("created", -1)]
    assert parse_sort(["flow_name", ("outputs.e", -1)]) == [("flow_name", 1), ("outputs.e", -1)]
    with pytest.raises(QueryError, match="direction"):
        parse_sort([("created", 2)])
    with pytest.raises(QueryError, match="unknown field"):
        parse_sort("colour")


def test_sort_key_orders_kinds_like_mongodb_and_uses_array_extremes() -> None:
    documents = [{"outputs": {"v": v}} for v in ["text", 2, None, True, [5, 0]]]
    ascending = sorted(documents, key=lambda d: sort_key(d, "outputs.v", 1))
    assert [d["outputs"]["v"] for d in ascending] == [None, [5, 0], 2, "text", True]
    descending = sorted(documents, key=lambda d: sort_key(d, "outputs.v", -1), reverse=True)
    assert [d["outputs"]["v"] for d in descending] == [True, "text", [5, 0], 2, None]
