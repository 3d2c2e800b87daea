"""FlowSpec / FlowRunSpec: what a manifest may say, and the errors that name the field at fault."""

from __future__ import annotations

from typing import Any

import pytest

from lume_platform.flowspec import InvalidSpec, parse_flow_run_spec, parse_flow_spec

COMPOSITION = {"name": "c", "composing_flows": [{"name": "append-text"}]}
MINIMAL = {"entrypoint": "examples/flows/append_text.py:append_text"}


def test_minimal_spec_defaults() -> None:
    spec = parse_flow_spec(MINIMAL)
    assert spec.effective_entrypoint == MINIMAL["entrypoint"]
    assert spec.effective_flow_name == "append-text"
    assert spec.schedules == [] and spec.parameters == {} and spec.paused is False


def test_full_spec_reads_camel_case() -> None:
    spec = parse_flow_spec(
        {
            "entrypoint": "lume_examples.flows:model_flow",
            "image": "localhost/lume:dev",
            "flowName": "model",
            "description": "d",
            "version": "1.2",
            "parameters": {"x": [1, 2], "y": {"z": None}},
            "schedules": [
                {"slug": "hourly", "cron": "0 * * * *", "timezone": "Europe/Berlin"},
                {"slug": "often", "interval": 60, "active": False},
                {"slug": "rr", "rrule": "FREQ=DAILY"},
            ],
            "workPool": "kube",
            "workQueue": "q",
            "tags": ["a", "b"],
            "env": {"A_B": "1"},
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
            "concurrencyLimit": 2,
            "paused": True,
            "workingDir": "/opt/flows",
        }
    )
    assert spec.effective_flow_name == "model"
    assert spec.work_pool == "kube" and spec.concurrency_limit == 2 and spec.working_dir == "/opt/flows"
    assert [s.slug for s in spec.schedules] == ["hourly", "often", "rr"]
    assert spec.schedules[1].active is False
    assert spec.resources is not None and spec.resources.requests is not None
    assert spec.resources.requests.cpu == "500m"


def test_composition_uses_the_parent_flow() -> None:
    spec = parse_flow_spec({"composition": COMPOSITION})
    assert spec.effective_entrypoint.startswith("lume_platform.flow_of_flows:")


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({}, "spec", "exactly one of entrypoint, composition"),
        ({**MINIMAL, "composition": COMPOSITION}, "spec", "exactly one of entrypoint, composition"),
        ({"composition": {"name": "x", "composing_flows": []}}, "spec.composition", "composing_flows"),
        ({"entrypoint": "no_colon"}, "spec.entrypoint", "package.module:function"),
        ({"entrypoint": "a.b:"}, "spec.entrypoint", "package.module:function"),
        ({"entrypoint": "a b.py:f"}, "spec.entrypoint", "package.module:function"),
        ({**MINIMAL, "schedules": [{"slug": "s"}]}, "spec.schedules[0]", "exactly one of cron"),
        (
            {**MINIMAL, "schedules": [{"slug": "s", "cron": "x", "rrule": "y"}]},
            "spec.schedules[0]",
            "cron, rrule",
        ),
        ({**MINIMAL, "schedules": [{"cron": "* * * * *"}]}, "spec.schedules[0].slug", "Field required"),
        ({**MINIMAL, "schedules": [{"slug": "Bad_Slug", "cron": "x"}]}, "spec.schedules[0].slug", "pattern"),
        ({**MINIMAL, "schedules": [{"slug": "s", "interval": 0}]}, "spec.schedules[0].interval", "greater"),
        (
            {**MINIMAL, "schedules": [{"slug": "s", "cron": "a"}, {"slug": "s", "cron": "b"}]},
            "spec.schedules",
            "unique",
        ),
        ({**MINIMAL, "workPool": "prefect-pool"}, "spec.workPool", "prefect"),
        ({**MINIMAL, "workPool": "Prefect"}, "spec.workPool", "prefect"),
        ({**MINIMAL, "concurrencyLimit": 0}, "spec.concurrencyLimit", "greater"),
        ({**MINIMAL, "tags": ["a", "a"]}, "spec.tags", "unique"),
        ({**MINIMAL, "tags": "a"}, "spec.tags", "list"),
        ({**MINIMAL, "env": {"1BAD": "x"}}, "spec.env", "1BAD"),
        ({**MINIMAL, "env": {"A": 1}}, "spec.env.A", "string"),
        ({**MINIMAL, "parameters": [1]}, "spec.parameters", "dictionary"),
        ({**MINIMAL, "resources": {"limits": {"cpu": "lots"}}}, "spec.resources.limits.cpu", "pattern"),
        ({**MINIMAL, "paused": "maybe"}, "spec.paused", "boolean"),
        ({**MINIMAL, "entrypiont": "x"}, "spec.entrypiont", "not permitted"),
    ],
)
def test_invalid_specs_name_the_field(spec: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_flow_spec(spec)
    message = str(caught.value)
    assert message.startswith(f"{field}: "), message
    assert words in message, message


def test_every_problem_is_reported() -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_flow_spec({"entrypoint": "x", "concurrencyLimit": -1, "bogus": 1})
    assert len(caught.value.problems) == 3


def test_spec_must_be_a_mapping() -> None:
    with pytest.raises(InvalidSpec, match="spec: must be a mapping"):
        parse_flow_spec(["entrypoint"])


def test_flow_run_spec() -> None:
    run = parse_flow_run_spec({"flowRef": "append-text", "parameters": {"a": 1}, "jobVariables": {"env": {}}})
    assert run.flow_ref == "append-text" and run.parameters == {"a": 1}
    with pytest.raises(InvalidSpec, match=r"spec\.flowRef: Field required"):
        parse_flow_run_spec({"parameters": {}})
    with pytest.raises(InvalidSpec, match=r"spec\.flowRef"):
        parse_flow_run_spec({"flowRef": "Not_A_Name"})
