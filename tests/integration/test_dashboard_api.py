"""The dashboard's JSON API on the real services: stored results read back, bad input refused, fuzzed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from lume_platform.dashboard.process import dashboard_process, dashboard_url
from lume_platform.local import ProcessSupervisor
from lume_platform.results import Result, open_results_store

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "dashboard"
SCAN_FLOW = "quadrupole-scan"
SCAN_POINTS = 6
FUZZ_TIMEOUT_SECONDS = 600


def services_env() -> dict[str, str]:
    """The test services' coordinates (hack/services.sh writes them); fail loudly when absent."""
    names = ("PREFECT_API_URL", "LUME_TEST_MONGODB_URL")
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not set: run `hack/services.sh up` and source .state/services.env "
                    "(hack/test.sh does both)")
    return {name: os.environ[name] for name in names}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Dashboard:
    """A dashboard process under lume_platform.local's supervisor, with an HTTP client."""

    def __init__(self, state_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = dashboard_url(self.port)
        self.supervisor = ProcessSupervisor(state_dir)
        self.process = dashboard_process(env=env, cwd=ROOT, port=self.port)
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def __enter__(self) -> Dashboard:
        self.supervisor.ensure(self.process)
        return self

    def __exit__(self, *_: object) -> None:
        self.client.close()
        self.supervisor.stop(self.process)


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A parameter scan stored in a results database of this module; the LUME environment reading it."""
    services = services_env()
    database = f"lume_dash_api_{uuid.uuid4().hex[:8]}"
    home = tmp_path_factory.mktemp("dashboard-api")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with open_results_store(services["LUME_TEST_MONGODB_URL"], database) as store:
        store.insert_many(
            Result(flow_name=SCAN_FLOW, inputs={"k1": k / 2, "label": f"point {k}"},
                   outputs={"beam_size": 1.0 + (k - 2) ** 2, "profile": [k, k + 1, k + 2]},
                   created=start + timedelta(minutes=k))
            for k in range(SCAN_POINTS)
        )
    yield {
        "LUME_HOME": str(home / "home"),
        "LUME_RESULTS_DB__URL": services["LUME_TEST_MONGODB_URL"],
        "LUME_RESULTS_DB__DATABASE": database,
        "PREFECT_API_URL": services["PREFECT_API_URL"],
    }
    from pymongo import MongoClient

    with MongoClient(services["LUME_TEST_MONGODB_URL"]) as mongo:
        mongo.drop_database(database)


@pytest.fixture(scope="module")
def dashboard(scan: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    # Generous: the shared test Prefect server is slow while other suites load it, and a 503 for an
    # upstream that did not answer in time is not what the fuzzing looks for.
    env = {**os.environ, **scan, "LUME_DASHBOARD_TIMEOUT_SECONDS": "30"}
    env.pop("LUME_DASHBOARD_NAMESPACE", None)
    with Dashboard(tmp_path_factory.mktemp("dashboard-api-state"), env) as running:
        yield running


def test_results_are_listed_filtered_and_plotted(dashboard: Dashboard) -> None:
    listed = dashboard.client.get("/api/results", params={"flow": SCAN_FLOW}).json()
    assert listed["total"] == SCAN_POINTS
    assert [r["inputs"]["k1"] for r in listed["results"]] == [k / 2 for k in reversed(range(SCAN_POINTS))]
    # Arrays are summarised in listings and given in full by id.
    assert listed["results"][0]["outputs"]["profile"] == "<list 3 items>"
    one = dashboard.client.get(f"/api/results/{listed['results'][0]['unique_hash']}").json()
    assert one["outputs"]["profile"] == [5, 6, 7]

    narrowed = dashboard.client.get("/api/results", params={
        "flow": SCAN_FLOW, "filter": '{"inputs.k1": {"$gte": 1.5}}', "since": "2026-01-01T00:04:00Z"})
    assert narrowed.status_code == 200, narrowed.text
    assert [r["inputs"]["k1"] for r in narrowed.json()["results"]] == [2.5, 2.0]

    fields = dashboard.client.get("/api/results/fields", params={"flow": SCAN_FLOW}).json()
    assert fields["numeric_fields"] == ["inputs.k1", "outputs.beam_size"]
    series = dashboard.client.get("/api/results/series", params={
        "flow": SCAN_FLOW, "x": "inputs.k1", "y": "outputs.beam_size"}).json()
    assert [(p["x"], p["y"]) for p in series["points"]] == [
        (k / 2, 1.0 + (k - 2) ** 2) for k in range(SCAN_POINTS)]
    over_time = dashboard.client.get("/api/results/series", params={
        "flow": SCAN_FLOW, "y": "outputs.beam_size"}).json()
    assert len(over_time["points"]) == SCAN_POINTS and over_time["skipped"] == 0
    assert dashboard.client.get("/api/results/flows").json() == [SCAN_FLOW]


BAD_REQUESTS = [
    ("/api/results?filter=" + quote('{"$where": "sleep(1000)"}'), 400, "forbidden query operator '$where'"),
    ("/api/results?filter=" + quote('{"outputs.x": {"$regex": "^a"}}'), 400, "'$regex'"),
    ("/api/results?filter=" + quote('{"secret": 1}'), 400, "unknown field 'secret'"),
    ("/api/results?filter=" + quote('{"inputs.k1": {"$in": 3}}'), 400, "expects a list"),
    ("/api/results?filter=not-json", 400, "filter is not valid JSON"),
    ("/api/results?filter=" + quote("[1, 2]"), 400, "filter must be a JSON object"),
    ("/api/results?since=yesterday", 422, "query parameter 'since'"),
    ("/api/results?limit=0", 422, "query parameter 'limit'"),
    ("/api/results/series?flow=scan&y=created", 400, "cannot plot 'created'"),
    ("/api/results/series?flow=scan&y=outputs.%24where", 400, "forbidden query operator '$where'"),
    ("/api/results/series?flow=scan", 422, "query parameter 'y'"),
    ("/api/results/fields?flow=%00", 422, "query parameter 'flow'"),
    ("/api/results/" + "0" * 64, 404, "no stored result has unique_hash"),
    ("/api/results/not-a-hash", 422, "path parameter 'unique_hash'"),
    ("/api/runs?state=DONE", 422, "query parameter 'state'"),
    ("/api/runs?limit=100000", 422, "query parameter 'limit'"),
    (f"/api/runs/{uuid.uuid4()}", 404, "no flow run"),
    ("/api/runs/12345", 422, "path parameter 'run_id'"),
    ("/api/flows/no-such-flow-anywhere", 404, "no flow named 'no-such-flow-anywhere'"),
]


@pytest.mark.parametrize(("path", "status", "message"), BAD_REQUESTS, ids=[p for p, _, _ in BAD_REQUESTS])
def test_bad_input_gets_a_4xx_that_says_what_is_wrong(
    dashboard: Dashboard, path: str, status: int, message: str
) -> None:
    answer = dashboard.client.get(path)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert message in answer.json()["detail"], answer.json()


def test_bad_input_on_a_page_is_explained_in_the_page(dashboard: Dashboard) -> None:
    answer = dashboard.client.get("/results", params={"filter": '{"$where": "1"}'})
    assert answer.status_code == 400
    assert "text/html" in answer.headers["content-type"]
    assert "forbidden query operator &#39;$where&#39;" in answer.text


def test_filters_are_refused_before_the_store_is_touched(
    scan: dict[str, str], tmp_path: Path
) -> None:
    """With nothing listening where the results store should be, a bad filter still gets its 400."""
    env = {**os.environ, **scan, "LUME_RESULTS_DB__URL": f"mongodb://127.0.0.1:{free_port()}/",
           "LUME_DASHBOARD_TIMEOUT_SECONDS": "2"}
    env.pop("LUME_DASHBOARD_NAMESPACE", None)
    with Dashboard(tmp_path / "state", env) as unreachable:
        bad = unreachable.client.get("/api/results", params={"filter": '{"$where": "1"}'})
        assert bad.status_code == 400 and "'$where'" in bad.json()["detail"]
        good = unreachable.client.get("/api/results", params={"filter": '{"inputs.k1": 1}'})
        assert good.status_code == 503
        assert "Connection refused" in good.json()["detail"], good.json()


def test_the_openapi_document_fuzzed_finds_no_server_error(dashboard: Dashboard) -> None:
    schema = dashboard.client.get("/openapi.json").json()
    assert {"/api/health", "/api/overview", "/api/flows", "/api/runs", "/api/results",
            "/api/results/series", "/api/models"} <= set(schema["paths"])
    OUTPUT.mkdir(parents=True, exist_ok=True)
    report = OUTPUT / "schemathesis.txt"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{dashboard.url}/openapi.json",
        "--checks", "not_a_server_error,status_code_conformance,response_schema_conformance",
        "--max-examples", "20", "--seed", "20261126", "--workers", "1", "--request-timeout", "60",
        "--phases", "examples,coverage,fuzzing", "--max-time", "150", "--no-color",
    ]
    # Run in the output folder: schemathesis keeps its example database in the working directory.
    done = subprocess.run(command, capture_output=True, text=True, timeout=FUZZ_TIMEOUT_SECONDS, check=False,
                          cwd=OUTPUT)
    report.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"schemathesis found problems (report {report}):\n{done.stdout[-6000:]}"
    assert "passed" in done.stdout.lower(), done.stdout[-2000:]


def test_an_access_token_guards_everything_but_the_probe(scan: dict[str, str], tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    env = {**os.environ, **scan, "LUME_DASHBOARD_TOKEN": token}
    env.pop("LUME_DASHBOARD_NAMESPACE", None)
    with Dashboard(tmp_path / "state", env) as guarded:
        client = guarded.client
        assert client.get("/healthz").status_code == 200
        for path in ("/api/health", "/openapi.json"):
            refused = client.get(path)
            assert refused.status_code == 401 and "access token" in refused.json()["detail"], path
        for path in ("/", "/static/plotly.min.js"):
            refused = client.get(path)
            assert refused.status_code == 401 and "access token" in refused.text, path
        wrong = client.get("/api/results", headers={"Authorization": "Bearer not-it"})
        assert wrong.status_code == 401
        allowed = client.get("/api/results", params={"flow": SCAN_FLOW},
                             headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200 and allowed.json()["total"] == SCAN_POINTS
        assert client.get("/login", params={"token": "not-it"}).status_code == 401
        login = client.get("/login", params={"token": token})
        assert login.status_code == 303 and "httponly" in login.headers["set-cookie"].lower()
        # The cookie set by /login now opens the pages (httpx keeps it, as a browser would).
        assert client.get("/").status_code == 200
