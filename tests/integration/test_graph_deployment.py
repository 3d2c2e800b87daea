"""The example graph published from its Flow manifest and run by the test worker, cached across runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun, TaskRun

from lume_platform.flowspec import FlowSpec
from lume_platform.graph import ENTRY_RESULT_TYPE
from lume_platform.services import Services

pytestmark = pytest.mark.integration

MANIFEST = Path(__file__).resolve().parents[2] / "examples" / "graph" / "graph-flow.yaml"
ALL_NODES = {"beam", "drifted", "emittance_x", "emittance_y", "sizes", "summary"}


def task_run_states(flow_run: FlowRun, expected: int) -> dict[str, str]:
    """State names of a flow run's task runs by name, once all ``expected`` are recorded and final.

    Task runs reach the server through events, shortly after the flow run ends.
    """
    deadline = time.monotonic() + 60
    runs: list[TaskRun] = []
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
            )
            if len(runs) >= expected and all(run.state is not None and run.state.is_final() for run in runs):
                break
            time.sleep(0.5)
    assert len(runs) == expected, f"expected {expected} task runs, got {sorted(run.name for run in runs)}"
    return {run.name: run.state.name for run in runs if run.state is not None}


def test_example_graph_deploys_from_its_manifest_and_reuses_results_across_worker_runs(
    deploy: Any, run: Any, lume_env: dict[str, str], lume_services: Services
) -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    spec = FlowSpec.model_validate(manifest["spec"]).model_dump(exclude_unset=True)
    full_name = deploy(env=lume_env, **spec)
    assert full_name.startswith("beam-emittance/")

    small = {"n_particles": 2000}
    first = run(full_name, small)
    assert first.state.is_completed(), first.state.message
    summary = first.state.result()
    assert set(summary) == {"emittance_x_nm", "emittance_y_nm", "size_x_mm", "size_y_mm"}
    assert 0.5 < summary["size_x_mm"] < 2.0 and summary["size_y_mm"] > summary["size_x_mm"]
    assert set(task_run_states(first, expected=6).values()) == {"Completed"}

    again = run(full_name, small)
    assert again.state.is_completed(), again.state.message
    assert again.state.result() == summary
    assert task_run_states(again, expected=1) == {"summary": "Cached"}

    longer = run(full_name, {**small, "length": 5.0})
    assert longer.state.is_completed(), longer.state.message
    states = task_run_states(longer, expected=6)
    assert states == {"beam": "Cached"} | {name: "Completed" for name in ALL_NODES - {"beam"}}

    # The cache lives on the mounted (shared) filesystem and is indexed in the test's MongoDB database.
    mounted = Path(lume_env["LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS"])
    assert len(list((mounted / "graph-cache").glob("*/*.entry"))) == 11
    indexed = lume_services.results_store.find(
        {"result_type": ENTRY_RESULT_TYPE, "flow_name": "beam-emittance"}
    )
    # Six entries from the first run, five more after the drift length changed (the beam was reused).
    assert sorted(result.inputs["node"] for result in indexed) == sorted(
        ["beam", *(2 * sorted(ALL_NODES - {"beam"}))]
    )
    assert {result.flow_run_id for result in indexed} == {str(first.id), str(longer.id)}
