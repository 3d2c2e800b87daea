"""The example graph published from its Flow manifest and run by the test worker, cached across runs."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun, TaskRun
from prefect.settings import PREFECT_API_URL, temporary_settings

from lume_platform.cli import local_flow_spec
from lume_platform.flowspec import FlowSpec
from lume_platform.graph import ENTRY_RESULT_TYPE
from lume_platform.registrar import Registrar
from lume_platform.results import open_results_store
from lume_platform.settings import load_settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "examples" / "graph" / "graph-flow.yaml"
RUN_TIMEOUT = 300.0


async def _wait_for(client: Any, flow_run_id: Any) -> FlowRun:
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        run = await client.read_flow_run(flow_run_id)
        if run.state is not None and run.state.is_final():
            return run  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"flow run {flow_run_id} still {run.state} after {RUN_TIMEOUT}s: is the worker up?"
            )
        await asyncio.sleep(1.0)


async def _final_task_runs(client: Any, flow_run_id: Any, expected: int) -> dict[str, TaskRun]:
    # Task runs reach the server through events, shortly after the flow run ends.
    deadline = time.monotonic() + 60
    runs: list[TaskRun] = []
    while time.monotonic() < deadline:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        if len(runs) >= expected and all(run.state is not None and run.state.is_final() for run in runs):
            break
        await asyncio.sleep(0.5)
    assert len(runs) == expected, f"expected {expected} task runs, got {sorted(run.name for run in runs)}"
    return {run.name: run for run in runs}


def _states(runs: dict[str, TaskRun]) -> dict[str, str]:
    return {name: run.state.name for name, run in runs.items() if run.state is not None}


async def _scenario(work_pool: str, home: Path) -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    # As `lume apply -f` from the repository root: the process worker runs each flow in a temporary
    # directory, so the file entrypoint's working directory is made absolute.
    spec = local_flow_spec(
        FlowSpec.model_validate({**manifest["spec"], "env": {"LUME_HOME": str(home)}}), ROOT
    )
    name = f"{manifest['metadata']['name']}-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        registrar = Registrar(client, default_work_pool=work_pool)
        synced = await registrar.ensure(name, spec)
        try:
            small = {"n_particles": 2000}
            first = await _wait_for(
                client, (await registrar.start_run(synced.deployment_id, parameters=small)).id
            )
            assert first.state is not None and first.state.is_completed(), first.state
            runs = await _final_task_runs(client, first.id, expected=6)
            assert set(_states(runs).values()) == {"Completed"}
            assert sorted(runs["emittance_x"].tags) == ["analysis"]
            assert sorted(runs["beam"].tags) == ["tracking"]

            again = await _wait_for(
                client, (await registrar.start_run(synced.deployment_id, parameters=small)).id
            )
            assert again.state is not None and again.state.is_completed(), again.state
            assert _states(await _final_task_runs(client, again.id, expected=1)) == {"summary": "Cached"}

            longer = {"n_particles": 2000, "length": 5.0}
            third = await _wait_for(
                client, (await registrar.start_run(synced.deployment_id, parameters=longer)).id
            )
            assert third.state is not None and third.state.is_completed(), third.state
            assert _states(await _final_task_runs(client, third.id, expected=6)) == {
                "beam": "Cached",
                "drifted": "Completed",
                "emittance_x": "Completed",
                "emittance_y": "Completed",
                "sizes": "Completed",
                "summary": "Completed",
            }
        finally:
            await registrar.delete(deployment_id=synced.deployment_id)

    settings = load_settings({"LUME_HOME": str(home)})
    with open_results_store(settings.results_db_url, settings.results_db_database) as store:
        indexed = store.find({"result_type": ENTRY_RESULT_TYPE, "flow_name": "beam-emittance"})
        nodes = sorted(result.inputs["node"] for result in indexed)
    # 6 entries from the first run, 5 more after the drift length changed (the beam was reused).
    assert nodes == sorted(["beam"] + 2 * ["drifted", "emittance_x", "emittance_y", "sizes", "summary"])


def test_example_graph_deploys_from_its_manifest_and_reuses_results_across_worker_runs(
    prefect_api_url: str, work_pool_name: str, tmp_path: Path
) -> None:
    with temporary_settings({PREFECT_API_URL: prefect_api_url}):
        asyncio.run(_scenario(work_pool_name, tmp_path / "lume-home"))
