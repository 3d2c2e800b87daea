"""The operator under faults: killed midway through a batch, and Prefect stopped and started again."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
SPEC = {
    "entrypoint": "examples/flows/append_text.py:append_text",
    "workingDir": str(ROOT),
    "schedules": [{"slug": "hourly", "cron": "0 * * * *"}],
}


def phase(kube: Any, namespace: str, name: str) -> str | None:
    return ((kube.get(namespace, "flows", name) or {}).get("status") or {}).get("phase")


def deployments_named(client: Any, name: str) -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    return client.read_deployments(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name])))


def test_killed_midway_through_a_batch_duplicates_nothing(
    kube: Any, namespace: str, operator_kubeconfig: Path, tools: Any
) -> None:
    operator = tools.OperatorProcess(operator_kubeconfig, namespace, resync_seconds="300")
    operator.start()
    try:
        tools.wait_until("the operator up", operator.healthy, timeout=90)
        prefix = f"batch-{uuid.uuid4().hex[:6]}"
        names = [f"{prefix}-{i:02d}" for i in range(24)]
        for name in names:
            kube.create(namespace, "flows", tools.flow_manifest(name, SPEC))
        tools.wait_until(
            "a few Flows Ready",
            lambda: sum(phase(kube, namespace, n) == "Ready" for n in names) >= 3,
            timeout=90,
        )
        operator.kill()
        done_before = sum(phase(kube, namespace, n) == "Ready" for n in names)
        assert done_before < len(names), "the batch finished before the kill: nothing was interrupted"
        operator.start()
        tools.wait_until(
            "every Flow Ready after the restart",
            lambda: all(phase(kube, namespace, n) == "Ready" for n in names),
            timeout=180,
            interval=1.0,
        )
        with tools.prefect_client() as client:
            for name in names:
                found = deployments_named(client, name)
                assert len(found) == 1, (name, [d.id for d in found])
                assert kube.get(namespace, "flows", name)["status"]["deploymentId"] == str(found[0].id)
                assert [s.slug for s in found[0].schedules] == ["hourly"]
        for name in names:
            kube.delete(namespace, "flows", name)
        tools.wait_until("the batch deleted", lambda: not kube.list(namespace, "flows"), timeout=120)
    finally:
        operator.stop()


def test_prefect_unreachable_then_back(
    kube: Any, namespace: str, operator_kubeconfig: Path, tools: Any, tmp_path: Path
) -> None:
    import os

    prefect = tools.PrefectServer(tmp_path / "prefect")
    prefect.start()
    operator = tools.OperatorProcess(
        operator_kubeconfig, namespace, env={"PREFECT_API_URL": prefect.api_url}, max_backoff_seconds="4"
    )
    try:
        from prefect.client.schemas.actions import WorkPoolCreate

        with tools.prefect_client(prefect.api_url) as client:
            client.create_work_pool(WorkPoolCreate(name=os.environ["LUME_TEST_WORK_POOL"], type="process"))
        operator.start()
        tools.wait_until("the operator up", operator.healthy, timeout=90)
        first, second = f"up-{uuid.uuid4().hex[:6]}", f"down-{uuid.uuid4().hex[:6]}"
        kube.create(namespace, "flows", tools.flow_manifest(first, SPEC))
        tools.wait_until("the first Flow Ready", lambda: phase(kube, namespace, first) == "Ready", timeout=60)

        prefect.stop()
        kube.create(namespace, "flows", tools.flow_manifest(second, SPEC))
        kube.patch(namespace, "flows", first, {"spec": {"parameters": {"text1": "while down"}}})

        def unsynced(name: str) -> bool:
            synced = tools.condition(kube.get(namespace, "flows", name), "Synced")
            return bool(synced and synced["status"] == "False" and synced["reason"] == "PrefectUnavailable")

        tools.wait_until("Synced=False on both", lambda: unsynced(first) and unsynced(second), timeout=120)
        assert phase(kube, namespace, second) == "Pending"
        time.sleep(5)
        assert operator.alive() and operator.healthy(), operator.log()[-2000:]

        prefect.start()

        def synced(name: str) -> bool:
            body = kube.get(namespace, "flows", name)
            condition = tools.condition(body, "Synced")
            return bool(condition and condition["status"] == "True" and body["status"]["phase"] == "Ready")

        tools.wait_until("both Flows synced again", lambda: synced(first) and synced(second), timeout=120)
        with tools.prefect_client(prefect.api_url) as client:
            for name in (first, second):
                assert len(deployments_named(client, name)) == 1
            assert deployments_named(client, first)[0].parameters == {"text1": "while down"}
        for name in (first, second):
            kube.delete(namespace, "flows", name)
        tools.wait_until("the Flows deleted", lambda: not kube.list(namespace, "flows"), timeout=60)
    finally:
        operator.stop()
        prefect.stop()


def test_without_prefect_events_the_periodic_resync_repairs_drift(
    kube: Any, namespace: str, operator_kubeconfig: Path, tools: Any
) -> None:
    """The safety net alone: events ignored, a deployment deleted in Prefect is back within the interval."""
    operator = tools.OperatorProcess(
        operator_kubeconfig, namespace, resync_seconds="5", follow_events="false"
    )
    operator.start()
    try:
        tools.wait_until("the operator up", operator.healthy, timeout=90)
        name = f"sweep-{uuid.uuid4().hex[:6]}"
        kube.create(namespace, "flows", tools.flow_manifest(name, SPEC))
        tools.wait_until(f"Flow {name} Ready", lambda: phase(kube, namespace, name) == "Ready", timeout=60)
        old_id = kube.get(namespace, "flows", name)["status"]["deploymentId"]
        with tools.prefect_client() as client:
            client.delete_deployment(old_id)

        def recreated() -> str | None:
            current = ((kube.get(namespace, "flows", name) or {}).get("status") or {}).get("deploymentId")
            return current if current and current != old_id else None

        new_id = tools.wait_until("the deployment recreated by the resync", recreated, timeout=30)
        with tools.prefect_client() as client:
            assert len(deployments_named(client, name)) == 1
            assert client.read_deployment(new_id).schedules[0].slug == "hourly"
        assert "periodic resync of" in operator.log_path.read_text()
        kube.delete(namespace, "flows", name)
        tools.wait_until("the Flow gone", lambda: kube.get(namespace, "flows", name) is None, timeout=60)
    finally:
        operator.stop()
