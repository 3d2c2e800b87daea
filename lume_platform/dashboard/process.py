"""The dashboard as a process managed beside the local Prefect server (``lume up``) and in tests."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from lume_platform.dashboard.config import DEFAULT_HOST, DEFAULT_PORT
from lume_platform.local import ManagedProcess

READY_TIMEOUT_SECONDS = 60.0
PROCESS_NAME = "dashboard"


def dashboard_url(port: int = DEFAULT_PORT, host: str = DEFAULT_HOST) -> str:
    """Where a dashboard on ``host:port`` is opened."""
    return f"http://{host}:{port}"


def dashboard_process(
    *,
    env: Mapping[str, str],
    cwd: Path,
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    python: str = sys.executable,
    name: str = PROCESS_NAME,
) -> ManagedProcess:
    """A ManagedProcess serving the dashboard; ready once ``/healthz`` answers.

    ``env`` must hold ``PREFECT_API_URL`` and the ``LUME_*`` service environment the dashboard reads.
    """
    url = dashboard_url(port, host)

    def ready(_started_at: float) -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    return ManagedProcess(
        name=name,
        argv=[python, "-m", "lume_platform.dashboard", "--host", host, "--port", str(port)],
        env=dict(env),
        cwd=cwd,
        ready=ready,
        ready_timeout=READY_TIMEOUT_SECONDS,
        port=port,
    )
