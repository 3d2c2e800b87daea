"""The embedded local platform for real: Prefect server, process worker, flow runs and their environment."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect import flow
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from lume_platform.local import (
    MANAGED_MARKER,
    LocalPlatform,
    LocalPlatformError,
    ManagedProcess,
    ProcessSupervisor,
    marked_processes,
    port_owner,
    stop_pid,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = f"{Path(__file__).resolve().relative_to(ROOT)}:report_environment"
# A run waits for the worker's next poll and a fresh Python process; the machine is shared.
RUN_TIMEOUT_SECONDS = 240


@flow(name="lume-report-environment")
def report_environment(out_path: str, names: list[str]) -> None:
    """Write what this flow run sees (the named env vars and its cwd) to ``out_path`` as JSON."""
    seen: dict[str, Any] = {name: os.environ.get(name) for name in names}
    seen["cwd"] = os.getcwd()
    Path(out_path).write_text(json.dumps(seen))


Deploy = Callable[[str, str, dict[str, Any]], str]


@pytest.fixture
def deploy() -> Iterator[Deploy]:
    """Deploys ``report_environment`` from this checkout (api URL, pool, job variables) and returns
    its `flow/deployment` name; the deployments are deleted after the test."""
    made: list[tuple[str, UUID]] = []

    def deploy_to(api_url: str, pool: str, job_variables: dict[str, Any]) -> str:
        name = f"env-{uuid.uuid4().hex[:8]}"
        with temporary_settings({PREFECT_API_URL: api_url}):
            deployment_id = report_environment.from_source(source=str(ROOT), entrypoint=ENTRYPOINT).deploy(
                name=name, work_pool_name=pool, job_variables=job_variables, print_next_steps=False
            )
        made.append((api_url, deployment_id))
        return f"lume-report-environment/{name}"

    yield deploy_to
    for api_url, deployment_id in made:
        httpx.delete(f"{api_url}/deployments/{deployment_id}", timeout=30.0)


def _run(api_url: str, deployment: str, out_path: Path, names: list[str], **kwargs: Any) -> dict[str, Any]:
    """Run ``deployment`` through the worker, wait for it and return what the flow run saw."""
    with temporary_settings({PREFECT_API_URL: api_url}):
        run = run_deployment(
            deployment,
            parameters={"out_path": str(out_path), "names": names},
            timeout=RUN_TIMEOUT_SECONDS,
            poll_interval=2,
            **kwargs,
        )
    assert isinstance(run, FlowRun)
    assert run.state is not None and run.state.is_completed(), f"flow run {run.id} ended as {run.state}"
    seen: dict[str, Any] = json.loads(out_path.read_text())
    return seen


def test_job_variables_env_reaches_flow_runs_of_the_test_worker(
    prefect_api_url: str, work_pool_name: str, tmp_path: Path, deploy: Deploy
) -> None:
    names = ["LUME_PROBE", "LUME_PROBE_DEPLOYMENT_ONLY", "PREFECT_API_URL"]
    deployment = deploy(
        prefect_api_url,
        work_pool_name,
        {"env": {"LUME_PROBE": "from-deployment", "LUME_PROBE_DEPLOYMENT_ONLY": "kept"}},
    )

    seen = _run(prefect_api_url, deployment, tmp_path / "deployment.json", names)
    assert seen["LUME_PROBE"] == "from-deployment"
    assert seen["LUME_PROBE_DEPLOYMENT_ONLY"] == "kept"
    assert seen["PREFECT_API_URL"] == prefect_api_url
    # The deployment's pull step moves the run into the checkout it was deployed from.
    assert seen["cwd"] == str(ROOT)

    # A run's own job variables win over the deployment's, variable by variable.
    seen = _run(
        prefect_api_url,
        deployment,
        tmp_path / "run.json",
        names,
        job_variables={"env": {"LUME_PROBE": "from-run"}},
    )
    assert seen["LUME_PROBE"] == "from-run"
    assert seen["LUME_PROBE_DEPLOYMENT_ONLY"] == "kept"


def test_a_pool_of_another_type_is_refused_not_reused(prefect_api_url: str, tmp_path: Path) -> None:
    pool = f"lume-wrong-{uuid.uuid4().hex[:8]}"
    port = int(prefect_api_url.rsplit(":", 1)[1].split("/")[0])
    with httpx.Client(base_url=prefect_api_url, timeout=30.0) as client:
        created = client.post("/work_pools/", json={"name": pool, "type": "kubernetes"})
        assert created.status_code == 201, created.text
        try:
            platform = LocalPlatform(state_dir=tmp_path / "state", port=port, work_pool=pool)
            with pytest.raises(LocalPlatformError, match=rf"{pool}.*type 'kubernetes', not 'process'"):
                platform.ensure_work_pool()
            assert client.get(f"/work_pools/{pool}").json()["type"] == "kubernetes"
        finally:
            client.delete(f"/work_pools/{pool}")


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, free_port_factory: Callable[[], int]
) -> Iterator[LocalPlatform]:
    """A LocalPlatform of its own (port, pool and state dir), stopped and purged afterwards."""
    state = tmp_path_factory.mktemp("local-platform")
    local = LocalPlatform(
        state_dir=state,
        port=free_port_factory(),
        work_pool=f"lume-lp-{uuid.uuid4().hex[:6]}",
        worker_cwd=ROOT,
        ui=False,
    )
    try:
        local.up()
        yield local
    finally:
        local.down(purge=True)


def _pids(platform: LocalPlatform) -> dict[str, int | None]:
    return {status.name: status.pid for status in platform.status()}


def test_up_serves_a_process_pool_with_an_online_worker(platform: LocalPlatform) -> None:
    assert platform.healthy()
    assert all(status.running for status in platform.status())
    pool = httpx.get(f"{platform.api_url}/work_pools/{platform.work_pool}", timeout=10).json()
    assert pool["type"] == "process"
    assert [w["name"] for w in platform.online_workers()] == [platform.worker_name]


def test_a_second_up_starts_nothing(platform: LocalPlatform) -> None:
    before = _pids(platform)
    started = time.monotonic()
    platform.up()
    assert _pids(platform) == before
    assert time.monotonic() - started < 30


def test_a_flow_runs_on_the_platforms_own_worker(
    platform: LocalPlatform, tmp_path: Path, deploy: Deploy
) -> None:
    deployment = deploy(platform.api_url, platform.work_pool, {"env": {"LUME_PROBE": "local"}})
    seen = _run(platform.api_url, deployment, tmp_path / "seen.json", ["LUME_PROBE", "PREFECT_API_URL"])
    assert seen == {"LUME_PROBE": "local", "PREFECT_API_URL": platform.api_url, "cwd": str(ROOT)}


def test_a_dead_worker_is_restarted_and_the_server_kept(platform: LocalPlatform) -> None:
    before = _pids(platform)
    worker_pid = before["worker"]
    assert worker_pid is not None
    os.kill(worker_pid, 9)
    deadline = time.monotonic() + 30
    while platform.supervisor.running_pid("worker") is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not next(s for s in platform.status() if s.name == "worker").running

    platform.up()
    after = _pids(platform)
    assert after["server"] == before["server"]
    assert after["worker"] not in (None, worker_pid)


def test_down_stops_everything_and_keeps_the_data(platform: LocalPlatform) -> None:
    database = platform.prefect_home / "prefect.db"
    assert platform.down() == ["worker", "server"]
    assert not any(status.running for status in platform.status())
    assert not platform.healthy()
    assert port_owner(platform.port) is None
    assert database.is_file()
    assert platform.down() == []


# The supervisor with a small HTTP server, so that the pid-file and port rules are cheap to test.


def _http_server(port: int, name: str = "probe") -> ManagedProcess:
    def ready(_started_at: float) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return ManagedProcess(
        name=name,
        argv=[sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        env=dict(os.environ),
        cwd=Path("/"),
        ready=ready,
        ready_timeout=30,
        port=port,
    )


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[ProcessSupervisor]:
    """A supervisor over a temporary state dir; whatever it started is stopped afterwards."""
    supervised = ProcessSupervisor(tmp_path / "state")
    yield supervised
    for pid_file in supervised.run_dir.glob("*.pid"):
        pid = supervised.running_pid(pid_file.stem)
        if pid is not None:
            stop_pid(pid)


def test_ensure_starts_once_and_marks_the_process(
    supervisor: ProcessSupervisor, free_port_factory: Callable[[], int]
) -> None:
    probe = _http_server(free_port_factory())
    pid = supervisor.ensure(probe)
    assert supervisor.ensure(probe) == pid
    assert port_owner(probe.port or 0) == pid
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"{MANAGED_MARKER}=probe".encode() in environ
    assert supervisor.log_file("probe").is_file()


def test_a_stale_pid_file_is_not_taken_for_a_running_process(
    supervisor: ProcessSupervisor, free_port_factory: Callable[[], int]
) -> None:
    probe = _http_server(free_port_factory())
    supervisor.run_dir.mkdir(parents=True)
    # Our own pid is alive but started at another time than recorded: a reused pid, not the probe.
    supervisor.pid_file("probe").write_text(json.dumps({"pid": os.getpid(), "start_ticks": 1}))
    assert supervisor.running_pid("probe") is None
    supervisor.pid_file("probe").write_text("garbage")
    assert supervisor.running_pid("probe") is None
    pid = supervisor.ensure(probe)
    assert pid != os.getpid()
    assert supervisor.running_pid("probe") == pid


def test_a_leftover_of_ours_on_the_port_is_replaced(
    supervisor: ProcessSupervisor, free_port_factory: Callable[[], int]
) -> None:
    probe = _http_server(free_port_factory())
    leftover = supervisor.ensure(probe)
    # As after `rm -rf .state` or in another checkout: the pid file is gone, the process is not.
    supervisor.pid_file("probe").unlink()
    pid = supervisor.ensure(probe)
    assert pid != leftover
    assert not Path(f"/proc/{leftover}").exists()


def test_a_leftover_without_a_port_is_found_by_its_marker(supervisor: ProcessSupervisor) -> None:
    # Like a worker: nothing to find on a port, yet it must not keep running beside its successor.
    sleeper = ManagedProcess(
        name="sleeper",
        argv=[sys.executable, "-c", "import time; time.sleep(600)"],
        env=dict(os.environ),
        cwd=Path("/"),
        ready=lambda _started_at: True,
        ready_timeout=30,
        identity="test",
    )
    leftover = supervisor.ensure(sleeper)
    supervisor.pid_file("sleeper").unlink()
    assert marked_processes(sleeper.marker, sleeper.argv) == [leftover]
    pid = supervisor.ensure(sleeper)
    assert pid != leftover
    assert marked_processes(sleeper.marker, sleeper.argv) == [pid]
    supervisor.pid_file("sleeper").unlink()
    assert supervisor.stop(sleeper), "stop finds the process by its marker when the pid file is gone"
    assert marked_processes(sleeper.marker, sleeper.argv) == []


def test_a_foreign_process_on_the_port_is_named_in_the_error(supervisor: ProcessSupervisor) -> None:
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        port = foreign.getsockname()[1]
        expected = rf"port 127.0.0.1:{port} is already used by pid {os.getpid()}"
        with pytest.raises(LocalPlatformError, match=expected):
            supervisor.ensure(_http_server(port))
    assert supervisor.running_pid("probe") is None


def test_a_process_that_dies_at_start_reports_its_log(supervisor: ProcessSupervisor) -> None:
    crashing = ManagedProcess(
        name="crash",
        argv=[sys.executable, "-c", "import sys; print('cannot open the database'); sys.exit(3)"],
        env=dict(os.environ),
        cwd=Path("/"),
        ready=lambda _started_at: False,
        ready_timeout=30,
    )
    with pytest.raises(LocalPlatformError, match=r"(?s)crash exited.*cannot open the database"):
        supervisor.ensure(crashing)


def test_prefect_settings_for_another_server_are_not_inherited(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://elsewhere:4200/api")
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "postgresql+asyncpg://elsewhere/prefect")
    monkeypatch.setenv("PREFECT_UI_API_URL", "http://elsewhere:4200/api")
    monkeypatch.setenv("LUME_KEPT", "yes")
    local = LocalPlatform(state_dir=tmp_path, port=4999)
    env = local.prefect_env()
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4999/api"
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"].endswith(f"{tmp_path}/prefect/prefect.db")
    assert "PREFECT_API_DATABASE_CONNECTION_URL" not in env
    assert "PREFECT_UI_API_URL" not in env
    assert env["LUME_KEPT"] == "yes"
