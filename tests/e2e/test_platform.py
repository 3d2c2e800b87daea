"""The whole platform on a real cluster: helm install into a restricted namespace, helm test, Flow → Ready,
FlowRun → Completed, a cached workflow graph, the dashboard and the operator's metrics, data that survives
pods and upgrades, and an uninstall that leaves nothing running."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "lume-platform"
E2E_VALUES = CHART / "ci" / "e2e-values.yaml"
RIG_KUBECONFIG = ROOT / ".state" / "cluster" / "kubeconfig"
RELEASE = "lume"
# What the restricted Pod Security level demands of a container, as in the chart.
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def image_ref(name: str) -> str:
    """The reference hack/images.sh gives an image (and ci/e2e-values.yaml installs)."""
    result = subprocess.run(
        [str(ROOT / "hack" / "images.sh"), "refs", name],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


def run(command: list[str], timeout: float, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command with a bound on its time; a failure names the command and its output."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


@dataclass
class Release:
    """One installed release of the chart, in a namespace that enforces Pod Security "restricted"."""

    kubeconfig: str
    namespace: str
    name: str = RELEASE
    install_output: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def helm(self, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
        helm = shutil.which("helm")
        if helm is None:
            pytest.fail(
                "helm is not on PATH (hack/cluster.sh up writes a PATH with it to .state/cluster.env)"
            )
        return run(
            [helm, f"--kubeconfig={self.kubeconfig}", "--namespace", self.namespace, *args], timeout, check
        )

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120, check: bool = True) -> str:
        command = ["kubectl", f"--kubeconfig={self.kubeconfig}", f"--namespace={self.namespace}", *args]
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def apply(self, manifest: dict[str, Any] | str) -> None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        self.kubectl("apply", "-f", "-", stdin=text)

    def wait_for(self, target: str, jsonpath: str, value: str, timeout: int) -> None:
        """Wait until ``{jsonpath}`` of ``target`` is ``value``; on timeout show the object."""
        result = subprocess.run(
            [
                "kubectl",
                f"--kubeconfig={self.kubeconfig}",
                f"--namespace={self.namespace}",
                "wait",
                f"--for=jsonpath={{{jsonpath}}}={value}",
                target,
                f"--timeout={timeout}s",
            ],
            capture_output=True,
            text=True,
            timeout=timeout + 30,
            check=False,
        )
        if result.returncode != 0:
            shown = self.kubectl("get", target, "-o", "yaml", check=False)
            raise AssertionError(f"{target}: {jsonpath} did not become {value} in {timeout}s\n{shown}")

    def fullname(self, component: str) -> str:
        return f"{self.name}-lume-platform-{component}"

    def run_check(self, script: str, shared_volume: bool = False, timeout: int = 240) -> str:
        """Run Python in a pod of the platform image with the service environment; return its output.

        The pod is restricted like every platform pod; a non-zero exit fails with the pod's log.
        """
        name = f"e2e-check-{uuid.uuid4().hex[:8]}"
        container: dict[str, Any] = {
            "name": "check",
            "image": image_ref("platform"),
            "imagePullPolicy": "IfNotPresent",
            "command": ["python", "-c", script],
            "envFrom": [
                {"configMapRef": {"name": self.fullname("service-env")}},
                {"secretRef": {"name": self.fullname("service-env")}},
            ],
            "securityContext": RESTRICTED_CONTAINER,
        }
        spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": RESTRICTED_POD,
            "containers": [container],
        }
        if shared_volume:
            alias = self.get("configmap", self.fullname("service-env"))["data"][
                "LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS"
            ]
            container["volumeMounts"] = [{"name": "shared", "mountPath": alias}]
            spec["volumes"] = [
                {"name": "shared", "persistentVolumeClaim": {"claimName": self.fullname("shared-data")}}
            ]
        self.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
        try:
            deadline = time.monotonic() + timeout
            phase = ""
            while time.monotonic() < deadline:
                phase = self.get("pod", name)["status"].get("phase", "")
                if phase in ("Succeeded", "Failed"):
                    break
                time.sleep(2)
            log = self.kubectl("logs", name, check=False)
            assert phase == "Succeeded", (
                f"check pod {name} ended {phase or 'nowhere'} after {timeout}s:\n{log}"
            )
            return log
        finally:
            self.kubectl("delete", "pod", name, "--wait=false", check=False)

    def http_get(
        self, urls: list[str], headers: dict[str, str] | None = None, connect_wait: int = 120
    ) -> dict[str, tuple[int, str]]:
        """GET each URL from inside the cluster (a check pod); return (status, body) by URL.

        A connection that fails is retried for ``connect_wait`` seconds, then reported as status 0; any
        HTTP answer, errors included, is returned as it came.
        """
        script = f"""
