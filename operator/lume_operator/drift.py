"""Event-driven drift repair: follow Prefect's deployment events and ask kopf to resync the Flow at once.

Prefect 3.9's server emits `prefect.deployment.deleted` and `prefect.deployment.updated`
(prefect/server/models/events.py). A change made behind the operator's back becomes an annotation on the
Flow, which kopf sees as an update, so the repair runs through the very same handler as any other change.
The periodic resync timer stays as the safety net for events missed while disconnected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from lume_platform.flowspec import API_GROUP, API_VERSION

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


def _kubernetes_objects_api() -> Any:
    import kubernetes

    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client.CustomObjectsApi()


def request_resync(api: Any, namespace: str, name: str, why: str) -> None:
    """Annotate the Flow; kopf reacts to the change with the usual reconcile handler."""
    stamp = f"{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')} {why}"
    api.patch_namespaced_custom_object(
        API_GROUP,
        API_VERSION,
        namespace,
        "flows",
        name,
        {"metadata": {"annotations": {RESYNC_ANNOTATION: stamp}}},
    )


async def follow(memo: Any, logger: logging.Logger) -> None:
    """Run until cancelled: subscribe to deployment events, reconnecting with backoff when Prefect is away."""
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter

    api = await asyncio.to_thread(_kubernetes_objects_api)
    delay = 1.0
    while True:
        try:
            subscriber = get_events_subscriber(
                filter=EventFilter(event=EventNameFilter(name=WATCHED_EVENTS)), reconnection_attempts=2
            )
            async with subscriber:
                logger.info("following Prefect's deployment events")
                delay = 1.0
                async for event in subscriber:
                    deployment_id = deployment_id_of(event.resource.id)
                    if deployment_id is None:
                        continue
                    flow = needs_resync(event.event, deployment_id, memo, time.monotonic())
                    if flow is None:
                        continue
                    logger.info("%s for %s/%s: resyncing", event.event, *flow)
                    try:
                        await asyncio.to_thread(request_resync, api, flow[0], flow[1], event.event)
                    except Exception as error:  # the Flow may be gone; the timer still covers it
                        logger.warning("could not request a resync of %s/%s: %s", *flow, error)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.warning("Prefect event stream unavailable (%s); retrying in %.0f s", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
