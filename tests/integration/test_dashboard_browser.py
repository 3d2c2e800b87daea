"""The dashboard's pages in headless Chromium, on the real local services, with data from example flow runs.

Data: the text-model example (examples/flows/text_model.py) deployed through the Registrar and run by the
test pool's worker three times and once with a parameter that makes it fail; a model registry database
and a results database of this module's own. Each test saves a screenshot under test-output/dashboard/.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pymysql
import pytest
from sqlalchemy.engine import make_url

from lume_operator.testing import wait_until
from lume_platform.dashboard.process import dashboard_process, dashboard_url
from lume_platform.flowspec import FlowSpec
from lume_platform.local import ProcessSupervisor

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "dashboard"
README_SCREENSHOT = ROOT / "docs" / "images" / "dashboard-overview.png"
CHROMIUM = Path("/usr/bin/chromium")
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
FERRETDB = Path(os.environ.get("LUME_CACHE", Path.home() / ".cache" / "lume")) / "bin" / "ferretdb-v1.24.2"
MOUNT_PATH = "/lume-shared-data"
RUN_TIMEOUT_SECONDS = 300.0
PAGE_TIMEOUT_MS = 60_000
TEXTS = ("Hello LUME!", "Particle accelerators shape beams of light", "Emittance")
T = TypeVar("T")


def services_env() -> dict[str, str]:
    """The test services' coordinates (hack/services.sh writes them); fail loudly when absent."""
    names = ("PREFECT_API_URL", "LUME_TEST_MONGODB_URL", "LUME_TEST_MYSQL_URL", "LUME_TEST_WORK_POOL")
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not set: run `hack/services.sh up` and source .state/services.env "
                    "(hack/test.sh does both)")
    return {name: os.environ[name] for name in names}


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end in a thread of its own (Playwright's sync API holds this thread's loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PlatformData:
    """What this module put into the services, and the environment that reads it back."""

    lume_env: dict[str, str]
    deployment_name: str
    deployment_id: str
    run_ids: list[str]
    failed_run_id: str
    project: str
    live_version: str
    flow_name: str = "text-model"
    extra: dict[str, Any] = field(default_factory=dict)


def _create_mysql_database(url: str, database: str) -> str:
    """A fresh MariaDB database for this module; returns its SQLAlchemy URL."""
    parsed = make_url(url)
    connection = pymysql.connect(host=parsed.host, port=parsed.port, user=parsed.username,
                                 password=parsed.password or "", autocommit=True)
    with connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{database}`")
    return parsed.set(database=database).render_as_string(hide_password=False)


def _drop_mysql_database(url: str) -> None:
    parsed = make_url(url)
    connection = pymysql.connect(host=parsed.host, port=parsed.port, user=parsed.username,
                                 password=parsed.password or "", autocommit=True)
    with connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{parsed.database}`")


async def _deploy_and_run(lume_env: dict[str, str], pool: str, name: str) -> tuple[str, list[str], str]:
    """Publish the text-model example and run it: three good runs and one that fails, all to the end."""
    from prefect import get_client

    from lume_platform.registrar import Registrar

    spec = FlowSpec(entrypoint="examples/flows/text_model.py:text_model", env=lume_env, work_pool=pool,
                    working_dir=str(ROOT), tags=["dashboard-test"])
    async with get_client() as client:
        registrar = Registrar(client, default_work_pool=pool)
        synced = await registrar.ensure(name, spec)
        good = [await registrar.start_run(synced.deployment_id, parameters={"text": text}) for text in TEXTS]
        # A file representation that names no file type: load_file raises, the run ends FAILED.
        bad = await registrar.start_run(synced.deployment_id,
                                        parameters={"text": "", "text_file": {"filename": "nowhere.txt"}})
        pending = {run.id for run in [*good, bad]}
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        states: dict[Any, str] = {}
        while pending and time.monotonic() < deadline:
            for run_id in list(pending):
                run = await client.read_flow_run(run_id)
                if run.state is not None and run.state.is_final():
                    states[run_id] = run.state.type.value
                    pending.discard(run_id)
            await asyncio.sleep(2)
        assert not pending, f"runs {pending} unfinished after {RUN_TIMEOUT_SECONDS:.0f} s: is the worker up?"
        assert [states[run.id] for run in good] == ["COMPLETED"] * len(TEXTS), states
        assert states[bad.id] == "FAILED", states
    return str(synced.deployment_id), [str(run.id) for run in good], str(bad.id)


@pytest.fixture(scope="module")
def platform_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformData]:
    """Runs of the text-model example and a small model registry, in databases of this module."""
    services = services_env()
    os.environ.setdefault("PREFECT_API_URL", services["PREFECT_API_URL"])
    suffix = uuid.uuid4().hex[:8]
    home = tmp_path_factory.mktemp("dashboard")
    mounted = home / "mounted"
    mounted.mkdir()
    registry_url = _create_mysql_database(services["LUME_TEST_MYSQL_URL"], f"lume_dash_{suffix}")
    lume_env = {
        "LUME_HOME": str(home / "home"),
        "LUME_RESULTS_DB__URL": services["LUME_TEST_MONGODB_URL"],
        "LUME_RESULTS_DB__DATABASE": f"lume_dash_{suffix}",
        "LUME_MODEL_DB__URL": registry_url,
        "LUME_MOUNTED_FILESYSTEM__MOUNT_PATH": MOUNT_PATH,
        "LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS": str(mounted),
    }
    name = f"dash-text-model-{suffix}"
    deployment_id, run_ids, failed_run_id = run_async(
        lambda: _deploy_and_run(lume_env, services["LUME_TEST_WORK_POOL"], name))

    from lume_platform.registry import ModelRegistry

    with ModelRegistry(registry_url) as registry:
        project = registry.create_project("beam-studies", "Beam dynamics surrogates")
        model = registry.create_model("dashboard test", "SLAC", "LCLS", "cu_hxr", "text model surrogate")
        registry.create_deployment(model.model_id, "1.0.0", source="examples/flows", sha256="a" * 64,
                                   package_import_name="text_model", is_live=False)
        live = registry.create_deployment(model.model_id, "1.1.0", source="examples/flows", sha256="b" * 64,
                                          package_import_name="text_model", image="lume/text-model:1.1.0",
                                          is_live=True)
        registry.create_flow(deployment_id, "text-model", project.project_name, live.deployment_id)
    yield PlatformData(lume_env=lume_env, deployment_name=name, deployment_id=deployment_id, run_ids=run_ids,
                       failed_run_id=failed_run_id, project=project.project_name, live_version=live.version)

    async def delete() -> None:
        from prefect import get_client

        async with get_client() as client:
            await client.delete_deployment(uuid.UUID(deployment_id))

    run_async(delete)
    _drop_mysql_database(registry_url)
    from pymongo import MongoClient

    with MongoClient(services["LUME_TEST_MONGODB_URL"]) as mongo:
        mongo.drop_database(lume_env["LUME_RESULTS_DB__DATABASE"])


