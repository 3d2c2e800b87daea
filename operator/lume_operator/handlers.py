"""Kopf handlers for Flow and FlowRun resources: thin glue between Kubernetes and the Registrar.

Every handler lives in this module's own `registry`: importing prefect_kubernetes (even indirectly, through
Prefect's collection loading) registers Prefect's observer handlers in kopf's *default* registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import httpx
import kopf

from lume_operator import drift, kube, metrics
from lume_operator import status as build
from lume_operator.settings import OperatorSettings
from lume_platform.flowspec import API_GROUP, API_VERSION, InvalidSpec, parse_flow_run_spec, parse_flow_spec
from lume_platform.registrar import (
    DeploymentRejected,
    PrefectBusy,
    PrefectUnavailable,
    Registrar,
    WorkPoolNotFound,
)

registry = kopf.OperatorRegistry()
SETTINGS = OperatorSettings()
FLOWS = (API_GROUP, API_VERSION, "flows")
FLOW_RUNS = (API_GROUP, API_VERSION, "flowruns")


def backoff(retry: int) -> float:
    """Seconds before retry number `retry` (2, 4, 8, … up to the configured ceiling)."""
    return float(min(SETTINGS.max_backoff_seconds, 2 ** min(retry + 1, 16)))


def busy_delay(retry: int) -> float:
    """Seconds before retrying a busy Prefect: within seconds, jittered so a batch does not retry in step."""
    return random.uniform(0.5, 1.5) * min(2**retry, 4)


def retry_delay(error: PrefectUnavailable, retry: int) -> float:
    """A busy Prefect is retried within seconds, an unreachable one with the full backoff."""
    return busy_delay(retry) if isinstance(error, PrefectBusy) else backoff(retry)


@kopf.on.login(registry=registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: its ServiceAccount; elsewhere: KUBECONFIG (tests impersonate the ServiceAccount there)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup(registry=registry)
async def configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger, **_: Any
) -> None:
    """Tune kopf, open one Prefect client for the whole process, start following Prefect's events."""
    from prefect import get_client

    settings.persistence.finalizer = f"{API_GROUP}/finalizer"
    # Our own annotation prefix: a strict status schema (no status.kopf), apart from other operators.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=f"kopf.{API_GROUP}")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=f"kopf.{API_GROUP}", key="last-handled-configuration"
    )
    # Events for problems only: 500 Flows applied at once must not mean 1,000 Event objects.
    settings.posting.level = logging.WARNING
    # A few Flows per Prefect request slot is enough to keep Prefect busy; 500 Flows applied at once
    # would otherwise be 500 live workers, each holding its object, for as long as Prefect takes.
    settings.queueing.worker_limit = 8 * SETTINGS.max_concurrency
    # A worker holds its slot while idle: free it soon (an object's next event simply gets a new one).
    settings.queueing.idle_timeout = 0.1
    metrics.serve()
    memo.exit_stack = contextlib.AsyncExitStack()
    client = await memo.exit_stack.enter_async_context(get_client())
    memo.registrar = Registrar(
        client, default_work_pool=SETTINGS.default_work_pool, max_concurrency=SETTINGS.max_concurrency
    )
    connection = login(settings=settings)
    if connection is None:
        raise kopf.PermanentError("no Kubernetes credentials: neither a ServiceAccount nor a kubeconfig")
    memo.api = await memo.exit_stack.enter_async_context(kube.api_server_client(connection))
    try:
        # Before kopf resumes every Flow: one paged read instead of one read per Flow after a restart.
        known = await kube.recorded_deployment_ids(memo.api, SETTINGS.namespaces)
        logger.info("read %d deployments of known Flows", await memo.registrar.prefetch(known))
    except (PrefectUnavailable, httpx.HTTPError) as error:
        logger.warning("could not read the deployments up front (%s); each Flow reads its own", error)
    memo.flows_by_deployment = {}
    memo.own_writes = {}
    memo.background = [asyncio.create_task(drift.resync_periodically(memo, logger, SETTINGS.resync_seconds))]
    if SETTINGS.follow_events:
        memo.background.append(asyncio.create_task(drift.follow(memo, logger)))
    logger.info(
        "LUME operator: Prefect %s, default pool %r, resync every %.0f s, events %s",
        client.api_url,
        SETTINGS.default_work_pool,
        SETTINGS.resync_seconds,
        "followed" if SETTINGS.follow_events else "ignored",
    )


