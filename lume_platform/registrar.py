"""The Registrar: make Prefect hold exactly the deployment a FlowSpec describes, idempotently.

One code path for both front doors: the operator calls it for Flow resources, `lume apply` for manifests.

Prefect 3.9 facts this is built around (shared/reference/prefect3-kubernetes.md, C.3):
- every deployment PATCH or upsert deletes the deployment's future auto-scheduled runs, so nothing is
  written when what Prefect holds already matches;
- an upsert replaces all schedules (new ids, duplicate runs per tick), so schedules are reconciled one by
  one through the schedules sub-resource, matched by slug;
- `POST /deployments/` is an upsert on (flow, name): an attempt that crashed midway is simply repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx
from prefect.client.schemas.actions import DeploymentScheduleCreate, DeploymentUpdate, WorkPoolCreate
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from lume_platform.errors import LumeError
from lume_platform.flowspec import COMPOSITION_PARAMETER, FlowSpec, Schedule

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import DeploymentSchedule, FlowRun
    from prefect.client.schemas.responses import DeploymentResponse

SET_WORKING_DIRECTORY = "prefect.deployments.steps.set_working_directory"
# Prefect puts a deployment without a queue on its pool's default queue.
DEFAULT_WORK_QUEUE = "default"
# Pools do not come and go often; re-reading one per Flow would double the requests of a large batch.
POOL_CACHE_SECONDS = 30.0
# The most deployments Prefect's API returns per read (its PREFECT_API_DEFAULT_LIMIT).
PAGE_SIZE = 200
# A prefetched deployment stands in for a read only this long after the prefetch, and only once.
PREFETCH_SECONDS = 120.0


class RegistrarError(LumeError):
    """Prefect could not be brought to the desired state."""


class PrefectUnavailable(RegistrarError):
    """The Prefect API cannot be reached or answers with a server error: retry later."""


class PrefectBusy(PrefectUnavailable):
    """Prefect answered but is overloaded (503 while its SQLite database is locked, 429): retry soon."""


class WorkPoolNotFound(RegistrarError, LookupError):
    """The Flow's work pool does not exist in Prefect, and the Registrar must not guess its type."""

    def __init__(self, pool: str) -> None:
        self.pool = pool
        super().__init__(f"work pool {pool!r} does not exist in Prefect (create it, or set spec.workPool)")


class DeploymentRejected(RegistrarError, ValueError):
    """Prefect refused the deployment (e.g. a job variable its work pool's schema rejects)."""


@dataclass(frozen=True)
class DesiredDeployment:
    """Everything the Registrar manages on one deployment, in Prefect's own terms."""

    name: str
    flow_name: str
    entrypoint: str
    work_pool_name: str
    work_queue_name: str | None
    description: str | None
    version: str | None
    parameters: dict[str, Any]
    tags: list[str]
    job_variables: dict[str, Any]
    pull_steps: list[dict[str, Any]]
    concurrency_limit: int | None
    paused: bool
    schedules: list[Schedule]

    @property
    def full_name(self) -> str:
        """`flow/deployment`, the name Prefect's CLI and run_deployment take."""
        return f"{self.flow_name}/{self.name}"


@dataclass
class SchedulePlan:
    """Schedule changes that make Prefect match the spec: creations, updates by id, deletions by id."""

    create: list[Schedule] = field(default_factory=list)
    update: list[tuple[UUID, Schedule]] = field(default_factory=list)
    delete: list[UUID] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)


@dataclass
class SyncResult:
    """What one `ensure` found and did."""

    deployment_id: UUID
    flow_id: UUID
    full_name: str
    work_pool: str
    action: str  # created | updated | unchanged
    changed_fields: list[str] = field(default_factory=list)
    writes: int = 0


