"""Acceptance of the Kubernetes cluster (issue 4): real pods, DNS, Services, storage, admission, RBAC."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    # Test modules cannot import each other under --import-mode=importlib; the fixture provides the object.
    from tests.e2e.conftest import Kubectl

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RIG_STATE = ROOT / ".state" / "cluster"

# What the `restricted` Pod Security level asks of every container; all test pods comply unless a test
# wants a refusal.
RESTRICTED_POD: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def pod_spec(
    image: str, script: str, *, claim: str | None = None, container: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A one-container pod spec running ``script`` in ``sh`` as a non-root, restricted-compliant user.

    The image's root filesystem belongs to root, so the pod gets a writable ``/tmp``; ``claim`` mounts
    that PersistentVolumeClaim at ``/data``.
    """
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    if claim:
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": "data", "mountPath": "/data"})
    main: dict[str, Any] = {
        "name": "main",
        "image": image,
        # Locally built images cannot be pulled from anywhere: fail at once if the node lacks one.
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", script],
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": mounts,
        **(container or {}),
    }
    return {
        "restartPolicy": "Never",
        "securityContext": RESTRICTED_POD,
        "containers": [main],
        "volumes": volumes,
    }


def job(name: str, image: str, script: str) -> dict[str, Any]:
    """A Job that runs ``script`` once, never retried, so a failure shows at once."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec(image, script)}},
    }


def pod(name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A bare Pod object."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
    }


def wait_job(kubectl: Kubectl, name: str, namespace: str, timeout: int = 180) -> None:
    """Wait for a Job to complete; on failure, say what its pod did."""
    try:
        kubectl.wait("condition=complete", f"job/{name}", namespace, timeout)
    except Exception as error:
        described = kubectl.run("describe", "pods", f"--namespace={namespace}", check=False).stdout
        logs = kubectl.run("logs", f"--namespace={namespace}", f"job/{name}", check=False)
        raise AssertionError(
            f"job {name} did not complete: {error}\nlogs: {logs.stdout}{logs.stderr}\n{described}"
        ) from error


def wait_pod_succeeded(kubectl: Kubectl, name: str, namespace: str, timeout: int = 180) -> None:
    """Wait for a run-to-completion pod to succeed."""
    try:
        kubectl.wait("jsonpath={.status.phase}=Succeeded", f"pod/{name}", namespace, timeout)
    except Exception as error:
        described = kubectl.run("describe", f"pod/{name}", f"--namespace={namespace}", check=False).stdout
        raise AssertionError(f"pod {name} did not succeed: {error}\n{described}") from error


def test_node_is_ready_and_server_version_is_stamped(kubectl: Kubectl) -> None:
    nodes = kubectl.json("get", "nodes")["items"]
    assert nodes, "the cluster has no node"
    for node in nodes:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", (
            f"node {node['metadata']['name']} is not Ready: {ready}"
        )
    version = kubectl.json("version")["serverVersion"]["gitVersion"]
    # An unstamped build reports v0.0.0-master, which breaks helm's kubeVersion checks.
    assert re.fullmatch(r"v1\.\d+\.\d+", version), f"server reports version {version!r}"


def test_job_runs_a_locally_built_image_and_its_logs_are_readable(
    kubectl: Kubectl, namespace: str, test_image: str
) -> None:
    token = uuid.uuid4().hex
    kubectl.apply(job("hello", test_image, f"echo hello-{token}; echo uid=$(id -u)"), namespace)
    wait_job(kubectl, "hello", namespace)
    assert kubectl.logs("job/hello", namespace).split() == [f"hello-{token}", "uid=1000"]
    pods = kubectl.json("get", "pods", f"--namespace={namespace}", "--selector=job-name=hello")["items"]
    status = pods[0]["status"]["containerStatuses"][0]
    # A real container run by the node's container runtime, from the image we asked for.
    assert status["containerID"].startswith(("containerd://", "cri-o://", "docker://")), status
    assert status["image"].endswith(test_image.split("/")[-1]), status


def test_pods_resolve_cluster_names_and_reach_a_service_by_name(
    kubectl: Kubectl, namespace: str, test_image: str
) -> None:
    token = uuid.uuid4().hex
    serve = f"mkdir -p /tmp/www && echo {token} > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"
    web = pod(
        "web",
        pod_spec(
            test_image,
            serve,
            container={"readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}},
        ),
        labels={"app": "web"},
    )
    web["spec"]["restartPolicy"] = "Always"
    kubectl.apply(web, namespace)
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        namespace,
    )
    kubectl.wait("condition=Ready", "pod/web", namespace)
    api_ip = kubectl.json("get", "service", "kubernetes", "--namespace=default")["spec"]["clusterIP"]
    # Endpoints and DNS records follow the pod by a moment: retry within the job, bounded. (Debian's
    # static busybox crashes on `wget -T`, hence `timeout`.)
    client = (
        "nslookup kubernetes.default.svc.cluster.local; "
        "for i in $(seq 30); do timeout 5 wget -q -O - http://web/ && exit 0; sleep 1; done; exit 1"
    )
    kubectl.apply(job("client", test_image, client), namespace)
    wait_job(kubectl, "client", namespace)
    output = kubectl.logs("job/client", namespace)
    assert re.search(rf"Address:\s+{re.escape(api_ip)}\b", output), output
    assert token in output, output


def test_a_claim_is_bound_by_the_default_class_and_keeps_data_across_pods(
    kubectl: Kubectl, namespace: str, test_image: str
) -> None:
    classes = kubectl.json("get", "storageclasses")["items"]
    default = [
        c["metadata"]["name"]
        for c in classes
        if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    ]
    assert len(default) == 1, f"expected one default StorageClass, found {default}"
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}},
        },
        namespace,
    )
    token = uuid.uuid4().hex
    kubectl.apply(
        pod("writer", pod_spec(test_image, f"echo {token} > /data/token", claim="data")),
        namespace,
    )
    wait_pod_succeeded(kubectl, "writer", namespace)
    claim = kubectl.json("get", "pvc/data", f"--namespace={namespace}")
    assert claim["status"]["phase"] == "Bound", claim["status"]
    assert claim["spec"]["storageClassName"] == default[0]
    kubectl.run(
        "delete", "pod/writer", f"--namespace={namespace}", "--wait=true", "--timeout=60s", timeout=90
    )
    kubectl.apply(pod("reader", pod_spec(test_image, "cat /data/token", claim="data")), namespace)
    wait_pod_succeeded(kubectl, "reader", namespace)
    assert kubectl.logs("pod/reader", namespace).strip() == token


def test_restricted_namespace_rejects_a_privileged_pod_and_admits_a_compliant_one(
    kubectl: Kubectl, namespace: str, test_image: str
) -> None:
    kubectl.run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    privileged = pod("privileged", pod_spec(test_image, "true"))
    privileged["spec"]["securityContext"] = {}
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    refused = kubectl.run(
        "apply", f"--namespace={namespace}", "-f", "-", stdin=json.dumps(privileged), check=False
    )
    assert refused.returncode != 0, "a privileged pod was admitted to a restricted namespace"
    assert 'violates PodSecurity "restricted' in refused.stderr, refused.stderr
    absent = kubectl.run("get", "pod/privileged", f"--namespace={namespace}", check=False)
    assert absent.returncode != 0 and "NotFound" in absent.stderr
    kubectl.apply(pod("compliant", pod_spec(test_image, "echo compliant")), namespace)
    wait_pod_succeeded(kubectl, "compliant", namespace)
    assert kubectl.logs("pod/compliant", namespace).strip() == "compliant"


def test_a_service_account_with_no_role_is_denied(kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    kubectl.run("create", "serviceaccount", "nobody", f"--namespace={namespace}")
    subject = f"system:serviceaccount:{namespace}:nobody"
    for verb, resource in [("list", "pods"), ("create", "deployments.apps"), ("get", "secrets")]:
        answer = kubectl.run(
            "auth", "can-i", verb, resource, f"--namespace={namespace}", f"--as={subject}", check=False
        )
        assert (answer.returncode, answer.stdout.strip()) == (1, "no"), (verb, resource, answer)
    # The same identity, as a real token in a real request, is refused by the API server.
    token = kubectl.run("create", "token", "nobody", f"--namespace={namespace}").stdout.strip()
    current = kubectl.json("config", "view", "--raw", "--minify")
    token_only = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": current["clusters"],
        "users": [{"name": "nobody", "user": {"token": token}}],
        "contexts": [
            {"name": "nobody", "context": {"cluster": current["clusters"][0]["name"], "user": "nobody"}}
        ],
        "current-context": "nobody",
    }
    kubeconfig = tmp_path / "nobody.kubeconfig"
    kubeconfig.write_text(json.dumps(token_only))
    denied = kubectl.using(str(kubeconfig)).run("get", "pods", f"--namespace={namespace}", check=False)
    assert denied.returncode != 0 and "Forbidden" in denied.stderr, denied.stderr
    assert f'User "{subject}" cannot list resource "pods"' in denied.stderr


def run_tool(verb: str, timeout: int) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``hack/cluster.sh VERB``; return its result and how long it took."""
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "hack" / "cluster.sh"), verb],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return result, time.monotonic() - started