class Dashboard:
    """A dashboard process (`python -m lume_platform.dashboard`) under lume_platform.local's supervisor."""

    def __init__(self, state_dir: Path, env: dict[str, str], name: str = "dashboard") -> None:
        self.port = free_port()
        self.url = dashboard_url(self.port)
        self.supervisor = ProcessSupervisor(state_dir)
        self.process = dashboard_process(env=env, cwd=ROOT, port=self.port, name=name)

    def __enter__(self) -> Dashboard:
        self.supervisor.ensure(self.process)
        return self

    def __exit__(self, *_: object) -> None:
        self.supervisor.stop(self.process)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=60)


@pytest.fixture(scope="module")
def dashboard(platform_data: PlatformData, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """The dashboard in local mode over this module's data and the shared test Prefect server."""
    env = {**os.environ, **platform_data.lume_env, "PREFECT_API_URL": os.environ["PREFECT_API_URL"]}
    env.pop("LUME_DASHBOARD_NAMESPACE", None)
    with Dashboard(tmp_path_factory.mktemp("dashboard-state"), env) as running:
        yield running


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium (and a font for legible screenshots), installed through hack/lib.sh when missing."""
    if not CHROMIUM.exists() or not FONT.exists():
        command = f"source {ROOT}/hack/lib.sh && apt_install chromium fonts-dejavu-core"
        done = subprocess.run(["bash", "-c", command],
                              capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0 or not CHROMIUM.exists() or not FONT.exists():
            pytest.fail(f"Debian's chromium could not be installed: {done.stderr[-2000:]}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


class Page:
    """A browser page that records console errors and uncaught exceptions; every test checks them."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=base_url)
        self.page = self.context.new_page()
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def open(self, path: str) -> Any:
        response = self.page.goto(path, wait_until="networkidle")
        assert response is not None and response.status == 200, f"{path}: {response and response.status}"
        return self.page

    def chart(self, selector: str) -> dict[str, Any]:
        """Wait for a chart to be drawn; its points as drawn in the SVG and as held in its data."""
        self.page.wait_for_selector(f"{selector}[data-drawn=true]")
        return dict(self.page.eval_on_selector(selector, """element => ({
            svgPoints: element.querySelectorAll('.cartesianlayer .point').length,
            dataPoints: (element.data || []).reduce((n, trace) => n + trace.x.length, 0),
            declared: Number(element.dataset.points),
            traces: (element.data || []).map(trace => ({name: trace.name, x: trace.x, y: trace.y})),
        })"""))

    def screenshot(self, name: str) -> Path:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000, f"{path} looks empty"
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser: Any, dashboard: Dashboard) -> Iterator[Page]:
    opened = Page(browser, dashboard.url)
    yield opened
    opened.close()
    assert opened.errors == [], f"console errors: {opened.errors}"


