"""Workflow graphs run as flows on the real test Prefect server: values, options, concurrency, caching."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import task_input_hash

from lume_platform.graph import (
    ENTRY_RESULT_TYPE,
    GraphError,
    GraphRunError,
    GraphStorage,
    ResultsStoreIndex,
    Workflow,
    graph_input,
    node,
)
from lume_platform.results import open_results_store

pytestmark = pytest.mark.integration

# What each node function computed, by node function name: the tests count real executions.
executed: Counter[str] = Counter()
_calls_lock = threading.Lock()
# Switch of the node that fails on purpose (its code, hence its key, stays the same).
FAILING = {"on": False}


def _called(name: str) -> None:
    with _calls_lock:
        executed[name] += 1


@node
def add(a: float, b: float) -> float:
    _called("add")
    return a + b


@node
def minus(a: float, b: float) -> float:
    _called("minus")
    return a - b


@node
def scale(a: float, factor: float) -> float:
    _called("scale")
    return a * factor


@node
def split(value: float) -> tuple[float, float]:
    _called("split")
    return value, value * 10


@node
def describe(value: float) -> dict[str, Any]:
    _called("describe")
    return {"value": value, "sign": "+" if value >= 0 else "-", "nested": [value, [value * 2]]}


@node
def nap(seconds: float, label: str) -> str:
    _called("nap")
    time.sleep(seconds)
    return label


@node
def join(*parts: Any) -> list[Any]:
    _called("join")
    return list(parts)


@node
def fragile(value: float) -> float:
    _called("fragile")
    if FAILING["on"]:
        raise RuntimeError("fragile node failed on purpose")
    return value + 0.5


@pytest.fixture(autouse=True)
def _fresh_counters() -> Iterator[None]:
    executed.clear()
    FAILING["on"] = False
    yield
    FAILING["on"] = False


@pytest.fixture
def prefect_server(prefect_api_url: str) -> Iterator[str]:
    """In-process flow runs recorded by the test Prefect server (never an ephemeral one)."""
    with temporary_settings({PREFECT_API_URL: prefect_api_url}):
        yield prefect_api_url


def run_state(workflow: Workflow, **inputs: Any) -> State[Any]:
    """Run the workflow's flow in-process and return its final state (failures included)."""
    return workflow.generate_flow()(**inputs, return_state=True)  # type: ignore[no-any-return]


def recorded_task_runs(state: State[Any], expected: int, timeout: float = 60.0) -> dict[str, TaskRun]:
    """The task runs Prefect recorded for a flow run, by name, once all ``expected`` are final.

    Prefect 3 reports task runs through events, so they land shortly after the flow returns.
    """
    flow_run_id = state.state_details.flow_run_id
    deadline = time.monotonic() + timeout
    runs: list[TaskRun] = []
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            if len(runs) >= expected and all(run.state is not None and run.state.is_final() for run in runs):
                break
            time.sleep(0.5)
    names = [run.name for run in runs]
    assert len(runs) == expected, f"expected {expected} task runs, Prefect recorded {sorted(names)}"
    assert len(set(names)) == len(names), f"task-run names repeat: {names}"
    return {run.name: run for run in runs}


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def diamond(a_default: float = 1.0) -> Workflow:
    a = graph_input("a", a_default, annotation=float)
    b = graph_input("b", 2.0, annotation=float)
    s1 = add(a, b).set_name("s1")
    s2 = add(s1, b).set_name("s2")
    s3 = scale(s1, 3.0).set_name("s3")
    return Workflow(minus(s2, s3).set_name("m"), name=unique("diamond"))


def test_diamond_graph_runs_as_one_task_run_per_node_with_upstream_edges(prefect_server: str) -> None:
    workflow = diamond()
    state = run_state(workflow, a=1.0, b=2.0)
    assert state.is_completed()
    # s1 = 3, s2 = 5, s3 = 9, m = -4
    assert state.result() == -4.0
    runs = recorded_task_runs(state, expected=4)
    assert set(runs) == {"s1", "s2", "s3", "m"}
    upstream_of_m = {
        str(inp.id)
        for inputs in runs["m"].task_inputs.values()
        for inp in inputs
        if inp.input_type == "task_run"
    }
    assert upstream_of_m == {str(runs["s2"].id), str(runs["s3"].id)}
    assert executed == Counter({"add": 2, "scale": 1, "minus": 1})