def record_time(what: str, seconds: float) -> None:
    """Keep the measured time where CI keeps test output, and show it with -s."""
    line = f"{what}: {seconds:.1f}s"
    print(line)
    output = ROOT / "test-output"
    output.mkdir(exist_ok=True)
    with (output / "cluster-times.txt").open("a") as times:
        times.write(line + "\n")


def process_alive(pid: int) -> bool:
    """The process exists and has not exited (an exited one lingers as a zombie until reaped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_cluster_tool_restarts(kubectl: Kubectl, test_image: str) -> None:
    """`up` while running is a no-op; `down` stops everything and removes state; `up` works again."""
    pid_file = RIG_STATE / "pids" / "kube-apiserver.pid"
    apiserver_pid = int(pid_file.read_text())
    again, seconds = run_tool("up", timeout=300)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr, again.stderr
    assert int(pid_file.read_text()) == apiserver_pid, "`up` restarted a running API server"
    assert seconds < 30, f"`up` on a running cluster took {seconds:.1f}s"
    record_time("up while running", seconds)

    stopped, seconds = run_tool("down", timeout=300)
    assert stopped.returncode == 0, stopped.stderr
    record_time("down", seconds)
    assert not RIG_STATE.exists(), "down left the cluster state behind"
    assert not process_alive(apiserver_pid), "down left the API server running"
    status, _ = run_tool("status", timeout=60)
    assert status.returncode == 3, status.stdout

    started, seconds = run_tool("up", timeout=1500)
    assert started.returncode == 0, started.stderr
    record_time("up after down (warm)", seconds)
    kubectl.run("wait", "--for=condition=Ready", "nodes", "--all", "--timeout=120s", timeout=150)
    namespace = f"e2e-restart-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", namespace)
    kubectl.run("wait", f"--namespace={namespace}", "--for=create", "serviceaccount/default", "--timeout=60s")
    try:
        kubectl.apply(job("after-restart", test_image, "echo back"), namespace)
        wait_job(kubectl, "after-restart", namespace)
        assert kubectl.logs("job/after-restart", namespace).strip() == "back"
    finally:
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)
