"""The operator's own few requests to the API server (kopf makes the rest), with kopf's credentials.

Three request types do not justify a Kubernetes client library, nor its 45 MB of generated models.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import kopf

from lume_platform.flowspec import API_GROUP, API_VERSION

FLOWS_PATH = f"/apis/{API_GROUP}/{API_VERSION}"
LIST_PAGE_SIZE = 500


def api_server_client(connection: kopf.ConnectionInfo) -> httpx.AsyncClient:
    """An HTTP client for the API server that authenticates as kopf does (ServiceAccount or kubeconfig)."""
    return httpx.AsyncClient(
        base_url=connection.server,
        verify=connection.as_ssl_context(),
        headers=connection.as_http_headers(),
        timeout=30.0,
    )


def _flows_path(namespace: str | None) -> str:
    return f"{FLOWS_PATH}/namespaces/{namespace}/flows" if namespace else f"{FLOWS_PATH}/flows"


async def recorded_deployment_ids(client: httpx.AsyncClient, namespaces: list[str]) -> list[str]:
    """The deployment ids in the status of every Flow in `namespaces` (all namespaces when empty)."""
    ids: list[str] = []
    for namespace in namespaces or [None]:
        params: dict[str, Any] = {"limit": LIST_PAGE_SIZE}
        while True:
            response = await client.get(_flows_path(namespace), params=params)
            response.raise_for_status()
            body = response.json()
            ids += [
                item["status"]["deploymentId"]
                for item in body["items"]
                if (item.get("status") or {}).get("deploymentId")
            ]
            params["continue"] = body["metadata"].get("continue")
            if not params["continue"]:
                break
    return ids


async def recorded_deployment_id(client: httpx.AsyncClient, namespace: str, name: str) -> str | None:
    """The deployment id in one Flow's status; None while it has none or when there is no such Flow."""
    response = await client.get(f"{_flows_path(namespace)}/{name}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return (response.json().get("status") or {}).get("deploymentId") or None


async def annotate_flow(
    client: httpx.AsyncClient, namespace: str, name: str, annotations: dict[str, str]
) -> None:
    """Merge `annotations` into a Flow's metadata (kopf then sees an update of it)."""
    response = await client.patch(
        f"{_flows_path(namespace)}/{name}",
        content=json.dumps({"metadata": {"annotations": annotations}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    response.raise_for_status()
