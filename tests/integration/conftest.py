"""Fixtures of the library core's integration tests: a per-test LUME environment, deploy and run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from lume_platform.flowspec import FlowSpec
from lume_platform.registrar import Registrar
from lume_platform.services import Services, configure_services, reset_services
from lume_platform.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
# A flow run waits for the worker's next poll, then for a Python process to start: be generous.
RUN_TIMEOUT_SECONDS = 240.0
# How users name the shared volume; tests map it onto a temporary directory (the mount alias).
MOUNT_PATH = "/lume-shared-data"


@pytest.fixture
def prefect_api(prefect_api_url: str) -> Iterator[str]:
    """This process talks to the test Prefect server."""
    with temporary_settings({PREFECT_API_URL: prefect_api_url}):
        yield prefect_api_url


@pytest.fixture
def lume_env(tmp_path: Path, mongodb_url: str, tmp_mongo_database: str) -> dict[str, str]:
    """The LUME_* environment of one test: its own data dir, MongoDB database and mounted directory."""
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    return {
        "LUME_HOME": str(tmp_path / "home"),
        "LUME_RESULTS_DB__URL": mongodb_url,
        "LUME_RESULTS_DB__DATABASE": tmp_mongo_database,
        "LUME_MOUNTED_FILESYSTEM__MOUNT_PATH": MOUNT_PATH,
        "LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS": str(mounted),
    }


@pytest.fixture
def lume_services(lume_env: dict[str, str]) -> Iterator[Services]:
    """Services of this (test) process configured like the flow runs of the test."""
    services = configure_services(load_settings(lume_env))
    yield services
    reset_services()


Deploy = Callable[..., str]


@pytest.fixture
def deploy(prefect_api: str, work_pool_name: str) -> Deploy:
    """deploy(entrypoint=... | composition=..., env=..., parameters=...) -> 'flow/deployment' (Registrar)."""

    def _deploy(*, env: dict[str, str], name: str | None = None, **spec: Any) -> str:
        flow_spec = FlowSpec(env=env, work_pool=work_pool_name, working_dir=str(ROOT), **spec)
        deployment = name or f"test-{uuid.uuid4().hex[:10]}"

        async def ensure() -> str:
            async with get_client() as client:
                registrar = Registrar(client, default_work_pool=work_pool_name)
                return (await registrar.ensure(deployment, flow_spec)).full_name

        return asyncio.run(ensure())

    return _deploy


RunDeployment = Callable[..., FlowRun]


@pytest.fixture
def run(prefect_api: str) -> RunDeployment:
    """run(full_name, parameters) -> the finished FlowRun (through the worker; bounded wait)."""

    def _run(
        full_name: str, parameters: dict[str, Any] | None = None, timeout: float = RUN_TIMEOUT_SECONDS
    ) -> FlowRun:
        flow_run = run_deployment(
            full_name,
            parameters=parameters or {},
            timeout=timeout,
            as_subflow=False,
            poll_interval=1,
        )
        assert flow_run.state is not None and flow_run.state.is_final(), (
            f"flow run {flow_run.id} of {full_name} did not finish within {timeout}s"
            f" (state {flow_run.state.type if flow_run.state else None}): is the worker of the test pool up?"
        )
        return flow_run

    return _run
