"""Fixtures for tests against a real Kubernetes cluster, reached through nothing but KUBECONFIG."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The cluster tool's kubeconfig (hack/cluster.sh); tests of the tool itself only make sense against it.
RIG_KUBECONFIG = ROOT / ".state" / "cluster" / "kubeconfig"
# Node images whose name contains this are the small shell image built from images/busybox.
TEST_IMAGE_NAME = "lume-busybox"


class KubectlError(RuntimeError):
    """A kubectl command failed; the message carries its command line and stderr."""


@dataclass(frozen=True)
class Kubectl:
    """Runs the kubectl found on PATH against the cluster named by KUBECONFIG, always with a timeout."""

    kubeconfig: str

    def using(self, kubeconfig: str) -> Kubectl:
        """The same runner against another kubeconfig (another identity or cluster)."""
        return Kubectl(kubeconfig)

    def run(
        self, *args: str, stdin: str | None = None, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run one kubectl command; raise KubectlError on a non-zero exit when ``check``."""
        command = ["kubectl", f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    def json(self, *args: str, timeout: float = 60) -> Any:
        """Run a read command with ``-o json`` and decode its output."""
        return json.loads(self.run(*args, "-o", "json", timeout=timeout).stdout)

    def apply(self, manifest: dict[str, Any], namespace: str | None = None) -> None:
        """Create or update one object given as a dict."""
        scope = [f"--namespace={namespace}"] if namespace else []
        self.run("apply", *scope, "-f", "-", stdin=json.dumps(manifest))

    def wait(self, condition: str, target: str, namespace: str, timeout: int = 180) -> None:
        """Wait for ``condition`` (kubectl wait --for=…) on ``target``, bounded by ``timeout`` seconds."""
        self.run(
            "wait",
            f"--namespace={namespace}",
            f"--for={condition}",
            target,
            f"--timeout={timeout}s",
            timeout=timeout + 30,
        )

    def logs(self, target: str, namespace: str) -> str:
        """The logs of a pod or of a job's pod."""
        return self.run("logs", f"--namespace={namespace}", target).stdout


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """The KUBECONFIG the tests use; fails loudly when no cluster was named."""
    path = os.environ.get("KUBECONFIG", "")
    if not path or not Path(path).is_file():
        pytest.fail(
            f"KUBECONFIG is {path!r}, not a file: start a cluster with `hack/cluster.sh up` and "
            "`set -a; source .state/cluster.env; set +a` (or point KUBECONFIG at a kind cluster)"
        )
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not on PATH (hack/cluster.sh up writes a PATH with it to .state/cluster.env)")
    return path


@pytest.fixture(scope="session")
def kubectl(kubeconfig: str) -> Kubectl:
    """kubectl bound to the test cluster, after checking that its API server answers."""
    client = Kubectl(kubeconfig)
    try:
        client.run("get", "--raw", "/readyz", timeout=30)
    except (KubectlError, subprocess.TimeoutExpired) as error:
        pytest.fail(f"the cluster in KUBECONFIG={kubeconfig} does not answer: {error}")
    return client


@pytest.fixture(scope="session")
def test_image(kubectl: Kubectl) -> str:
    """A locally built shell image present on the node (LUME_E2E_IMAGE, or images/busybox as loaded)."""
    wanted = os.environ.get("LUME_E2E_IMAGE")
    if wanted:
        return wanted
    for node in kubectl.json("get", "nodes")["items"]:
        for image in node["status"].get("images") or []:
            for name in image.get("names") or []:
                if TEST_IMAGE_NAME in name and "@sha256:" not in name:
                    return str(name)
    pytest.fail(
        f"no image named *{TEST_IMAGE_NAME}* on the nodes: `hack/cluster.sh up` loads it; on kind run "
        f"`docker build -t localhost/{TEST_IMAGE_NAME}:dev images/busybox` (with a static busybox in the "
        f"context) and `kind load docker-image localhost/{TEST_IMAGE_NAME}:dev`, or set LUME_E2E_IMAGE"
    )


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted (with everything in it) afterwards."""
    stem = request.node.name.replace("_", "-").lower()[:40].strip("-")
    name = f"e2e-{stem}-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", name)
    # New namespaces get their default ServiceAccount asynchronously; pods are refused until it exists.
    kubectl.run(
        "wait", f"--namespace={name}", "--for=create", "serviceaccount/default", "--timeout=60s", timeout=90
    )
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the cluster tool's restart test last: it stops the cluster that other tests use."""
    restart = [item for item in items if getattr(item, "originalname", "") == "test_cluster_tool_restarts"]
    if not restart:
        return
    kubeconfig = os.environ.get("KUBECONFIG", "")
    if kubeconfig and Path(kubeconfig).resolve() != RIG_KUBECONFIG.resolve():
        # Against kind or another cluster there is no cluster tool to restart.
        config.hook.pytest_deselected(items=restart)
        for item in restart:
            items.remove(item)
        return
    for item in restart:
        items.remove(item)
        items.append(item)
