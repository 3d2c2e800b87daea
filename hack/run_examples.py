"""The main job (hack/run.sh): the example flows end to end on the embedded local platform.

Starts the local platform (Prefect on SQLite on 127.0.0.1:4200, the ``lume-local`` process pool and
its worker), publishes the example Flow manifests of examples/flows/ through the Registrar, runs them
through the worker, and prints the saved file and the stored result read back. Safe to run again:
publishing changes nothing that is already right, and the same result is stored only once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from prefect import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from lume_platform.files import file_from_representation
from lume_platform.flowspec import parse_flow_spec
from lume_platform.local import LocalPlatform
from lume_platform.registrar import Registrar
from lume_platform.services import configure_services
from lume_platform.settings import load_settings
from lume_platform.tasks import read_task_result

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "flows"
MANIFESTS = [EXAMPLES / name for name in ("append-text.yaml", "text-model.yaml", "text-pipeline.yaml")]
# The workflow-graph example (lume_platform.graph): a generated flow published like any other.
MANIFESTS.append(ROOT / "examples" / "graph" / "graph-flow.yaml")
PORT = 4200
WORK_POOL = "lume-local"
RUN_TIMEOUT_SECONDS = 900.0


def say(text: str = "") -> None:
    print(text, flush=True)


async def publish(env: dict[str, str]) -> dict[str, str]:
    """Register every example manifest as a deployment; {Flow name: 'flow/deployment'}."""
    published = {}
    async with get_client() as client:
        registrar = Registrar(client, default_work_pool=WORK_POOL, create_missing_pool_as="process")
        for manifest_path in MANIFESTS:
            manifest = yaml.safe_load(manifest_path.read_text())
            spec = parse_flow_spec(manifest["spec"])
            # Runs get this job's data directory whatever environment the (maybe older) worker has.
            spec = spec.model_copy(update={"env": {**spec.env, **env}, "working_dir": str(ROOT)})
            outcome = await registrar.ensure(manifest["metadata"]["name"], spec)
            say(f"  {outcome.full_name}: {outcome.action}")
            published[manifest["metadata"]["name"]] = outcome.full_name
    return published


def run(full_name: str, parameters: dict[str, Any] | None = None) -> tuple[Any, str]:
    """Run a deployment through the worker and wait; (what the flow returned, the flow run id)."""
    say(f"==> running {full_name} {json.dumps(parameters or {})}")
    flow_run: FlowRun = run_deployment(
        full_name, parameters=parameters or {}, timeout=RUN_TIMEOUT_SECONDS, as_subflow=False, poll_interval=2
    )
    state = flow_run.state
    if state is None or not state.is_completed():
        what = state.type.value if state is not None else "no state"
        raise SystemExit(
            f"error: flow run {flow_run.id} of {full_name} ended {what}: {state and state.message}"
        )
    say(f"  flow run {flow_run.name} ({flow_run.id}): {state.type.value}")
    return state.result(), str(flow_run.id)


def main() -> int:
    state_dir = ROOT / ".state" / "local"
    lume_home = os.environ.get("LUME_HOME") or str(state_dir / "lume-home")
    # Only the embedded defaults here (no external databases); LUME_HOME keeps the data in the checkout.
    env = {"LUME_HOME": lume_home}
    platform = LocalPlatform(state_dir=state_dir, port=PORT, work_pool=WORK_POOL, worker_cwd=ROOT)
    say(f"==> starting the local platform (Prefect {platform.api_url}, pool {WORK_POOL!r})")
    platform.up()
    services = configure_services(load_settings({**os.environ, **env}))
    with temporary_settings({PREFECT_API_URL: platform.api_url}):
        say("==> publishing the example flows")
        published = asyncio.run(publish(env))

        representation, _ = run(published["append-text"])
        file = file_from_representation(representation)
        say(f"  saved file: {file.path(services.filesystem(file.filesystem_identifier))}")
        say(f"  content:    {file.read(services.filesystem(file.filesystem_identifier))!r}")

        returned, run_id = run(published["text-model"])
        document = services.results_store.get(returned["result"])
        say("  stored result, read back from the results store:")
        if document.flow_run_id != run_id:
            say("  (an earlier run stored the same result: it is kept once)")
        say(
            "    "
            + json.dumps(document.model_dump(mode="json"), indent=2, sort_keys=True).replace("\n", "\n    ")
        )

        pipeline, _ = run(published["text-pipeline"])
        say(f"  child flow runs: {json.dumps(pipeline['flow_runs'])}")
        # The child's save_db_result task, read by name from the finished child run.
        piped_ref = read_task_result(pipeline["flow_runs"]["text-model"], "save_db_result")
        piped = services.results_store.get(piped_ref).model_dump(mode="json")
        say(f"  text-model inside the pipeline stored: {json.dumps(piped['outputs'])}")

        summary, _ = run(published["beam-emittance"])
        say(f"  beam summary (graph nodes cached under {lume_home}/files/graph-cache): {json.dumps(summary)}")
    say()
    say(f"Prefect UI: http://127.0.0.1:{PORT}  (stop it: .venv/bin/lume down --state-dir .state/local)")
    say(f"Data (files, results, registry): {lume_home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