def job_variables(spec: FlowSpec) -> dict[str, Any]:
    """The deployment's job variables, in the names of prefect-kubernetes' base job template."""
    variables: dict[str, Any] = {}
    if spec.image:
        variables["image"] = spec.image
    if spec.env:
        variables["env"] = dict(spec.env)
    if spec.resources:
        for kind, amounts in (("request", spec.resources.requests), ("limit", spec.resources.limits)):
            if amounts is None:
                continue
            if amounts.cpu:
                variables[f"cpu_{kind}"] = amounts.cpu
            if amounts.memory:
                variables[f"memory_{kind}"] = amounts.memory
    return variables


def desired_deployment(name: str, spec: FlowSpec, default_work_pool: str) -> DesiredDeployment:
    """Translate a FlowSpec into the deployment Prefect should hold. Pure."""
    parameters = dict(spec.parameters)
    if spec.composition is not None:
        parameters[COMPOSITION_PARAMETER] = spec.composition
    # Always a pull step: without one Prefect "downloads" the code from deployment.path, which for a
    # deployment registered without flow code means copying the worker's directory onto itself.
    pull_steps = [{SET_WORKING_DIRECTORY: {"directory": spec.working_dir or "."}}]
    return DesiredDeployment(
        name=name,
        flow_name=spec.effective_flow_name,
        entrypoint=spec.effective_entrypoint,
        work_pool_name=spec.work_pool or default_work_pool,
        work_queue_name=spec.work_queue,
        description=spec.description,
        version=spec.version,
        parameters=parameters,
        tags=list(spec.tags),
        job_variables=job_variables(spec),
        pull_steps=pull_steps,
        concurrency_limit=spec.concurrency_limit,
        paused=spec.paused,
        schedules=list(spec.schedules),
    )


def _actual_concurrency_limit(actual: DeploymentResponse) -> int | None:
    # Prefect 3.9 reports the limit only through the deployment's global concurrency limit.
    limit = actual.global_concurrency_limit
    return limit.limit if limit is not None else None


def deployment_changes(desired: DesiredDeployment, actual: DeploymentResponse) -> dict[str, Any]:
    """The DeploymentUpdate fields whose values differ from what Prefect holds (schedules aside). Pure."""
    comparisons: dict[str, tuple[Any, Any]] = {
        "entrypoint": (desired.entrypoint, actual.entrypoint),
        "work_pool_name": (desired.work_pool_name, actual.work_pool_name),
        "work_queue_name": (
            desired.work_queue_name or DEFAULT_WORK_QUEUE,
            actual.work_queue_name or DEFAULT_WORK_QUEUE,
        ),
        # Prefect stores a missing description as "".
        "description": (desired.description or "", actual.description or ""),
        "version": (desired.version, actual.version),
        "parameters": (desired.parameters, actual.parameters),
        "tags": (sorted(desired.tags), sorted(actual.tags)),
        "job_variables": (desired.job_variables, actual.job_variables or {}),
        "pull_steps": (desired.pull_steps, actual.pull_steps or []),
        "concurrency_limit": (desired.concurrency_limit, _actual_concurrency_limit(actual)),
        "paused": (desired.paused, actual.paused),
        "enforce_parameter_schema": (False, actual.enforce_parameter_schema),
    }
    # Send the normalised value (what was compared), except where order was only ignored for comparing.
    changes = {name: want for name, (want, have) in comparisons.items() if want != have}
    if "tags" in changes:
        changes["tags"] = list(desired.tags)
    return changes


def prefect_schedule(schedule: Schedule) -> CronSchedule | IntervalSchedule | RRuleSchedule:
    """The Prefect schedule object of one spec schedule."""
    if schedule.cron is not None:
        return CronSchedule(cron=schedule.cron, timezone=schedule.timezone)
    if schedule.interval is not None:
        return IntervalSchedule(interval=timedelta(seconds=schedule.interval), timezone=schedule.timezone)
    return RRuleSchedule(rrule=schedule.rrule or "", timezone=schedule.timezone)


def _schedule_key(schedule: Any) -> tuple[Any, ...]:
    """What identifies a schedule's timing, ignoring values Prefect fills in (anchor dates, UTC)."""
    timezone = getattr(schedule, "timezone", None) or "UTC"
    if isinstance(schedule, CronSchedule):
        return ("cron", schedule.cron, timezone, schedule.day_or)
    if isinstance(schedule, IntervalSchedule):
        return ("interval", schedule.interval.total_seconds(), timezone)
    if isinstance(schedule, RRuleSchedule):
        return ("rrule", schedule.rrule, timezone)
    return ("unknown", repr(schedule))


