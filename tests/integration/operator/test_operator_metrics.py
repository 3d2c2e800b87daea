"""The operator's /metrics endpoint, scraped while it reconciles Flows on a real API server and Prefect."""

from __future__ import annotations

import os
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lume_operator.testing import OperatorProcess, flow_manifest, free_port, wait_until

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample of the endpoint, keyed by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series has not been created yet."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def metered_operator(operator_kubeconfig: Path, namespace: str) -> Iterator[tuple[OperatorProcess, int]]:
    """An operator for this module's namespace with its metrics on a port the test knows."""
    port = free_port()
    process = OperatorProcess(operator_kubeconfig, namespace, metrics_port=str(port), resync_seconds="600")
    process.start()
    try:
        wait_until("the operator's liveness endpoint", process.healthy, timeout=90)
        wait_until("the operator's /metrics endpoint", lambda: _answers(port), timeout=30)
        yield process, port
    finally:
        process.stop()


def _answers(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True


def scrape_until(port: int, what: str, holds: Callable[[Samples], bool], timeout: float = 30) -> Samples:
    """Scrape until ``holds`` is true of the samples; fail naming ``what``."""

    def probe() -> Samples | None:
        samples = scrape(port)
        return samples if holds(samples) else None

    return wait_until(what, probe, timeout=timeout)


def _phase(kube: Any, namespace: str, name: str) -> str | None:
    body = kube.get(namespace, "flows", name)
    return ((body or {}).get("status") or {}).get("phase")


def test_counters_move_when_flows_are_applied_and_deleted(
    kube: Any, namespace: str, metered_operator: tuple[OperatorProcess, int]
) -> None:
    process, port = metered_operator
    before = scrape(port)
    # The metric families are declared before any Flow exists, so dashboards show zeros, not gaps.
    assert ("lume_operator_flows", (("phase", "Ready"),)) in before
    assert ("lume_operator_prefect_api_errors_total", ()) in before
    assert value(before, "lume_operator_flows", phase="Ready") == 0

    good, bad = f"metered-{uuid.uuid4().hex[:6]}", f"broken-{uuid.uuid4().hex[:6]}"
    kube.create(namespace, "flows", flow_manifest(good, {
        "entrypoint": "examples/flows/text_model.py:text_model",
        "workPool": os.environ["LUME_TEST_WORK_POOL"],
    }))
    wait_until(f"Flow {good} Ready", lambda: _phase(kube, namespace, good) == "Ready", timeout=120)
    ready = scrape_until(port, "the Ready Flow in the metrics",
                         lambda s: value(s, "lume_operator_flows", phase="Ready") == 1)
    assert value(ready, "lume_operator_reconciles_total", kind="Flow", outcome="synced") >= 1 + value(
        before, "lume_operator_reconciles_total", kind="Flow", outcome="synced"
    ), process.log()
    count_name = "lume_operator_reconcile_duration_seconds_count"
    assert value(ready, count_name, kind="Flow") > value(before, count_name, kind="Flow")
    assert value(ready, "lume_operator_reconcile_duration_seconds_sum", kind="Flow") > 0

    # A spec the CRD schema lets through but FlowSpec refuses: the operator puts it in Error.
    kube.create(namespace, "flows", flow_manifest(bad, {
        "entrypoint": "examples/flows/text_model.py:text_model",
        "env": {"not a name": "x"},
    }))
    wait_until(f"Flow {bad} in Error", lambda: _phase(kube, namespace, bad) == "Error", timeout=120)
    errored = scrape_until(port, "the Error Flow in the metrics",
                           lambda s: value(s, "lume_operator_flows", phase="Error") == 1)
    assert value(errored, "lume_operator_reconciles_total", kind="Flow", outcome="invalid") >= 1
    assert value(errored, "lume_operator_reconcile_errors_total", kind="Flow", reason="InvalidSpec") >= 1
    assert value(errored, "lume_operator_flows", phase="Ready") == 1

    for name in (good, bad):
        kube.delete(namespace, "flows", name)
    wait_until("both Flows gone", lambda: not kube.list(namespace, "flows"), timeout=120)
    after = scrape_until(port, "deleted Flows out of the phase counts", lambda s: sum(
        value(s, "lume_operator_flows", phase=p) for p in ("Pending", "Ready", "Error")) == 0)
    assert value(after, "lume_operator_prefect_api_errors_total") == 0
