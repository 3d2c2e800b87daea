"""Event-driven drift repair: follow Prefect's deployment events and ask kopf to resync the Flow at once.

Prefect 3.9's server emits `prefect.deployment.deleted` and `prefect.deployment.updated`
(prefect/server/models/events.py). A change made behind the operator's back becomes an annotation on the
Flow, which kopf sees as an update, so the repair runs through the very same handler as any other change.
A periodic resync stays as the safety net for events missed while disconnected: one task for all Flows
(one paged read of their deployments, then a resync request each), not a kopf timer per Flow, which would
keep a task and a copy of every Flow in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from lume_operator import kube
from lume_platform.flowspec import API_GROUP

RESYNC_ANNOTATION = f"{API_GROUP}/resync-requested"
WATCHED_EVENTS = ["prefect.deployment.deleted", "prefect.deployment.updated"]
OWN_WRITE_ECHO_SECONDS = 10.0


def deployment_id_of(resource_id: str) -> str | None:
    """`prefect.deployment.<uuid>` → `<uuid>`."""
    prefix = "prefect.deployment."
    return resource_id[len(prefix) :] if resource_id.startswith(prefix) else None


def needs_resync(event: str, deployment_id: str, memo: Any, now: float) -> tuple[str, str] | None:
    """The (namespace, name) of the Flow to resync for this event, or None (unknown, or our own echo)."""
    flow = memo.flows_by_deployment.get(deployment_id)
    if flow is None:
        return None
    if (
        event.endswith(".updated")
        and now - memo.own_writes.get(deployment_id, float("-inf")) < OWN_WRITE_ECHO_SECONDS
    ):
        return None
    return flow


async def request_resync(
    api: httpx.AsyncClient, namespace: str, name: str, why: str, logger: logging.Logger
) -> None:
    """Annotate the Flow; kopf reacts to the change with the usual reconcile handler."""
    stamp = f"{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')} {why}"
    try:
        await kube.annotate_flow(api, namespace, name, {RESYNC_ANNOTATION: stamp})
    except httpx.HTTPError as error:  # the Flow may be gone; the periodic resync covers the rest
        logger.warning("could not request a resync of %s/%s: %s", namespace, name, error)


async def follow(memo: Any, logger: logging.Logger) -> None:
    """Run until cancelled: subscribe to deployment events, reconnecting with backoff when Prefect is away."""
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter

    events = EventFilter(event=EventNameFilter(name=WATCHED_EVENTS))
    delay = 1.0
    api: httpx.AsyncClient = memo.api
    while True:
        try:
            async with get_events_subscriber(filter=events, reconnection_attempts=2) as subscriber:
                logger.info("following Prefect's deployment events")
                delay = 1.0
                async for event in subscriber:
                    await _resync_for(event, memo, api, logger)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.warning("Prefect event stream unavailable (%s); retrying in %.0f s", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)


async def _resync_for(event: Any, memo: Any, api: httpx.AsyncClient, logger: logging.Logger) -> None:
    deployment_id = deployment_id_of(event.resource.id)
    if deployment_id is None:
        return
    # What was read of it before this change must not stand in for a fresh read.
    memo.registrar.forget(deployment_id)
    flow = needs_resync(event.event, deployment_id, memo, time.monotonic())
    if flow is None:
        return
    logger.info("%s for %s/%s: resyncing", event.event, *flow)
    await request_resync(api, *flow, event.event, logger)


async def resync_periodically(memo: Any, logger: logging.Logger, interval: float) -> None:
    """Run until cancelled: every `interval` seconds, have kopf re-check every Flow this operator synced."""
    from lume_platform.registrar import PrefectUnavailable

    while True:
        await asyncio.sleep(interval)
        flows = dict(memo.flows_by_deployment)
        try:
            # The checks that follow then read nothing more from Prefect unless a deployment drifted.
            await memo.registrar.prefetch(flows)
        except PrefectUnavailable as error:
            logger.warning("periodic resync skipped: %s", error)
            continue
        logger.info("periodic resync of %d Flows", len(flows))
        for namespace, name in flows.values():
            await request_resync(memo.api, namespace, name, "periodic resync", logger)
