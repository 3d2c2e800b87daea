"""The Registrar against the real test Prefect server: create, no-op, update, adopt, delete, run."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prefect import get_client
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from lume_platform.flowspec import parse_flow_spec
from lume_platform.registrar import Registrar, WorkPoolNotFound

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@pytest.fixture(scope="module")
def work_pool() -> str:
    for name in ("PREFECT_API_URL", "LUME_TEST_WORK_POOL"):
        if not os.environ.get(name):
            pytest.fail(f"{name} is not set: run `hack/services.sh up` and source .state/services.env")
    return os.environ["LUME_TEST_WORK_POOL"]


def with_registrar(pool: str, step: Callable[[Registrar, PrefectClient], Awaitable[T]]) -> T:
    async def run() -> T:
        async with get_client() as client:
            return await step(Registrar(client, default_work_pool=pool), client)

    return asyncio.run(run())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def spec_of(**overrides: Any) -> Any:
    spec: dict[str, Any] = {
        "entrypoint": "examples/flows/append_text.py:append_text",
        "workingDir": str(ROOT),
        "parameters": {"text1": "a", "text2": "b"},
        "tags": ["integration"],
        "schedules": [{"slug": "hourly", "cron": "0 * * * *"}, {"slug": "daily", "interval": 86400}],
    }
    spec.update(overrides)
    return parse_flow_spec(spec)


def test_create_then_nothing_to_do_then_update(work_pool: str) -> None:
    name = unique("reg")

    async def step(registrar: Registrar, client: PrefectClient) -> None:
        created = await registrar.ensure(name, spec_of())
        assert created.action == "created"
        held = await client.read_deployment(created.deployment_id)
        assert held.entrypoint == "examples/flows/append_text.py:append_text"
        assert held.parameters == {"text1": "a", "text2": "b"} and held.tags == ["integration"]
        assert held.work_pool_name == work_pool
        assert sorted(s.slug for s in held.schedules) == ["daily", "hourly"]

        again = await registrar.ensure(name, spec_of(), deployment_id=created.deployment_id)
        assert (again.action, again.writes) == ("unchanged", 0)
        assert (await client.read_deployment(created.deployment_id)).updated == held.updated

        changed = spec_of(
            parameters={"text1": "z", "text2": "b"},
            schedules=[{"slug": "hourly", "cron": "30 * * * *"}, {"slug": "weekly", "interval": 604800}],
        )
        updated = await registrar.ensure(name, changed, deployment_id=created.deployment_id)
        assert updated.action == "updated" and "parameters" in updated.changed_fields
        after = await client.read_deployment(created.deployment_id)
        assert after.parameters["text1"] == "z"
        slugs = sorted(s.slug for s in after.schedules)
        assert slugs == ["hourly", "weekly"], slugs
        hourly_before = next(s for s in held.schedules if s.slug == "hourly")
        hourly_after = next(s for s in after.schedules if s.slug == "hourly")
        assert hourly_after.id == hourly_before.id, "a changed schedule is updated in place"

        assert await registrar.delete(deployment_id=created.deployment_id) is True
        assert await registrar.delete(deployment_id=created.deployment_id) is False
        assert not await registrar.exists(created.deployment_id)

    with_registrar(work_pool, step)


def test_after_a_prefetch_unchanged_deployments_cost_no_request(work_pool: str) -> None:
    """An operator restart: one paged read confirms every unchanged deployment; a forgotten one is re-read."""
    names = [unique("pre") for _ in range(3)]

    async def step(registrar: Registrar, client: PrefectClient) -> None:
        ids = [(await registrar.ensure(name, spec_of())).deployment_id for name in names]
        restarted = Registrar(client, default_work_pool=work_pool)
        assert await restarted.prefetch([*ids, uuid.uuid4()], page_size=2) == len(names)
        await restarted.ensure(names[0], spec_of(), deployment_id=ids[0])  # reads pool and flow once
        requests: list[str] = []

        async def record(request: Any) -> None:
            requests.append(f"{request.method} {request.url.path}")

        client._client.event_hooks["request"].append(record)
        try:
            for name, deployment_id in zip(names[1:], ids[1:], strict=True):
                outcome = await restarted.ensure(name, spec_of(), deployment_id=deployment_id)
                assert (outcome.action, outcome.writes) == ("unchanged", 0)
            assert requests == [], requests
            # Changed in Prefect since the prefetch (the operator hears it as an event): read afresh.
            await client.delete_deployment(ids[2])
            restarted.forget(ids[2])
            recreated = await restarted.ensure(names[2], spec_of(), deployment_id=ids[2])
            assert recreated.action == "created" and recreated.deployment_id != ids[2]
        finally:
            client._client.event_hooks["request"].remove(record)
        for deployment_id in (*ids[:2], recreated.deployment_id):
            await registrar.delete(deployment_id=deployment_id)

    with_registrar(work_pool, step)


def test_a_repeated_attempt_adopts_instead_of_duplicating(work_pool: str) -> None:
    name = unique("adopt")

    async def step(registrar: Registrar, client: PrefectClient) -> None:
        first = await registrar.ensure(name, spec_of())
        # As after a crash before the id was recorded: no deployment id known.
        second = await registrar.ensure(name, spec_of())
        assert second.deployment_id == first.deployment_id and second.action == "unchanged"
        found = await client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
        )
        assert len(found) == 1 and len(found[0].schedules) == 2
        await registrar.delete(deployment_id=first.deployment_id)

    with_registrar(work_pool, step)


def test_a_new_flow_name_replaces_the_deployment(work_pool: str) -> None:
    name = unique("rename")

    async def step(registrar: Registrar, client: PrefectClient) -> None:
        first = await registrar.ensure(name, spec_of())
        second = await registrar.ensure(
            name, spec_of(flowName=unique("other")), deployment_id=first.deployment_id
        )
        assert second.action == "created" and second.deployment_id != first.deployment_id
        assert not await registrar.exists(first.deployment_id)
        await registrar.delete(deployment_id=second.deployment_id)

    with_registrar(work_pool, step)


def test_a_missing_pool_is_an_error_and_creates_nothing(work_pool: str) -> None:
    name = unique("nopool")

    async def step(registrar: Registrar, client: PrefectClient) -> None:
        with pytest.raises(WorkPoolNotFound, match="does not exist"):
            await registrar.ensure(name, spec_of(workPool=unique("missing-pool")))
        found = await client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
        )
        assert found == []

    with_registrar(work_pool, step)


def test_the_same_idempotency_key_starts_one_run(work_pool: str) -> None:
    name = unique("idem")

    async def step(registrar: Registrar, client: PrefectClient) -> None:
        deployment = await registrar.ensure(name, spec_of(schedules=[], paused=True))
        key = unique("key")
        first = await registrar.start_run(deployment.deployment_id, idempotency_key=key)
        second = await registrar.start_run(deployment.deployment_id, idempotency_key=key)
        assert first.id == second.id
        await client.delete_flow_run(first.id)
        await registrar.delete(deployment_id=deployment.deployment_id)

    with_registrar(work_pool, step)
