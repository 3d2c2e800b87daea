"""Unit tests of the graph front end: nodes, names, queries, options and the generated flow's signature."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import Flow
from prefect.task_runners import ThreadPoolTaskRunner

from lume_platform.graph import GraphError, Workflow, graph_input, node


@node
def add(a: float, b: float) -> float:
    return a + b


@node
def minus(a: float, b: float) -> float:
    return a - b


@node(name="pair", version="1")
def make_pair(x: float) -> tuple[float, float]:
    return x, 2 * x


def test_calling_a_node_function_records_a_node_and_runs_nothing() -> None:
    calls: list[int] = []

    @node
    def record(value: int) -> int:
        calls.append(value)
        return value

    recorded = record(1)
    assert calls == []
    assert recorded.function.func(2) == 2
    assert recorded.args == (1,)
    assert recorded.get_name() == "record"


def test_wrong_arguments_are_rejected_when_the_node_is_recorded() -> None:
    with pytest.raises(GraphError, match="bad arguments for node function add"):
        add(1)


def test_classes_and_generators_cannot_be_nodes() -> None:
    class Counter:
        pass

    with pytest.raises(GraphError, match="functions only"):
        node(Counter)

    def numbers():  # type: ignore[no-untyped-def]
        yield 1

    with pytest.raises(GraphError, match="plain function"):
        node(numbers)


def test_references_cannot_be_unpacked_or_tested_for_truth() -> None:
    pair = make_pair(1)
    with pytest.raises(TypeError, match=r"ref\[0\]"):
        _first, _second = pair
    with pytest.raises(TypeError, match="truth value"):
        bool(pair)


def test_items_of_outputs_chain_their_keys() -> None:
    pair = make_pair(1)
    item = pair[1]["x"]
    assert item.base is pair
    assert item.path == (1, "x")


def test_diamond_workflow_orders_nodes_and_edges() -> None:
    a = graph_input("a", 1)
    b = graph_input("b", 2)
    s1 = add(a, b).set_name("s1")
    s2 = add(s1, b).set_name("s2")
    s3 = add(s1, a).set_name("s3")
    m = minus(s2, s3).set_name("m")
    workflow = Workflow(m, name="diamond")
    assert workflow.node_names[0] == "s1"
    assert workflow.node_names[-1] == "m"
    assert set(workflow.node_names) == {"s1", "s2", "s3", "m"}
    assert sorted(workflow.edges()) == [("s1", "s2"), ("s1", "s3"), ("s2", "m"), ("s3", "m")]
    assert list(workflow.inputs) == ["a", "b"]


def test_only_ancestors_of_the_outputs_belong_to_the_workflow() -> None:
    s1 = add(1, 2).set_name("s1")
    add(s1, 3).set_name("unused_child")
    workflow = Workflow(s1)
    assert workflow.node_names == ["s1"]


def test_duplicate_explicit_names_are_rejected() -> None:
    first = add(1, 1).set_name("dup")
    second = add(10, 10).set_name("dup")
    with pytest.raises(GraphError, match="two nodes are named 'dup'"):
        Workflow(add(first, second))


def test_default_names_are_numbered_and_avoid_explicit_ones() -> None:
    first = add(1, 2)
    second = add(first, 3)
    explicit = add(second, 4).set_name("add_1")
    workflow = Workflow(explicit)
    assert workflow.node_names == ["add_2", "add_3", "add_1"]
    single = Workflow(minus(1, 2))
    assert single.node_names == ["minus"]


def test_invalid_names_are_rejected() -> None:
    with pytest.raises(GraphError, match="invalid node name"):
        add(1, 2).set_name("")
    with pytest.raises(GraphError, match="invalid node name"):
        add(1, 2).set_name("a\nb")
    with pytest.raises(GraphError, match="invalid graph input name"):
        graph_input("not an identifier")


def test_two_inputs_with_one_name_are_rejected() -> None:
    with pytest.raises(GraphError, match="two different graph inputs are named 'x'"):
        Workflow(add(graph_input("x"), graph_input("x")))


def _two_sums_and_a_difference() -> Workflow:
    s1 = add(1, 2).set_name("sum_one")
    s2 = add(s1, 3).set_name("sum_two")
    return Workflow(minus(s2, s1).set_name("difference"), name="opts")


def test_queries_match_whole_names_only() -> None:
    workflow = _two_sums_and_a_difference()
    assert workflow.query("sum_.*").names == ["sum_one", "sum_two"]
    assert workflow.query(".*o.*").names == ["sum_one", "sum_two"]
    with pytest.raises(GraphError, match="matches no node"):
        workflow.query("sum")
    with pytest.raises(GraphError, match="invalid node-name pattern"):
        workflow.query("(")


def test_task_options_merge_in_query_order_and_tags_accumulate() -> None:
    workflow = _two_sums_and_a_difference()
    workflow.query("sum_.*").set_task_args({"retries": 1, "tags": ["sums"]})
    workflow.query("sum_two").set_task_args({"retries": 3, "tags": ["second"], "timeout_seconds": 5})
    assert workflow.task_options("sum_one") == {"retries": 1, "tags": ["sums"]}
    assert workflow.task_options("sum_two") == {
        "retries": 3,
        "tags": ["sums", "second"],
        "timeout_seconds": 5,
    }
    assert workflow.task_options("difference") == {}


def test_task_rules_from_a_yaml_file_apply_in_order(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- {match: 'sum_.*', task: {retries: 1, tags: [sums]}}\n"
        "- {match: sum_two, task: {retries: 5}}\n"
        "- {match: difference, store: false}\n"
    )
    workflow = _two_sums_and_a_difference().apply_task_rules(rules)
    assert workflow.task_options("sum_one") == {"retries": 1, "tags": ["sums"]}
    assert workflow.task_options("sum_two") == {"retries": 5, "tags": ["sums"]}
    compiled = workflow.set_storage(tmp_path / "store").compile()
    assert {entry.name: entry.stored for entry in compiled.nodes} == {
        "sum_one": True,
        "sum_two": True,
        "difference": False,
    }


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"task": {}}], "task rule 1: needs a 'match' pattern"),
        ([{"match": "sum_one"}, {"match": "nothing"}], "task rule 2: pattern 'nothing' matches no node"),
        (
            [{"match": "sum_one", "task": {"retry": 1}}],
            r"task rule 1: unknown Prefect task option\(s\) \['retry'\]",
        ),
        ([{"match": "sum_one", "when": 1}], r"task rule 1: unknown key\(s\) \['when'\]"),
        ([{"match": "sum_one", "store": "no"}], "'store' must be true or false"),
    ],
)
def test_bad_task_rules_are_rejected_and_change_nothing(rules: list[dict[str, object]], message: str) -> None:
    workflow = _two_sums_and_a_difference()
    # A valid first rule: it must not be applied when a later one is bad.
    with pytest.raises(GraphError, match=message):
        workflow.apply_task_rules([{"match": "sum_one", "task": {"retries": 9}}, *rules])
    assert workflow.task_options("sum_one") == {}
    with pytest.raises(GraphError, match="must be a list"):
        workflow.apply_task_rules({"match": "x"})  # type: ignore[arg-type]


def test_unknown_task_and_flow_options_are_rejected_by_name() -> None:
    workflow = _two_sums_and_a_difference()
    with pytest.raises(GraphError, match=r"unknown Prefect task option\(s\) \['retry'\]"):
        workflow.query("sum_one").set_task_args({"retry": 2})
    with pytest.raises(GraphError, match="must be a list of strings"):
        workflow.query("sum_one").set_task_args({"tags": "one"})
    with pytest.raises(GraphError, match=r"unknown Prefect flow option\(s\) \['runner'\]"):
        workflow.set_flow_options({"runner": ThreadPoolTaskRunner()})


def test_generated_flow_takes_the_declared_inputs_as_parameters() -> None:
    x = graph_input("x", annotation=int, description="first operand")
    y = graph_input("y", 2.5, annotation=float)
    workflow = Workflow(add(x, y), name="params-check", description="adds")
    workflow.set_flow_options({"retries": 2})
    flow = workflow.generate_flow()
    assert isinstance(flow, Flow)
    assert flow.name == "params-check"
    assert flow.retries == 2
    assert flow.description == "adds"
    assert isinstance(flow.task_runner, ThreadPoolTaskRunner)
    schema = flow.parameters.model_dump()
    assert schema["required"] == ["x"]
    assert schema["properties"]["x"]["type"] == "integer"
    assert schema["properties"]["x"]["description"] == "first operand"
    assert schema["properties"]["y"]["default"] == 2.5
    assert flow.version == workflow.fingerprint()
    assert workflow.generate_flow() is flow
    workflow.query("add").set_task_args({"retries": 1})
    assert workflow.generate_flow() is not flow


def test_fingerprint_changes_with_structure() -> None:
    one = Workflow(add(1, 2).set_name("n"))
    same = Workflow(add(1, 2).set_name("n"))
    other = Workflow(minus(1, 2).set_name("n"))
    assert one.fingerprint() == same.fingerprint()
    assert one.fingerprint() != other.fingerprint()


def test_outputs_must_be_nodes() -> None:
    with pytest.raises(GraphError, match="at least one output"):
        Workflow()
    with pytest.raises(GraphError, match="not a graph node"):
        Workflow(3)  # type: ignore[arg-type]
    with pytest.raises(GraphError, match="is a graph input"):
        Workflow(graph_input("x"))
    with pytest.raises(GraphError, match="invalid workflow name"):
        Workflow(add(1, 2), name="a/b")