def test_overview_shows_every_service_and_a_runs_per_hour_chart(
    page: Page, dashboard: Dashboard, platform_data: PlatformData
) -> None:
    view = page.open("/")
    for service in ("Prefect API", "Model registry", "Results store", "Shared volume"):
        card = view.locator(f".card[data-service='{service}']")
        assert card.get_attribute("data-state") == "up", card.inner_text()
    assert view.locator(".card[data-service='Operator']").get_attribute("data-state") == "not configured"
    assert "GiB free" in view.locator(".card[data-service='Shared volume']").inner_text()

    chart = page.chart("#runs-per-hour-chart")
    assert chart["svgPoints"] == chart["dataPoints"] == chart["declared"] > 0, chart
    totals: dict[str, int] = {}
    for trace in chart["traces"]:
        totals[trace["name"]] = sum(trace["y"])
    # The shared Prefect server holds other tests' runs too: ours are at least there.
    assert totals.get("COMPLETED", 0) >= len(TEXTS) and totals.get("FAILED", 0) >= 1, totals
    counted = {row.get_attribute("data-state"): int(row.inner_text())
               for row in view.locator("#runs-by-state td.num").all()}
    # Read a moment apart from the chart's own request; other tests' runs may have moved in between.
    assert counted.get("COMPLETED", 0) >= len(TEXTS) and counted.get("FAILED", 0) >= 1, counted

    shot = page.screenshot("overview")
    if not README_SCREENSHOT.exists():
        # Made once by the suite and committed; later runs leave the README's picture alone.
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, README_SCREENSHOT)


def test_flows_page_lists_the_deployment_with_its_last_runs(
    page: Page, platform_data: PlatformData
) -> None:
    view = page.open("/flows")
    article = view.locator(f"article[data-flow='{platform_data.deployment_name}']")
    assert article.get_attribute("data-phase") == "Ready"
    link = article.locator("a", has_text="deployment in Prefect UI").get_attribute("href")
    assert link is not None and link.endswith(f"/deployments/deployment/{platform_data.deployment_id}")
    rows = article.locator("table.runs tr").all()[1:]
    assert len(rows) == len(TEXTS) + 1
    states = sorted(row.locator(".state").inner_text() for row in rows)
    assert states == sorted(["Completed"] * len(TEXTS) + ["Failed"]), states
    page.screenshot("flows")


def test_runs_page_filters_by_flow_and_state_and_charts_durations(
    page: Page, platform_data: PlatformData
) -> None:
    view = page.open(f"/runs?flow={platform_data.flow_name}")
    chart = page.chart("#run-durations-chart")
    assert chart["svgPoints"] == chart["dataPoints"] == chart["declared"] >= len(TEXTS) + 1, chart
    assert {trace["name"] for trace in chart["traces"]} == {platform_data.flow_name}
    listed = {row.get_attribute("data-run") for row in view.locator("#runs-table tr[data-run]").all()}
    assert set(platform_data.run_ids) | {platform_data.failed_run_id} <= listed
    page.screenshot("runs")

    view = page.open(f"/runs?flow={platform_data.flow_name}&state=FAILED")
    listed = {row.get_attribute("data-run") for row in view.locator("#runs-table tr[data-run]").all()}
    assert platform_data.failed_run_id in listed and not listed & set(platform_data.run_ids)
    page.chart("#run-durations-chart")