@kopf.on.cleanup(registry=registry)
async def close(memo: kopf.Memo, **_: Any) -> None:
    """Stop the background tasks and close the clients."""
    for task in getattr(memo, "background", []):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if getattr(memo, "exit_stack", None) is not None:
        await memo.exit_stack.aclose()


@kopf.on.probe(registry=registry, id="flows_known")
def flows_known(memo: kopf.Memo, **_: Any) -> int:
    """Reported by the liveness endpoint: how many deployments this operator keeps in sync."""
    return len(getattr(memo, "flows_by_deployment", {}))


async def sync_flow(
    name: str,
    namespace: str,
    spec: kopf.Spec,
    current: kopf.Status,
    generation: int | None,
    patch: kopf.Patch,
    memo: kopf.Memo,
    retry: int,
    new: bool = False,
) -> None:
    """Bring the Flow's deployment in line with its spec and write the outcome to its status."""
    now = build.now_iso()
    try:
        flow_spec = parse_flow_spec(dict(spec))
    except InvalidSpec as error:
        # Not retried: nothing will change until the spec does (which triggers a new update).
        patch.status.update(build.flow_invalid(current, str(error), generation, now))
        return
    registrar: Registrar = memo.registrar
    try:
        result = await registrar.ensure(name, flow_spec, deployment_id=current.get("deploymentId"), new=new)
    except DeploymentRejected as error:
        patch.status.update(build.flow_invalid(current, str(error), generation, now))
        return
    except WorkPoolNotFound as error:
        patch.status.update(build.flow_not_synced(current, "WorkPoolNotFound", str(error), generation, now))
        raise kopf.TemporaryError(str(error), delay=backoff(retry)) from None
    except PrefectUnavailable as error:
        patch.status.update(build.flow_not_synced(current, "PrefectUnavailable", str(error), generation, now))
        raise kopf.TemporaryError(str(error), delay=retry_delay(error, retry)) from None
    deployment_id = str(result.deployment_id)
    previous = current.get("deploymentId")
    if previous and previous != deployment_id:
        memo.flows_by_deployment.pop(previous, None)
    memo.flows_by_deployment[deployment_id] = (namespace, name)
    if result.writes:
        memo.own_writes[deployment_id] = time.monotonic()
    patch.status.update(build.flow_synced(current, result, generation, now))


@kopf.on.resume(*FLOWS, registry=registry)
@kopf.on.create(*FLOWS, registry=registry)
@kopf.on.update(*FLOWS, registry=registry)
async def reconcile_flow(
    name: str,
    namespace: str,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    memo: kopf.Memo,
    retry: int,
    reason: kopf.Reason,
    **_: Any,
) -> None:
    """Create, update, resume, or an event-driven resync (an annotation from lume_operator.drift)."""
    with metrics.flow_sync(namespace, name, patch):
        await sync_flow(
            name,
            namespace,
            spec,
            status,
            meta.get("generation"),
            patch,
            memo,
            retry,
            new=reason == kopf.Reason.CREATE and retry == 0,
        )


