"""Prometheus metrics of the operator: reconciles, their outcome and latency, Flows by phase, Prefect errors.

Served on ``LUME_OPERATOR_METRICS_PORT`` (default 9090; 0 turns the endpoint off) at ``/metrics``, from the
operator's own registry, so that only these series (and the process's) are exported.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.process_collector import ProcessCollector

METRICS_PORT_VARIABLE = "LUME_OPERATOR_METRICS_PORT"
DEFAULT_METRICS_PORT = 9090
PHASES = ("Pending", "Ready", "Error")
OUTCOMES = ("synced", "invalid", "retry")
# Synced-condition reasons that mean Prefect itself failed (set by lume_operator.status).
PREFECT_ERROR_REASONS = ("PrefectUnavailable",)

logger = logging.getLogger(__name__)
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

RECONCILES = Counter(
    "lume_operator_reconciles",
    "Reconciliations of Flow resources, by outcome: synced, invalid (phase Error), retry (will be retried).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "lume_operator_reconcile_errors",
    "Reconciliations that did not bring the resource to Ready, by the reason written to its status.",
    ["kind", "reason"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "lume_operator_reconcile_duration_seconds",
    "Time one reconciliation took, Prefect round trips included.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
FLOWS_BY_PHASE = Gauge(
    "lume_operator_flows",
    "Flow resources by the phase this operator last wrote to their status.",
    ["phase"],
    registry=REGISTRY,
)
PREFECT_API_ERRORS = Counter(
    "lume_operator_prefect_api_errors",
    "Reconciliations that failed because the Prefect API was unreachable or answered with a server error.",
    registry=REGISTRY,
)

_phases: dict[tuple[str, str], str] = {}
_phases_lock = threading.Lock()
_server_started = False


def _publish_phases() -> None:
    counts = dict.fromkeys(PHASES, 0)
    for phase in _phases.values():
        counts[phase] = counts.get(phase, 0) + 1
    for phase, count in counts.items():
        FLOWS_BY_PHASE.labels(phase=phase).set(count)


def _declare_series() -> None:
    # Series exist from the start, so that dashboards and alerts see zeros rather than gaps.
    for outcome in OUTCOMES:
        RECONCILES.labels(kind="Flow", outcome=outcome)
    RECONCILE_SECONDS.labels(kind="Flow")
    _publish_phases()


def record_phase(namespace: str, name: str, phase: str | None) -> None:
    """Remember the phase of one Flow (None leaves what was known) and update the gauge."""
    if phase is None:
        return
    with _phases_lock:
        _phases[(namespace, name)] = phase
        _publish_phases()


def forget_flow(namespace: str, name: str) -> None:
    """A deleted Flow leaves the phase counts."""
    with _phases_lock:
        _phases.pop((namespace, name), None)
        _publish_phases()


def _synced_reason(status: Mapping[str, Any]) -> str | None:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Synced" and condition.get(
            "status"
        ) != "True":
            return str(condition.get("reason") or "Unknown")
    return None


@contextmanager
def flow_sync(namespace: str, name: str, patch: Any) -> Iterator[None]:
    """Count and time one Flow reconciliation, judged by the status it wrote to ``patch``.

    Notes
    -----
    Handlers turn failures into status (and a kopf.TemporaryError to retry), so the outcome is read
    from what they wrote rather than from the exception alone.
    """
    started = time.perf_counter()
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        RECONCILE_SECONDS.labels(kind="Flow").observe(time.perf_counter() - started)
        status: Mapping[str, Any] = patch.status if hasattr(patch, "status") else {}
        phase = status.get("phase")
        reason = _synced_reason(status)
        if phase == "Error":
            outcome = "invalid"
        elif failed or reason is not None:
            outcome = "retry"
        else:
            outcome = "synced"
        RECONCILES.labels(kind="Flow", outcome=outcome).inc()
        if reason is not None or phase == "Error":
            RECONCILE_ERRORS.labels(kind="Flow", reason=reason or "InvalidSpec").inc()
        if reason in PREFECT_ERROR_REASONS:
            PREFECT_API_ERRORS.inc()
        record_phase(namespace, name, phase)


_declare_series()


def metrics_port(environ: Mapping[str, str] | None = None) -> int:
    """The port of the /metrics endpoint (0: none).

    Raises
    ------
    ValueError
        Naming the variable when it is not a port number.
    """
    text = (os.environ if environ is None else environ).get(METRICS_PORT_VARIABLE, str(DEFAULT_METRICS_PORT))
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ValueError(
            f"{METRICS_PORT_VARIABLE} must be a port number (0 to turn metrics off), got {text!r}"
        )
    return port


def serve(environ: Mapping[str, str] | None = None, address: str = "0.0.0.0") -> int:
    """Start the /metrics endpoint once per process (a daemon thread); return its port (0: off or failed)."""
    global _server_started
    port = metrics_port(environ)
    if port and not _server_started:
        try:
            start_http_server(port, addr=address, registry=REGISTRY)
        except OSError as error:
            # Metrics are for watching the operator; losing them must not stop it from reconciling.
            logger.error("cannot serve metrics on %s:%d: %s", address, port, error)
            return 0
        _server_started = True
        logger.info("metrics on http://%s:%d/metrics", address, port)
    return port