import json, time, urllib.error, urllib.request
deadline = time.monotonic() + {connect_wait}
answers = {{}}
for url in {urls!r}:
    while True:
        try:
            request = urllib.request.Request(url, headers={headers or {}!r})
            with urllib.request.urlopen(request, timeout=30) as response:
                answers[url] = [response.status, response.read().decode()]
        except urllib.error.HTTPError as error:
            answers[url] = [error.code, error.read().decode()]
        except OSError as error:
            answers[url] = [0, repr(error)]
        if answers[url][0] or time.monotonic() > deadline:
            break
        time.sleep(2)
print(json.dumps(answers))
"""
        answers = json.loads(self.run_check(script).strip().splitlines()[-1])
        return {url: (status, body) for url, (status, body) in answers.items()}

    def service_url(self, component: str, port: int, path: str) -> str:
        """The in-cluster URL of a Service of the release."""
        return f"http://{self.fullname(component)}.{self.namespace}.svc:{port}{path}"


@pytest.fixture(scope="session")
def platform_images(kubeconfig: str) -> list[str]:
    """The platform image and the stand-ins, built (cached) and loaded into the rig's node."""
    names = ["platform", "mariadb", "ferretdb"]
    if Path(kubeconfig).resolve() == RIG_KUBECONFIG.resolve():
        started = time.monotonic()
        run([str(ROOT / "hack" / "images.sh"), "load", *names], timeout=3000)
        print(f"images built and loaded in {time.monotonic() - started:.0f} s")
    elif os.environ.get("LUME_E2E_IMAGES_LOADED") != "1":
        pytest.fail(
            "KUBECONFIG is not the rig's: build the images with `hack/images.sh build`, load them into the "
            "cluster (e.g. `kind load docker-image $(hack/images.sh refs)`) and set LUME_E2E_IMAGES_LOADED=1"
        )
    return [image_ref(name) for name in names]


@pytest.fixture(scope="module")
def release(kubeconfig: str, platform_images: list[str]) -> Iterator[Release]:
    """The chart installed with ci/e2e-values.yaml (image overrides only) into a restricted namespace."""
    namespace = f"lume-e2e-{uuid.uuid4().hex[:6]}"
    installed = Release(kubeconfig=kubeconfig, namespace=namespace)
    run(["kubectl", f"--kubeconfig={kubeconfig}", "create", "namespace", namespace], timeout=60)
    run(
        [
            "kubectl",
            f"--kubeconfig={kubeconfig}",
            "label",
            "namespace",
            namespace,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted",
        ],
        timeout=60,
    )
    started = time.monotonic()
    result = installed.helm(
        "install",
        RELEASE,
        str(CHART),
        "-f",
        str(E2E_VALUES),
        "--wait",
        "--timeout",
        "20m",
        timeout=1500,
        check=False,
    )
    installed.timings["install"] = time.monotonic() - started
    if result.returncode != 0:
        pods = installed.kubectl("get", "pods", "-o", "wide", check=False)
        events = installed.kubectl("get", "events", "--sort-by=.lastTimestamp", check=False)[-6000:]
        pytest.fail(f"helm install failed:\n{result.stderr}\n{pods}\n{events}")
    installed.install_output = result.stdout
    yield installed
    # Whatever the tests left: uninstall (its hook finalizes Flows), then the namespace.
    installed.helm("uninstall", RELEASE, "--wait", "--timeout", "5m", timeout=400, check=False)
    # Objects still held by finalizers of an operator that is gone would block the namespace's deletion.
    for plural in ("flowruns.lume.dev", "flows.lume.dev"):
        for name in installed.kubectl("get", plural, "-o", "name", check=False).split():
            patch = '{"metadata":{"finalizers":[]}}'
            installed.kubectl("patch", name, "--type=merge", "-p", patch, check=False)
    run(
        ["kubectl", f"--kubeconfig={kubeconfig}", "delete", "namespace", namespace, "--wait=false"],
        timeout=60,
        check=False,
    )


pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3000)]

APPEND_TEXT_FLOW = ROOT / "examples" / "flows" / "append-text.yaml"
TEXT_MODEL_FLOW = ROOT / "examples" / "flows" / "text-model.yaml"
GRAPH_FLOW = ROOT / "examples" / "graph" / "graph-flow.yaml"
COMPONENTS = ("prefect-server", "prefect-worker", "mysql", "mongodb", "operator", "dashboard")
DASHBOARD_PORT, OPERATOR_HEALTH_PORT, OPERATOR_METRICS_PORT = 8080, 8080, 9090
HEALTHY_SERVICES = {"Prefect API", "Model registry", "Results store", "Shared volume", "Operator"}
MARKER = "e2e-marker-" + uuid.uuid4().hex[:8]


# Run in a check pod: connect to both databases with nothing but the service environment.
CONNECT = """
import os, pymongo, pymysql
env = os.environ
def mysql(**options):
    return pymysql.connect(
        host=env["LUME_MODEL_DB__HOST"], port=int(env["LUME_MODEL_DB__PORT"]),
        user=env["LUME_MODEL_DB__USER"], password=env["LUME_MODEL_DB__PASSWORD"],
        database=env["LUME_MODEL_DB__DATABASE"], **options)
def mongodb():
    client = pymongo.MongoClient(
        env["LUME_RESULTS_DB__HOST"], int(env["LUME_RESULTS_DB__PORT"]),
        username=env["LUME_RESULTS_DB__USERNAME"], password=env["LUME_RESULTS_DB__PASSWORD"])
    return client[env["LUME_RESULTS_DB__DATABASE"]]
"""


