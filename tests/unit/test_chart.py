"""Checks of charts/lume-platform without a cluster: helm lint, helm template and the rendered manifests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "lume-platform"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE, NAMESPACE = "lume", "lume-system"
# The rig's Kubernetes version, for .Capabilities in helm template and lint.
KUBE_VERSION = "1.34.0"
SERVICE_ENV = f"{RELEASE}-lume-platform-service-env"
# Pod Security "restricted" allows only these volume types.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
STANDARD_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/component",
    "helm.sh/chart",
}


def helm_binary() -> str:
    """helm from PATH, else the one hack/helm.sh builds; the chart checks fail loudly without it."""
    found = shutil.which("helm")
    if found:
        return found
    cached = Path(os.environ.get("LUME_CACHE", Path.home() / ".cache" / "lume")) / "bin" / "helm"
    if cached.is_file():
        return str(cached)
    pytest.fail("helm is not on PATH and not in $LUME_CACHE/bin: run hack/helm.sh")


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one helm command on the chart, bounded in time."""
    result = subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def template_args(*values_files: Path, sets: tuple[str, ...] = ()) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    for path in values_files:
        args += ["-f", str(path)]
    for assignment in sets:
        args += ["--set", assignment]
    return args


@cache
def render(*values_files: Path, sets: tuple[str, ...] = ()) -> tuple[dict[str, Any], ...]:
    """The manifests of `helm template` (tests included), as parsed documents."""
    output = helm(*template_args(*values_files, sets=sets)).stdout
    return tuple(doc for doc in yaml.safe_load_all(output) if doc)


def find(docs: tuple[dict[str, Any], ...], kind: str, name_suffix: str = "") -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]


def one(docs: tuple[dict[str, Any], ...], kind: str, name_suffix: str) -> dict[str, Any]:
    found = find(docs, kind, name_suffix)
    assert len(found) == 1, (
        f"expected one {kind} named *{name_suffix}, found {[d['metadata']['name'] for d in found]}"
    )
    return found[0]


