"""Fixtures for the operator on a real kube-apiserver and a real Prefect server.

The operator runs as a subprocess (`python -m lume_operator`) with a kubeconfig holding a token of a
ServiceAccount bound to exactly charts/lume-platform/files/operator-rules.yaml, so the tests also prove
those RBAC rules sufficient. Each test module gets its own namespace; the operator watches only it.
The harness itself lives in lume_operator.testing (bench/operator.py uses it too).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lume_operator.testing import (
    CRD_DIR,
    Kube,
    OperatorProcess,
    PrefectServer,
    condition,
    delete_service_account_rbac,
    flow_manifest,
    free_port,
    kubectl,
    prefect_client,
    service_account_kubeconfig,
    wait_until,
)


def require_env(*names: str) -> None:
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not set: run `hack/services.sh up` and `hack/cluster.sh up` and source "
            ".state/services.env and .state/cluster.env (hack/test.sh does all of it)"
        )


@pytest.fixture(scope="session")
def kube() -> Kube:
    require_env("KUBECONFIG", "PREFECT_API_URL", "LUME_TEST_WORK_POOL")
    kube = Kube()
    # The CRDs exactly as the chart ships them, applied the way an admin would.
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    for crd in ("flows.lume.dev", "flowruns.lume.dev"):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    return kube


@pytest.fixture(scope="module")
def namespace(kube: Kube) -> Iterator[str]:
    name = f"lume-op-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    # Unstick anything the operator could not finalise, then drop the namespace.
    for plural in ("flows", "flowruns"):
        for item in kube.list(name, plural):
            kube.patch(name, plural, item["metadata"]["name"], {"metadata": {"finalizers": None}})
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def operator_kubeconfig(
    kube: Kube, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A kubeconfig with the token of a ServiceAccount bound to exactly the chart's operator rules."""
    yield service_account_kubeconfig(namespace, tmp_path_factory.mktemp("operator") / "kubeconfig")
    delete_service_account_rbac(namespace)


@pytest.fixture(scope="module")
def operator(operator_kubeconfig: Path, namespace: str) -> Iterator[OperatorProcess]:
    """The operator for this module's namespace, with a short resync interval."""
    process = OperatorProcess(operator_kubeconfig, namespace, resync_seconds="20", flowrun_poll_seconds="1")
    process.start()
    wait_until("the operator's liveness endpoint", process.healthy, timeout=90)
    yield process
    process.stop()


class Tools:
    """The harness, handed to tests as a fixture (test modules cannot import a conftest)."""

    wait_until = staticmethod(wait_until)
    kubectl = staticmethod(kubectl)
    flow_manifest = staticmethod(flow_manifest)
    condition = staticmethod(condition)
    prefect_client = staticmethod(prefect_client)
    free_port = staticmethod(free_port)
    OperatorProcess = OperatorProcess
    PrefectServer = PrefectServer


@pytest.fixture(scope="session")
def tools() -> type[Tools]:
    return Tools