def flow_run(release: Release, name: str, flow: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Apply a FlowRun and wait until it is Completed; return it."""
    release.apply(
        {
            "apiVersion": "lume.dev/v1alpha1",
            "kind": "FlowRun",
            "metadata": {"name": name},
            "spec": {"flowRef": flow, "parameters": parameters},
        }
    )
    release.wait_for(f"flowrun/{name}", ".status.phase", "Completed", timeout=900)
    return release.get("flowrun", name)


def test_the_chart_passes_a_server_side_dry_run(kubeconfig: str, platform_images: list[str]) -> None:
    """Every manifest (hooks and tests too) is accepted by the API server, Pod Security included."""
    namespace = f"lume-dry-{uuid.uuid4().hex[:6]}"
    kubectl = ["kubectl", f"--kubeconfig={kubeconfig}"]
    run([*kubectl, "create", "namespace", namespace], timeout=60)
    try:
        run(
            [*kubectl, "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"],
            timeout=60,
        )
        helm = shutil.which("helm") or pytest.fail("helm is not on PATH")
        rendered = run(
            [helm, "template", RELEASE, str(CHART), "--namespace", namespace, "-f", str(E2E_VALUES)],
            timeout=120,
        ).stdout
        result = subprocess.run(
            [*kubectl, "apply", "--dry-run=server", f"--namespace={namespace}", "-f", "-"],
            input=rendered,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "Warning" not in result.stderr, result.stderr
        assert result.stdout.count("(server dry run)") >= 25, result.stdout
    finally:
        run([*kubectl, "delete", "namespace", namespace, "--wait=false"], timeout=60, check=False)


def test_install_brings_every_component_up_in_a_restricted_namespace(release: Release) -> None:
    namespace = release.get("namespace", release.namespace)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = release.get("pods", "-l", f"app.kubernetes.io/instance={release.name}")["items"]
    ready = {
        pod["metadata"]["labels"]["app.kubernetes.io/component"]
        for pod in pods
        if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
    }
    assert set(COMPONENTS) <= ready, f"not Ready: {set(COMPONENTS) - ready}"
    images = {c["image"] for pod in pods for c in pod["spec"]["containers"]}
    assert images <= set(platform_images_of(release)), f"unexpected images {images}"
    print(f"helm install --wait took {release.timings['install']:.0f} s")


def platform_images_of(release: Release) -> list[str]:
    return [image_ref(name) for name in ("platform", "mariadb", "ferretdb")]


def test_notes_tell_how_to_reach_the_ui_and_check_status(release: Release) -> None:
    notes = release.install_output.split("NOTES:", 1)[1]
    assert f"port-forward svc/{release.fullname('prefect-server')} 4200:4200" in notes
    assert f"helm test {release.name} -n {release.namespace}" in notes
    assert f"port-forward svc/{release.fullname('dashboard')} 8080:8080" in notes


def test_helm_test_checks_every_service(release: Release) -> None:
    result = release.helm("test", release.name, "--timeout", "10m", timeout=700)
    for check in ("prefect", "mysql", "mongodb", "shared-volume", "dashboard"):
        assert f"{release.fullname('test-' + check)}" in result.stdout, result.stdout
    assert "Phase:          Failed" not in result.stdout


def test_a_flow_becomes_ready_and_its_run_writes_the_shared_volume(release: Release) -> None:
    release.apply(APPEND_TEXT_FLOW.read_text())
    release.wait_for("flow/append-text", ".status.phase", "Ready", timeout=300)
    started = time.monotonic()
    run_object = flow_run(
        release,
        "append-text-e2e",
        "append-text",
        {
            "text1": "Hello ",
            "text2": MARKER,
            "filename": "e2e/append-text.txt",
            "filesystem_identifier": "mounted",
        },
    )
    print(f"FlowRun Completed {time.monotonic() - started:.0f} s after it was applied")
    assert run_object["status"].get("flowRunId")
    # Read back by another pod that mounts the same claim.
    output = release.run_check(
        "import os, pathlib\n"
        "root = pathlib.Path(os.environ['LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS'])\n"
        "print(repr((root / 'e2e' / 'append-text.txt').read_text()))\n",
        shared_volume=True,
    )
    assert output.strip() == repr("Hello " + MARKER)


def test_the_model_flow_stores_its_result_in_mongodb_and_the_registry_lives_in_mysql(
    release: Release,
) -> None:
    release.apply(TEXT_MODEL_FLOW.read_text())
    release.wait_for("flow/text-model", ".status.phase", "Ready", timeout=300)
    flow_run(release, "text-model-e2e", "text-model", {"text": MARKER})
    script = (
        CONNECT
        + f"""
import json
from bson import json_util
database = mongodb()
found = [name for name in database.list_collection_names()
         for document in database[name].find() if {MARKER!r} in json_util.dumps(document)]
print("mongodb", json.dumps(sorted(set(found))))
with mysql().cursor() as cursor:
    cursor.execute("SHOW TABLES")
    print("registry-tables", json.dumps(sorted(row[0] for row in cursor.fetchall())))
"""
    )
    output = release.run_check(script)
    lines = dict(line.split(" ", 1) for line in output.strip().splitlines())
    assert json.loads(lines["mongodb"]), f"no document in MongoDB holds the run's text {MARKER}"
    # The registry migration Job (a post-install hook) created the registry's tables in MySQL.
    tables = set(json.loads(lines["registry-tables"]))
    assert {"project", "model", "deployment", "flow"} <= tables, f"registry tables in MySQL: {sorted(tables)}"


# Run in a check pod: the graph cache's index entries of one flow run, each verified against its file on
# the shared volume (GraphStorage.load checks the sha256), and how many entry files the volume holds.
GRAPH_ENTRIES = """
import json, os, pathlib, sys
from lume_platform.graph import GraphStorage
storage = GraphStorage.from_services()
root = pathlib.Path(os.environ["LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS"])
entries = [e for e in storage.entries(workflow="beam-emittance") if e.flow_run_id == sys.argv[1]]
for entry in entries:
    storage.load(entry.key)
    assert pathlib.Path(entry.path).is_relative_to(root), entry.path
print(json.dumps({"nodes": sorted(e.node for e in entries),
                  "files": len(list(root.glob("graph-cache/*/*.entry")))}))
"""


def task_run_states(release: Release, flow_run_id: str) -> dict[str, str]:
    """Task-run name → state name of one flow run, as Prefect recorded them."""
    api = release.get("configmap", release.fullname("service-env"))["data"]["PREFECT_API_URL"]
    script = f"""
import json, urllib.request
body = json.dumps({{"task_runs": {{"flow_run_id": {{"any_": [{flow_run_id!r}]}}}}}}).encode()
request = urllib.request.Request({api!r} + "/task_runs/filter", data=body,
                                 headers={{"Content-Type": "application/json"}}, method="POST")
with urllib.request.urlopen(request, timeout=30) as response:
    print(json.dumps({{run["name"]: run["state"]["name"] for run in json.load(response)}}))
"""
    return json.loads(release.run_check(script).strip().splitlines()[-1])


def graph_entries(release: Release, flow_run_id: str) -> dict[str, Any]:
    script = GRAPH_ENTRIES.replace("sys.argv[1]", repr(flow_run_id))
    return json.loads(release.run_check(script, shared_volume=True).strip().splitlines()[-1])


def test_the_graph_example_runs_on_the_cluster_and_a_second_run_reads_everything_from_storage(
    release: Release,
) -> None:
    """Issue 7: the cached workflow graph published by its Flow manifest, run twice with the same inputs."""
    release.apply(GRAPH_FLOW.read_text())
    release.wait_for("flow/beam-emittance", ".status.phase", "Ready", timeout=300)
    # A seed no earlier run used: the first run must compute every node.
    inputs = {"seed": int(MARKER[-6:], 16)}
    started = time.monotonic()
    first = flow_run(release, "beam-emittance-e2e-1", "beam-emittance", inputs)["status"]["flowRunId"]
    print(f"graph run 1 (computes) Completed {time.monotonic() - started:.0f} s after it was applied")
    nodes = ["beam", "drifted", "emittance_x", "emittance_y", "sizes", "summary"]
    states = task_run_states(release, first)
    assert sorted(states) == nodes, states
    assert "Cached" not in states.values(), f"the first run read a result it never stored: {states}"
    written = graph_entries(release, first)
    assert written["nodes"] == nodes, f"cache entries of the first run: {written}"

    started = time.monotonic()
    second = flow_run(release, "beam-emittance-e2e-2", "beam-emittance", inputs)["status"]["flowRunId"]
    print(f"graph run 2 (from storage) Completed {time.monotonic() - started:.0f} s after it was applied")
    states = task_run_states(release, second)
    print(f"graph run 2 task runs: {states}")
    assert states and set(states.values()) == {"Cached"}, f"the second run computed something: {states}"
    again = graph_entries(release, second)
    assert again == {"nodes": [], "files": written["files"]}, f"the second run stored something: {again}"


def test_the_dashboard_shows_every_service_healthy_and_the_flows_with_their_phase(release: Release) -> None:
    base = release.service_url("dashboard", DASHBOARD_PORT, "")
    answers = release.http_get([f"{base}/healthz", f"{base}/api/overview", f"{base}/api/flows", f"{base}/"])
    for url, (status, body) in answers.items():
        assert status == 200, f"GET {url} answered {status}: {body[:2000]}"
    overview = json.loads(answers[f"{base}/api/overview"][1])
    assert overview["mode"] == "cluster"
    health = {service["name"]: service for service in overview["health"]}
    down = {name: h for name, h in health.items() if h["state"] != "up"}
    assert set(health) == HEALTHY_SERVICES and not down, f"not healthy: {down}"
    volume = health["Shared volume"]
    assert volume["total_bytes"] > 0 and 0 <= volume["used_bytes"] <= volume["total_bytes"], volume
    flows = {flow["name"]: flow for flow in json.loads(answers[f"{base}/api/flows"][1])}
    applied = {item["metadata"]["name"]: item for item in release.get("flows")["items"]}
    assert {"append-text", "text-model", "beam-emittance"} <= set(applied)
    assert set(flows) == set(applied)
    for name, resource in applied.items():
        assert flows[name]["phase"] == resource["status"]["phase"] == "Ready", flows[name]
        assert flows[name]["deployment_id"] == resource["status"]["deploymentId"]
    assert [run["state_type"] for run in flows["append-text"]["last_runs"]] == ["COMPLETED"]
    assert overview["flows_by_phase"]["Ready"] == len(applied)
    assert overview["runs_by_state"].get("COMPLETED", 0) >= 4, overview["runs_by_state"]


def test_the_operator_serves_metrics_on_its_service(release: Release) -> None:
    url = release.service_url("operator", OPERATOR_METRICS_PORT, "/metrics")
    status, body = release.http_get([url])[url]
    assert status == 200, f"GET {url} answered {status}: {body[:2000]}"
    synced = [
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("lume_operator_reconciles_total{") and 'outcome="synced"' in line
    ]
    assert synced and sum(synced) >= 3, f"no synced reconciles counted:\n{body[:3000]}"
    assert "lume_operator_reconcile_duration_seconds_bucket" in body
    service = release.get("service", release.fullname("operator"))
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(OPERATOR_METRICS_PORT)


WRITE_MARKERS = (
    CONNECT
    + f"""
with mysql(autocommit=True).cursor() as cursor:
    cursor.execute("CREATE TABLE IF NOT EXISTS e2e_marker (marker VARCHAR(64) PRIMARY KEY)")
    cursor.execute("INSERT IGNORE INTO e2e_marker VALUES (%s)", ({MARKER!r},))
mongodb().e2e_marker.replace_one({{"_id": {MARKER!r}}}, {{"_id": {MARKER!r}}}, upsert=True)
print("written")
"""
)

READ_MARKERS = (
    CONNECT
    + f"""
with mysql().cursor() as cursor:
    cursor.execute("SELECT count(*) FROM e2e_marker WHERE marker = %s", ({MARKER!r},))
    print("mysql", cursor.fetchone()[0])
print("mongodb", mongodb().e2e_marker.count_documents({{"_id": {MARKER!r}}}))
"""
)


def test_databases_keep_their_data_when_their_pods_are_deleted(release: Release) -> None:
    release.run_check(WRITE_MARKERS)
    for component in ("mysql", "mongodb"):
        pod = f"{release.fullname(component)}-0"
        uid = release.get("pod", pod)["metadata"]["uid"]
        release.kubectl("delete", "pod", pod, "--wait=true", timeout=180)
        release.wait_for(f"pod/{pod}", ".status.containerStatuses[0].ready", "true", timeout=300)
        assert release.get("pod", pod)["metadata"]["uid"] != uid, f"{pod} was not replaced"
    assert release.run_check(READ_MARKERS).split() == ["mysql", "1", "mongodb", "1"]


def test_helm_upgrade_keeps_passwords_and_data(release: Release) -> None:
    secrets = ("service-env", "mysql")
    before = {name: release.get("secret", release.fullname(name))["data"] for name in secrets}
    started = time.monotonic()
    # The upgrade also turns the dashboard's access token on (a generated Secret), checked below.
    release.helm(
        "upgrade",
        release.name,
        str(CHART),
        "-f",
        str(E2E_VALUES),
        "--set",
        "dashboard.auth.enabled=true",
        "--wait",
        "--timeout",
        "10m",
        timeout=700,
    )
    print(f"helm upgrade --wait took {time.monotonic() - started:.0f} s")
    after = {name: release.get("secret", release.fullname(name))["data"] for name in secrets}
    assert after == before, "helm upgrade changed a generated password"
    assert release.run_check(READ_MARKERS).split() == ["mysql", "1", "mongodb", "1"]
    release.helm("test", release.name, "--timeout", "10m", timeout=700)


def test_the_dashboard_with_a_token_refuses_requests_without_it(release: Release) -> None:
    secret = release.get("secret", release.fullname("dashboard-token"))["data"]
    token = base64.b64decode(secret["token"]).decode()
    base = release.service_url("dashboard", DASHBOARD_PORT, "")
    anonymous = release.http_get([f"{base}/api/overview", f"{base}/healthz"])
    assert anonymous[f"{base}/api/overview"][0] in (401, 403), anonymous
    assert anonymous[f"{base}/healthz"][0] == 200, "the probes' endpoint must stay open"
    wrong = release.http_get([f"{base}/api/flows"], headers={"Authorization": "Bearer not-the-token"})
    assert wrong[f"{base}/api/flows"][0] in (401, 403), wrong
    allowed = release.http_get([f"{base}/api/flows"], headers={"Authorization": f"Bearer {token}"})
    status, body = allowed[f"{base}/api/flows"]
    assert status == 200, body[:2000]
    assert "beam-emittance" in {flow["name"] for flow in json.loads(body)}


def test_uninstall_leaves_no_deployment_behind(release: Release) -> None:
    assert release.get("flows")["items"], "the earlier tests should have left Flows to clean up"
    started = time.monotonic()
    release.helm("uninstall", release.name, "--wait", "--timeout", "10m", timeout=700)
    print(f"helm uninstall --wait took {time.monotonic() - started:.0f} s")
    # The pre-delete hook deleted the Flows; the operator removed its finalizers only after deleting their
    # Prefect deployments, so no Flow left means no deployment left.
    assert release.get("flows")["items"] == []
    assert release.get("flowruns")["items"] == []
    for kind in ("deployments", "statefulsets", "jobs", "services", "configmaps", "roles", "rolebindings"):
        left = [
            item["metadata"]["name"]
            for item in release.get(kind, "-l", f"app.kubernetes.io/instance={release.name}")["items"]
        ]
        assert left == [], f"{kind} left behind: {left}"
    deadline = time.monotonic() + 180
    while (
        pods := [p["metadata"]["name"] for p in release.get("pods")["items"]]
    ) and time.monotonic() < deadline:
        time.sleep(3)
    assert pods == [], f"pods left behind: {pods}"
    cluster_roles = [
        item["metadata"]["name"]
        for item in release.get("clusterroles", "-l", f"app.kubernetes.io/instance={release.name}")["items"]
        if release.namespace in item["metadata"]["name"]
    ]
    assert cluster_roles == []
    # The users' files stay: the shared volume's claim is kept on purpose.
    assert release.get("pvc", release.fullname("shared-data"))["metadata"]["name"]
