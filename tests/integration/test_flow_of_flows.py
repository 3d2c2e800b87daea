"""Flow-of-flows: the LUME-services YAML validated, and a two-flow composition run through the worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lume_platform.errors import FlowOfFlowsError
from lume_platform.flow_of_flows import parse_flow_of_flows, resolve
from lume_platform.services import Services

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "flows"
APPEND_TEXT = "examples/flows/append_text.py:append_text"
TEXT_MODEL = "examples/flows/text_model.py:text_model"


def example() -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / "flow_of_flows.yaml").read_text())


def test_the_example_parses() -> None:
    plan = parse_flow_of_flows(EXAMPLES / "flow_of_flows.yaml")
    assert plan.flow_names == ["append-text", "text-model"]
    mapped = plan.composing_flows[1].mapped_parameters
    assert (mapped["text"].map_type, mapped["text_file"].map_type) == ("raw", "file")
    assert mapped["text_file"].parent_task_name == "save_text_file"


def test_the_flow_manifest_carries_the_same_composition() -> None:
    manifest = yaml.safe_load((EXAMPLES / "text-pipeline.yaml").read_text())
    assert manifest["spec"]["composition"] == example()


def test_lume_services_documents_load() -> None:
    # LUME-services' own example: a db mapping with attribute_index and its unused parent_project_name.
    document = """
name: flow_of_flows
project_name: test
labels: [lume-services]
composing_flows:
  - name: flow1
    project_name: test
  - name: flow2
    project_name: test
    mapped_parameters:
      file_rep:
        parent_flow_name: flow1
        parent_task_name: save_text_file
        parent_project_name: test
        map_type: file
  - name: flow3
    project_name: test
    mapped_parameters:
      text1:
        parent_flow_name: flow2
        parent_task_name: save_db_result
        map_type: db
        attribute_index: [outputs, output1]