def pod_specs(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod spec the chart makes: workloads, helm test pods, and the flow-run Job of the work pool."""
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield name, doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield name, doc["spec"]
    yield (
        "flow-run Job",
        base_job_template(docs)["job_configuration"]["job_manifest"]["spec"]["template"]["spec"],
    )


def base_job_template(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    config_map = one(docs, "ConfigMap", "-prefect-worker")
    return json.loads(config_map["data"]["base-job-template.json"])


def service_env(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    return one(docs, "ConfigMap", "-service-env")["data"]


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda p: p.name if p else "defaults")
def test_helm_lint_is_clean(values: Path | None) -> None:
    args = ["lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION]
    if values:
        args += ["-f", str(values)]
    result = helm(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda p: p.name if p else "defaults")
def test_every_pod_passes_pod_security_restricted(values: Path | None) -> None:
    docs = render(values) if values else render()
    checked = 0
    for name, spec in pod_specs(docs):
        checked += 1
        security = spec.get("securityContext", {})
        assert security.get("runAsNonRoot") is True, f"{name}: runAsNonRoot"
        assert security.get("runAsUser", 1) != 0, f"{name}: runs as root"
        assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: seccomp"
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(field), f"{name}: {field}"
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            assert kinds <= RESTRICTED_VOLUME_TYPES, f"{name}: volume {volume['name']} is {kinds}"
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name} container {container['name']}"
            context = container.get("securityContext", {})
            assert context.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
            assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities"
            assert not context.get("privileged"), f"{where}: privileged"
            assert context.get("runAsUser", 1) != 0, f"{where}: runs as root"
            assert "hostPort" not in str(container.get("ports", [])), f"{where}: hostPort"
    assert checked >= 9


def test_every_resource_has_the_standard_labels_and_selectors_use_only_stable_ones() -> None:
    docs = render()
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        missing = STANDARD_LABELS - set(labels)
        assert not missing, f"{doc['kind']}/{doc['metadata']['name']} lacks {sorted(missing)}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        selector = doc.get("spec", {}).get("selector")
        if isinstance(selector, dict):
            selector = selector.get("matchLabels", selector)
            assert set(selector) <= {
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/component",
            }, f"{doc['kind']}/{doc['metadata']['name']} selects on {sorted(selector)}"


def test_one_resource_per_template_file() -> None:
    output = helm(*template_args()).stdout
    sources = re.findall(r"^# Source: (\S+)$", output, flags=re.MULTILINE)
    assert len(sources) == len(set(sources)), "a template renders more than one resource"


def test_defaults_are_the_official_images() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["mysql"]["image"]["repository"] == "mysql"
    assert values["mongodb"]["image"]["repository"] == "mongo"
    assert values["prefect"]["server"]["image"]["repository"] == "prefecthq/prefect"
    images = {c["image"] for _, spec in pod_specs(render()) for c in spec["containers"]}
    assert {"mysql:8.4", "mongo:8.0", "prefecthq/prefect:3.9.1-python3.11"} <= images


def leaf_paths(tree: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_the_e2e_values_override_images_only() -> None:
    values = yaml.safe_load((CHART / "ci" / "e2e-values.yaml").read_text())
    paths = list(leaf_paths(values))
    assert paths
    for path in paths:
        assert re.fullmatch(
            r"(.*\.)?(image|platformImage)\.(repository|tag)|platformImage\.(repository|tag)", path
        ), f"ci/e2e-values.yaml sets {path}: the e2e install may differ from the users' chart by images only"


def test_every_value_is_documented_and_in_the_strict_schema() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][A-Za-z0-9]*):\s*(\S.*)?$", line)
        if not match or match.group(3) is None:
            continue  # a parent key; its children carry the documentation
        above = lines[number - 1].strip() if number else ""
        assert above.startswith("#"), (
            f"values.yaml line {number + 1} ({match.group(2)}) has no comment above it"
        )
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(tree: dict[str, Any], node: dict[str, Any], path: str) -> None:
        assert node.get("additionalProperties") is False, (
            f"schema of {path or 'the root'} allows unknown keys"
        )
        for key, value in tree.items():
            assert key in node["properties"], f"{path}{key} is not in values.schema.json"
            child = node["properties"][key]
            assert child.get("description") or child.get("properties"), f"{path}{key} has no description"
            if isinstance(value, dict) and child.get("properties"):
                walk(value, child, f"{path}{key}.")

    walk(values, schema, "")


def test_a_misspelt_value_is_rejected_by_name() -> None:
    result = helm(*template_args(sets=("mysql.auth.databse=x",)), check=False)
    assert result.returncode != 0
    assert "databse" in result.stderr


def test_invalid_values_fail_with_every_problem_named() -> None:
    result = helm(
        *template_args(
            sets=(
                "prefect.worker.workPool=prefect-pool",
                "sharedVolume.hostPath=/x",
                "sharedVolume.existingClaim=mine",
            )
        ),
        check=False,
    )
    assert result.returncode != 0
    assert "prefect.worker.workPool" in result.stderr
    assert "sharedVolume.hostPath and sharedVolume.existingClaim" in result.stderr


def test_service_environment_names_every_service() -> None:
    docs = render()
    env = service_env(docs)
    assert env["LUME_MODEL_DB__HOST"] == f"{RELEASE}-lume-platform-mysql.{NAMESPACE}.svc"
    assert env["LUME_MODEL_DB__PORT"] == "3306"
    assert env["LUME_RESULTS_DB__HOST"] == f"{RELEASE}-lume-platform-mongodb.{NAMESPACE}.svc"
    assert env["LUME_RESULTS_DB__PORT"] == "27017"
    assert env["LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS"] == "/lume/data"
    assert env["PREFECT_API_URL"] == f"http://{RELEASE}-lume-platform-prefect-server.{NAMESPACE}.svc:4200/api"
    secret = one(docs, "Secret", "-service-env")["stringData"]
    assert set(secret) == {"LUME_MODEL_DB__PASSWORD", "LUME_RESULTS_DB__PASSWORD"}
    assert all(len(value) == 32 for value in secret.values())
    # Service hosts resolve to the Services the chart creates.
    services = {d["metadata"]["name"] for d in find(docs, "Service")}
    assert env["LUME_MODEL_DB__HOST"].split(".")[0] in services
    assert env["LUME_RESULTS_DB__HOST"].split(".")[0] in services


def test_the_service_environment_is_what_lume_platform_accepts() -> None:
    from lume_platform.settings import load_settings

    docs = render()
    environ = dict(service_env(docs)) | one(docs, "Secret", "-service-env")["stringData"]
    settings = load_settings(environ=environ)
    assert settings.model_db is not None and settings.model_db.host == environ["LUME_MODEL_DB__HOST"]
    assert settings.results_db is not None and settings.results_db.database == "lume"
    assert settings.mounted_filesystem is not None
    assert str(settings.mounted_filesystem.root) == "/lume/data"


def test_databases_take_their_credentials_from_the_generated_secrets() -> None:
    docs = render()
    mysql_env = {
        e["name"]: e
        for e in one(docs, "StatefulSet", "-mysql")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert mysql_env["MYSQL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": SERVICE_ENV,
        "key": "LUME_MODEL_DB__PASSWORD",
    }
    assert (
        mysql_env["MYSQL_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
        == f"{RELEASE}-lume-platform-mysql"
    )
    assert mysql_env["MYSQL_USER"]["value"] == service_env(docs)["LUME_MODEL_DB__USER"]
    mongo_env = {
        e["name"]: e
        for e in one(docs, "StatefulSet", "-mongodb")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert mongo_env["MONGO_INITDB_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": SERVICE_ENV,
        "key": "LUME_RESULTS_DB__PASSWORD",
    }
    assert mongo_env["MONGO_INITDB_ROOT_USERNAME"]["value"] == service_env(docs)["LUME_RESULTS_DB__USERNAME"]
    # Flow runs get the service passwords, never MySQL's root password.
    assert "root" not in json.dumps(one(docs, "Secret", "-service-env")["stringData"]).lower()


def test_given_passwords_are_used_as_they_are() -> None:
    docs = render(sets=("mysql.auth.password=s3cret", "mongodb.auth.rootPassword=m0ngo"))
    secret = one(docs, "Secret", "-service-env")["stringData"]
    assert secret == {"LUME_MODEL_DB__PASSWORD": "s3cret", "LUME_RESULTS_DB__PASSWORD": "m0ngo"}


def test_base_job_template_injects_service_env_api_url_and_shared_volume() -> None:
    docs = render()
    template = base_job_template(docs)
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["envFrom"] == [
        {"configMapRef": {"name": SERVICE_ENV}},
        {"secretRef": {"name": SERVICE_ENV}},
    ]
    assert {"name": "PREFECT_API_URL", "value": service_env(docs)["PREFECT_API_URL"]} in container["env"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["shared-data"] == service_env(docs)["LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS"]
    claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]}
    assert claims["shared-data"] == one(docs, "PersistentVolumeClaim", "-shared-data")["metadata"]["name"]
    variables = template["variables"]["properties"]
    assert variables["image"]["default"] == "localhost/lume-platform:0.1.0"
    assert variables["image_pull_policy"]["default"] == "IfNotPresent"
    assert variables["namespace"]["default"] == NAMESPACE
    assert (
        variables["service_account_name"]["default"]
        == one(docs, "ServiceAccount", "-flow-run")["metadata"]["name"]
    )
    # Every placeholder of the job configuration is a declared variable (undeclared ones are dropped).
    placeholders = set(re.findall(r"\{\{ (\w+) \}\}", json.dumps(template["job_configuration"])))
    assert placeholders <= set(variables), placeholders - set(variables)


def test_the_worker_turns_the_base_job_template_into_the_job_we_expect() -> None:
    """prefect-kubernetes renders the chart's template as the worker would, with job variables."""
    template = base_job_template(render(CHART / "ci" / "e2e-values.yaml"))
    script = textwrap.dedent(
        """
        import asyncio, json, sys, uuid
        from prefect.client.schemas.objects import FlowRun
        from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

        template = json.load(sys.stdin)
        values = {"env": {"MY_SETTING": "1"}, "image": "custom:1", "cpu_request": "250m"}
        config = asyncio.run(KubernetesWorkerJobConfiguration.from_template_and_values(template, values))
        config.prepare_for_flow_run(FlowRun(id=uuid.uuid4(), name="a-run", flow_id=uuid.uuid4()))
        print(json.dumps(config.job_manifest))
        """
    )
    # A set API URL keeps Prefect from starting a temporary server; nothing is contacted.
    environ = dict(os.environ, PREFECT_API_URL="http://127.0.0.1:9/api")
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(template),
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout.strip().splitlines()[-1])
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names)), f"duplicate environment variables: {names}"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MY_SETTING"] == "1"
    # The worker's own API URL wins over the template's (they are the same URL in the chart).
    assert env["PREFECT_API_URL"] == environ["PREFECT_API_URL"]
    assert "PREFECT__FLOW_RUN_ID" in env
    assert container["image"] == "custom:1"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["resources"]["requests"] == {"cpu": "250m"}
    assert container["envFrom"][0]["configMapRef"]["name"] == SERVICE_ENV
    assert job["metadata"]["namespace"] == NAMESPACE
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"].endswith("-shared-data")
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400