def test_results_page_plots_an_output_against_time_and_against_another_field(
    page: Page, platform_data: PlatformData
) -> None:
    view = page.open(f"/results?flow={platform_data.flow_name}")
    rows = view.locator("#results-table tr[data-hash]").all()
    assert len(rows) == len(TEXTS)
    chart = page.chart("#result-series-chart")
    assert chart["svgPoints"] == chart["dataPoints"] == len(TEXTS), chart
    assert view.locator("#plot-y").input_value().startswith("outputs.")

    # The scientist's view of a scan: characters against words, one point per stored result.
    view.locator("#plot-y").select_option("outputs.characters")
    view.locator("#plot-x").select_option("outputs.words")
    view.wait_for_function("""() => {
        const layout = document.getElementById('result-series-chart').layout;
        return layout && layout.xaxis.title.text === 'outputs.words'
            && layout.yaxis.title.text === 'outputs.characters';
    }""")
    chart = page.chart("#result-series-chart")
    assert chart["svgPoints"] == len(TEXTS), chart
    expected = sorted((len(text.split()), len(text)) for text in TEXTS)
    assert sorted(zip(chart["traces"][0]["x"], chart["traces"][0]["y"], strict=True)) == expected
    page.screenshot("results")

    rows[0].locator("a").click()
    view.wait_for_selector("#result-document")
    document = view.locator("#result-document").inner_text()
    assert '"characters"' in document and platform_data.flow_name in view.locator("#result-meta").inner_text()
    page.screenshot("result")


def test_models_page_shows_projects_models_and_the_live_deployment(
    page: Page, platform_data: PlatformData
) -> None:
    view = page.open("/models")
    assert platform_data.project in view.locator("#projects-table").inner_text()
    live = view.locator(".live")
    assert live.count() == 1
    live_row = view.locator("tr[data-deployment]", has=view.locator(".live"))
    assert platform_data.live_version in live_row.inner_text()
    page.screenshot("models")


