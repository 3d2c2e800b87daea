"""The results store on both backends: a real FerretDB (MongoDB wire protocol) and the embedded SQLite file.

Every test runs on both, and the cross-backend tests check that the same filter, sort and distinct give the
same answer on each.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pymongo import MongoClient

from lume_platform.errors import ForbiddenQueryError, QueryError, ResultNotFound, ResultsError
from lume_platform.results import (
    EmbeddedResultsStore,
    MongoResultsStore,
    Result,
    ResultRef,
    ResultsStore,
    open_results_store,
)
from lume_platform.results.filters import FORBIDDEN_REASONS

pytestmark = pytest.mark.integration

BACKENDS = ["mongodb", "embedded"]


@pytest.fixture
def embedded_store(tmp_path: Path) -> Iterator[EmbeddedResultsStore]:
    """An embedded store in a fresh file."""
    store = EmbeddedResultsStore(tmp_path / "results.db")
    yield store
    store.close()


@pytest.fixture
def mongo_store(mongodb_url: str, tmp_mongo_database: str) -> Iterator[MongoResultsStore]:
    """A MongoDB store in a fresh database on the test FerretDB."""
    store = MongoResultsStore(mongodb_url, tmp_mongo_database)
    yield store
    store.close()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> ResultsStore:
    """Each backend in turn."""
    return request.getfixturevalue(f"{'mongo' if request.param == 'mongodb' else 'embedded'}_store")


def sample(index: int, **changes: Any) -> Result:
    """A small typical result, distinct per index."""
    fields: dict[str, Any] = {
        "flow_name": "scan" if index % 2 else "fit",
        "flow_run_id": f"run-{index % 3}",
        "inputs": {"index": index, "quad_k1": 0.5 * index, "label": f"shot-{index}"},
        "outputs": {"energy": 10.0 - index, "ok": index % 2 == 0, "hits": [index, index + 1]},
        "tags": ["nightly"] if index % 3 else ["nightly", "calibration"],
        "created": datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=index),
    }
    fields.update(changes)
    return Result(**fields)


def test_insert_then_get_round_trips_every_value_kind(store: ResultsStore) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "label": ["a", "b"]})
    result = Result(
        flow_name="surrogate",
        flow_run_id="9b1c",
        inputs={
            "matrix": np.arange(6, dtype=np.float32).reshape(2, 3),
            "when": datetime(2024, 5, 1, tzinfo=UTC),
            "blob": b"\x00\x01",
            "nan": float("nan"),
            "nested": {"k": [1, "two", None]},
        },
        outputs={"table": frame, "series": pd.Series([3, 4], name="s"), "scalar": np.float64(2.5)},
        tags=["a", "b"],
        result_type="surrogate.v1",
    )
    ref = store.insert(result)
    assert ref == ResultRef(unique_hash=result.unique_hash, flow_name="surrogate", result_type="surrogate.v1")

    loaded = store.get(ref)
    assert loaded.unique_hash == result.unique_hash
    assert (loaded.flow_name, loaded.flow_run_id, loaded.tags, loaded.result_type) == (
        "surrogate",
        "9b1c",
        ["a", "b"],
        "surrogate.v1",
    )
    assert loaded.created == result.created
    np.testing.assert_array_equal(loaded.inputs["matrix"], result.inputs["matrix"])
    assert loaded.inputs["matrix"].dtype == np.float32
    assert loaded.inputs["when"] == datetime(2024, 5, 1, tzinfo=UTC)
    assert loaded.inputs["blob"] == b"\x00\x01"
    assert np.isnan(loaded.inputs["nan"])
    assert loaded.inputs["nested"] == {"k": [1, "two", None]}
    pd.testing.assert_frame_equal(loaded.outputs["table"], frame)
    pd.testing.assert_series_equal(loaded.outputs["series"], pd.Series([3, 4], name="s"))
    assert loaded.outputs["scalar"] == 2.5


def test_matrices_as_nested_lists_store_on_every_backend(store: ResultsStore) -> None:
    outputs = {"matrix": [[1.0, 2.0], [3.0, 4.0]], "ragged": [[1], []]}
    ref = store.insert(Result(flow_name="grid", outputs=outputs))
    assert store.get(ref).outputs == outputs


def test_same_result_twice_is_stored_once_and_returns_the_first_reference(store: ResultsStore) -> None:
    first = store.insert(
        Result(flow_name="f", inputs={"a": 1, "b": 2}, outputs={"y": 3}, tags=["first"], result_type="kind-1")
    )
    # Same flow, inputs and outputs (in another key order), different tags, run, time and type.
    again = store.insert(
        Result(
            flow_name="f",
            inputs={"b": 2, "a": 1},
            outputs={"y": 3},
            tags=["second"],
            flow_run_id="other-run",
            result_type="kind-2",
        )
    )
    assert again == first
    assert again.result_type == "kind-1"
    assert store.count() == 1
    assert store.get(first).tags == ["first"]


def test_different_outputs_are_different_results(store: ResultsStore) -> None:
    store.insert(Result(flow_name="f", inputs={"a": 1}, outputs={"y": 3}))
    store.insert(Result(flow_name="f", inputs={"a": 1}, outputs={"y": 4}))
    store.insert(Result(flow_name="g", inputs={"a": 1}, outputs={"y": 3}))
    assert store.count() == 3


def test_insert_many_dedups_within_the_batch_and_against_the_store(store: ResultsStore) -> None:
    existing = store.insert(sample(0, result_type="stored-first"))
    batch = [sample(i) for i in range(5)] + [sample(2), sample(0)]
    refs = store.insert_many(batch)
    assert [r.unique_hash for r in refs] == [r.unique_hash for r in batch]
    assert refs[0] == existing and refs[-1] == existing  # the stored one, with its own result_type
    assert refs[2] == refs[5]
    assert store.count() == 5
    assert store.insert_many([]) == []


def test_insert_many_with_many_duplicates(store: ResultsStore) -> None:
    results = [sample(i) for i in range(60)]
    store.insert_many(results[:50])
    refs = store.insert_many(results)
    assert [r.unique_hash for r in refs] == [r.unique_hash for r in results]
    assert store.count() == 60


def test_insert_many_across_several_round_trips(store: ResultsStore) -> None:
    # Several pipelined chunks (500 documents each) of the MongoDB backend, with duplicates of stored
    # results and of results earlier in the same call spread over the chunks.
    stored = store.insert_many([sample(i) for i in range(0, 2400, 2)])
    batch = [sample(i) for i in range(2400)] + [sample(5), sample(2398)]
    refs = store.insert_many(batch)
    assert [r.unique_hash for r in refs] == [r.unique_hash for r in batch]
    assert refs[0:2400:2] == stored
    assert store.count() == 2400


def test_unique_index_exists_as_soon_as_the_store_connects(
    mongodb_url: str, tmp_mongo_database: str, tmp_path: Path
) -> None:
    store = MongoResultsStore(mongodb_url, tmp_mongo_database)
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url)
    try:
        indexes = client[tmp_mongo_database]["results"].index_information()
        assert indexes["unique_hash"].get("unique") is True
        assert [key for key, _ in indexes["flow_name_created"]["key"]] == ["flow_name", "created"]
        assert [key for key, _ in indexes["created"]["key"]] == ["created"]
        # Connecting again is idempotent.
        MongoResultsStore(mongodb_url, tmp_mongo_database).close()
    finally:
        client.close()
        store.close()
    embedded = EmbeddedResultsStore(tmp_path / "r.db")
    try:
        indexes = {row[1]: row[2] for row in embedded._connection.execute("PRAGMA index_list(results)")}
        assert indexes["results_unique_hash"] == 1
        assert {"results_flow_name_created", "results_created"} <= set(indexes)
    finally:
        embedded.close()


def test_get_of_an_unknown_reference_is_not_found(store: ResultsStore) -> None:
    with pytest.raises(ResultNotFound, match="no stored result has unique_hash " + "0" * 64):
        store.get("0" * 64)


@pytest.mark.parametrize("operator", [*FORBIDDEN_REASONS, "$foo"])
def test_every_forbidden_operator_is_refused_before_the_backend(store: ResultsStore, operator: str) -> None:
    store.insert(sample(1))
    for call in (lambda f: store.find(f), lambda f: store.count(f), lambda f: store.distinct("flow_name", f)):
        with pytest.raises(ForbiddenQueryError) as caught:
            call({"$or": [{"flow_name": "scan"}, {"inputs.index": {operator: 1}}]})
        assert caught.value.operator == operator
        with pytest.raises(ForbiddenQueryError):
            call({operator: "this.inputs.index == 1"})


def test_malformed_arguments_are_refused(store: ResultsStore) -> None:
    with pytest.raises(QueryError, match="unknown field 'flow'"):
        store.find({"flow": "scan"})
    with pytest.raises(QueryError, match="limit"):
        store.find(limit=-1)
    with pytest.raises(QueryError, match="skip"):
        store.find(skip=-2)
    with pytest.raises(QueryError, match="unknown field"):
        store.distinct("nope")
    assert store.find(limit=0) == []


@pytest.fixture
def both_filled(
    mongo_store: MongoResultsStore, embedded_store: EmbeddedResultsStore
) -> tuple[MongoResultsStore, EmbeddedResultsStore]:
    """Both backends holding the same twelve results."""
    results = [sample(i) for i in range(12)]
    results.append(
        Result(
            flow_name="odd",
            inputs={"index": "12", "flag": True},
            outputs={"energy": None},
            created=datetime(2024, 1, 2, tzinfo=UTC),
        )
    )
    for backend in (mongo_store, embedded_store):
        backend.insert_many(results)
    return mongo_store, embedded_store


SAME_ANSWER_FILTERS: list[dict[str, Any]] = [
    {},
    {"flow_name": "scan"},
    {"flow_name": {"$in": ["scan", "odd"]}},
    {"flow_name": {"$ne": "scan"}},
    {"flow_name": {"$nin": ["scan", "fit"]}},
    {"inputs.index": 3},
    {"inputs.index": 3.0},
    {"inputs.index": "12"},
    {"inputs.index": {"$gt": 4, "$lte": 8}},
    {"inputs.index": {"$gte": "1"}},
    {"inputs.quad_k1": {"$lt": 1.5}},
    {"inputs.label": {"$gte": "shot-5"}},
    {"inputs.flag": True},
    {"inputs.flag": {"$exists": False}},
    {"outputs.ok": False},
    {"outputs.energy": None},
    {"outputs.energy": {"$ne": None}},
    {"outputs.hits": 5},
    {"outputs.hits": {"$gt": 10}},
    {"outputs.hits.0": 5},
    {"outputs.hits": {"$nin": [1, 2, 3]}},
    {"tags": "calibration"},
    {"tags": {"$in": ["calibration", "none"]}},
    {"tags": {"$nin": ["calibration"]}},
    {"flow_run_id": "run-1"},
    {"flow_run_id": None},
    {"created": {"$gte": datetime(2024, 1, 1, 0, 5, tzinfo=UTC)}},
    {"created": {"$lt": "2024-01-01T00:03:00+00:00"}},
    {"flow_name": "scan", "created": {"$gt": "2024-01-01T00:04:00Z"}},
    {"$or": [{"flow_name": "odd"}, {"inputs.index": {"$lt": 2}}]},
    {"$and": [{"flow_name": "fit"}, {"$or": [{"tags": "calibration"}, {"outputs.energy": {"$lt": 4}}]}]},
]


@pytest.mark.parametrize("document", SAME_ANSWER_FILTERS, ids=[str(f) for f in SAME_ANSWER_FILTERS])
def test_both_backends_give_the_same_answer(
    both_filled: tuple[ResultsStore, ResultsStore], document: dict[str, Any]
) -> None:
    mongo, embedded = both_filled
    found = [[r.unique_hash for r in backend.find(document)] for backend in (mongo, embedded)]
    assert found[0] == found[1]
    assert mongo.count(document) == embedded.count(document) == len(found[0])


@pytest.mark.parametrize(
    "sort",
    [
        "created",
        "-created",
        "inputs.index",
        "-inputs.index",
        "outputs.hits",
        "-outputs.hits",
        [("flow_name", 1), ("outputs.energy", -1)],
        "flow_run_id",
        "-unique_hash",
    ],
    ids=str,
)
def test_both_backends_sort_alike(both_filled: tuple[ResultsStore, ResultsStore], sort: Any) -> None:
    mongo, embedded = both_filled
    assert [r.unique_hash for r in mongo.find(sort=sort)] == [r.unique_hash for r in embedded.find(sort=sort)]
    page = {"sort": sort, "skip": 2, "limit": 4}
    assert [r.unique_hash for r in mongo.find({"flow_name": {"$ne": "odd"}}, **page)] == [
        r.unique_hash for r in embedded.find({"flow_name": {"$ne": "odd"}}, **page)
    ]


@pytest.mark.parametrize("field", ["flow_name", "tags", "inputs.index", "outputs.hits", "flow_run_id"])
def test_both_backends_list_the_same_distinct_values(
    both_filled: tuple[ResultsStore, ResultsStore], field: str
) -> None:
    mongo, embedded = both_filled
    assert mongo.distinct(field) == embedded.distinct(field)
    assert mongo.distinct(field, {"flow_name": "scan"}) == embedded.distinct(field, {"flow_name": "scan"})


def test_dashboard_reads_by_flow_and_time(store: ResultsStore) -> None:
    store.insert_many([sample(i) for i in range(10)])
    latest = store.find({"flow_name": "scan"}, sort="-created", limit=3)
    assert [r.inputs["index"] for r in latest] == [9, 7, 5]
    window = store.find(
        {"created": {"$gte": "2024-01-01T00:02:00Z", "$lt": "2024-01-01T00:05:00Z"}}, sort="created"
    )
    assert [r.inputs["index"] for r in window] == [2, 3, 4]
    assert store.find_one({"flow_name": "nothing"}) is None
    assert store.find_one(sort="created") is not None


def test_unsorted_results_come_in_insertion_order(store: ResultsStore) -> None:
    results = [sample(i, created=datetime(2024, 1, 1, tzinfo=UTC)) for i in (5, 1, 4, 2)]
    for result in results:
        store.insert(result)
    assert [r.unique_hash for r in store.find()] == [r.unique_hash for r in results]


def test_concurrent_inserts_of_the_same_result_store_one(store: ResultsStore) -> None:
    result = sample(7)
    refs: list[ResultRef] = []
    errors: list[BaseException] = []

    def insert() -> None:
        try:
            refs.append(store.insert(result))
        except BaseException as error:  # the assertion below reports it
            errors.append(error)

    threads = [threading.Thread(target=insert) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(refs) == 8 and len(set(refs)) == 1
    assert store.count() == 1


def test_open_results_store_picks_mongodb(mongodb_url: str, tmp_mongo_database: str) -> None:
    store = open_results_store(mongodb_url, tmp_mongo_database)
    try:
        assert isinstance(store, MongoResultsStore)
        assert store.database == tmp_mongo_database
        ref = store.insert(sample(1))
        assert store.get(ref.model_dump()).inputs["index"] == 1
    finally:
        store.close()


def test_unreachable_mongodb_is_a_clear_error() -> None:
    # Port 9 (discard) on loopback: nothing listens there.
    with pytest.raises(
        ResultsError, match=r"could not prepare the indexes .* on MongoDB mongodb://127\.0\.0\.1:9/"
    ):
        MongoResultsStore("mongodb://127.0.0.1:9/", "x", timeout_seconds=1)


def test_embedded_store_keeps_results_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "kept.db"
    with EmbeddedResultsStore(path) as store:
        ref = store.insert(sample(3))
    with EmbeddedResultsStore(path) as store:
        assert store.get(ref).inputs["index"] == 3
        assert store.insert(sample(3)) == ref
        assert store.count() == 1


def test_embedded_store_refuses_a_file_that_is_not_its_own(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("precious notes that must survive\n" * 100)
    with pytest.raises(ResultsError, match=r"notes\.txt"):
        EmbeddedResultsStore(path)
    assert path.read_text() == "precious notes that must survive\n" * 100


def test_embedded_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    EmbeddedResultsStore(path).close()
    import sqlite3

    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(ResultsError, match="schema version 99"):
        EmbeddedResultsStore(path)


def test_inside_a_prefect_flow_run_results_default_to_that_run(prefect_api_url: str) -> None:
    from prefect import flow, task
    from prefect.runtime import flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    @task
    def result_in_a_task() -> tuple[str, str | None]:
        result = Result(inputs={"a": 1})
        return result.flow_name, result.flow_run_id

    @flow(name="results-default-to-the-run")
    def make() -> tuple[tuple[str, str | None], tuple[str, str | None], str]:
        result = Result(inputs={"a": 1})
        return (result.flow_name, result.flow_run_id), result_in_a_task(), str(flow_run.id)

    with temporary_settings({PREFECT_API_URL: prefect_api_url}):
        in_flow, in_task, run_id = make()
    assert in_flow == ("results-default-to-the-run", run_id)
    assert in_task == ("results-default-to-the-run", run_id)
    # Explicit values win.
    with temporary_settings({PREFECT_API_URL: prefect_api_url}):
        assert flow(name="explicit")(lambda: Result(flow_name="mine", flow_run_id=None).flow_run_id)() is None