def test_generated_flow_runs_many_times_with_different_parameters(prefect_server: str) -> None:
    workflow = diamond()
    assert workflow.run(a=1.0, b=2.0) == -4.0
    assert workflow.run(a=2.0, b=0.0) == -4.0  # s1 = 2, s2 = 2, s3 = 6
    assert workflow.run(b=1.0) == -3.0  # a defaults to 1: s1 = 2, s2 = 3, s3 = 6
    assert executed["minus"] == 3


def test_tuple_and_dict_items_feed_downstream_nodes_and_outputs(prefect_server: str) -> None:
    x = graph_input("x", annotation=float)
    pair = split(x).set_name("pair")
    info = describe(pair[1]).set_name("info")
    total = add(pair[0], info["nested"][1][0]).set_name("total")
    bundle = join([pair[0], {"sign": info["sign"]}]).set_name("bundle")  # references nested in a list
    workflow = Workflow(total, info["sign"], pair[1], bundle, name=unique("items"))
    state = run_state(workflow, x=-2.0)
    assert state.is_completed()
    # pair = (-2, -20); info.nested[1][0] = -40; total = -42
    assert state.result() == (-42.0, "-", -20.0, [[-2.0, {"sign": "-"}]])
    assert set(recorded_task_runs(state, expected=4)) == {"pair", "info", "total", "bundle"}


def test_a_missing_item_fails_the_consuming_node_with_a_clear_message(prefect_server: str) -> None:
    pair = split(1.0).set_name("pair")
    workflow = Workflow(add(pair[5], 1.0).set_name("bad_item"), name=unique("bad-item"))
    state = run_state(workflow)
    assert state.is_failed()
    with pytest.raises(GraphRunError, match=r"bad_item: .*cannot take item 5 of a tuple"):
        state.result()


def test_regex_task_options_reach_exactly_the_matching_task_runs(prefect_server: str) -> None:
    x = graph_input("x", 1.0)
    fit_a = scale(x, 2.0).set_name("fit_a")
    fit_b = scale(x, 3.0).set_name("fit_b")
    other = add(fit_a, fit_b).set_name("combine")
    workflow = Workflow(other, name=unique("options"))
    workflow.query("fit_.*").set_task_args({"tags": ["fits"], "retries": 2, "retry_delay_seconds": 0})
    workflow.query("fit_b").set_task_args({"tags": ["special"], "retries": 4})
    workflow.query("comb.*").set_task_args({"task_run_name": "combined-result"})
    state = run_state(workflow)
    assert state.result() == 5.0
    runs = recorded_task_runs(state, expected=3)
    assert set(runs) == {"fit_a", "fit_b", "combined-result"}
    assert sorted(runs["fit_a"].tags) == ["fits"]
    assert sorted(runs["fit_b"].tags) == ["fits", "special"]
    assert runs["combined-result"].tags == []
    assert runs["fit_a"].empirical_policy.retries == 2
    assert runs["fit_b"].empirical_policy.retries == 4
    assert runs["combined-result"].empirical_policy.retries == 0


def test_independent_nodes_run_concurrently(prefect_server: str) -> None:
    seconds = 2.0
    sleepers = [nap(seconds, label).set_name(f"nap_{label}") for label in ("a", "b", "c")]
    workflow = Workflow(join(*sleepers).set_name("joined"), name=unique("concurrency"))
    state = run_state(workflow)
    assert state.result() == ["a", "b", "c"]
    runs = recorded_task_runs(state, expected=4)
    naps = [runs[f"nap_{label}"] for label in ("a", "b", "c")]
    assert all(run.start_time is not None and run.end_time is not None for run in naps)
    latest_start = max(run.start_time for run in naps)  # type: ignore[type-var]
    earliest_end = min(run.end_time for run in naps)  # type: ignore[type-var]
    assert latest_start < earliest_end, "the three independent naps did not overlap in Prefect's records"
    # Prefect's own records, not wall time of the whole run: flow-run overhead varies with machine load.
    span = (max(run.end_time for run in naps) - min(run.start_time for run in naps)).total_seconds()  # type: ignore[type-var,operator]
    assert span < 3 * seconds, f"three {seconds}s naps spanned {span:.1f}s: they ran one after another"
    assert runs["joined"].start_time >= max(run.end_time for run in naps)  # type: ignore[operator,type-var]