@pytest.fixture
def own_ferretdb(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A FerretDB of this test alone (the shared one is never stopped)."""
    if not FERRETDB.exists():
        pytest.fail(f"{FERRETDB} is missing: `hack/services.sh up` builds it")
    port = free_port()
    data = tmp_path / "ferretdb"
    data.mkdir()
    process = subprocess.Popen(
        [str(FERRETDB), "--handler=sqlite", f"--sqlite-url=file:{data}/", f"--listen-addr=127.0.0.1:{port}",
         "--telemetry=disable", "--log-level=error", f"--state-dir={data}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )

    def answers() -> bool:
        with socket.socket() as probe:
            probe.settimeout(1)
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until("the test's own FerretDB", answers, timeout=30)
        yield process, f"mongodb://127.0.0.1:{port}/"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def test_a_stopped_results_store_turns_its_health_red_with_the_error(
    browser: Any, platform_data: PlatformData, own_ferretdb: tuple[subprocess.Popen[bytes], str],
    tmp_path: Path,
) -> None:
    ferretdb, url = own_ferretdb
    env = {**os.environ, **platform_data.lume_env, "LUME_RESULTS_DB__URL": url,
           "LUME_DASHBOARD_TIMEOUT_SECONDS": "3"}
    with Dashboard(tmp_path / "state", env, name="dashboard-red") as red:
        page = Page(browser, red.url)
        try:
            view = page.open("/")
            card = view.locator(".card[data-service='Results store']")
            assert card.get_attribute("data-state") == "up", card.inner_text()

            ferretdb.kill()
            ferretdb.wait(timeout=30)
            view = page.open("/")
            card = view.locator(".card[data-service='Results store']")
            assert card.get_attribute("data-state") == "down"
            error = card.locator(".error-text").inner_text()
            port = url.rsplit(":", 1)[1].strip("/")
            assert f"127.0.0.1:{port}" in error and "refused" in error.lower(), error
            # Red, visibly: the card's border is the "down" colour.
            colour = card.evaluate("element => getComputedStyle(element).borderLeftColor")
            assert colour == "rgb(207, 34, 46)", colour
            assert view.locator(".card[data-service='Model registry']").get_attribute("data-state") == "up"
            page.screenshot("results-store-down")
            assert page.errors == [], page.errors
        finally:
            page.close()


@pytest.fixture(scope="module")
def cluster_namespace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, Path]]:
    """A namespace of its own on the test cluster's API server, the CRDs, and an operator kubeconfig."""
    if not os.environ.get("KUBECONFIG"):
        pytest.fail("KUBECONFIG not set: run `hack/cluster.sh up` and source .state/cluster.env "
                    "(hack/test.sh does both)")
    from lume_operator.testing import (
        CRD_DIR,
        Kube,
        delete_service_account_rbac,
        kubectl,
        service_account_kubeconfig,
    )

    kube = Kube()
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    for crd in ("flows.lume.dev", "flowruns.lume.dev"):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    namespace = f"lume-dash-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", namespace)
    kubeconfig = service_account_kubeconfig(namespace, tmp_path_factory.mktemp("operator") / "kubeconfig")
    yield kube, namespace, kubeconfig
    for item in kube.list(namespace, "flows"):
        kube.patch(namespace, "flows", item["metadata"]["name"], {"metadata": {"finalizers": None}})
    delete_service_account_rbac(namespace)
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_a_flow_in_error_shows_its_message_and_the_operator_its_heartbeat(
    browser: Any, platform_data: PlatformData, cluster_namespace: tuple[Any, str, Path], tmp_path: Path
) -> None:
    from lume_operator.testing import OperatorProcess, flow_manifest

    kube, namespace, kubeconfig = cluster_namespace
    operator = OperatorProcess(kubeconfig, namespace)
    operator.start()
    try:
        wait_until("the operator's liveness endpoint", operator.healthy, timeout=90)
        good = f"text-model-{uuid.uuid4().hex[:6]}"
        kube.create(namespace, "flows", flow_manifest(good, {
            "entrypoint": "examples/flows/text_model.py:text_model",
            "workPool": os.environ["LUME_TEST_WORK_POOL"],
            "schedules": [{"slug": "nightly", "cron": "0 3 * * *", "active": False}],
        }))
        # The CRD's schema lets this through; FlowSpec refuses it, so the operator reports Error.
        kube.create(namespace, "flows", flow_manifest("broken", {
            "entrypoint": "examples/flows/text_model.py:text_model", "env": {"not a name": "x"},
        }))

        def phase(name: str) -> str | None:
            return ((kube.get(namespace, "flows", name) or {}).get("status") or {}).get("phase")

        wait_until(f"Flow {good} Ready", lambda: phase(good) == "Ready", timeout=120)
        wait_until("Flow broken in Error", lambda: phase("broken") == "Error", timeout=120)
        message = kube.get(namespace, "flows", "broken")["status"]["message"]

        env = {**os.environ, **platform_data.lume_env, "LUME_DASHBOARD_NAMESPACE": namespace,
               "LUME_DASHBOARD_OPERATOR_URL": f"http://127.0.0.1:{operator.liveness_port}/healthz",
               "LUME_DASHBOARD_TIMEOUT_SECONDS": "3"}
        with Dashboard(tmp_path / "state", env, name="dashboard-cluster") as cluster:
            page = Page(browser, cluster.url)
            try:
                view = page.open("/flows")
                broken = view.locator("article[data-flow='broken']")
                assert broken.get_attribute("data-phase") == "Error"
                shown = broken.locator(".flow-message").inner_text()
                assert shown == message and "not a name" in shown, (shown, message)
                assert "InvalidSpec" in broken.locator("table.conditions").inner_text()
                ready = view.locator(f"article[data-flow='{good}']")
                assert ready.get_attribute("data-phase") == "Ready"
                assert "nightly: cron 0 3 * * * (inactive)" in ready.inner_text()
                assert ready.locator("a", has_text="deployment in Prefect UI").count() == 1
                page.screenshot("flow-in-error")

                view = page.open("/")
                assert view.locator("td[data-phase='Error']").inner_text() == "1"
                assert view.locator("td[data-phase='Ready']").inner_text() == "1"
                assert view.locator(".card[data-service='Operator']").get_attribute("data-state") == "up"
                page.chart("#runs-per-hour-chart")

                # The operator removes the deployments from the shared Prefect before it goes.
                for name in (good, "broken"):
                    kube.delete(namespace, "flows", name)
                wait_until("both Flows deleted", lambda: not kube.list(namespace, "flows"), timeout=120)
                operator.stop()
                view = page.open("/")
                card = view.locator(".card[data-service='Operator']")
                assert card.get_attribute("data-state") == "down"
                assert str(operator.liveness_port) in card.locator(".error-text").inner_text()
                page.screenshot("operator-down")
                assert page.errors == [], page.errors
            finally:
                page.close()
    finally:
        operator.stop()
