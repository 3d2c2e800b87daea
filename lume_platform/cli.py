"""`lume`: publish and run flows on the platform (local Prefect or the cluster's), and the local platform."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.table import Table

from lume_platform.errors import LumeError
from lume_platform.flowspec import (
    GROUP_VERSION,
    FlowSpec,
    InvalidSpec,
    parse_flow_run_spec,
    parse_flow_spec,
)

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun

    from lume_platform.registrar import Registrar

LOCAL_API_URL = "http://127.0.0.1:4200/api"
LOCAL_WORK_POOL = "lume-local"
# Not 8080: kind-config.yaml maps that host port to the in-cluster dashboard.
LOCAL_DASHBOARD_PORT = 4280
TERMINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
STATE_STYLE = {
    "COMPLETED": "green",
    "FAILED": "red",
    "CRASHED": "red",
    "CANCELLED": "yellow",
    "RUNNING": "cyan",
}

app = typer.Typer(
    help="LUME platform: publish Prefect flows from Flow manifests, run them, read their results.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")


class CliError(LumeError):
    """A failure the user can fix; printed as one clear line, exit code 1."""


@app.callback()
def main(
    api_url: str = typer.Option(
        None, "--api-url", envvar="PREFECT_API_URL", help="Prefect API (default: the local platform's)."
    ),
) -> None:
    """Point Prefect at the platform before anything imports it (unset would start a throwaway server)."""
    os.environ["PREFECT_API_URL"] = api_url or LOCAL_API_URL


def _run(coroutine_fn: Callable[[PrefectClient], Awaitable[T]]) -> T:
    """Run one async step with a Prefect client; turn platform errors into one clear line."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from lume_platform.registrar import prefect_errors

    api_url = os.environ["PREFECT_API_URL"]

    async def with_client() -> T:
        async with get_client() as client:
            with prefect_errors(f"Prefect at {api_url}"):
                return await coroutine_fn(client)

    try:
        # Explicit: Prefect may have read its settings before the --api-url option was parsed.
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            return asyncio.run(with_client())
    except (LumeError, ValueError) as error:
        errors.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None


def _registrar(client: PrefectClient) -> Registrar:
    from lume_platform.registrar import Registrar

    # The CLI never creates pools: `lume up` (or the chart) creates them with the right type.
    return Registrar(client, default_work_pool=os.environ.get("LUME_WORK_POOL", LOCAL_WORK_POOL))


@dataclass(frozen=True)
class Manifest:
    """One Flow or FlowRun document of a manifest file."""

    kind: str
    name: str
    spec: dict[str, Any]
    source: str