def test_flow_options_choose_the_task_runner(prefect_server: str) -> None:
    sleepers = [nap(0.5, label).set_name(f"nap_{label}") for label in ("a", "b", "c")]
    workflow = Workflow(join(*sleepers).set_name("joined"), name=unique("one-worker"))
    workflow.set_flow_options({"task_runner": ThreadPoolTaskRunner(max_workers=1)})
    state = run_state(workflow)
    assert state.result() == ["a", "b", "c"]
    runs = recorded_task_runs(state, expected=4)
    naps = sorted((runs[f"nap_{label}"] for label in ("a", "b", "c")), key=lambda run: run.start_time)  # type: ignore[arg-type,return-value]
    for earlier, later in itertools.pairwise(naps):
        assert earlier.end_time <= later.start_time, "one worker thread ran two naps at once"  # type: ignore[operator]


def test_prefect_cache_options_work_per_node_without_graph_storage(prefect_server: str) -> None:
    x = graph_input("x", annotation=float)
    cached = scale(x, 2.0).set_name("cached_by_prefect")
    workflow = Workflow(add(cached, 1.0).set_name("plain"), name=unique("prefect-cache"))
    workflow.query("cached_.*").set_task_args({"cache_key_fn": task_input_hash})
    token = time.time()  # a fresh input: earlier test sessions cannot have cached it
    assert workflow.run(x=token) == token * 2 + 1
    second = run_state(workflow, x=token)
    assert second.result() == token * 2 + 1
    states = {name: run.state.name for name, run in recorded_task_runs(second, expected=2).items()}  # type: ignore[union-attr]
    assert states == {"cached_by_prefect": "Cached", "plain": "Completed"}
    assert executed == Counter({"scale": 1, "add": 2})


def cached_diamond(storage: GraphStorage) -> Workflow:
    x = graph_input("x", annotation=float)
    y = graph_input("y", annotation=float)
    from_x = scale(x, 2.0).set_name("from_x")
    from_y = scale(y, 3.0).set_name("from_y")
    both = add(from_x, from_y).set_name("both")
    only_x = add(from_x, 1.0).set_name("only_x")
    top = minus(both, only_x).set_name("top")
    return Workflow(top, only_x, name=unique("cached")).set_storage(storage)


def test_second_run_computes_nothing_and_a_changed_input_recomputes_only_its_nodes(
    prefect_server: str, tmp_path: Path
) -> None:
    workflow = cached_diamond(GraphStorage(tmp_path))
    first = run_state(workflow, x=1.0, y=1.0)
    # from_x 2, from_y 3, both 5, only_x 3, top 2
    assert first.result() == (2.0, 3.0)
    assert sum(executed.values()) == 5
    recorded_task_runs(first, expected=5)

    executed.clear()
    second = run_state(workflow, x=1.0, y=1.0)
    assert second.result() == (2.0, 3.0)
    assert sum(executed.values()) == 0, f"a run with unchanged inputs computed {executed}"
    runs = recorded_task_runs(second, expected=2)
    assert set(runs) == {"top", "only_x"}
    assert {run.state.name for run in runs.values()} == {"Cached"}  # type: ignore[union-attr]

    executed.clear()
    third = run_state(workflow, x=1.0, y=2.0)
    # from_y 6, both 8, top 5; from_x and only_x unchanged
    assert third.result() == (5.0, 3.0)
    runs = recorded_task_runs(third, expected=5)
    computed = {name for name, run in runs.items() if run.state.name == "Completed"}  # type: ignore[union-attr]
    cached = {name for name, run in runs.items() if run.state.name == "Cached"}  # type: ignore[union-attr]
    assert computed == {"from_y", "both", "top"}
    assert cached == {"from_x", "only_x"}
    assert executed == Counter({"scale": 1, "add": 1, "minus": 1})