def test_operator_rbac_is_exactly_the_operator_rules_file() -> None:
    docs = render()
    expected = yaml.safe_load((CHART / "files" / "operator-rules.yaml").read_text())
    granted = list(one(docs, "Role", "-operator")["rules"])
    for discovery in find(docs, "ClusterRole", "-operator-discovery"):
        granted += discovery["rules"]
    assert sorted(map(json.dumps, granted)) == sorted(map(json.dumps, expected))
    for doc in find(docs, "ClusterRole"):
        for rule in doc["rules"]:
            assert set(rule["resources"]) <= {"customresourcedefinitions", "namespaces"}, (
                f"ClusterRole {doc['metadata']['name']} grants {rule['resources']} cluster-wide"
            )
    bindings = {
        d["metadata"]["name"]: d for d in find(docs, "RoleBinding") + find(docs, "ClusterRoleBinding")
    }
    for binding in bindings.values():
        assert binding["subjects"][0]["namespace"] == NAMESPACE


def test_operator_can_watch_all_namespaces_with_a_cluster_role() -> None:
    docs = render(sets=("operator.clusterWide=true",))
    assert not find(docs, "Role", "-operator")
    role = one(docs, "ClusterRole", f"-{NAMESPACE}-operator")
    assert any("flows" in rule["resources"] for rule in role["rules"])
    container = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LUME_OPERATOR_NAMESPACES"] == ""


