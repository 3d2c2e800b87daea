"""Pure builders of the Flow and FlowRun status: phase, conditions (Ready, Synced), messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from lume_platform.registrar import SyncResult

READY = "Ready"
SYNCED = "Synced"
# Prefect state types that end a flow run.
TERMINAL_RUN_PHASES = {"Completed", "Failed", "Crashed", "Cancelled"}


def now_iso() -> str:
    """The current UTC time as Kubernetes writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    kind: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """The conditions list with `kind` set; its transition time moves only when its status flips."""
    value = "True" if status else "False"
    updated: list[dict[str, Any]] = []
    previous = None
    for condition in conditions or []:
        if condition.get("type") == kind:
            previous = condition
        else:
            updated.append(dict(condition))
    transition = previous["lastTransitionTime"] if previous and previous.get("status") == value else now
    new = {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    if generation is not None:
        new["observedGeneration"] = generation
    updated.append(new)
    return sorted(updated, key=lambda condition: condition["type"])


def flow_synced(
    status: Mapping[str, Any], result: SyncResult, generation: int | None, now: str
) -> dict[str, Any]:
    """Status of a Flow whose deployment matches its spec."""
    action = {"created": "created", "updated": "updated", "unchanged": "in sync"}[result.action]
    message = f"deployment {result.full_name} {action}"
    conditions = with_condition(
        status.get("conditions"), READY, True, "DeploymentReady", message, generation, now
    )
    conditions = with_condition(conditions, SYNCED, True, "SyncSuccessful", message, generation, now)
    return {
        "phase": "Ready",
        "deploymentId": str(result.deployment_id),
        "flowId": str(result.flow_id),
        "deploymentName": result.full_name,
        "workPool": result.work_pool,
        "message": message,
        "conditions": conditions,
        "observedGeneration": generation,
        "lastSyncTime": now,
    }


def flow_invalid(status: Mapping[str, Any], message: str, generation: int | None, now: str) -> dict[str, Any]:
    """Status of a Flow whose spec cannot become a deployment: Error until the spec changes."""
    conditions = with_condition(
        status.get("conditions"), READY, False, "InvalidSpec", message, generation, now
    )
    conditions = with_condition(conditions, SYNCED, False, "InvalidSpec", message, generation, now)
    return {"phase": "Error", "message": message, "conditions": conditions, "observedGeneration": generation}


def flow_not_synced(
    status: Mapping[str, Any], reason: str, message: str, generation: int | None, now: str
) -> dict[str, Any]:
    """Status of a Flow that could not be synced for now; Ready stays as it was if it had been ready."""
    conditions = with_condition(status.get("conditions"), SYNCED, False, reason, message, generation, now)
    ready = next((c for c in conditions if c["type"] == READY), None)
    if ready is None or ready.get("status") != "True":
        conditions = with_condition(conditions, READY, False, reason, message, generation, now)
    phase = "Ready" if ready is not None and ready.get("status") == "True" else "Pending"
    return {"phase": phase, "message": message, "conditions": conditions}


def run_phase(state_type: str | None) -> str:
    """A FlowRun phase from a Prefect state type (COMPLETED → Completed)."""
    return state_type.capitalize() if state_type else "Pending"


def flow_run_status(run: Any) -> dict[str, Any]:
    """Status of a FlowRun from its Prefect flow run."""
    state = run.state
    status: dict[str, Any] = {
        "flowRunId": str(run.id),
        "flowRunName": run.name,
        "phase": run_phase(state.type.value if state else None),
        "message": (state.message or state.name) if state else "waiting for Prefect",
    }
    if run.deployment_id:
        status["deploymentId"] = str(run.deployment_id)
    if run.start_time:
        status["startTime"] = run.start_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    if run.end_time:
        status["endTime"] = run.end_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    return status
