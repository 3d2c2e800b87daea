"""Unit tests of content keys and of the checksummed, atomically written graph storage."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from lume_platform.files import LocalFilesystem
from lume_platform.graph import (
    ENTRY_RESULT_TYPE,
    CorruptEntryError,
    GraphError,
    GraphStorage,
    ResultsStoreIndex,
    Workflow,
    graph_input,
    node,
)
from lume_platform.graph.keys import canonical, digest, function_identity
from lume_platform.results import EmbeddedResultsStore
from lume_platform.services import Services
from lume_platform.settings import load_settings


@node
def add(a: float, b: float) -> float:
    return a + b


@node(version="7")
def scale(a: float, factor: float = 2.0) -> float:
    return a * factor


@dataclasses.dataclass
class Settings:
    rate: float
    names: list[str]


def key_of(value: object) -> str:
    return digest(canonical(value))


def test_canonical_encoding_tells_types_apart() -> None:
    keys = {key_of(value) for value in (1, 1.0, True, "1", [1], (1,), {1}, b"1", None)}
    assert len(keys) == 9


def test_canonical_encoding_ignores_dict_and_set_order() -> None:
    assert key_of({"a": 1, "b": [1, 2]}) == key_of({"b": [1, 2], "a": 1})
    assert key_of({3, 1, 2}) == key_of({2, 3, 1})


def test_canonical_encoding_of_arrays_dataclasses_and_dates() -> None:
    array = np.arange(6, dtype=np.float64).reshape(2, 3)
    assert key_of(array) == key_of(array.copy())
    assert key_of(array) != key_of(array.astype(np.float32))
    assert key_of(array) != key_of(array.reshape(3, 2))
    changed = array.copy()
    changed[1, 2] = 99
    assert key_of(array) != key_of(changed)
    assert key_of(Settings(0.1, ["a"])) == key_of(Settings(0.1, ["a"]))
    assert key_of(Settings(0.1, ["a"])) != key_of(Settings(0.2, ["a"]))
    assert key_of(dt.date(2024, 1, 1)) != key_of("2024-01-01")
    assert key_of(Path("/a/b")) == key_of(Path("/a/b"))


def test_values_without_a_stable_encoding_are_rejected_by_name() -> None:
    class Opaque:
        pass

    with pytest.raises(GraphError, match=r"argument x\['k'\]: cannot derive a cache key from a .*Opaque"):
        canonical({"k": Opaque()}, where="argument x")


def test_function_identity_uses_the_explicit_version_or_the_source() -> None:
    assert function_identity(scale).endswith("scale@v:7")
    assert "add@src:" in function_identity(add)


def test_keys_change_exactly_downstream_of_a_changed_input(tmp_path: Path) -> None:
    x = graph_input("x")
    y = graph_input("y")
    from_x = scale(x).set_name("from_x")
    from_y = scale(y).set_name("from_y")
    total = add(from_x, from_y).set_name("total")
    workflow = Workflow(total).set_storage(tmp_path)
    compiled = workflow.compile()
    before = compiled.by_name(compiled.keys({"x": 1.0, "y": 2.0}))
    after = compiled.by_name(compiled.keys({"x": 1.0, "y": 3.0}))
    assert before["from_x"] == after["from_x"]
    assert before["from_y"] != after["from_y"]
    assert before["total"] != after["total"]
    assert compiled.by_name(compiled.keys({"x": 1.0, "y": 2.0})) == before


def test_keys_follow_items_of_inputs_and_references_nested_in_arguments(tmp_path: Path) -> None:
    config = graph_input("config")
    uses_a = scale(config["a"]).set_name("uses_a")
    uses_b = scale(config["b"]).set_name("uses_b")
    nested = add([uses_a, {"b": uses_b}], 0).set_name("nested")
    compiled = Workflow(nested).set_storage(tmp_path).compile()
    base = compiled.by_name(compiled.keys({"config": {"a": 1.0, "b": 2.0}}))
    changed_b = compiled.by_name(compiled.keys({"config": {"a": 1.0, "b": 3.0}}))
    assert base["uses_a"] == changed_b["uses_a"]
    assert base["uses_b"] != changed_b["uses_b"]
    assert base["nested"] != changed_b["nested"]


def test_literal_arguments_without_a_stable_encoding_fail_when_the_flow_is_generated(tmp_path: Path) -> None:
    workflow = Workflow(add(object(), 1).set_name("opaque"))
    workflow.generate_flow()  # without storage no key is needed
    with pytest.raises(
        GraphError, match=r"node 'opaque' positional arguments\[0\]: cannot derive a cache key"
    ):
        workflow.set_storage(tmp_path).generate_flow()


def test_plan_skips_ancestors_of_stored_nodes(tmp_path: Path) -> None:
    x = graph_input("x")
    first = scale(x).set_name("first")
    second = scale(first).set_name("second")
    third = add(second, x).set_name("third")
    workflow = Workflow(third).set_storage(tmp_path)
    compiled = workflow.compile()
    storage = workflow.storage
    assert storage is not None
    keys = compiled.keys({"x": 1.0})
    assert compiled.by_name(compiled.plan(keys)) == {
        "first": "compute",
        "second": "compute",
        "third": "compute",
    }
    storage.save(compiled.by_name(keys)["second"], 4.0, node="second", workflow="w", function="f")
    assert compiled.by_name(compiled.plan(keys)) == {"third": "compute", "second": "load"}


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    storage = GraphStorage(LocalFilesystem(tmp_path), prefix="cache")
    key = "ab" * 32
    entry = storage.save(key, {"array": np.arange(3)}, node="n", workflow="w", function="m:f@v:1")
    assert entry.path == str(tmp_path / "cache" / "ab" / f"{key}.entry")
    assert storage.contains(key)
    assert storage.load(key)["array"].tolist() == [0, 1, 2]
    assert [p.name for p in (tmp_path / "cache" / "ab").iterdir()] == [f"{key}.entry"]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data[:-3], "truncated"),
        (lambda data: data[:-1] + bytes([data[-1] ^ 0xFF]), "checksum"),
        (lambda data: b"garbage" + data, "entry marker"),
        (lambda data: data.split(b"\n", 1)[0] + b"\n{not json\n", "unreadable header"),
    ],
)
def test_damaged_entries_are_reported_as_corrupt(tmp_path: Path, damage, reason: str) -> None:  # type: ignore[no-untyped-def]
    storage = GraphStorage(tmp_path)
    key = "cd" * 32
    storage.save(key, list(range(100)), node="n", workflow="w", function="f")
    path = tmp_path / storage.location(key)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CorruptEntryError, match=reason):
        storage.load(key)


def test_an_entry_copied_under_another_key_is_rejected(tmp_path: Path) -> None:
    storage = GraphStorage(tmp_path)
    first, second = "01" * 32, "02" * 32
    storage.save(first, 1, node="n", workflow="w", function="f")
    target = tmp_path / storage.location(second)
    target.parent.mkdir(parents=True)
    target.write_bytes((tmp_path / storage.location(first)).read_bytes())
    with pytest.raises(CorruptEntryError, match="holds the result of key"):
        storage.load(second)


def test_missing_entries_raise_file_not_found(tmp_path: Path) -> None:
    storage = GraphStorage(tmp_path)
    assert not storage.contains("ef" * 32)
    with pytest.raises(FileNotFoundError):
        storage.load("ef" * 32)


def test_unpicklable_results_are_reported_with_the_remedy(tmp_path: Path) -> None:
    storage = GraphStorage(tmp_path)
    with pytest.raises(GraphError, match=r"node 'n' cannot be stored .*exclude_from_storage"):
        storage.save("12" * 32, lambda: None, node="n", workflow="w", function="f")
    assert not storage.contains("12" * 32)


def test_invalid_keys_and_storages_are_rejected(tmp_path: Path) -> None:
    storage = GraphStorage(tmp_path)
    with pytest.raises(GraphError, match="invalid cache key"):
        storage.location("../../etc/passwd")
    with pytest.raises(GraphError, match=r"needs a directory or a lume_platform\.files Filesystem"):
        GraphStorage(42)  # type: ignore[arg-type]
    with pytest.raises(GraphError, match="no index"):
        storage.entries(workflow="w")


def test_entries_are_indexed_in_the_embedded_results_store(tmp_path: Path) -> None:
    store = EmbeddedResultsStore(tmp_path / "results.db")
    try:
        storage = GraphStorage(tmp_path / "files", index=ResultsStoreIndex(store))
        written = storage.save(
            "34" * 32, [1, 2], node="n", workflow="w", function="m:f@v:1", flow_run_id="run-1"
        )
        storage.save("56" * 32, 3, node="other", workflow="w", function="m:g@v:1")
        assert storage.entries(workflow="w", node="n") == [written]
        assert {entry.node for entry in storage.entries(workflow="w")} == {"n", "other"}
        assert storage.entries(workflow="elsewhere") == []
        # The same entry written again is indexed once (the results store deduplicates).
        storage.save("34" * 32, [1, 2], node="n", workflow="w", function="m:f@v:1", flow_run_id="run-2")
        assert store.count({"result_type": ENTRY_RESULT_TYPE, "inputs.node": "n"}) == 1
    finally:
        store.close()


def test_an_unreachable_index_never_loses_the_entry(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = EmbeddedResultsStore(tmp_path / "results.db")
    store.close()  # a store that fails every call, like a database that went away
    storage = GraphStorage(tmp_path / "files", index=ResultsStoreIndex(store))
    storage.save("78" * 32, "value", node="n", workflow="w", function="f")
    assert storage.load("78" * 32) == "value"
    assert "could not index the cache entry of node 'n'" in caplog.text


def test_storage_from_services_prefers_the_mounted_filesystem(tmp_path: Path) -> None:
    home = {"LUME_HOME": str(tmp_path / "home")}
    local = GraphStorage.from_services(services=Services(load_settings(home)))
    assert local.filesystem.identifier == "local"
    assert local.filesystem.root == tmp_path / "home" / "files"
    mounted_env = {**home, "LUME_MOUNTED_FILESYSTEM__MOUNT_PATH": str(tmp_path / "shared")}
    services = Services(load_settings(mounted_env))
    mounted = GraphStorage.from_services(services=services)
    assert mounted.filesystem.identifier == "mounted"
    key = "9a" * 32
    assert mounted.save(key, 1, node="n", workflow="w", function="f").path == str(
        tmp_path / "shared" / "graph-cache" / "9a" / f"{key}.entry"
    )
    assert GraphStorage.from_services("local", services=services).filesystem.identifier == "local"
    services.close()
