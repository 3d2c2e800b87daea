"""The operator's pure parts around the Registrar: status builders, conditions, drift decisions."""

from __future__ import annotations

from types import SimpleNamespace
from uuid import uuid4

from lume_operator import drift
from lume_operator import status as build
from lume_platform.registrar import SyncResult

NOW, LATER = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def _result(action: str = "created") -> SyncResult:
    return SyncResult(uuid4(), uuid4(), "append-text/append-text", "pool", action)


def test_synced_flow_is_ready_with_both_conditions() -> None:
    result = _result()
    status = build.flow_synced({}, result, 3, NOW)
    assert status["phase"] == "Ready" and status["deploymentId"] == str(result.deployment_id)
    assert status["observedGeneration"] == 3 and status["lastSyncTime"] == NOW
    kinds = {c["type"]: c for c in status["conditions"]}
    assert kinds["Ready"]["status"] == kinds["Synced"]["status"] == "True"
    assert kinds["Ready"]["observedGeneration"] == 3


def test_transition_time_moves_only_when_the_status_flips() -> None:
    first = build.flow_synced({}, _result(), 1, NOW)
    again = build.flow_synced(first, _result("unchanged"), 1, LATER)
    assert all(c["lastTransitionTime"] == NOW for c in again["conditions"])
    down = build.flow_not_synced(again, "PrefectUnavailable", "unreachable", 1, LATER)
    kinds = {c["type"]: c for c in down["conditions"]}
    assert kinds["Synced"]["status"] == "False" and kinds["Synced"]["lastTransitionTime"] == LATER
    # A deployment that exists stays Ready while Prefect is away.
    assert kinds["Ready"]["status"] == "True" and down["phase"] == "Ready"


def test_never_synced_flow_is_pending_when_prefect_is_away() -> None:
    status = build.flow_not_synced({}, "WorkPoolNotFound", "no pool", 1, NOW)
    assert status["phase"] == "Pending"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Ready": "False", "Synced": "False"}


def test_invalid_spec_is_an_error_naming_the_field() -> None:
    status = build.flow_invalid({}, "spec.entrypoint: must look like", 2, NOW)
    assert status["phase"] == "Error" and status["message"].startswith("spec.entrypoint")
    assert all(c["reason"] == "InvalidSpec" for c in status["conditions"])


def test_run_phases() -> None:
    assert build.run_phase("COMPLETED") == "Completed" and build.run_phase(None) == "Pending"
    assert {"Completed", "Failed", "Crashed", "Cancelled"} == build.TERMINAL_RUN_PHASES


def test_drift_events_map_to_flows_and_ignore_our_own_echo() -> None:
    assert drift.deployment_id_of("prefect.deployment.abc") == "abc"
    assert drift.deployment_id_of("prefect.flow.abc") is None
    memo = SimpleNamespace(flows_by_deployment={"d1": ("ns", "f1")}, own_writes={"d1": 100.0})
    assert drift.needs_resync("prefect.deployment.deleted", "d1", memo, 101.0) == ("ns", "f1")
    assert drift.needs_resync("prefect.deployment.updated", "d1", memo, 101.0) is None
    assert drift.needs_resync("prefect.deployment.updated", "d1", memo, 200.0) == ("ns", "f1")
    assert drift.needs_resync("prefect.deployment.deleted", "unknown", memo, 101.0) is None
