"""Invalid Flow and FlowRun manifests: each rejected by the API server (schema or CEL) or marked Error by the
operator, with a message that names the field at fault, and without a retry storm or a crash."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

pytestmark = pytest.mark.integration

VALID = {"entrypoint": "examples/flows/append_text.py:append_text"}
COMPOSITION = {"name": "c", "composing_flows": [{"name": "append-text"}]}

# (spec or None for "no spec at all", a word the API server's message must contain)
REJECTED_BY_API_SERVER: list[tuple[dict[str, Any] | None, str]] = [
    (None, "spec"),
    ({}, "exactly one of entrypoint, composition"),
    ({**VALID, "composition": COMPOSITION}, "exactly one of entrypoint, composition"),
    ({"entrypoint": "nocolon"}, "spec.entrypoint"),
    ({"entrypoint": "pkg.mod:"}, "spec.entrypoint"),
    ({"entrypoint": "has space.py:f"}, "spec.entrypoint"),
    ({"entrypoint": 123}, "spec.entrypoint"),
    ({"entrypoint": "a" * 600 + ".py:f"}, "spec.entrypoint"),
    ({**VALID, "schedules": [{"cron": "* * * * *"}]}, "slug"),
    ({**VALID, "schedules": [{"slug": "Bad_Slug", "cron": "* * * * *"}]}, "spec.schedules[0].slug"),
    ({**VALID, "schedules": [{"slug": "s"}]}, "exactly one of cron, interval, rrule"),
    ({**VALID, "schedules": [{"slug": "s", "cron": "* * * * *", "interval": 60}]}, "exactly one of cron"),
    ({**VALID, "schedules": [{"slug": "s", "interval": 0}]}, "spec.schedules[0].interval"),
    ({**VALID, "schedules": [{"slug": "s", "interval": "ten"}]}, "spec.schedules[0].interval"),
    (
        {**VALID, "schedules": [{"slug": "s", "cron": "1 * * * *"}, {"slug": "s", "cron": "2 * * * *"}]},
        "spec.schedules",
    ),
    ({**VALID, "schedules": {"slug": "s"}}, "spec.schedules"),
    ({**VALID, "schedules": [{"slug": f"s{i}", "interval": 60} for i in range(21)]}, "spec.schedules"),
    ({**VALID, "workPool": "prefect-pool"}, "spec.workPool"),
    ({**VALID, "workPool": "PrefectPool"}, "spec.workPool"),
    ({**VALID, "workPool": "bad pool!"}, "spec.workPool"),
    ({**VALID, "concurrencyLimit": 0}, "spec.concurrencyLimit"),
    ({**VALID, "concurrencyLimit": "two"}, "spec.concurrencyLimit"),
    ({**VALID, "tags": "a"}, "spec.tags"),
    ({**VALID, "tags": ["a", "a"]}, "spec.tags"),
    ({**VALID, "env": {"A": 1}}, "spec.env"),
    ({**VALID, "env": ["A=1"]}, "spec.env"),
    ({**VALID, "parameters": "x=1"}, "spec.parameters"),
    ({**VALID, "resources": {"limits": {"cpu": "lots"}}}, "spec.resources.limits.cpu"),
    ({**VALID, "resources": {"requests": {"memory": "1 GB"}}}, "spec.resources.requests.memory"),
    ({**VALID, "paused": "maybe"}, "spec.paused"),
    ({**VALID, "flowName": ""}, "spec.flowName"),
    ({**VALID, "image": ""}, "spec.image"),
    ({**VALID, "version": ""}, "spec.version"),
    ({**VALID, "workQueue": ""}, "spec.workQueue"),
    ({**VALID, "entrypiont": "typo.py:f"}, "entrypiont"),
]

# Specs the schema cannot judge; the operator marks them Error naming the field.
MARKED_ERROR_BY_OPERATOR: list[tuple[dict[str, Any], str]] = [
    ({**VALID, "env": {"1BAD": "x"}}, "spec.env"),
    ({"composition": {"name": "c", "composing_flows": []}}, "spec.composition"),
    ({"composition": {"composing_flows": [{"name": "x"}]}}, "spec.composition"),
    ({**VALID, "tags": [" "]}, "spec.tags"),
]


def _name() -> str:
    return f"bad-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(("spec", "field"), REJECTED_BY_API_SERVER)
def test_api_server_rejects(kube: Any, namespace: str, spec: dict[str, Any] | None, field: str) -> None:
    body: dict[str, Any] = {"apiVersion": "lume.dev/v1alpha1", "kind": "Flow", "metadata": {"name": _name()}}
    if spec is not None:
        body["spec"] = spec
    with pytest.raises(kube.ApiException) as caught:
        kube.create(namespace, "flows", body)
    assert caught.value.status in (400, 422), caught.value.body
    assert field in caught.value.body, caught.value.body


@pytest.mark.parametrize(("spec", "field"), MARKED_ERROR_BY_OPERATOR)
def test_operator_marks_error(
    kube: Any, namespace: str, operator: Any, tools: Any, spec: dict[str, Any], field: str
) -> None:
    name = _name()
    kube.create(namespace, "flows", tools.flow_manifest(name, spec))

    def errored() -> dict[str, Any] | None:
        body = kube.get(namespace, "flows", name)
        return body if (body or {}).get("status", {}).get("phase") == "Error" else None

    body = tools.wait_until(f"Flow {name} in Error", errored, timeout=60)
    assert field in body["status"]["message"], body["status"]
    ready = tools.condition(body, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    # No retry storm: the handler is done, nothing is scheduled for it.
    annotations = body["metadata"].get("annotations") or {}
    assert not any("kopf.lume.dev/reconcile_flow" in key for key in annotations), annotations
    kube.delete(namespace, "flows", name)
    tools.wait_until("the Flow gone", lambda: kube.get(namespace, "flows", name) is None, timeout=60)
    assert operator.alive()


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "flowRef"),
        ({"flowRef": "Bad_Name"}, "spec.flowRef"),
        ({"flowRef": "x", "parameters": 3}, "parameters"),
    ],
)
def test_bad_flow_runs_are_rejected(kube: Any, namespace: str, spec: dict[str, Any], field: str) -> None:
    body = {"apiVersion": "lume.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": _name()}, "spec": spec}
    with pytest.raises(kube.ApiException) as caught:
        kube.create(namespace, "flowruns", body)
    assert caught.value.status in (400, 422) and field in caught.value.body, caught.value.body


def test_flow_run_spec_is_immutable(kube: Any, namespace: str) -> None:
    name = _name()
    body = {
        "apiVersion": "lume.dev/v1alpha1",
        "kind": "FlowRun",
        "metadata": {"name": name},
        "spec": {"flowRef": "does-not-exist"},
    }
    kube.create(namespace, "flowruns", body)
    with pytest.raises(kube.ApiException) as caught:
        kube.patch(namespace, "flowruns", name, {"spec": {"flowRef": "another"}})
    assert caught.value.status == 422 and "flowRef is immutable" in caught.value.body, caught.value.body
    kube.delete(namespace, "flowruns", name)