@kopf.on.delete(*FLOWS, registry=registry)
async def delete_flow(
    name: str, namespace: str, spec: kopf.Spec, status: kopf.Status, memo: kopf.Memo, retry: int, **_: Any
) -> None:
    """Delete the deployment; while Prefect is unreachable, keep the finalizer and retry with backoff."""
    registrar: Registrar = memo.registrar
    deployment_id = status.get("deploymentId")
    try:
        full_name: str | None = f"{parse_flow_spec(dict(spec)).effective_flow_name}/{name}"
    except InvalidSpec:
        full_name = None
    try:
        deleted = bool(deployment_id) and await registrar.delete(deployment_id=deployment_id)
        # Also by name: an attempt that crashed before writing the status may have left one behind.
        if not deleted and full_name is not None:
            await registrar.delete(full_name=full_name)
    except PrefectUnavailable as error:
        raise kopf.TemporaryError(
            f"cannot delete the deployment yet: {error}", delay=retry_delay(error, retry)
        ) from None
    if deployment_id:
        memo.flows_by_deployment.pop(deployment_id, None)
    metrics.forget_flow(namespace, name)


@kopf.on.resume(*FLOW_RUNS, registry=registry)
@kopf.on.create(*FLOW_RUNS, registry=registry)
async def start_flow_run(
    uid: str,
    namespace: str,
    spec: kopf.Spec,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    retry: int,
    **_: Any,
) -> None:
    """Create the Prefect flow run, keyed by the resource's uid so a restart never starts a second one."""
    if status.get("flowRunId"):
        return
    try:
        run_spec = parse_flow_run_spec(dict(spec))
    except InvalidSpec as error:
        patch.status.update({"phase": "Error", "message": str(error)})
        return
    # A read of the Flow, not a kopf index: an index makes kopf hold every Flow's handlers until all
    # Flows are indexed, which with a bounded number of workers never happens after a restart.
    try:
        deployment_id = await kube.recorded_deployment_id(memo.api, namespace, run_spec.flow_ref)
    except httpx.HTTPError as error:
        raise kopf.TemporaryError(f"cannot read Flow {run_spec.flow_ref!r}: {error}", delay=5.0) from None
    if deployment_id is None:
        message = f"waiting for Flow {run_spec.flow_ref!r} in {namespace} to be Ready"
        patch.status.update({"phase": "Pending", "message": message})
        raise kopf.TemporaryError(message, delay=min(backoff(retry), 10.0))
    registrar: Registrar = memo.registrar
    try:
        run = await registrar.start_run(
            deployment_id,
            parameters=run_spec.parameters,
            job_variables=run_spec.job_variables,
            idempotency_key=f"{API_GROUP}/flowrun/{uid}",
        )
    except PrefectUnavailable as error:
        patch.status.update({"phase": "Pending", "message": str(error)})
        raise kopf.TemporaryError(str(error), delay=retry_delay(error, retry)) from None
    except DeploymentRejected as error:
        patch.status.update({"phase": "Error", "message": str(error)})
        return
    patch.status.update(build.flow_run_status(run))


def _run_in_progress(status: kopf.Status, **_: Any) -> bool:
    return bool(status.get("flowRunId")) and status.get("phase") not in build.TERMINAL_RUN_PHASES


async def small_result(run: Any, limit: int = 4096) -> dict[str, Any] | None:
    """The run's return value when it is small JSON and readable from here (results persisted), else None."""
    import json

    try:
        value = await asyncio.wait_for(run.state.aresult(raise_on_failure=False), timeout=5.0)
        text = json.dumps(value, default=str)
    except Exception:
        # Unpersisted or unreachable results are normal: the status then simply carries none.
        return None
    return {"value": json.loads(text)} if len(text) <= limit else None


@kopf.timer(*FLOW_RUNS, registry=registry, interval=SETTINGS.flowrun_poll_seconds, when=_run_in_progress)
async def follow_flow_run(status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Mirror the Prefect flow run's state into the FlowRun's status until the run ends."""
    registrar: Registrar = memo.registrar
    try:
        run = await registrar.read_run(status["flowRunId"])
    except PrefectUnavailable as error:
        patch.status["message"] = str(error)
        return
    new = build.flow_run_status(run)
    if new["phase"] in build.TERMINAL_RUN_PHASES:
        results = await small_result(run)
        if results is not None:
            new["results"] = results
    changed = {key: value for key, value in new.items() if status.get(key) != value}
    if changed:
        patch.status.update(changed)