def test_a_failed_run_keeps_finished_nodes_and_the_next_run_resumes(
    prefect_server: str, tmp_path: Path
) -> None:
    x = graph_input("x", annotation=float)
    source = scale(x, 1.0).set_name("source")
    broken = fragile(source).set_name("broken")
    sibling = add(source, 100.0).set_name("sibling")
    result = add(broken, sibling).set_name("result")
    workflow = Workflow(result, name=unique("resume")).set_storage(GraphStorage(tmp_path))

    FAILING["on"] = True
    failed = run_state(workflow, x=1.0)
    assert failed.is_failed()
    with pytest.raises(GraphRunError) as raised:
        failed.result()
    assert set(raised.value.failed) == {"broken"}
    assert raised.value.not_run == ["result"]
    assert executed == Counter({"scale": 1, "fragile": 1, "add": 1})

    executed.clear()
    FAILING["on"] = False
    resumed = run_state(workflow, x=1.0)
    assert resumed.result() == 1.5 + 101.0
    assert executed == Counter({"fragile": 1, "add": 1}), f"the resumed run recomputed {executed}"
    runs = recorded_task_runs(resumed, expected=4)
    cached = {name for name, run in runs.items() if run.state.name == "Cached"}  # type: ignore[union-attr]
    assert cached == {"source", "sibling"}


def test_a_corrupt_entry_is_recomputed_instead_of_failing(prefect_server: str, tmp_path: Path) -> None:
    storage = GraphStorage(tmp_path)
    workflow = cached_diamond(storage)
    assert run_state(workflow, x=1.0, y=1.0).result() == (2.0, 3.0)
    keys = workflow.compile().by_name(workflow.compile().keys({"x": 1.0, "y": 1.0}))
    entry = tmp_path / storage.location(keys["top"])
    data = bytearray(entry.read_bytes())
    data[-1] ^= 0xFF
    entry.write_bytes(bytes(data))

    executed.clear()
    state = run_state(workflow, x=1.0, y=1.0)
    assert state.result() == (2.0, 3.0)
    assert executed == Counter({"minus": 1}), f"expected only 'top' recomputed, got {executed}"
    assert storage.load(keys["top"]) == 2.0
    recorded_task_runs(state, expected=2)


def test_excluded_nodes_are_never_stored(prefect_server: str, tmp_path: Path) -> None:
    x = graph_input("x", annotation=float)
    stored = scale(x, 2.0).set_name("stored")
    side = add(stored, 1.0).set_name("side_effect")
    workflow = Workflow(side, name=unique("excluded")).set_storage(GraphStorage(tmp_path))
    workflow.query("side_.*").exclude_from_storage()
    assert workflow.run(x=1.0) == 3.0
    executed.clear()
    assert workflow.run(x=1.0) == 3.0
    assert executed == Counter({"add": 1})


def test_cache_index_is_queryable_through_the_results_store(
    prefect_server: str, tmp_path: Path, mongodb_url: str, tmp_mongo_database: str
) -> None:
    store = open_results_store(mongodb_url, tmp_mongo_database)
    try:
        storage = GraphStorage(tmp_path, index=ResultsStoreIndex(store))
        workflow = cached_diamond(storage)
        state = run_state(workflow, x=1.0, y=1.0)
        assert state.result() == (2.0, 3.0)
        flow_run_id = str(state.state_details.flow_run_id)
        documents = store.find({"result_type": ENTRY_RESULT_TYPE, "flow_name": workflow.name})
        assert sorted(doc.inputs["node"] for doc in documents) == [
            "both",
            "from_x",
            "from_y",
            "only_x",
            "top",
        ]
        assert {doc.flow_run_id for doc in documents} == {flow_run_id}
        keys = workflow.compile().by_name(workflow.compile().keys({"x": 1.0, "y": 1.0}))
        [top] = storage.entries(workflow=workflow.name, node="top")
        assert top.key == keys["top"]
        assert Path(top.path).is_file()
        assert top.sha256 and top.size > 0
        # A second, fully cached run writes nothing new to the index.
        run_state(workflow, x=1.0, y=1.0)
        assert store.count({"result_type": ENTRY_RESULT_TYPE, "flow_name": workflow.name}) == 5
    finally:
        store.close()


def test_duplicate_node_names_are_rejected_before_anything_runs(prefect_server: str) -> None:
    first = add(1.0, 1.0).set_name("dup")
    second = add(10.0, 10.0).set_name("dup")
    with pytest.raises(GraphError, match="two nodes are named 'dup'"):
        Workflow(add(first, second))
    assert sum(executed.values()) == 0
