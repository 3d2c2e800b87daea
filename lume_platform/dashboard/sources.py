"""Where the dashboard's figures come from: Prefect, Kubernetes, the registry, the results store, the volume.

Everything is read through the same ``lume_platform`` code that flows use (settings, ModelRegistry,
ResultsStore and its safe filter language); nothing here writes. Pure helpers (bucketing, summarising,
series extraction) are kept apart from I/O so that they can be tested on their own.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import httpx

from lume_platform.dashboard.config import DashboardConfig
from lume_platform.dashboard.models import (
    ConditionView,
    DeploymentView,
    FlowView,
    HourBucket,
    ModelsOverview,
    ModelView,
    Overview,
    ProjectView,
    ResultDetail,
    ResultFields,
    ResultList,
    ResultSummary,
    RunView,
    ScheduleView,
    Series,
    SeriesPoint,
    ServiceHealth,
)
from lume_platform.errors import LumeError, QueryError
from lume_platform.flowspec import API_GROUP, API_VERSION, InvalidSpec, parse_flow_spec
from lume_platform.results.filters import parse_filter, parse_path
from lume_platform.settings import LumeSettings, load_settings

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun

    from lume_platform.registry import ModelRegistry
    from lume_platform.results import Result, ResultsStore

T = TypeVar("T")

PHASES = ("Pending", "Ready", "Error")
STATE_TYPES = (
    "SCHEDULED",
    "PENDING",
    "RUNNING",
    "PAUSED",
    "CANCELLING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "CRASHED",
)
LAST_RUNS_PER_FLOW = 5
# Bounds on what one page reads, so that a busy platform cannot make a page slow without limit.
MAX_RUNS_READ = 2000
MAX_SERIES_POINTS = 5000
PREFECT_PAGE = 200
# Parallel reads towards Prefect (its SQLite backend serialises them anyway).
PREFECT_CONCURRENCY = 8
FLOWS_PLURAL = "flows"
HASH_PATTERN = r"^[0-9a-f]{64}$"


class SourceUnavailable(LumeError):
    """A service the page needs does not answer; the message names it and says why."""


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 2000 else text[:2000] + "…"


# --------------------------------------------------------------------------------------------- pure


def hour_buckets(runs: Iterable[RunView], since: datetime, hours: int) -> list[HourBucket]:
    """Runs counted by the hour they started (or were due) and by state type; every hour is present."""
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    buckets = [HourBucket(hour=start + timedelta(hours=i), counts={}) for i in range(hours + 1)]
    for run in runs:
        moment = run.start_time or run.expected_start_time
        if moment is None:
            continue
        index = int((moment.astimezone(UTC) - start).total_seconds() // 3600)
        if 0 <= index < len(buckets):
            state = run.state_type or "UNKNOWN"
            buckets[index].counts[state] = buckets[index].counts.get(state, 0) + 1
    return buckets


def count_states(runs: Iterable[RunView]) -> dict[str, int]:
    """How many runs are in each state type."""
    return dict(Counter(run.state_type or "UNKNOWN" for run in runs))


def count_phases(flows: Iterable[FlowView]) -> dict[str, int]:
    """How many flows are in each phase (the three known phases always present)."""
    counts = dict.fromkeys(PHASES, 0)
    for flow in flows:
        counts[flow.phase] = counts.get(flow.phase, 0) + 1
    return counts


def is_number(value: Any) -> bool:
    """A finite int or float (bools are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def summarise(values: Mapping[str, Any], width: int = 80) -> dict[str, Any]:
    """Scalars as they are; arrays, tables and long texts as a short description."""
    summary: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or isinstance(value, bool | int | float):
            summary[key] = value if not isinstance(value, float) or math.isfinite(value) else str(value)
        elif isinstance(value, str):
            summary[key] = value if len(value) <= width else value[: width - 1] + "…"
        elif isinstance(value, datetime):
            summary[key] = value.isoformat()
        else:
            shape = getattr(value, "shape", None)
            size = (
                f"shape {tuple(shape)}"
                if shape is not None
                else f"{len(value)} items"
                if hasattr(value, "__len__")
                else ""
            )
            summary[key] = f"<{type(value).__name__}{' ' + size if size else ''}>"
    return summary


def jsonable(value: Any) -> Any:
    """A decoded result value as JSON data: arrays as lists, tables as records, times as ISO text."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and hasattr(value, "columns"):
        return jsonable(to_dict(orient="records"))
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return jsonable(tolist())
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def numeric_fields(results: Iterable[Result]) -> list[str]:
    """Dotted paths (``inputs.x``, ``outputs.y.z``) that hold a number in at least one result."""
    found: set[str] = set()

    def walk(prefix: str, value: Any) -> None:
        if is_number(value):
            found.add(prefix)
        elif isinstance(value, Mapping):
            for key, inner in value.items():
                if isinstance(key, str) and key and "." not in key and not key.startswith("$"):
                    walk(f"{prefix}.{key}", inner)

    for result in results:
        walk("inputs", result.inputs)
        walk("outputs", result.outputs)
    return sorted(found)


def value_at(result: Result, path: Sequence[str]) -> Any:
    """The value of ``result`` at a validated dotted path, or None where the path leads nowhere."""
    value: Any = getattr(result, path[0])
    for step in path[1:]:
        if not isinstance(value, Mapping) or step not in value:
            return None
        value = value[step]
    return value


def series_points(
    results: Iterable[Result], x_path: Sequence[str], y_path: Sequence[str]
) -> tuple[list[SeriesPoint], int]:
    """(x, y) of every result with a number at y and a number (or a time) at x; and how many had not."""
    points: list[SeriesPoint] = []
    skipped = 0
    for result in results:
        x, y = value_at(result, x_path), value_at(result, y_path)
        if is_number(y) and (is_number(x) or isinstance(x, datetime)):
            points.append(SeriesPoint(x=x, y=float(y), unique_hash=result.unique_hash))
        else:
            skipped += 1
    return points, skipped


def result_filter(
    flow: str | None, since: datetime | None, until: datetime | None, extra: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One filter of the safe language from the page's choices; the caller's part is validated first.

    Raises
    ------
    QueryError
        If ``extra`` is outside the safe filter language (before any store is touched).
    """
    parse_filter(extra)
    parts: list[Mapping[str, Any]] = [extra] if extra else []
    if flow:
        parts.append({"flow_name": flow})
    created: dict[str, Any] = {}
    if since is not None:
        created["$gte"] = since
    if until is not None:
        created["$lt"] = until
    if created:
        parts.append({"created": created})
    combined: dict[str, Any] = {"$and": parts} if parts else {}
    parse_filter(combined)
    return combined


def plot_path(field: str, *, allow_created: bool) -> tuple[str, ...]:
    """Validate a field to plot: ``inputs.…`` or ``outputs.…`` (or ``created`` on the x axis).

    Raises
    ------
    QueryError
        Naming the field and what is allowed.
    """
    path = parse_path(field)
    if allow_created and path == ("created",):
        return path
    if path[0] not in ("inputs", "outputs") or len(path) < 2:
        allowed = (
            "created, inputs.<name> or outputs.<name>" if allow_created else "inputs.<name> or outputs.<name>"
        )
        raise QueryError(f"cannot plot {field!r}: choose {allowed}")
    return path


def schedule_timing(schedule: Mapping[str, Any]) -> str:
    """A schedule (Flow spec form or Prefect's) in words."""
    zone = schedule.get("timezone")
    suffix = f" ({zone})" if zone and zone != "UTC" else ""
    if schedule.get("cron"):
        return f"cron {schedule['cron']}{suffix}"
    if schedule.get("interval") is not None:
        interval = schedule["interval"]
        seconds = interval.total_seconds() if isinstance(interval, timedelta) else float(interval)
        return f"every {seconds:g} s{suffix}"
    if schedule.get("rrule"):
        return f"rrule {schedule['rrule']}{suffix}"
    return "unknown timing"


def run_view(
    run: FlowRun, flow_names: Mapping[UUID, str], deployment_names: Mapping[UUID, str], ui_url: str
) -> RunView:
    """The dashboard's view of a Prefect flow run."""
    duration: float | None = None
    if run.start_time is not None and run.end_time is not None:
        duration = (run.end_time - run.start_time).total_seconds()
    elif run.total_run_time:
        duration = run.total_run_time.total_seconds()
    state = run.state
    return RunView(
        id=str(run.id),
        name=run.name,
        flow_name=flow_names.get(run.flow_id, str(run.flow_id)),
        deployment_name=deployment_names.get(run.deployment_id) if run.deployment_id else None,
        state_type=state.type.value if state is not None else None,
        state_name=state.name if state is not None else None,
        expected_start_time=run.expected_start_time,
        start_time=run.start_time,
        end_time=run.end_time,
        duration_seconds=duration,
        prefect_url=f"{ui_url}/runs/flow-run/{run.id}",
    )


def _prefect_flow_name(spec: Mapping[str, Any], status: Mapping[str, Any], name: str) -> str:
    # What the operator registered, else what it would register (FlowSpec's rule), else the resource name.
    registered = status.get("deploymentName")
    if isinstance(registered, str) and "/" in registered:
        return registered.split("/", 1)[0]
    try:
        return parse_flow_spec(dict(spec)).effective_flow_name
    except (InvalidSpec, TypeError, ValueError):
        return str(spec.get("flowName") or name)


def flow_view_from_resource(
    resource: Mapping[str, Any], ui_url: str, last_runs: Mapping[str, list[RunView]]
) -> FlowView:
    """The dashboard's view of a ``Flow`` custom resource."""
    metadata = resource.get("metadata") or {}
    spec = resource.get("spec") or {}
    status = resource.get("status") or {}
    deployment_id = status.get("deploymentId")
    conditions = [
        ConditionView(
            type=str(c.get("type", "")),
            status=str(c.get("status", "")),
            reason=c.get("reason"),
            message=c.get("message"),
            last_transition_time=c.get("lastTransitionTime"),
        )
        for c in status.get("conditions") or []
        if isinstance(c, Mapping)
    ]
    schedules = [
        ScheduleView(slug=s.get("slug"), timing=schedule_timing(s), active=bool(s.get("active", True)))
        for s in spec.get("schedules") or []
        if isinstance(s, Mapping)
    ]
    name = str(metadata.get("name", ""))
    return FlowView(
        name=name,
        namespace=metadata.get("namespace"),
        flow_name=_prefect_flow_name(spec, status, name),
        phase=str(status.get("phase") or "Pending"),
        message=str(status.get("message") or ""),
        conditions=conditions,
        schedules=schedules,
        deployment_id=deployment_id,
        prefect_url=f"{ui_url}/deployments/deployment/{deployment_id}" if deployment_id else None,
        last_runs=last_runs.get(deployment_id or "", []),
    )


# ---------------------------------------------------------------------------------------- services


class ServiceConnections:
    """The model registry and the results store, opened on first use and opened again after a failure.

    The results store gets the dashboard's short timeout, so that a stopped database turns its health
    red within seconds instead of after the driver's default wait.
    """

    def __init__(self, timeout_seconds: float, settings: LumeSettings | None = None) -> None:
        self.timeout_seconds = timeout_seconds
        self._settings = settings
        self._lock = threading.Lock()
        self._registry: ModelRegistry | None = None
        self._store: ResultsStore | None = None

    def settings(self) -> LumeSettings:
        """The service settings (read once; a ConfigurationError is raised again on every call)."""
        with self._lock:
            if self._settings is None:
                self._settings = load_settings()
            return self._settings

    def results_store(self) -> ResultsStore:
        """The results store of the settings."""
        settings = self.settings()
        with self._lock:
            if self._store is None:
                from lume_platform.results import MongoResultsStore, open_results_store

                url, database = settings.results_db_url, settings.results_db_database
                if url.startswith(("mongodb://", "mongodb+srv://")):
                    self._store = MongoResultsStore(url, database, timeout_seconds=self.timeout_seconds)
                else:
                    self._store = open_results_store(url, database)
            return self._store

    def model_registry(self) -> ModelRegistry:
        """The model registry of the settings."""
        settings = self.settings()
        with self._lock:
            if self._registry is None:
                from lume_platform.registry import ModelRegistry

                self._registry = ModelRegistry(settings.model_db_url)
            return self._registry

    def shared_volume(self) -> tuple[str, Path]:
        """(identifier, directory) of the shared volume: the mounted filesystem, else the local one."""
        settings = self.settings()
        if settings.mounted_filesystem is not None:
            return settings.mounted_filesystem.identifier, settings.mounted_filesystem.root
        return "local", settings.local_root

    def close(self) -> None:
        """Close what was opened."""
        with self._lock:
            if self._store is not None:
                self._store.close()
            if self._registry is not None:
                self._registry.close()
            self._store = self._registry = None


class DashboardData:
    """Reads every figure the pages show; one instance per app."""

    def __init__(self, config: DashboardConfig, connections: ServiceConnections | None = None) -> None:
        self.config = config
        self.connections = connections or ServiceConnections(config.timeout_seconds)
        self._custom_objects: Any = None

    # ------------------------------------------------------------------ plumbing

    async def _bounded(self, what: str, awaitable: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(awaitable, timeout=self.config.timeout_seconds * 2)
        except TimeoutError:
            raise SourceUnavailable(
                f"{what}: no answer within {self.config.timeout_seconds * 2:g} s"
            ) from None

    async def _in_thread(self, what: str, function: Callable[[], T]) -> T:
        return await self._bounded(what, asyncio.to_thread(function))

    async def _prefect(self, what: str, call: Callable[[PrefectClient], Awaitable[T]]) -> T:
        from prefect.client.orchestration import PrefectClient

        async def with_client() -> T:
            client = PrefectClient(
                self.config.prefect_api_url, httpx_settings={"timeout": self.config.timeout_seconds}
            )
            async with client:
                return await call(client)

        try:
            return await self._bounded(f"Prefect at {self.config.prefect_api_url}", with_client())
        except SourceUnavailable:
            raise
        except (httpx.HTTPError, OSError, RuntimeError) as error:
            raise SourceUnavailable(
                f"{what}: Prefect at {self.config.prefect_api_url} failed: {_describe(error)}"
            ) from error

    def _kubernetes(self) -> Any:
        if self._custom_objects is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            self._custom_objects = client.CustomObjectsApi()
        return self._custom_objects

    # ------------------------------------------------------------------ health

    async def health(self) -> list[ServiceHealth]:
        """Every service's health, checked concurrently, each within the timeout."""
        checks = {
            "Prefect API": self._prefect_health,
            "Model registry": self._registry_health,
            "Results store": self._results_health,
            "Shared volume": self._volume_health,
            "Operator": self._operator_health,
        }

        async def guarded(name: str, check: Callable[[], Awaitable[ServiceHealth]]) -> ServiceHealth:
            try:
                return await self._bounded(name, check())
            except Exception as error:  # a health page reports every failure, never fails itself
                return ServiceHealth(name=name, state="down", error=_describe(error))

        return list(await asyncio.gather(*(guarded(name, check) for name, check in checks.items())))

    async def _get(self, url: str) -> httpx.Response:
        """GET ``url``; a transport failure names the URL (httpx's own message does not)."""
        try:
            async with httpx.AsyncClient(timeout=self.config.timeout_seconds) as client:
                return await client.get(url)
        except httpx.HTTPError as error:
            raise SourceUnavailable(f"GET {url}: {_describe(error)}") from error

    async def _prefect_health(self) -> ServiceHealth:
        url = f"{self.config.prefect_api_url}/health"
        response = await self._get(url)
        if response.status_code != 200:
            return ServiceHealth(
                name="Prefect API",
                state="down",
                error=f"GET {url} answered {response.status_code}: {response.text[:300]}",
            )
        return ServiceHealth(name="Prefect API", state="up", detail=self.config.prefect_api_url)

    async def _registry_health(self) -> ServiceHealth:
        def check() -> ServiceHealth:
            registry = self.connections.model_registry()
            projects = registry.list_projects()
            return ServiceHealth(
                name="Model registry", state="up", detail=f"{registry.url}: {len(projects)} projects"
            )

        return await asyncio.to_thread(check)

    async def _results_health(self) -> ServiceHealth:
        def check() -> ServiceHealth:
            store = self.connections.results_store()
            return ServiceHealth(
                name="Results store", state="up", detail=f"{store!r}: {store.count()} results"
            )

        return await asyncio.to_thread(check)

    async def _volume_health(self) -> ServiceHealth:
        def check() -> ServiceHealth:
            identifier, root = self.connections.shared_volume()
            measured = root
            if identifier == "local":
                # The local filesystem makes its root on first write; until then measure where it will be.
                while not measured.exists() and measured.parent != measured:
                    measured = measured.parent
            if not measured.is_dir():
                return ServiceHealth(
                    name="Shared volume",
                    state="down",
                    error=f"{identifier} filesystem root {root} is not a directory",
                )
            usage = shutil.disk_usage(measured)
            free, total = usage.free / 2**30, usage.total / 2**30
            return ServiceHealth(
                name="Shared volume",
                state="up",
                detail=f"{identifier} at {root}: {free:.1f} GiB free of {total:.1f} GiB",
                used_bytes=usage.used,
                free_bytes=usage.free,
                total_bytes=usage.total,
            )

        return await asyncio.to_thread(check)

    async def _operator_health(self) -> ServiceHealth:
        url = self.config.operator_health_url
        if url is None:
            why = (
                "cluster mode without LUME_DASHBOARD_OPERATOR_URL"
                if self.config.cluster_mode
                else ("local mode has no operator: `lume apply` registers flows directly")
            )
            return ServiceHealth(name="Operator", state="not configured", detail=why)
        response = await self._get(url)
        if response.status_code != 200:
            return ServiceHealth(
                name="Operator",
                state="down",
                error=f"GET {url} answered {response.status_code}: {response.text[:300]}",
            )
        return ServiceHealth(name="Operator", state="up", detail=f"heartbeat at {url}")

    # ------------------------------------------------------------------ flows and runs

    async def _names(
        self, client: PrefectClient, runs: Sequence[FlowRun]
    ) -> tuple[dict[UUID, str], dict[UUID, str]]:
        from prefect.client.schemas.filters import (
            DeploymentFilter,
            DeploymentFilterId,
            FlowFilter,
            FlowFilterId,
        )

        flow_ids = sorted({run.flow_id for run in runs}, key=str)
        deployment_ids = sorted({run.deployment_id for run in runs if run.deployment_id}, key=str)
        flow_names: dict[UUID, str] = {}
        deployment_names: dict[UUID, str] = {}
        for offset in range(0, len(flow_ids), PREFECT_PAGE):
            chunk = flow_ids[offset : offset + PREFECT_PAGE]
            flows = await client.read_flows(
                flow_filter=FlowFilter(id=FlowFilterId(any_=chunk)), limit=len(chunk)
            )
            flow_names.update({flow.id: flow.name for flow in flows})
        for offset in range(0, len(deployment_ids), PREFECT_PAGE):
            chunk = deployment_ids[offset : offset + PREFECT_PAGE]
            deployments = await client.read_deployments(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=chunk)), limit=len(chunk)
            )
            deployment_names.update({d.id: d.name for d in deployments})
        return flow_names, deployment_names

    async def _read_runs(
        self,
        client: PrefectClient,
        *,
        flow_name: str | None = None,
        state_type: str | None = None,
        since: datetime | None = None,
        deployment_ids: Sequence[str] | None = None,
        limit: int,
    ) -> list[RunView]:
        from prefect.client.schemas.filters import (
            FlowFilter,
            FlowFilterName,
            FlowRunFilter,
            FlowRunFilterDeploymentId,
            FlowRunFilterExpectedStartTime,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType
        from prefect.client.schemas.sorting import FlowRunSort

        run_filter = FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(state_type)]))
            if state_type
            else None,
            expected_start_time=FlowRunFilterExpectedStartTime(after_=since, before_=utc_now())
            if since
            else None,
            deployment_id=FlowRunFilterDeploymentId(any_=[UUID(d) for d in deployment_ids])
            if deployment_ids is not None
            else None,
        )
        flow_filter = FlowFilter(name=FlowFilterName(any_=[flow_name])) if flow_name else None
        runs: list[FlowRun] = []
        while len(runs) < limit:
            page = await client.read_flow_runs(
                flow_filter=flow_filter,
                flow_run_filter=run_filter,
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=min(PREFECT_PAGE, limit - len(runs)),
                offset=len(runs),
            )
            runs.extend(page)
            if len(page) < PREFECT_PAGE:
                break
        flow_names, deployment_names = await self._names(client, runs)
        return [run_view(run, flow_names, deployment_names, self.config.prefect_ui_url) for run in runs]

    async def runs(
        self,
        *,
        flow_name: str | None = None,
        state_type: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[RunView]:
        """Recent flow runs, newest first, optionally of one flow and in one state type."""
        return await self._prefect(
            "reading flow runs",
            lambda client: self._read_runs(
                client, flow_name=flow_name, state_type=state_type, since=since, limit=limit
            ),
        )

    async def run(self, run_id: UUID) -> RunView | None:
        """One flow run, or None if Prefect has no such run."""
        from prefect.exceptions import ObjectNotFound

        async def read(client: PrefectClient) -> RunView | None:
            try:
                run = await client.read_flow_run(run_id)
            except ObjectNotFound:
                return None
            flow_names, deployment_names = await self._names(client, [run])
            return run_view(run, flow_names, deployment_names, self.config.prefect_ui_url)

        return await self._prefect(f"reading flow run {run_id}", read)

    async def flows(self) -> list[FlowView]:
        """Every Flow resource (cluster mode) or registered deployment (local mode), with its last runs."""
        if self.config.cluster_mode:
            return await self._cluster_flows()
        return await self._local_flows()

    async def _local_flows(self, name: str | None = None) -> list[FlowView]:
        async def read(client: PrefectClient) -> list[FlowView]:
            from prefect.client.schemas.filters import (
                DeploymentFilter,
                DeploymentFilterName,
                FlowFilter,
                FlowFilterId,
            )

            only = DeploymentFilter(name=DeploymentFilterName(any_=[name])) if name is not None else None
            deployments = await client.read_deployments(deployment_filter=only, limit=PREFECT_PAGE)
            flow_names: dict[UUID, str] = {}
            flow_ids = sorted({d.flow_id for d in deployments}, key=str)
            if flow_ids:
                flows = await client.read_flows(
                    flow_filter=FlowFilter(id=FlowFilterId(any_=flow_ids)), limit=len(flow_ids)
                )
                flow_names = {flow.id: flow.name for flow in flows}
            runs_by_deployment = await self._runs_by_deployment(client, [str(d.id) for d in deployments])
            views = []
            for deployment in sorted(deployments, key=lambda d: d.name):
                schedules = [
                    ScheduleView(
                        slug=s.slug, timing=schedule_timing(s.schedule.model_dump()), active=s.active
                    )
                    for s in deployment.schedules
                ]
                views.append(
                    FlowView(
                        name=deployment.name,
                        namespace=None,
                        flow_name=flow_names.get(deployment.flow_id, str(deployment.flow_id)),
                        # A registered deployment is ready to run; local mode has no other phase.
                        phase="Ready",
                        message="paused" if deployment.paused else "",
                        conditions=[],
                        schedules=schedules,
                        deployment_id=str(deployment.id),
                        prefect_url=f"{self.config.prefect_ui_url}/deployments/deployment/{deployment.id}",
                        last_runs=runs_by_deployment.get(str(deployment.id), []),
                    )
                )
            return views

        return await self._prefect("reading deployments", read)

    async def _runs_by_deployment(
        self, client: PrefectClient, deployment_ids: Sequence[str]
    ) -> dict[str, list[RunView]]:
        """The newest runs of each deployment (at most LAST_RUNS_PER_FLOW each).

        One small read per deployment, a few at a time: one shared read would let a busy flow crowd the
        others out of the page.
        """
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
        from prefect.client.schemas.sorting import FlowRunSort

        limit = asyncio.Semaphore(PREFECT_CONCURRENCY)

        async def newest(deployment_id: str) -> list[FlowRun]:
            async with limit:
                return await client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        deployment_id=FlowRunFilterDeploymentId(any_=[UUID(deployment_id)])
                    ),
                    sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                    limit=LAST_RUNS_PER_FLOW,
                )

        per_deployment = await asyncio.gather(*(newest(d) for d in deployment_ids))
        flow_names, deployment_names = await self._names(client, [r for runs in per_deployment for r in runs])
        ui_url = self.config.prefect_ui_url
        return {
            deployment_id: [run_view(r, flow_names, deployment_names, ui_url) for r in runs]
            for deployment_id, runs in zip(deployment_ids, per_deployment, strict=True)
        }

    async def _cluster_flows(self, name: str | None = None) -> list[FlowView]:
        namespace = self.config.namespace

        def list_resources() -> list[dict[str, Any]]:
            from kubernetes.client.exceptions import ApiException

            try:
                if name is not None:
                    return [
                        self._kubernetes().get_namespaced_custom_object(
                            API_GROUP,
                            API_VERSION,
                            namespace,
                            FLOWS_PLURAL,
                            name,
                            _request_timeout=self.config.timeout_seconds,
                        )
                    ]
                answer = self._kubernetes().list_namespaced_custom_object(
                    API_GROUP,
                    API_VERSION,
                    namespace,
                    FLOWS_PLURAL,
                    _request_timeout=self.config.timeout_seconds,
                )
            except ApiException as error:
                if name is not None and error.status in (400, 404, 422):
                    return []  # no such Flow (or a name no Flow can have)
                raise SourceUnavailable(
                    f"listing Flows in namespace {namespace}: "
                    f"Kubernetes answered {error.status} {error.reason}"
                ) from error
            except Exception as error:  # the client raises urllib3 and config errors of many kinds
                raise SourceUnavailable(
                    f"listing Flows in namespace {namespace}: {_describe(error)}"
                ) from error
            items: list[dict[str, Any]] = answer.get("items", [])
            return items

        resources = await self._in_thread("Kubernetes API", list_resources)
        deployment_ids = [
            r["status"]["deploymentId"]
            for r in resources
            if isinstance(r.get("status"), Mapping) and r["status"].get("deploymentId")
        ]
        runs_by_deployment: dict[str, list[RunView]] = {}
        if deployment_ids:
            try:
                runs_by_deployment = await self._prefect(
                    "reading the Flows' last runs",
                    lambda client: self._runs_by_deployment(client, deployment_ids),
                )
            except SourceUnavailable:
                # The Flows and their errors matter most when Prefect is down: show them without runs.
                runs_by_deployment = {}
        views = [
            flow_view_from_resource(r, self.config.prefect_ui_url, runs_by_deployment) for r in resources
        ]
        return sorted(views, key=lambda v: (v.namespace or "", v.name))

    async def flow(self, name: str) -> FlowView | None:
        """One flow by resource (cluster mode) or deployment (local mode) name, or None."""
        # Only that one is read: a look-up must not cost a read of every flow and its runs.
        views = await (self._cluster_flows(name) if self.config.cluster_mode else self._local_flows(name))
        return next((view for view in views if view.name == name), None)

    async def overview(self) -> Overview:
        """Health, flows by phase, runs of the last 24 h by state and by hour."""
        now = utc_now()
        since = now - timedelta(hours=24)
        health, flows_read, runs_read = await asyncio.gather(
            self.health(), self.flows(), self.runs(since=since, limit=MAX_RUNS_READ), return_exceptions=True
        )
        flows_error = runs_error = None
        flows: list[FlowView] = []
        runs: list[RunView] = []
        if isinstance(flows_read, LumeError):
            flows_error = str(flows_read)
        elif isinstance(flows_read, BaseException):
            raise flows_read
        else:
            flows = flows_read
        if isinstance(runs_read, LumeError):
            runs_error = str(runs_read)
        elif isinstance(runs_read, BaseException):
            raise runs_read
        else:
            runs = runs_read
        if isinstance(health, BaseException):
            raise health
        return Overview(
            mode="cluster" if self.config.cluster_mode else "local",
            generated=now,
            health=health,
            flows_by_phase=count_phases(flows),
            flows_error=flows_error,
            runs_by_state=count_states(runs),
            runs_per_hour=hour_buckets(runs, since, 24),
            runs_error=runs_error,
        )

    # ------------------------------------------------------------------ results

    async def _store_call(self, what: str, function: Callable[[ResultsStore], T]) -> T:
        def call() -> T:
            return function(self.connections.results_store())

        try:
            return await self._in_thread(what, call)
        except QueryError:
            raise
        except LumeError as error:
            raise SourceUnavailable(f"{what}: {_describe(error)}") from error

    async def result_flows(self) -> list[str]:
        """The flow names that have stored results."""
        names = await self._store_call("listing result flows", lambda store: store.distinct("flow_name"))
        return [str(name) for name in names]

    async def results(
        self,
        *,
        flow: str | None,
        since: datetime | None,
        until: datetime | None,
        filter_document: Mapping[str, Any] | None,
        limit: int,
        skip: int,
    ) -> ResultList:
        """A page of results, newest first (the filter is validated before the store is touched)."""
        query = result_filter(flow, since, until, filter_document)

        def read(store: ResultsStore) -> ResultList:
            found = store.find(query, sort=[("created", -1)], limit=limit, skip=skip)
            return ResultList(
                total=store.count(query),
                results=[
                    ResultSummary(
                        unique_hash=r.unique_hash,
                        flow_name=r.flow_name,
                        flow_run_id=r.flow_run_id,
                        result_type=r.result_type,
                        created=r.created,
                        tags=r.tags,
                        inputs=summarise(r.inputs),
                        outputs=summarise(r.outputs),
                    )
                    for r in found
                ],
            )

        return await self._store_call("reading results", read)

    async def result(self, unique_hash: str) -> ResultDetail | None:
        """One result in full, or None."""

        def read(store: ResultsStore) -> ResultDetail | None:
            found = store.find_one({"unique_hash": unique_hash})
            if found is None:
                return None
            return ResultDetail(
                unique_hash=found.unique_hash,
                flow_name=found.flow_name,
                flow_run_id=found.flow_run_id,
                result_type=found.result_type,
                created=found.created,
                tags=found.tags,
                inputs=jsonable(found.inputs),
                outputs=jsonable(found.outputs),
            )

        return await self._store_call(f"reading result {unique_hash}", read)

    async def result_fields(self, flow: str) -> ResultFields:
        """The numeric fields of a flow's newest results."""
        found = await self._store_call(
            "reading result fields",
            lambda store: store.find({"flow_name": flow}, sort=[("created", -1)], limit=200),
        )
        return ResultFields(flow_name=flow, numeric_fields=numeric_fields(found))

    async def series(
        self,
        *,
        flow: str,
        x: str,
        y: str,
        since: datetime | None,
        until: datetime | None,
        filter_document: Mapping[str, Any] | None,
    ) -> Series:
        """``y`` against ``x`` over a flow's results (oldest first), validated before the store is read."""
        x_path = plot_path(x, allow_created=True)
        y_path = plot_path(y, allow_created=False)
        query = result_filter(flow, since, until, filter_document)
        found = await self._store_call(
            "reading results to plot",
            lambda store: store.find(query, sort=[("created", 1)], limit=MAX_SERIES_POINTS),
        )
        points, skipped = series_points(found, x_path, y_path)
        if x_path != ("created",):
            points.sort(key=lambda p: p.x if isinstance(p.x, float | int) else 0.0)
        return Series(flow_name=flow, x=x, y=y, points=points, skipped=skipped)

    # ------------------------------------------------------------------ models

    async def models(self) -> ModelsOverview:
        """Projects, models and deployments of the registry; which deployment of each model is live."""

        def read() -> ModelsOverview:
            registry = self.connections.model_registry()
            flows_by_project: dict[str, list[str]] = {}
            for flow in registry.list_flows():
                flows_by_project.setdefault(flow.project_name, []).append(flow.flow_name)
            deployments_by_model: dict[int, list[DeploymentView]] = {}
            for deployment in registry.list_deployments():
                deployments_by_model.setdefault(deployment.model_id, []).append(
                    DeploymentView(
                        deployment_id=deployment.deployment_id,
                        version=deployment.version,
                        deploy_date=deployment.deploy_date,
                        source=deployment.source,
                        image=deployment.image,
                        is_live=deployment.is_live,
                    )
                )
            models = []
            for model in registry.list_models():
                deployments = sorted(
                    deployments_by_model.get(model.model_id, []),
                    key=lambda d: (d.deploy_date, d.deployment_id),
                    reverse=True,
                )
                live = next((d.deployment_id for d in deployments if d.is_live), None)
                models.append(
                    ModelView(
                        model_id=model.model_id,
                        author=model.author,
                        laboratory=model.laboratory,
                        facility=model.facility,
                        beampath=model.beampath,
                        description=model.description,
                        created=model.created,
                        deployments=deployments,
                        live_deployment_id=live,
                    )
                )
            projects = [
                ProjectView(
                    project_name=p.project_name,
                    description=p.description,
                    created=p.created,
                    flows=sorted(flows_by_project.get(p.project_name, [])),
                )
                for p in registry.list_projects()
            ]
            return ModelsOverview(projects=projects, models=models)

        try:
            return await self._in_thread("reading the model registry", read)
        except LumeError as error:
            if isinstance(error, SourceUnavailable):
                raise
            raise SourceUnavailable(f"reading the model registry: {_describe(error)}") from error

    def close(self) -> None:
        """Release the connections."""
        self.connections.close()