def read_manifests(path: Path) -> list[Manifest]:
    """Every Flow/FlowRun document of a YAML file; raise CliError naming the document at fault."""
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    except (OSError, yaml.YAMLError) as error:
        raise CliError(f"{path}: cannot read it as YAML: {error}") from None
    manifests = []
    for index, doc in enumerate(documents):
        where = f"{path} (document {index + 1})"
        if not isinstance(doc, dict):
            raise CliError(f"{where}: a manifest must be a mapping")
        if doc.get("apiVersion") != GROUP_VERSION:
            raise CliError(f"{where}: apiVersion must be {GROUP_VERSION}, got {doc.get('apiVersion')!r}")
        if doc.get("kind") not in ("Flow", "FlowRun"):
            raise CliError(f"{where}: kind must be Flow or FlowRun, got {doc.get('kind')!r}")
        name = (doc.get("metadata") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise CliError(f"{where}: metadata.name is required")
        manifests.append(Manifest(doc["kind"], name, doc.get("spec") or {}, where))
    if not manifests:
        raise CliError(f"{path}: no Flow or FlowRun in it")
    return manifests


def local_flow_spec(spec: FlowSpec, base: Path) -> FlowSpec:
    """Resolve a relative working directory against `base`; a file entrypoint without one runs from `base`.

    A process worker runs each flow in a fresh temporary directory, so relative paths must be made absolute
    on the machine that applies the manifest.
    """
    working_dir = spec.working_dir
    if working_dir is None and spec.entrypoint and spec.entrypoint.split(":")[0].endswith(".py"):
        working_dir = "."
    if working_dir is None or Path(working_dir).is_absolute():
        return spec
    return spec.model_copy(update={"working_dir": str((base / working_dir).resolve())})


def _parse_parameters(pairs: list[str]) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CliError(f"-p {pair!r}: expected key=value")
        # YAML reads 3 as a number, true as a boolean and [1, 2] as a list; anything else stays text.
        try:
            parameters[key] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            parameters[key] = raw
    return parameters


def _fail(error: LumeError) -> None:
    errors.print(f"[red]error:[/red] {error}")
    raise typer.Exit(1)


@app.command()
def apply(
    files: list[Path] = typer.Option(..., "-f", "--filename", help="Flow/FlowRun manifest(s)."),
) -> None:
    """Publish Flow manifests as Prefect deployments (only what changed) and start FlowRun manifests."""
    try:
        manifests = [manifest for path in files for manifest in read_manifests(path)]
        flows = [
            (m, local_flow_spec(parse_flow_spec(m.spec), Path.cwd())) for m in manifests if m.kind == "Flow"
        ]
        runs = [(m, parse_flow_run_spec(m.spec)) for m in manifests if m.kind == "FlowRun"]
    except InvalidSpec as error:
        _fail(CliError(str(error)))
    except CliError as error:
        _fail(error)

    async def publish(client: PrefectClient) -> None:
        registrar = _registrar(client)
        for manifest, spec in flows:
            result = await registrar.ensure(manifest.name, spec)
            detail = f" ({', '.join(result.changed_fields)})" if result.changed_fields else ""
            console.print(f"flow.lume.dev/{manifest.name} {result.action}{detail}: {result.full_name}")
        for manifest, run_spec in runs:
            deployment = await _find_deployment(client, run_spec.flow_ref)
            # Re-applying the same FlowRun manifest must not start a second run.
            run = await registrar.start_run(
                deployment.id,
                parameters=run_spec.parameters,
                job_variables=run_spec.job_variables,
                idempotency_key=f"lume-apply/{run_spec.flow_ref}/{manifest.name}",
            )
            console.print(f"flowrun.lume.dev/{manifest.name} started: {run.name} ({run.id})")

    _run(publish)


@app.command()
def delete(
    files: list[Path] = typer.Option(..., "-f", "--filename", help="Flow manifest(s) to unpublish."),
) -> None:
    """Delete the Prefect deployments of Flow manifests."""
    try:
        flows = [
            (m, parse_flow_spec(m.spec)) for path in files for m in read_manifests(path) if m.kind == "Flow"
        ]
    except (InvalidSpec, CliError) as error:
        _fail(CliError(str(error)))

    async def remove(client: PrefectClient) -> None:
        registrar = _registrar(client)
        for manifest, spec in flows:
            full_name = f"{spec.effective_flow_name}/{manifest.name}"
            gone = await registrar.delete(full_name=full_name)
            console.print(f"flow.lume.dev/{manifest.name} {'deleted' if gone else 'was not published'}")

    _run(remove)


async def _find_deployment(client: PrefectClient, name: str) -> Any:
    """A deployment by `flow/deployment` or by its (unique) deployment name."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.exceptions import ObjectNotFound

    if "/" in name:
        try:
            return await client.read_deployment_by_name(name)
        except ObjectNotFound:
            raise CliError(f"no deployment {name!r} in Prefect (see `lume flows`)") from None
    found = await client.read_deployments(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
    )
    if not found:
        raise CliError(
            f"no deployment named {name!r} in Prefect (see `lume flows`; `lume apply -f` publishes)"
        )
    if len(found) > 1:
        raise CliError(f"{len(found)} deployments are named {name!r}: say which, as flow-name/{name}")
    return found[0]


def _state_text(run: FlowRun) -> str:
    state = run.state.type.value if run.state else "UNKNOWN"
    name = run.state.name if run.state else state
    return f"[{STATE_STYLE.get(state, 'white')}]{name}[/]"


async def watch_run(
    client: PrefectClient, run_id: Any, timeout: float, on_change: Callable[[FlowRun], None]
) -> FlowRun:
    """Poll a flow run until it ends (or `timeout` seconds pass), reporting each state change."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        run = await client.read_flow_run(run_id)
        state = run.state.name if run.state else None
        if state != last:
            on_change(run)
            last = state
        if run.state and run.state.type.value in TERMINAL_STATES:
            return run
        if time.monotonic() > deadline:
            raise CliError(f"flow run {run.name} is still {state} after {timeout:.0f} s")
        await asyncio.sleep(1.0)


async def run_result(flow_run: FlowRun) -> Any:
    """The run's return value if Prefect persisted it where this machine can read it, else None."""
    if flow_run.state is None or not flow_run.state.is_completed():
        return None
    try:
        return await asyncio.wait_for(flow_run.state.aresult(raise_on_failure=False), timeout=10)
    except Exception:
        # Results are optional: unpersisted, or on storage only the worker's pod can reach.
        return None


@app.command()
def run(
    flow: str = typer.Argument(
        ..., help="Deployment: its name (the Flow's metadata.name) or flow/deployment."
    ),
    params: list[str] = typer.Option([], "-p", "--param", help="key=value (YAML value), repeatable."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Follow the run until it ends."),
    timeout: float = typer.Option(600.0, help="With --watch: give up after this many seconds."),
) -> None:
    """Start a run of a published flow; with --watch follow it live and fail unless it completes."""
    try:
        parameters = _parse_parameters(params)
    except CliError as error:
        _fail(error)

    async def start(client: PrefectClient) -> tuple[FlowRun, Any]:
        deployment = await _find_deployment(client, flow)
        flow_run = await client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        console.print(f"started flow run [bold]{flow_run.name}[/] ({flow_run.id}) of {deployment.name}")
        if not watch:
            return flow_run, None
        with console.status("waiting for the worker...") as status:

            def report(current: FlowRun) -> None:
                status.update(f"{current.name}: {_state_text(current)}")
                console.print(f"  {time.strftime('%H:%M:%S')} {_state_text(current)}")

            final = await watch_run(client, flow_run.id, timeout, report)
        return final, await run_result(final)

    final, value = _run(start)
    if watch:
        state = final.state.type.value if final.state else "UNKNOWN"
        message = (final.state.message or "") if final.state else ""
        console.print(f"flow run {final.name} ended {_state_text(final)} {message}".rstrip())
        if value is not None:
            console.print("result:")
            console.print_json(json.dumps(value, default=str))
        if state != "COMPLETED":
            raise typer.Exit(1)


@app.command()
def flows() -> None:
    """The published flows (Prefect deployments)."""

    async def list_deployments(client: PrefectClient) -> tuple[list[Any], dict[Any, str]]:
        deployments = await client.read_deployments(limit=200)
        flow_names = {flow.id: flow.name for flow in await client.read_flows(limit=200)}
        return deployments, flow_names

    deployments, flow_names = _run(list_deployments)
    table = Table("Deployment", "Flow", "Pool", "Schedules", "Paused", "Entrypoint", "Updated")
    for deployment in sorted(deployments, key=lambda d: d.name):
        table.add_row(
            deployment.name,
            flow_names.get(deployment.flow_id, str(deployment.flow_id)),
            deployment.work_pool_name or "",
            ", ".join(s.slug or "?" for s in deployment.schedules),
            "yes" if deployment.paused else "",
            deployment.entrypoint or "",
            deployment.updated.strftime("%Y-%m-%d %H:%M:%S") if deployment.updated else "",
        )
    console.print(table)


@app.command()
def runs(
    flow: str = typer.Option(None, "--flow", help="Only runs of this deployment name."),
    limit: int = typer.Option(20, help="How many, newest first."),
) -> None:
    """Recent flow runs and their states."""

    async def list_runs(client: PrefectClient) -> list[FlowRun]:
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
        from prefect.client.schemas.sorting import FlowRunSort

        deployment_filter = DeploymentFilter(name=DeploymentFilterName(any_=[flow])) if flow else None
        return await client.read_flow_runs(
            deployment_filter=deployment_filter, sort=FlowRunSort.START_TIME_DESC, limit=limit
        )

    table = Table("Run", "State", "Started", "Duration", "ID")
    for flow_run in _run(list_runs):
        table.add_row(
            flow_run.name,
            _state_text(flow_run),
            flow_run.start_time.strftime("%Y-%m-%d %H:%M:%S") if flow_run.start_time else "",
            f"{flow_run.total_run_time.total_seconds():.1f} s" if flow_run.total_run_time else "",
            str(flow_run.id),
        )
    console.print(table)


@app.command()
def results(
    flow: str = typer.Option(None, "--flow", help="Only results of this flow name."),
    unique_hash: str = typer.Option(
        None, "--hash", help="Only the result with this unique_hash (the reference a flow returns)."
    ),
    limit: int = typer.Option(10, help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print the documents as JSON."),
) -> None:
    """Results stored by flows in the results database (LUME_RESULTS_DB__*, or the embedded store)."""
    from lume_platform.services import configure_services

    try:
        store = configure_services().results_store
        query = {key: value for key, value in (("flow_name", flow), ("unique_hash", unique_hash)) if value}
        found = store.find(query or None, sort=[("created", -1)], limit=limit)
    except LumeError as error:
        _fail(error)
    if as_json:
        console.print_json(json.dumps([r.model_dump(mode="json") for r in found]))
        return
    table = Table("Flow", "Run", "Created", "Type", "Inputs", "Outputs")
    for result in found:
        table.add_row(
            result.flow_name,
            result.flow_run_id or "",
            result.created.strftime("%Y-%m-%d %H:%M:%S"),
            result.result_type,
            _short(result.inputs),
            _short(result.outputs),
        )
    console.print(table)


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _local_platform(state_dir: Path | None, port: int, dashboard_port: int = LOCAL_DASHBOARD_PORT) -> Any:
    from lume_platform.local import DEFAULT_STATE_DIR, LocalPlatform

    platform = LocalPlatform(state_dir=state_dir or DEFAULT_STATE_DIR, port=port, work_pool=LOCAL_WORK_POOL)
    if dashboard_port:
        from lume_platform.dashboard.process import dashboard_process

        # Beside the server, reading it and the caller's LUME_* services; stopped with the rest by `down`.
        platform.add_process(
            dashboard_process(env=platform.prefect_env(), cwd=platform.state_dir, port=dashboard_port)
        )
    return platform


STATE_DIR_OPTION = typer.Option(None, "--state-dir", envvar="LUME_LOCAL_STATE", help="Local platform state.")
PORT_OPTION = typer.Option(4200, "--port", help="Port of the local Prefect server.")
DASHBOARD_PORT_OPTION = typer.Option(
    LOCAL_DASHBOARD_PORT, "--dashboard-port", help="Port of the LUME dashboard on 127.0.0.1 (0: none)."
)


@app.command()
def up(
    state_dir: Path = STATE_DIR_OPTION, port: int = PORT_OPTION, dashboard_port: int = DASHBOARD_PORT_OPTION
) -> None:
    """Start the embedded local platform: Prefect on SQLite, a process pool and worker, the dashboard."""
    platform = _local_platform(state_dir, port, dashboard_port)
    with console.status("starting the local platform..."):
        try:
            platform.up()
        except (LumeError, RuntimeError, OSError) as error:
            _fail(CliError(str(error)))
    console.print(f"[green]local platform up[/]: Prefect UI at {platform.api_url.removesuffix('/api')}")
    console.print(f"  work pool {LOCAL_WORK_POOL!r} (process); state in {platform.state_dir}")
    console.print(f"  export PREFECT_API_URL={platform.api_url}")
    if dashboard_port:
        console.print(f"  LUME dashboard at http://127.0.0.1:{dashboard_port}")


@app.command()
def down(
    state_dir: Path = STATE_DIR_OPTION,
    port: int = PORT_OPTION,
    purge: bool = typer.Option(False, help="Also delete the local Prefect database and logs."),
) -> None:
    """Stop the embedded local platform (its data stays unless --purge)."""
    stopped = _local_platform(state_dir, port).down(purge=purge)
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def status(state_dir: Path = STATE_DIR_OPTION, port: int = PORT_OPTION) -> None:
    """Whether the local platform's processes are running."""
    for process_status in _local_platform(state_dir, port).status():
        console.print(process_status.describe())