"""
    plan = parse_flow_of_flows(document)
    assert plan.composing_flows[2].mapped_parameters["text1"].attribute_index == ["outputs", "output1"]


def mapping(parent: str, task: str = "append", **extra: Any) -> dict[str, Any]:
    return {"parent_flow_name": parent, "parent_task_name": task, **extra}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d["composing_flows"][1]["mapped_parameters"].update(x=mapping("nowhere")), ["nowhere"]),
        (
            lambda d: d["composing_flows"][0].update(mapped_parameters={"y": mapping("text-model")}),
            ["later flow"],
        ),
        (
            lambda d: d["composing_flows"][1]["mapped_parameters"]["text"].update(map_type="pickle"),
            ["map_type"],
        ),
        (
            lambda d: d["composing_flows"][1]["mapped_parameters"]["text"].update(
                attribute_index=["outputs"]
            ),
            ["attribute_index"],
        ),
        (lambda d: d["composing_flows"][1].update(colour="red"), ["colour"]),
        (lambda d: d["composing_flows"].append({"name": "append-text"}), ["twice"]),
        (lambda d: d.update(composing_flows=[]), ["composing_flows"]),
        (lambda d: d.pop("name"), ["name"]),
    ],
)
def test_invalid_compositions_are_named(change: Any, named: list[str]) -> None:
    document = example()
    change(document)
    with pytest.raises(FlowOfFlowsError) as caught:
        parse_flow_of_flows(document)
    for word in named:
        assert word in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    document = example()
    document["composing_flows"][1]["mapped_parameters"].update(a=mapping("ghost"), b=mapping("spectre"))
    with pytest.raises(FlowOfFlowsError) as caught:
        parse_flow_of_flows(document)
    assert "ghost" in str(caught.value) and "spectre" in str(caught.value)


def test_yaml_that_does_not_parse_is_an_error() -> None:
    with pytest.raises(FlowOfFlowsError, match="does not parse"):
        parse_flow_of_flows("name: [unclosed")


@pytest.fixture
def example_deployments(deploy: Any, lume_env: dict[str, str]) -> dict[str, str]:
    """The two example flows deployed under fresh names: {flow name: deployment name}."""
    names = {}
    for flow_name, entrypoint in (("append-text", APPEND_TEXT), ("text-model", TEXT_MODEL)):
        names[flow_name] = deploy(entrypoint=entrypoint, env=lume_env).split("/", 1)[1]
    return names


def pinned(document: dict[str, Any], deployments: dict[str, str]) -> dict[str, Any]:
    """The composition with each child pinned to its test deployment (other tests deploy the same flows)."""
    for child in document["composing_flows"]:
        child["deployment"] = deployments[child["name"]]
    return document


@pytest.mark.integration
def test_resolve_names_unknown_flows_parameters_and_missing_ones(
    prefect_api: str, example_deployments: dict[str, str]
) -> None:
    document = pinned(example(), example_deployments)
    document["composing_flows"][1]["mapped_parameters"]["colour"] = mapping("append-text")
    document["composing_flows"].append({"name": "no-such-flow-anywhere"})
    with pytest.raises(FlowOfFlowsError) as caught:
        resolve(parse_flow_of_flows(document), {"ghost-flow": {}, "append-text": {"text1": "a", "speed": 3}})
    message = str(caught.value)
    for fault in ("no-such-flow-anywhere", "colour", "ghost-flow", "speed", "text2"):
        assert fault in message, f"{fault!r} not named in: {message}"


@pytest.mark.integration
def test_resolve_finds_each_deployment(prefect_api: str, example_deployments: dict[str, str]) -> None:
    given = {"append-text": {"text1": "a", "text2": "b"}}
    children = resolve(parse_flow_of_flows(pinned(example(), example_deployments)), given)
    assert [child.full_name for child in children] == [
        f"append-text/{example_deployments['append-text']}",
        f"text-model/{example_deployments['text-model']}",
    ]
    assert children[0].parameters == {
        "text1": True,
        "text2": True,
        "filename": False,
        "filesystem_identifier": False,
    }


@pytest.mark.integration
def test_two_flows_run_in_order_with_a_raw_and_a_file_mapping(
    deploy: Any,
    run: Any,
    lume_env: dict[str, str],
    lume_services: Services,
    example_deployments: dict[str, str],
) -> None:
    composition = pinned(example(), example_deployments)
    parent = deploy(composition=composition, env=lume_env)
    given = {"append-text": {"text1": "flows ", "text2": "of flows", "filename": "fof/out.txt"}}
    flow_run = run(parent, {"child_parameters": given}, timeout=600)
    assert flow_run.state.is_completed(), flow_run.state.message
    child_runs = flow_run.state.result()["flow_runs"]
    assert list(child_runs) == ["append-text", "text-model"]

    assert (Path(lume_env["LUME_HOME"]) / "files" / "fof" / "out.txt").read_text() == "flows of flows"
    stored = lume_services.results_store.find({"flow_name": "text-model"})
    assert len(stored) == 1
    result = stored[0]
    assert result.flow_run_id == child_runs["text-model"]
    # raw: the append task's string; file: the saved file's representation, which the child loaded.
    assert result.inputs == {
        "text": "flows of flows",
        "text_file": {"filename": "fof/out.txt", "file_type": "TextFile", "filesystem_identifier": "local"},
    }
    assert result.outputs["file_matches_text"] is True
    assert result.outputs["words"] == 3


@pytest.mark.integration
def test_an_unknown_parent_task_fails_the_run_naming_it(
    deploy: Any, run: Any, lume_env: dict[str, str], example_deployments: dict[str, str]
) -> None:
    composition = pinned(example(), example_deployments)
    composition["composing_flows"][1]["mapped_parameters"]["text"]["parent_task_name"] = "no_such_task"
    parent = deploy(composition=composition, env=lume_env)
    flow_run = run(parent, {"child_parameters": {"append-text": {"text1": "a", "text2": "b"}}}, timeout=600)
    assert flow_run.state.is_failed()
    assert "no_such_task" in (flow_run.state.message or "")


@pytest.mark.integration
def test_a_db_mapping_passes_a_stored_value_by_attribute_index(
    deploy: Any, run: Any, lume_env: dict[str, str], example_deployments: dict[str, str]
) -> None:
    composition = pinned(
        {
            "name": "db-pipeline",
            "composing_flows": [
                {"name": "text-model"},
                {
                    "name": "append-text",
                    "mapped_parameters": {
                        "text1": {
                            "parent_flow_name": "text-model",
                            "parent_task_name": "save_db_result",
                            "map_type": "db",
                            "attribute_index": ["inputs", "text"],
                        }
                    },
                },
            ],
        },
        example_deployments,
    )
    parent = deploy(composition=composition, env=lume_env)
    given = {"text-model": {"text": "stored text"}, "append-text": {"text2": "!", "filename": "db/out.txt"}}
    flow_run = run(parent, {"child_parameters": given}, timeout=600)
    assert flow_run.state.is_completed(), flow_run.state.message
    assert (Path(lume_env["LUME_HOME"]) / "files" / "db" / "out.txt").read_text() == "stored text!"
