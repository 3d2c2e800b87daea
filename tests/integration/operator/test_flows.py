"""A Flow's life through the operator: Ready, edited, re-checked without writes, deleted, repaired."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "entrypoint": "examples/flows/append_text.py:append_text",
        "workingDir": str(ROOT),
        "parameters": {"text1": "a", "text2": "b"},
        "tags": ["op-test"],
        "schedules": [{"slug": "hourly", "cron": "0 * * * *"}, {"slug": "daily", "interval": 86400}],
    }
    base.update(overrides)
    return base


def ready(kube: Any, namespace: str, name: str, generation: int | None = None) -> dict[str, Any] | None:
    body = kube.get(namespace, "flows", name)
    status = (body or {}).get("status") or {}
    ready_condition = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if status.get("phase") != "Ready" or not ready_condition or ready_condition["status"] != "True":
        return None
    if generation is not None and status.get("observedGeneration") != generation:
        return None
    return body


def test_apply_edit_noop_delete(kube: Any, namespace: str, operator: Any, tools: Any) -> None:
    name = f"flow-{uuid.uuid4().hex[:6]}"
    kube.create(namespace, "flows", tools.flow_manifest(name, spec()))
    body = tools.wait_until(f"Flow {name} Ready", lambda: ready(kube, namespace, name), timeout=60)
    status = body["status"]
    assert tools.condition(body, "Synced")["status"] == "True"
    assert status["observedGeneration"] == body["metadata"]["generation"]
    with tools.prefect_client() as client:
        deployment = client.read_deployment(status["deploymentId"])
        assert deployment.entrypoint == "examples/flows/append_text.py:append_text"
        assert deployment.parameters == {"text1": "a", "text2": "b"}
        assert deployment.tags == ["op-test"]
        assert sorted(s.slug for s in deployment.schedules) == ["daily", "hourly"]
    printed = tools.kubectl("get", "flows", "-n", namespace, name)
    assert "Ready" in printed and status["deploymentId"] in printed

    # Edit: the deployment follows, schedules are reconciled by slug and never duplicated.
    edited = kube.patch(
        namespace,
        "flows",
        name,
        {
            "spec": {
                "parameters": {"text1": "edited"},
                "schedules": [{"slug": "hourly", "cron": "15 * * * *"}],
            }
        },
    )
    body = tools.wait_until(
        "the edit synced", lambda: ready(kube, namespace, name, edited["metadata"]["generation"]), timeout=60
    )
    with tools.prefect_client() as client:
        deployment = client.read_deployment(status["deploymentId"])
        assert deployment.parameters == {"text1": "edited", "text2": "b"}
        assert [(s.slug, s.schedule.cron) for s in deployment.schedules] == [("hourly", "15 * * * *")]
        updated_before = deployment.updated

    # Unchanged spec, handled again (an annotation is a change kopf reacts to): no write to Prefect.
    last_sync = body["status"]["lastSyncTime"]
    time.sleep(1.1)  # lastSyncTime has one-second resolution
    kube.patch(namespace, "flows", name, {"metadata": {"annotations": {"test/touch": "1"}}})
    tools.wait_until(
        "a second sync",
        lambda: (kube.get(namespace, "flows", name) or {}).get("status", {}).get("lastSyncTime") != last_sync,
        timeout=60,
    )
    with tools.prefect_client() as client:
        assert client.read_deployment(status["deploymentId"]).updated == updated_before

    # Delete: the finalizer removes the deployment first.
    kube.delete(namespace, "flows", name)
    tools.wait_until("the Flow gone", lambda: kube.get(namespace, "flows", name) is None, timeout=60)
    with tools.prefect_client() as client:
        from prefect.exceptions import ObjectNotFound

        with pytest.raises(ObjectNotFound):
            client.read_deployment(status["deploymentId"])
    assert operator.alive()


def test_deployment_deleted_behind_its_back_is_recreated(
    kube: Any, namespace: str, operator: Any, tools: Any
) -> None:
    name = f"drift-{uuid.uuid4().hex[:6]}"
    kube.create(namespace, "flows", tools.flow_manifest(name, spec()))
    body = tools.wait_until(f"Flow {name} Ready", lambda: ready(kube, namespace, name), timeout=60)
    old_id = body["status"]["deploymentId"]
    with tools.prefect_client() as client:
        client.delete_deployment(old_id)
    started = time.monotonic()

    def repaired() -> str | None:
        current = (kube.get(namespace, "flows", name) or {}).get("status", {}).get("deploymentId")
        return current if current and current != old_id else None

    # Within the resync interval (20 s here) at the latest; Prefect's event stream makes it seconds.
    new_id = tools.wait_until("the deployment recreated", repaired, timeout=30)
    elapsed = time.monotonic() - started
    with tools.prefect_client() as client:
        deployment = client.read_deployment(new_id)
        assert sorted(s.slug for s in deployment.schedules) == ["daily", "hourly"]
    print(f"drift repaired in {elapsed:.1f} s")
    kube.delete(namespace, "flows", name)
    tools.wait_until("the Flow gone", lambda: kube.get(namespace, "flows", name) is None, timeout=60)


def test_missing_work_pool_is_reported_not_crashed(
    kube: Any, namespace: str, operator: Any, tools: Any
) -> None:
    name = f"nopool-{uuid.uuid4().hex[:6]}"
    kube.create(
        namespace, "flows", tools.flow_manifest(name, spec(workPool=f"missing-{uuid.uuid4().hex[:6]}"))
    )

    def reported() -> dict[str, Any] | None:
        body = kube.get(namespace, "flows", name)
        synced = tools.condition(body, "Synced")
        return body if synced and synced["reason"] == "WorkPoolNotFound" else None

    body = tools.wait_until("WorkPoolNotFound on the Flow", reported, timeout=60)
    assert body["status"]["phase"] == "Pending"
    assert "does not exist" in body["status"]["message"]
    assert operator.alive()
    kube.delete(namespace, "flows", name)
    tools.wait_until("the Flow gone", lambda: kube.get(namespace, "flows", name) is None, timeout=60)
