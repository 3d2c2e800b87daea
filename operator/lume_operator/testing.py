"""Harness for running the operator against a real API server and Prefect: shared by tests and bench/.

Nothing here fakes a component: it starts real processes (the operator, a private Prefect server), talks to
the real API server, and makes a ServiceAccount bound to exactly the chart's operator RBAC rules.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "charts" / "lume-platform" / "crds"
RULES = ROOT / "charts" / "lume-platform" / "files" / "operator-rules.yaml"
OUTPUT = ROOT / "test-output"
GROUP, VERSION = "lume.dev", "v1alpha1"
T = TypeVar("T")


def kubectl(*args: str, input_text: str | None = None, check: bool = True, timeout: float = 60) -> str:
    """Run kubectl as the admin of the test cluster."""
    if shutil.which("kubectl") is None:
        raise RuntimeError("kubectl is not on PATH (source .state/cluster.env)")
    done = subprocess.run(
        ["kubectl", *args], input=input_text, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout + done.stderr if not check else done.stdout


def wait_until(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Kube:
    """The Kubernetes API as the tests' admin, through the official client."""

    def __init__(self) -> None:
        import kubernetes

        self.client = kubernetes.config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))
        self.objects = kubernetes.client.CustomObjectsApi(self.client)
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.ApiException = kubernetes.client.ApiException

    def create(self, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        # Strict, as kubectl: an unknown field is an error rather than silently pruned.
        return self.objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, body, field_validation="Strict"
        )

    def get(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        try:
            return self.objects.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        except self.ApiException as error:
            if error.status == 404:
                return None
            raise

    def patch(self, namespace: str, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, body)

    def delete(self, namespace: str, plural: str, name: str) -> None:
        try:
            self.objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        except self.ApiException as error:
            if error.status != 404:
                raise

    def list(self, namespace: str, plural: str) -> list[dict[str, Any]]:
        return self.objects.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]


def flow_manifest(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Flow", "metadata": {"name": name}, "spec": spec}


def condition(body: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for item in ((body or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return item
    return None


def service_account_kubeconfig(namespace: str, path: Path, rules_file: Path = RULES) -> Path:
    """Create a ServiceAccount bound to exactly `rules_file`; write a kubeconfig with its token to `path`."""
    role = f"{namespace}-operator"
    rules = yaml.safe_load(rules_file.read_text())
    documents = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "lume-operator", "namespace": namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role, "labels": {"lume-test": namespace}},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role, "labels": {"lume-test": namespace}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "lume-operator", "namespace": namespace}],
        },
    ]
    kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(documents))
    token = kubectl("create", "token", "lume-operator", "-n", namespace, "--duration=4h").strip()
    admin = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json"))
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": "lume-operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "test", "user": "lume-operator"}}],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def delete_service_account_rbac(namespace: str) -> None:
    """Remove the cluster-scoped RBAC objects `service_account_kubeconfig` made."""
    kubectl("delete", "clusterrolebinding,clusterrole", "-l", f"lume-test={namespace}", check=False)


class OperatorProcess:
    """`python -m lume_operator` as a subprocess, started and stopped (or killed) by the tests."""

    def __init__(
        self, kubeconfig: Path, namespace: str, env: dict[str, str] | None = None, **settings: str
    ) -> None:
        self.kubeconfig = kubeconfig
        self.env = env or {}
        self.namespace = namespace
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.liveness_port = free_port()

    @property
    def log_path(self) -> Path:
        return OUTPUT / f"operator-{self.namespace}-{self.starts}.log"

    def start(self) -> None:
        assert not self.alive(), "operator already running"
        self.starts += 1
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "LUME_OPERATOR_NAMESPACES": self.namespace,
            "LUME_OPERATOR_DEFAULT_WORK_POOL": os.environ.get("LUME_TEST_WORK_POOL", "lume-test"),
            "LUME_OPERATOR_LIVENESS_PORT": str(self.liveness_port),
            "LUME_OPERATOR_METRICS_PORT": str(free_port()),
            **{f"LUME_OPERATOR_{key.upper()}": value for key, value in self.settings.items()},
            **self.env,
        }
        OUTPUT.mkdir(exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lume_operator"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2
            ) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: as a crash or an evicted pod."""
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def prefect_client(api_url: str | None = None) -> Any:
    """A sync Prefect client of `api_url` (default: PREFECT_API_URL as Prefect read it at import)."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if api_url is None:
        return get_client(sync_client=True)
    # The client takes its URL from the settings when it is built; the process's settings stay as they are.
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        return get_client(sync_client=True)


class PrefectServer:
    """A private Prefect server (SQLite under `home`) that a test may stop and start again."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def healthy(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def start(self) -> None:
        env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": "",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
        }
        OUTPUT.mkdir(exist_ok=True)
        with (OUTPUT / f"prefect-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(f"Prefect on port {self.port}", self.healthy, timeout=180, interval=1.0)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        wait_until(f"Prefect on port {self.port} down", lambda: not self.healthy(), timeout=30)
