"""Benchmark the LUME operator against its floor, on one real API server and one real Prefect server.

    set -a; . .state/cluster.env; set +a
    .venv/bin/python bench/operator.py [--flows 500] [--large 2000]

Measured in one run, against a private Prefect server (SQLite) started for the run:
  floor  N deployments created directly through Prefect's Python client (same content, same concurrency)
  (a)    N Flow resources applied at once → time until all are Ready; ratio to the floor
  (b)    the operator's peak RSS
  (c)    operator restarted with the N unchanged Flows → time until all are confirmed in sync, Prefect writes
  (d)    10 deployments deleted in Prefect behind the operator's back → time until all are back
  (e)    (a) again with the large count, floor included, to show how the cost grows
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lume_operator.settings import OperatorSettings
from lume_operator.testing import (
    CRD_DIR,
    Kube,
    OperatorProcess,
    PrefectServer,
    delete_service_account_rbac,
    flow_manifest,
    kubectl,
    service_account_kubeconfig,
    wait_until,
)

POOL = "bench-pool"
# The floor gets the operator's own number of parallel requests and its retry policy for a busy Prefect.
CONCURRENCY = OperatorSettings().max_concurrency


def flow_spec(index: int) -> dict[str, Any]:
    """One benchmark Flow: parameters, tags and one schedule, so a sync is not trivially small."""
    return {
        "entrypoint": "examples/flows/append_text.py:append_text",
        "flowName": "bench-append",
        "parameters": {"text1": f"t{index}", "text2": "x"},
        "tags": ["bench"],
        "schedules": [{"slug": "daily", "interval": 86400, "active": False}],
    }


async def busy_retried(request: Callable[[], Awaitable[Any]]) -> int:
    """One Prefect request, retried as the operator retries a busy Prefect; the number of retries."""
    # Imported here: Prefect reads its settings (PREFECT_API_URL) on first import.
    from lume_operator.handlers import busy_delay
    from lume_platform.registrar import PrefectBusy, prefect_errors

    for attempt in range(10):
        try:
            with prefect_errors("benchmark request"):
                await request()
            return attempt
        except PrefectBusy:
            if attempt == 9:
                raise
            await asyncio.sleep(busy_delay(attempt))
    raise AssertionError("unreachable")


async def floor(count: int, prefix: str) -> float:
    """Seconds to create `count` such deployments directly through the Prefect client."""
    from prefect import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import IntervalSchedule

    async with get_client() as client:
        flow_id = await client.create_flow_from_name(f"{prefix}-floor")
        limit = asyncio.Semaphore(CONCURRENCY)

        async def create(index: int) -> int:
            spec = flow_spec(index)
            async with limit:
                return await busy_retried(
                    lambda: client.create_deployment(
                        flow_id=flow_id,
                        name=f"{prefix}-{index:05d}",
                        parameters=spec["parameters"],
                        tags=spec["tags"],
                        entrypoint=spec["entrypoint"],
                        work_pool_name=POOL,
                        schedules=[
                            DeploymentScheduleCreate(schedule=IntervalSchedule(interval=86400), active=False)
                        ],
                        description="",
                        enforce_parameter_schema=False,
                    )
                )

        started = time.monotonic()
        retries = await asyncio.gather(*(create(i) for i in range(count)))
        seconds = time.monotonic() - started
        print(f"floor: Prefect answered 503 (busy) {sum(retries)} times", flush=True)
        return seconds


def apply_all(kube: Kube, namespace: str, names: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(
            pool.map(
                lambda pair: kube.create(namespace, "flows", flow_manifest(pair[1], flow_spec(pair[0]))),
                enumerate(names),
            )
        )


def statuses(kube: Kube, namespace: str) -> dict[str, dict[str, Any]]:
    return {item["metadata"]["name"]: item.get("status") or {} for item in kube.list(namespace, "flows")}


def all_ready(kube: Kube, namespace: str, count: int) -> bool:
    found = statuses(kube, namespace)
    return len(found) == count and all(s.get("phase") == "Ready" for s in found.values())


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def snapshot(names: set[str]) -> dict[str, tuple[Any, tuple[str, ...]]]:
    """name → (updated, schedule ids) of the deployments, to count what a restart wrote."""
    from prefect import get_client

    held: dict[str, tuple[Any, tuple[str, ...]]] = {}
    async with get_client() as client:
        offset = 0
        while True:
            page = await client.read_deployments(limit=200, offset=offset)
            for deployment in page:
                if deployment.name in names:
                    held[deployment.name] = (
                        deployment.updated,
                        tuple(sorted(str(s.id) for s in deployment.schedules)),
                    )
            if len(page) < 200:
                return held
            offset += 200


def run_batch(kube: Kube, kubeconfig: Path, count: int, label: str) -> dict[str, Any]:
    """Floor, then (a) and (b) for `count` Flows in a fresh namespace; returns the figures and handles."""
    prefix = f"{label}-{uuid.uuid4().hex[:4]}"
    floor_seconds = asyncio.run(floor(count, prefix))
    print(
        f"[{label}] floor: {count} deployments through the Prefect client in {floor_seconds:.1f} s "
        f"({count / floor_seconds:.1f}/s)",
        flush=True,
    )
    namespace = f"bench-{prefix}"
    kubectl("create", "namespace", namespace)
    kubeconfig = service_account_kubeconfig(namespace, kubeconfig)
    operator = OperatorProcess(kubeconfig, namespace, default_work_pool=POOL)
    operator.start()
    wait_until("the operator up", operator.healthy, timeout=120)
    names = [f"{prefix}-{i:05d}" for i in range(count)]
    started = time.monotonic()
    apply_all(kube, namespace, names)
    applied = time.monotonic() - started
    wait_until(
        f"{count} Flows Ready", lambda: all_ready(kube, namespace, count), timeout=30 * count, interval=1.0
    )
    ready_seconds = time.monotonic() - started
    assert operator.process is not None
    rss = peak_rss_mb(operator.process.pid)
    print(
        f"[{label}] (a) {count} Flows applied in {applied:.1f} s, all Ready after {ready_seconds:.1f} s: "
        f"{ready_seconds / floor_seconds:.2f}x the floor; (b) operator peak RSS {rss:.0f} MB",
        flush=True,
    )
    return {
        "namespace": namespace,
        "operator": operator,
        "names": names,
        "floor": floor_seconds,
        "ready": ready_seconds,
        "rss": rss,
    }


def restart_and_drift(kube: Kube, batch: dict[str, Any]) -> dict[str, Any]:
    """(c) and (d) on an existing batch."""
    namespace, operator, names = batch["namespace"], batch["operator"], batch["names"]
    before = asyncio.run(snapshot(set(names)))
    operator.stop()
    time.sleep(1.1)  # lastSyncTime has one-second resolution
    restarted_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    started = time.monotonic()
    operator.start()

    def confirmed() -> bool:
        found = statuses(kube, namespace)
        return all(
            (s.get("lastSyncTime") or "") >= restarted_at and s.get("phase") == "Ready"
            for s in found.values()
        )

    wait_until("every Flow re-confirmed", confirmed, timeout=600, interval=0.5)
    restart_seconds = time.monotonic() - started
    after = asyncio.run(snapshot(set(names)))
    writes = sum(1 for name in names if before.get(name) != after.get(name))
    print(
        f"(c) restart: all {len(names)} Flows confirmed in sync after {restart_seconds:.1f} s (process start "
        f"included); deployments written: {writes}",
        flush=True,
    )

    victims = names[:10]
    current = statuses(kube, namespace)
    old_ids = {name: current[name]["deploymentId"] for name in victims}

    async def delete_victims() -> None:
        from prefect import get_client

        async with get_client() as client:
            await asyncio.gather(
                *(busy_retried(lambda name=name: client.delete_deployment(old_ids[name])) for name in victims)
            )

    asyncio.run(delete_victims())
    started = time.monotonic()

    def repaired() -> bool:
        found = statuses(kube, namespace)
        return all(found[name].get("deploymentId") not in (None, old_ids[name]) for name in victims)

    wait_until("10 deployments recreated", repaired, timeout=600, interval=0.2)
    drift_seconds = time.monotonic() - started
    print(f"(d) 10 deployments deleted in Prefect: all recreated after {drift_seconds:.1f} s", flush=True)
    return {"restart": restart_seconds, "writes": writes, "drift": drift_seconds}


def teardown(kube: Kube, batch: dict[str, Any]) -> None:
    """Stop the operator, unstick the Flows and drop the namespace (the private Prefect goes with the run)."""
    batch["operator"].stop()
    namespace = batch["namespace"]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(
            pool.map(
                lambda name: kube.patch(namespace, "flows", name, {"metadata": {"finalizers": None}}),
                batch["names"],
            )
        )
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    delete_service_account_rbac(namespace)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flows", type=int, default=500)
    parser.add_argument("--large", type=int, default=2000, help="0 skips (e)")
    args = parser.parse_args()
    if not os.environ.get("KUBECONFIG"):
        print(
            "error: KUBECONFIG is not set (source .state/cluster.env after `hack/cluster.sh up`)",
            file=sys.stderr,
        )
        return 2
    kube = Kube()
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    work = Path(tempfile.mkdtemp(prefix="lume-bench-"))
    prefect = PrefectServer(work / "prefect")
    prefect.start()
    os.environ["PREFECT_API_URL"] = prefect.api_url
    # As in the operator (lume_operator.__main__): retries are the caller's, not hidden in the client.
    os.environ["PREFECT_CLIENT_MAX_RETRIES"] = "0"
    batches = []
    try:
        from prefect import get_client
        from prefect.client.schemas.actions import WorkPoolCreate

        async def make_pool() -> None:
            async with get_client() as client:
                await client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))

        asyncio.run(make_pool())
        small = run_batch(kube, work / "kubeconfig-small", args.flows, "a")
        batches.append(small)
        later = restart_and_drift(kube, small)
        teardown(kube, small)
        large = None
        if args.large:
            large = run_batch(kube, work / "kubeconfig-large", args.large, "e")
            batches.append(large)
            teardown(kube, large)
        print("\nsummary (targets: a ≤ 1.1x floor, b ≤ 120 MB, c 0 writes ≤ 15 s, d ≤ 5 s, e linear)")
        print(
            f"  (a) {args.flows} Flows Ready in {small['ready']:.1f} s vs floor {small['floor']:.1f} s: "
            f"{small['ready'] / small['floor']:.2f}x"
        )
        print(f"  (b) operator peak RSS {small['rss']:.0f} MB")
        print(f"  (c) restart confirmed in {later['restart']:.1f} s with {later['writes']} writes to Prefect")
        print(f"  (d) drift repaired in {later['drift']:.1f} s")
        if large is not None:
            per_small = small["ready"] / args.flows * 1000
            per_large = large["ready"] / args.large * 1000
            print(
                f"  (e) {args.large} Flows Ready in {large['ready']:.1f} s vs floor {large['floor']:.1f} s: "
                f"{large['ready'] / large['floor']:.2f}x; {per_small:.0f} ms/Flow at {args.flows}, "
                f"{per_large:.0f} ms/Flow at {args.large} (peak RSS {large['rss']:.0f} MB)"
            )
        return 0
    finally:
        for batch in batches:
            batch["operator"].stop()
        prefect.stop()


if __name__ == "__main__":
    sys.exit(main())