def schedule_plan(desired: list[Schedule], actual: list[DeploymentSchedule]) -> SchedulePlan:
    """Match schedules by slug: keep equal ones, update changed ones in place, drop the rest. Pure."""
    plan = SchedulePlan()
    wanted = {schedule.slug: schedule for schedule in desired}
    seen: set[str] = set()
    for existing in actual:
        slug = existing.slug
        if slug is None or slug not in wanted or slug in seen:
            plan.delete.append(existing.id)
            continue
        seen.add(slug)
        want = wanted[slug]
        if (
            _schedule_key(prefect_schedule(want)) != _schedule_key(existing.schedule)
            or want.active != existing.active
        ):
            plan.update.append((existing.id, want))
    plan.create = [schedule for slug, schedule in wanted.items() if slug not in seen]
    return plan


def _schedule_create(schedule: Schedule) -> DeploymentScheduleCreate:
    return DeploymentScheduleCreate(
        schedule=prefect_schedule(schedule), active=schedule.active, slug=schedule.slug
    )


@contextlib.contextmanager
def prefect_errors(what: str) -> Iterator[None]:
    """Turn transport failures and server errors into PrefectUnavailable, client errors into clear ones."""
    try:
        yield
    except (httpx.TransportError, OSError) as error:
        raise PrefectUnavailable(
            f"{what}: Prefect API unreachable ({type(error).__name__}: {error})"
        ) from error
    except httpx.HTTPStatusError as error:
        status = error.response.status_code
        detail = error.response.text[:500]
        if status in (429, 503):
            raise PrefectBusy(f"{what}: Prefect answered {status}: {detail}") from error
        if status >= 500:
            raise PrefectUnavailable(f"{what}: Prefect answered {status}: {detail}") from error
        if status in (400, 403, 409, 422):
            raise DeploymentRejected(f"{what}: Prefect refused it ({status}): {detail}") from error
        raise


