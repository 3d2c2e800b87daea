"""A FlowRun resource runs its Flow's deployment through the real process worker, exactly once."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def test_flow_run_completes_once(kube: Any, namespace: str, operator: Any, tools: Any) -> None:
    flow = f"append-{uuid.uuid4().hex[:6]}"
    kube.create(
        namespace,
        "flows",
        tools.flow_manifest(
            flow,
            {
                "entrypoint": "examples/flows/append_text.py:append_text",
                "workingDir": str(ROOT),
                "parameters": {"text1": "Hello ", "text2": "operator", "filename": f"op-test/{flow}.txt"},
            },
        ),
    )
    tools.wait_until(
        "the Flow Ready",
        lambda: (kube.get(namespace, "flows", flow) or {}).get("status", {}).get("phase") == "Ready",
        timeout=60,
    )
    run_name = f"{flow}-run"
    kube.create(
        namespace,
        "flowruns",
        {
            "apiVersion": "lume.dev/v1alpha1",
            "kind": "FlowRun",
            "metadata": {"name": run_name},
            "spec": {"flowRef": flow, "parameters": {"text2": "FlowRun"}},
        },
    )

    def finished() -> dict[str, Any] | None:
        body = kube.get(namespace, "flowruns", run_name) or {}
        phase = body.get("status", {}).get("phase")
        return body if phase in ("Completed", "Failed", "Crashed", "Cancelled") else None

    body = tools.wait_until("the FlowRun to finish", finished, timeout=240, interval=1.0)
    status = body["status"]
    assert status["phase"] == "Completed", f"{status}\n{operator.log()[-3000:]}"
    assert status["startTime"] and status["endTime"] and status["flowRunName"]
    printed = tools.kubectl("get", "flowruns", "-n", namespace, run_name)
    assert "Completed" in printed

    with tools.prefect_client() as client:
        run = client.read_flow_run(status["flowRunId"])
        assert run.parameters["text2"] == "FlowRun" and run.parameters["text1"] == "Hello "
        deployment_id = run.deployment_id

    # A restart resumes every FlowRun: the uid-derived idempotency key means no second run.
    synced_before = kube.get(namespace, "flows", flow)["status"]["lastSyncTime"]
    operator.stop()
    operator.start()
    tools.wait_until("the operator back", operator.healthy, timeout=90)
    tools.wait_until(
        "the Flow re-confirmed after the restart",
        lambda: kube.get(namespace, "flows", flow)["status"]["lastSyncTime"] != synced_before,
        timeout=60,
    )
    with tools.prefect_client() as client:
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
        assert len(runs) == 1, [r.name for r in runs]
    assert (kube.get(namespace, "flowruns", run_name) or {})["status"]["flowRunId"] == status["flowRunId"]