def test_worker_rights_stay_in_the_release_namespace_without_wildcards() -> None:
    docs = render()
    role = one(docs, "Role", "-prefect-worker")
    assert "*" not in json.dumps(role["rules"])
    jobs = next(rule for rule in role["rules"] if rule["resources"] == ["jobs"])
    assert "create" in jobs["verbs"]
    assert not [d for d in find(docs, "ClusterRoleBinding") if "worker" in d["metadata"]["name"]]


def test_operator_is_one_replica_recreated_with_a_liveness_probe() -> None:
    deployment = one(render(), "Deployment", "-operator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "readinessProbe" not in container
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LUME_OPERATOR_NAMESPACES"] == NAMESPACE
    assert env["LUME_OPERATOR_DEFAULT_WORK_POOL"] == "lume-kubernetes"


def test_prefect_server_listens_on_all_addresses_and_probes_health_and_ready() -> None:
    deployment = one(render(), "Deployment", "-prefect-server")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PREFECT_SERVER_API_HOST"] == "0.0.0.0"
    assert env["PREFECT_UI_API_URL"] == "http://localhost:4200/api"
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == "sqlite+aiosqlite:////data/prefect.db"
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/ready"


def test_prefect_server_on_postgres_has_no_sqlite_volume() -> None:
    docs = render(CHART / "ci" / "postgres-values.yaml")
    assert not find(docs, "PersistentVolumeClaim", "-sqlite")
    container = one(docs, "Deployment", "-prefect-server")["spec"]["template"]["spec"]["containers"][0]
    url = next(e for e in container["env"] if e["name"] == "PREFECT_SERVER_DATABASE_CONNECTION_URL")
    assert url["valueFrom"]["secretKeyRef"] == {"name": "prefect-postgres", "key": "connection-url"}


def test_kind_values_put_the_shared_volume_on_the_node_directory() -> None:
    docs = render(CHART / "ci" / "kind-values.yaml")
    volume = one(docs, "PersistentVolume", "-shared-data-" + NAMESPACE)
    claim = one(docs, "PersistentVolumeClaim", "-shared-data")
    assert volume["spec"]["hostPath"]["path"] == "/var/local/lume-shared"
    assert volume["spec"]["claimRef"] == {"namespace": NAMESPACE, "name": claim["metadata"]["name"]}
    assert claim["spec"]["volumeName"] == volume["metadata"]["name"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    service = one(docs, "Service", "-prefect-server")
    assert service["spec"]["type"] == "NodePort" and service["spec"]["ports"][0]["nodePort"] == 30420


def test_the_kind_config_maps_the_ui_port_and_the_shared_directory_the_chart_uses() -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    kind_values = yaml.safe_load((CHART / "ci" / "kind-values.yaml").read_text())
    node = config["nodes"][0]
    mappings = {m["containerPort"]: m["hostPort"] for m in node["extraPortMappings"]}
    assert mappings[kind_values["prefect"]["server"]["service"]["nodePort"]] == 4200
    assert mappings[kind_values["dashboard"]["service"]["nodePort"]] == 8080
    assert kind_values["sharedVolume"]["hostPath"] in {m["containerPath"] for m in node["extraMounts"]}


def test_helm_tests_check_each_service() -> None:
    tests = [d for d in render() if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    names = {d["metadata"]["name"].removeprefix(f"{RELEASE}-lume-platform-test-") for d in tests}
    assert names == {"prefect", "mysql", "mongodb", "shared-volume", "dashboard"}
    for test in tests:
        assert test["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"] == SERVICE_ENV
    dashboard_check = one(docs := render(), "Pod", "-test-dashboard")["spec"]["containers"][0]["command"][-1]
    service = one(docs, "Service", "-dashboard")["metadata"]["name"]
    assert f"http://{service}.{NAMESPACE}.svc:8080/healthz" in dashboard_check


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def dashboard_container(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return one(docs, "Deployment", "-dashboard")["spec"]["template"]["spec"]["containers"][0]


def test_dashboard_serves_on_all_addresses_probes_healthz_and_reads_the_flows_environment() -> None:
    docs = render()
    deployment = one(docs, "Deployment", "-dashboard")
    pod = deployment["spec"]["template"]["spec"]
    container = dashboard_container(docs)
    assert container["image"] == "localhost/lume-platform:0.1.0"
    assert container["command"] == [
        "python",
        "-m",
        "lume_platform.dashboard",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "Deployment/" + deployment["metadata"]["name"] in dict(pod_specs(render()))
    env = env_of(container)
    assert env["PREFECT_API_URL"]["value"] == service_env(docs)["PREFECT_API_URL"]
    assert env["LUME_DASHBOARD_NAMESPACE"]["value"] == NAMESPACE
    assert env["LUME_DASHBOARD_PREFECT_UI_URL"]["value"] == "http://localhost:4200"
    operator = one(docs, "Service", "-operator")
    health_port = next(p["port"] for p in operator["spec"]["ports"] if p["name"] == "health")
    assert env["LUME_DASHBOARD_OPERATOR_URL"]["value"] == (
        f"http://{operator['metadata']['name']}.{NAMESPACE}.svc:{health_port}/healthz"
    )
    assert "LUME_DASHBOARD_TOKEN" not in env, "the token is off by default"
    assert container["envFrom"] == [
        {"configMapRef": {"name": SERVICE_ENV}},
        {"secretRef": {"name": SERVICE_ENV}},
    ]
    # Writable places on a read-only root: /tmp and the home that holds PREFECT_HOME are emptyDirs.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    home = next(path for path in mounts if env["PREFECT_HOME"]["value"].startswith(path + "/"))
    assert "emptyDir" in volumes[mounts[home]["name"]]
    # The shared volume read-only, where flows mount it, from the same claim.
    shared = mounts[service_env(docs)["LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS"]]
    assert shared["readOnly"] is True
    claim = volumes[shared["name"]]["persistentVolumeClaim"]
    assert claim["claimName"] == one(docs, "PersistentVolumeClaim", "-shared-data")["metadata"]["name"]
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount", "-dashboard")["metadata"]["name"]


def test_dashboard_environment_is_what_the_dashboard_accepts() -> None:
    from lume_platform.dashboard.config import DashboardConfig

    env = {name: e["value"] for name, e in env_of(dashboard_container(render())).items() if "value" in e}
    config = DashboardConfig.from_environ(env)
    assert config.cluster_mode and config.namespace == NAMESPACE
    assert config.operator_health_url is not None and config.operator_health_url.endswith("/healthz")
    assert config.timeout_seconds == 5.0


def test_dashboard_rbac_only_reads_flows_flowruns_and_pods_in_its_namespace() -> None:
    docs = render()
    role = one(docs, "Role", "-dashboard")
    granted = {
        (group, resource): sorted(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert granted == {
        ("lume.dev", "flows"): ["get", "list", "watch"],
        ("lume.dev", "flowruns"): ["get", "list", "watch"],
        ("", "pods"): ["get", "list", "watch"],
    }
    binding = one(docs, "RoleBinding", "-dashboard")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    account = one(docs, "ServiceAccount", "-dashboard")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]
    assert not [
        d
        for d in find(docs, "ClusterRole") + find(docs, "ClusterRoleBinding")
        if "dashboard" in d["metadata"]["name"]
    ]


def test_dashboard_service_type_and_node_port_come_from_values() -> None:
    service = one(render(), "Service", "-dashboard")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http"}]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "dashboard"
    kind = one(render(CHART / "ci" / "kind-values.yaml"), "Service", "-dashboard")
    assert kind["spec"]["type"] == "NodePort"
    assert kind["spec"]["ports"][0]["nodePort"] == 30480


def test_dashboard_can_be_left_out() -> None:
    docs = render(sets=("dashboard.enabled=false",))
    assert not [d for d in docs if "dashboard" in d["metadata"]["name"]]


def test_dashboard_token_is_generated_into_a_secret_when_asked_for() -> None:
    docs = render(sets=("dashboard.auth.enabled=true",))
    secret = one(docs, "Secret", "-dashboard-token")
    assert set(secret["stringData"]) == {"token"} and len(secret["stringData"]["token"]) == 32
    reference = env_of(dashboard_container(docs))["LUME_DASHBOARD_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": secret["metadata"]["name"], "key": "token"}
    given = render(sets=("dashboard.auth.enabled=true", "dashboard.auth.token=let-me-in"))
    assert one(given, "Secret", "-dashboard-token")["stringData"] == {"token": "let-me-in"}
    # Off by default: no Secret at all.
    assert not find(render(), "Secret", "-dashboard-token")


def test_dashboard_token_can_come_from_an_existing_secret() -> None:
    docs = render(
        sets=(
            "dashboard.auth.enabled=true",
            "dashboard.auth.existingSecret=my-dashboard",
            "dashboard.auth.existingSecretKey=access",
        )
    )
    assert not find(docs, "Secret", "-dashboard-token")
    reference = env_of(dashboard_container(docs))["LUME_DASHBOARD_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "my-dashboard", "key": "access"}
    both = helm(
        *template_args(
            sets=(
                "dashboard.auth.enabled=true",
                "dashboard.auth.existingSecret=my-dashboard",
                "dashboard.auth.token=x",
            )
        ),
        check=False,
    )
    assert both.returncode != 0
    assert "dashboard.auth.token and dashboard.auth.existingSecret" in both.stderr


def test_operator_service_exposes_health_and_metrics_with_prometheus_annotations() -> None:
    docs = render()
    service = one(docs, "Service", "-operator")
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"health": (8080, "health"), "metrics": (9090, "metrics")}
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "operator"
    deployment = one(docs, "Deployment", "-operator")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"health": 8080, "metrics": 9090}
    assert env_of(container)["LUME_OPERATOR_METRICS_PORT"]["value"] == "9090"
    expected = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "prometheus.io/path": "/metrics",
    }
    assert service["metadata"]["annotations"] == expected
    assert deployment["spec"]["template"]["metadata"]["annotations"] == expected


def test_operator_metrics_can_be_turned_off_or_moved() -> None:
    docs = render(sets=("metrics.enabled=false",))
    service = one(docs, "Service", "-operator")
    assert [p["name"] for p in service["spec"]["ports"]] == ["health"]
    assert "annotations" not in service["metadata"]
    container = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(container)["LUME_OPERATOR_METRICS_PORT"]["value"] == "0"
    assert [p["name"] for p in container["ports"]] == ["health"]
    moved = render(sets=("metrics.port=9100", "metrics.prometheusAnnotations=false"))
    service = one(moved, "Service", "-operator")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]}["metrics"] == 9100
    assert "annotations" not in service["metadata"]
    clash = helm(*template_args(sets=("metrics.port=8080",)), check=False)
    assert clash.returncode != 0 and "metrics.port must differ" in clash.stderr


def test_grafana_dashboard_configmap_is_off_by_default_and_labelled_for_the_sidecar() -> None:
    assert not find(render(), "ConfigMap", "-grafana-dashboard")
    docs = render(sets=("metrics.grafanaDashboard.enabled=true",))
    config_map = one(docs, "ConfigMap", "-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert set(config_map["metadata"]["labels"]) >= STANDARD_LABELS
    shipped = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    assert json.loads(config_map["data"]["lume-operator.json"]) == shipped
    relabelled = render(
        sets=(
            "metrics.grafanaDashboard.enabled=true",
            "metrics.grafanaDashboard.labels.grafana_dashboard=null",
            "metrics.grafanaDashboard.labels.team-dashboards=lume",
        )
    )
    labels = one(relabelled, "ConfigMap", "-grafana-dashboard")["metadata"]["labels"]
    assert labels["team-dashboards"] == "lume" and "grafana_dashboard" not in labels


@pytest.mark.parametrize(
    ("assignment", "named"),
    [
        ("dashboard.service.type=Ingress", "type"),
        ("dashboard.service.nodePort=80", "nodePort"),
        ("dashboard.auth.enabeld=true", "enabeld"),
        ("dashboard.timeoutSeconds=0", "timeoutSeconds"),
        ("dashboard.prefectUiUrl=localhost:4200", "prefectUiUrl"),
        ("metrics.port=70000", "port"),
        ("metrics.grafanaDashboard.enabled=yes", "enabled"),
    ],
)
def test_the_schema_rejects_bad_dashboard_and_metrics_values(assignment: str, named: str) -> None:
    result = helm(*template_args(sets=(assignment,)), check=False)
    assert result.returncode != 0, f"{assignment} was accepted"
    assert named in result.stderr, result.stderr


def test_a_dashboard_node_port_needs_a_node_port_service() -> None:
    result = helm(*template_args(sets=("dashboard.service.nodePort=30480",)), check=False)
    assert result.returncode != 0
    assert "dashboard.service.nodePort needs dashboard.service.type NodePort" in result.stderr