class Registrar:
    """Ensures work pool → flow → deployment → schedules in Prefect for FlowSpecs; deletes and runs them."""

    def __init__(
        self,
        client: PrefectClient,
        *,
        default_work_pool: str,
        create_missing_pool_as: str | None = None,
        max_concurrency: int = 8,
    ) -> None:
        """`create_missing_pool_as`: a pool type (e.g. "process" in local mode); None never creates pools."""
        self.client = client
        self.default_work_pool = default_work_pool
        self.create_missing_pool_as = create_missing_pool_as
        # Prefect on SQLite serialises writes: more parallel requests only queue up on its side.
        self._limit = asyncio.Semaphore(max_concurrency)
        self._pools_seen: dict[str, float] = {}
        self._flow_ids: dict[str, UUID] = {}
        self._prefetched: dict[UUID, DeploymentResponse] = {}
        self._prefetched_at = float("-inf")
        self.writes = 0

    async def prefetch(self, deployment_ids: Iterable[UUID | str], page_size: int = PAGE_SIZE) -> int:
        """Read these deployments in a few requests, so that the next `ensure` of each needs no read.

        An operator restarting with hundreds of unchanged Flows then costs Prefect a handful of reads
        instead of one per Flow. Returns how many of them Prefect still holds.
        """
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        wanted = sorted({UUID(str(deployment_id)) for deployment_id in deployment_ids})
        prefetched: dict[UUID, DeploymentResponse] = {}
        async with self._limit:
            with prefect_errors("reading the deployments of known Flows"):
                for start in range(0, len(wanted), page_size):
                    chunk = wanted[start : start + page_size]
                    page = await self.client.read_deployments(
                        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=chunk)),
                        limit=len(chunk),
                    )
                    prefetched.update((deployment.id, deployment) for deployment in page)
        self._prefetched = prefetched
        self._prefetched_at = time.monotonic()
        return len(prefetched)

    def forget(self, deployment_id: UUID | str) -> None:
        """Drop what was prefetched of a deployment (it changed in Prefect since)."""
        self._prefetched.pop(UUID(str(deployment_id)), None)

    def _take_prefetched(self, deployment_id: UUID) -> DeploymentResponse | None:
        if time.monotonic() - self._prefetched_at > PREFETCH_SECONDS:
            self._prefetched.clear()
        return self._prefetched.pop(deployment_id, None)

    async def ensure(
        self, name: str, spec: FlowSpec, *, deployment_id: UUID | str | None = None, new: bool = False
    ) -> SyncResult:
        """Make Prefect hold the deployment `name` of `spec`; write only what differs.

        `new`: the caller knows the resource was just created, so the look-up by name is skipped (one
        request fewer per Flow in a large batch); the create is an upsert, so it still cannot duplicate.
        """
        desired = desired_deployment(name, spec, self.default_work_pool)
        known_id = UUID(str(deployment_id)) if deployment_id else None
        async with self._limit:
            with prefect_errors(f"deployment {desired.full_name}"):
                return await self._ensure(desired, known_id, look_up=not (new and known_id is None))

    async def _ensure(self, desired: DesiredDeployment, known_id: UUID | None, look_up: bool) -> SyncResult:
        writes = await self._ensure_pool(desired.work_pool_name)
        actual = await self._find(desired, known_id) if look_up else None
        flow_id, flow_created = await self._flow_id(desired.flow_name)
        writes += flow_created
        if actual is not None and actual.flow_id != flow_id:
            # The flow name changed: the old deployment belongs to another flow and must go.
            writes += await self._delete_quietly(actual.id)
            actual = None
        if actual is None:
            deployment_id = await self._create(desired, flow_id)
            self.writes += writes + 1
            return SyncResult(
                deployment_id, flow_id, desired.full_name, desired.work_pool_name, "created", [], writes + 1
            )
        changes = deployment_changes(desired, actual)
        if changes:
            await self.client.update_deployment(actual.id, DeploymentUpdate(**changes))
            writes += 1
        plan = schedule_plan(desired.schedules, actual.schedules)
        writes += await self._apply_schedules(actual.id, plan)
        changed = sorted(changes) + (["schedules"] if plan else [])
        self.writes += writes
        return SyncResult(
            actual.id,
            flow_id,
            desired.full_name,
            desired.work_pool_name,
            "updated" if changed else "unchanged",
            changed,
            writes,
        )

    async def _ensure_pool(self, pool: str) -> int:
        """Check (and in local mode create) the work pool; the number of writes it took."""
        seen = self._pools_seen.get(pool)
        if seen is not None and time.monotonic() - seen < POOL_CACHE_SECONDS:
            return 0
        writes = 0
        try:
            await self.client.read_work_pool(pool)
        except ObjectNotFound:
            if self.create_missing_pool_as is None:
                raise WorkPoolNotFound(pool) from None
            with contextlib.suppress(ObjectAlreadyExists):
                await self.client.create_work_pool(
                    WorkPoolCreate(name=pool, type=self.create_missing_pool_as)
                )
                writes = 1
        self._pools_seen[pool] = time.monotonic()
        return writes

    async def _find(self, desired: DesiredDeployment, known_id: UUID | None) -> DeploymentResponse | None:
        if known_id is not None:
            with contextlib.suppress(ObjectNotFound):
                found = self._take_prefetched(known_id) or await self.client.read_deployment(known_id)
                if found.name == desired.name:
                    return found
        # No id yet, or its deployment is gone: adopt one an earlier, interrupted attempt created.
        try:
            return await self.client.read_deployment_by_name(desired.full_name)
        except ObjectNotFound:
            return None

    async def _flow_id(self, flow_name: str) -> tuple[UUID, bool]:
        """The flow's id, and whether it had to be created (a read first: restarts must not write)."""
        cached = self._flow_ids.get(flow_name)
        if cached is not None:
            return cached, False
        created = False
        try:
            flow_id = (await self.client.read_flow_by_name(flow_name)).id
        except httpx.HTTPStatusError as error:
            if error.response.status_code != 404:
                raise
            flow_id = await self.client.create_flow_from_name(flow_name)
            created = True
        self._flow_ids[flow_name] = flow_id
        return flow_id, created

    async def _create(self, desired: DesiredDeployment, flow_id: UUID) -> UUID:
        try:
            deployment_id = await self.client.create_deployment(
                flow_id=flow_id,
                name=desired.name,
                version=desired.version,
                schedules=[_schedule_create(schedule) for schedule in desired.schedules],
                concurrency_limit=desired.concurrency_limit,
                parameters=desired.parameters,
                # The client would store None as the string "None".
                description=desired.description or "",
                work_queue_name=desired.work_queue_name,
                work_pool_name=desired.work_pool_name,
                tags=desired.tags,
                entrypoint=desired.entrypoint,
                paused=desired.paused,
                pull_steps=desired.pull_steps,
                enforce_parameter_schema=False,
                job_variables=desired.job_variables,
            )
        except ObjectNotFound as error:
            # The pool vanished since it was checked.
            self._pools_seen.pop(desired.work_pool_name, None)
            raise WorkPoolNotFound(desired.work_pool_name) from error
        return deployment_id

    async def _apply_schedules(self, deployment_id: UUID, plan: SchedulePlan) -> int:
        for schedule_id in plan.delete:
            with contextlib.suppress(ObjectNotFound):
                await self.client.delete_deployment_schedule(deployment_id, schedule_id)
        for schedule_id, schedule in plan.update:
            await self.client.update_deployment_schedule(
                deployment_id, schedule_id, active=schedule.active, schedule=prefect_schedule(schedule)
            )
        if plan.create:
            await self.client.create_deployment_schedules(
                deployment_id, [_schedule_create(schedule) for schedule in plan.create]
            )
        return len(plan.delete) + len(plan.update) + (1 if plan.create else 0)

    async def _delete_quietly(self, deployment_id: UUID) -> int:
        with contextlib.suppress(ObjectNotFound):
            await self.client.delete_deployment(deployment_id)
        return 1

    async def delete(self, *, deployment_id: UUID | str | None = None, full_name: str | None = None) -> bool:
        """Delete a deployment by id or `flow/deployment` name; False when it was already gone."""
        async with self._limit:
            with prefect_errors(f"deleting deployment {deployment_id or full_name}"):
                try:
                    if deployment_id is None:
                        if full_name is None:
                            raise ValueError("delete needs a deployment id or a flow/deployment name")
                        deployment_id = (await self.client.read_deployment_by_name(full_name)).id
                    await self.client.delete_deployment(UUID(str(deployment_id)))
                except ObjectNotFound:
                    return False
                self.writes += 1
                return True

    async def exists(self, deployment_id: UUID | str) -> bool:
        """Whether Prefect still holds the deployment (a read, never a write)."""
        async with self._limit:
            with prefect_errors(f"reading deployment {deployment_id}"):
                try:
                    await self.client.read_deployment(UUID(str(deployment_id)))
                except ObjectNotFound:
                    return False
                return True

    async def start_run(
        self,
        deployment_id: UUID | str,
        *,
        parameters: Mapping[str, Any] | None = None,
        job_variables: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> FlowRun:
        """Create a flow run of a deployment; the same idempotency key always yields the same run."""
        async with self._limit:
            with prefect_errors(f"starting a run of deployment {deployment_id}"):
                run = await self.client.create_flow_run_from_deployment(
                    UUID(str(deployment_id)),
                    parameters=dict(parameters or {}),
                    job_variables=dict(job_variables or {}),
                    idempotency_key=idempotency_key,
                )
                self.writes += 1
                return run

    async def read_run(self, flow_run_id: UUID | str) -> FlowRun:
        """The current state of a flow run."""
        async with self._limit:
            with prefect_errors(f"reading flow run {flow_run_id}"):
                return await self.client.read_flow_run(UUID(str(flow_run_id)))
