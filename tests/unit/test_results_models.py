"""Result documents, their canonical unique hash, references, and picking a backend from a URL."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from lume_platform.errors import ConfigurationError, QueryError, ResultEncodingError
from lume_platform.results import (
    EmbeddedResultsStore,
    Result,
    ResultRef,
    as_ref,
    compute_unique_hash,
    open_results_store,
)


def test_hash_is_sha256_of_sorted_key_json_of_flow_inputs_outputs() -> None:
    result = Result(flow_name="scan", inputs={"b": 2, "a": [1, "x"]}, outputs={"y": 0.5})
    text = json.dumps({"inputs": {"a": [1, "x"], "b": 2}, "outputs": {"y": 0.5}, "flow_name": "scan"},
                      sort_keys=True, separators=(",", ":"))
    assert result.unique_hash == hashlib.sha256(text.encode()).hexdigest()


def test_hash_ignores_key_order_tags_run_and_time() -> None:
    first = Result(flow_name="f", inputs={"a": 1, "b": {"c": 2, "d": 3}}, outputs={"y": 1},
                   tags=["x"], flow_run_id="run-1", created=datetime(2020, 1, 1, tzinfo=UTC))
    second = Result(flow_name="f", inputs={"b": {"d": 3, "c": 2}, "a": 1}, outputs={"y": 1},
                    tags=["y"], flow_run_id="run-2", result_type="other")
    assert first.unique_hash == second.unique_hash


@pytest.mark.parametrize(
    "other",
    [
        Result(flow_name="g", inputs={"a": 1}, outputs={"y": 1}),
        Result(flow_name="f", inputs={"a": 2}, outputs={"y": 1}),
        Result(flow_name="f", inputs={"a": 1}, outputs={"y": 1, "z": None}),
        Result(flow_name="f", inputs={"a": np.array([1])}, outputs={"y": 1}),
    ],
    ids=["flow", "inputs", "outputs", "array-vs-int"],
)
def test_hash_changes_with_flow_inputs_or_outputs(other: Result) -> None:
    assert Result(flow_name="f", inputs={"a": 1}, outputs={"y": 1}).unique_hash != other.unique_hash


def test_equal_arrays_hash_equal_whatever_their_memory_layout() -> None:
    array = np.arange(6.0).reshape(2, 3)
    fortran = np.asfortranarray(array)
    assert compute_unique_hash("f", {"a": 1}, {}) == Result(flow_name="f", inputs={"a": 1}).unique_hash
    assert (Result(flow_name="f", outputs={"m": array}).unique_hash
            == Result(flow_name="f", outputs={"m": fortran}).unique_hash)


def test_created_is_aware_utc_in_milliseconds() -> None:
    eastern = timezone(timedelta(hours=-5))
    result = Result(flow_name="f", created=datetime(2024, 1, 1, 7, 0, 0, 123456, tzinfo=eastern))
    assert result.created == datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert Result(flow_name="f", created=datetime(2024, 1, 1)).created.tzinfo is UTC
    assert Result(flow_name="f").created.microsecond % 1000 == 0


def test_unstorable_input_fails_at_construction_with_its_path() -> None:
    with pytest.raises(ResultEncodingError, match=r"inputs\.model: cannot store"):
        Result(flow_name="f", inputs={"model": object()})


def test_flow_name_is_required_outside_a_flow_run() -> None:
    with pytest.raises(ValueError, match="flow_name"):
        Result(inputs={"a": 1})


def test_get_follows_an_attribute_index() -> None:
    result = Result(flow_name="f", outputs={"y": [10, 20], "m": {"k": "v"}})
    assert result.get(["outputs", "y", 1]) == 20
    assert result.get(("outputs", "m", "k")) == "v"
    assert result.get([]) is result
    with pytest.raises(KeyError, match="no attribute 'output'"):
        result.get(["output", "y"])
    with pytest.raises(KeyError, match=r"no value at outputs\.y\.5"):
        result.get(["outputs", "y", 5])


def test_a_result_round_trips_through_json_with_arrays_and_frames() -> None:
    import pandas as pd

    frame = pd.DataFrame({"x": [1.0, 2.0]})
    result = Result(flow_name="f", inputs={"m": np.eye(2)}, outputs={"table": frame, "n": [[1, 2]]})
    text = result.model_dump_json()
    assert "ndarray" in text and "dataframe" in text
    again = Result.model_validate_json(text)
    assert again.unique_hash == result.unique_hash
    np.testing.assert_array_equal(again.inputs["m"], np.eye(2))
    pd.testing.assert_frame_equal(again.outputs["table"], frame)
    assert again.outputs["n"] == [[1, 2]]
    # Python-mode dumps keep the objects themselves.
    assert result.model_dump()["inputs"]["m"] is result.inputs["m"]


def test_ref_is_small_json_and_round_trips() -> None:
    result = Result(flow_name="f", inputs={"a": 1}, result_type="surrogate")
    ref = result.ref()
    payload = json.loads(ref.model_dump_json())
    assert payload == {"unique_hash": result.unique_hash, "flow_name": "f", "result_type": "surrogate"}
    assert ResultRef.model_validate(payload) == ref
    assert as_ref(payload) == ref
    assert as_ref(result) == ref
    assert as_ref(result.unique_hash).unique_hash == result.unique_hash
    # The LUME-services handle: {"project_name", "result_type_string", "query": {"unique_hash": …}}.
    legacy = {"project_name": "p", "result_type_string": "x", "query": {"unique_hash": result.unique_hash}}
    assert as_ref(legacy).unique_hash == result.unique_hash


@pytest.mark.parametrize("bad", ["not-a-hash", {"flow_name": "f"}, 42])
def test_bad_references_are_refused(bad: object) -> None:
    with pytest.raises(QueryError, match="not a result reference"):
        as_ref(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("form", ["sqlite:///{path}", "file://{path}", "{path}"])
def test_open_results_store_picks_embedded_for_sqlite_urls_and_paths(tmp_path: Path, form: str) -> None:
    path = tmp_path / "sub" / "results.db"
    store = open_results_store(form.format(path=path), "ignored")
    try:
        assert isinstance(store, EmbeddedResultsStore)
        assert store.path == path
        assert path.exists()
    finally:
        store.close()


@pytest.mark.parametrize("url", ["postgresql://u:secret@h/db", "redis://h:6379"])
def test_open_results_store_refuses_other_servers_without_leaking_passwords(url: str) -> None:
    with pytest.raises(ConfigurationError, match="unsupported results store URL") as caught:
        open_results_store(url, "db")
    assert "secret" not in str(caught.value)


def test_invalid_mongodb_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="invalid MongoDB URL"):
        open_results_store("mongodb://u:p@", "db")
