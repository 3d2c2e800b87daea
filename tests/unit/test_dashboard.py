"""The dashboard's pure parts: bucketing, filters, plot fields, summaries, settings; the Grafana dashboard."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lume_operator import metrics
from lume_platform.dashboard.config import DashboardConfig
from lume_platform.dashboard.models import FlowView, RunView
from lume_platform.dashboard.sources import (
    count_phases,
    flow_view_from_resource,
    hour_buckets,
    jsonable,
    numeric_fields,
    plot_path,
    result_filter,
    schedule_timing,
    series_points,
    summarise,
)
from lume_platform.errors import ConfigurationError, ForbiddenQueryError, QueryError
from lume_platform.results import Result

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "charts" / "lume-platform" / "files" / "grafana-dashboard.json"
NOW = datetime(2026, 11, 26, 12, 30, tzinfo=UTC)


def run(state: str | None, start: datetime | None, expected: datetime | None = None) -> RunView:
    return RunView(
        id="r",
        name="r",
        flow_name="f",
        deployment_name=None,
        state_type=state,
        state_name=None,
        expected_start_time=expected,
        start_time=start,
        end_time=None,
        duration_seconds=None,
        prefect_url="http://ui/runs/flow-run/r",
    )


def test_hour_buckets_count_runs_by_start_hour_and_state() -> None:
    since = NOW - timedelta(hours=24)
    runs = [
        run("COMPLETED", NOW - timedelta(minutes=10)),
        run("COMPLETED", NOW - timedelta(minutes=20)),
        run("FAILED", NOW - timedelta(hours=3)),
        run("SCHEDULED", None, expected=NOW - timedelta(hours=3, minutes=5)),
        run("COMPLETED", NOW - timedelta(hours=30)),  # before the window: not counted
        run(None, None),  # no time at all: not counted
    ]
    buckets = hour_buckets(runs, since, 24)
    assert len(buckets) == 25 and buckets[0].hour == datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert buckets[-1].counts == {"COMPLETED": 2}
    assert buckets[-4].counts == {"FAILED": 1, "SCHEDULED": 1}
    assert sum(sum(b.counts.values()) for b in buckets) == 4


def test_phases_are_always_all_present() -> None:
    view = flow_view_from_resource(
        {"metadata": {"name": "a", "namespace": "n"}, "status": {"phase": "Error"}}, "http://ui", {}
    )
    assert count_phases([view]) == {"Pending": 0, "Ready": 0, "Error": 1}
    assert count_phases([]) == {"Pending": 0, "Ready": 0, "Error": 0}


def test_flow_view_reads_status_conditions_and_schedules() -> None:
    resource = {
        "metadata": {"name": "scan", "namespace": "lume"},
        "spec": {
            "entrypoint": "a.py:f",
            "flowName": "beam-scan",
            "schedules": [
                {"slug": "hourly", "interval": 3600},
                {"slug": "n", "cron": "0 3 * * *", "timezone": "Europe/Berlin", "active": False},
            ],
        },
        "status": {
            "phase": "Ready",
            "deploymentId": "d-1",
            "message": "synced",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Synced"}],
        },
    }
    recent = [run("COMPLETED", NOW)]
    view: FlowView = flow_view_from_resource(resource, "http://ui", {"d-1": recent})
    assert (view.flow_name, view.phase, view.message) == ("beam-scan", "Ready", "synced")
    assert view.prefect_url == "http://ui/deployments/deployment/d-1" and view.last_runs == recent
    assert [(s.slug, s.timing, s.active) for s in view.schedules] == [
        ("hourly", "every 3600 s", True),
        ("n", "cron 0 3 * * * (Europe/Berlin)", False),
    ]
    assert view.conditions[0].reason == "Synced"
    pending = flow_view_from_resource({"metadata": {"name": "new"}}, "http://ui", {})
    assert (pending.phase, pending.prefect_url, pending.flow_name) == ("Pending", None, "new")


def test_schedule_timing_reads_prefect_and_spec_forms() -> None:
    assert schedule_timing({"interval": timedelta(minutes=5)}) == "every 300 s"
    assert schedule_timing({"rrule": "FREQ=DAILY"}) == "rrule FREQ=DAILY"
    assert schedule_timing({}) == "unknown timing"


def test_result_filter_validates_the_callers_part_before_anything_else() -> None:
    with pytest.raises(ForbiddenQueryError, match=r"\$where"):
        result_filter("f", None, None, {"$where": "1"})
    with pytest.raises(QueryError, match="unknown field 'password'"):
        result_filter(None, None, None, {"password": 1})
    since = datetime(2026, 1, 1, tzinfo=UTC)
    assert result_filter("f", since, None, {"inputs.x": 1}) == {
        "$and": [{"inputs.x": 1}, {"flow_name": "f"}, {"created": {"$gte": since}}]
    }
    assert result_filter(None, None, None, None) == {}


@pytest.mark.parametrize(
    ("field", "allow_created", "expected"),
    [
        ("outputs.y", False, ("outputs", "y")),
        ("inputs.a.b", True, ("inputs", "a", "b")),
        ("created", True, ("created",)),
    ],
)
def test_plot_path_accepts_inputs_outputs_and_time(
    field: str, allow_created: bool, expected: tuple[str, ...]
) -> None:
    assert plot_path(field, allow_created=allow_created) == expected


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("created", "cannot plot 'created'"),
        ("outputs", "cannot plot 'outputs'"),
        ("flow_name", "cannot plot 'flow_name'"),
        ("outputs.$gt", r"forbidden query operator '\$gt'"),
        ("secret.x", "unknown field 'secret'"),
    ],
)
def test_plot_path_refuses_anything_else(field: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        plot_path(field, allow_created=False)


def test_series_and_fields_keep_numbers_only() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    results = [
        Result(
            flow_name="f", inputs={"k": 1, "name": "a"}, outputs={"y": 2.5, "flag": True}, created=created
        ),
        Result(flow_name="f", inputs={"k": 2}, outputs={"y": "n/a"}, created=created),
        Result(flow_name="f", inputs={"k": 3}, outputs={"y": 7, "nested": {"z": 1}}, created=created),
    ]
    assert numeric_fields(results) == ["inputs.k", "outputs.nested.z", "outputs.y"]
    points, skipped = series_points(results, ("inputs", "k"), ("outputs", "y"))
    assert [(p.x, p.y) for p in points] == [(1, 2.5), (3, 7.0)] and skipped == 1
    over_time, _ = series_points(results, ("created",), ("outputs", "y"))
    assert over_time[0].x == created


def test_summaries_shorten_large_values_and_jsonable_keeps_them() -> None:
    import numpy as np

    values = {"n": 1, "f": float("nan"), "s": "x" * 200, "a": np.arange(6).reshape(2, 3), "l": [1, 2]}
    short = summarise(values)
    assert short["n"] == 1 and short["f"] == "nan" and len(short["s"]) == 80
    assert short["a"] == "<ndarray shape (2, 3)>" and short["l"] == "<list 2 items>"
    assert jsonable(values["a"]) == [[0, 1, 2], [3, 4, 5]]
    json.dumps(jsonable(values))


def test_config_names_every_bad_variable() -> None:
    with pytest.raises(ConfigurationError) as caught:
        DashboardConfig.from_environ(
            {"PREFECT_API_URL": "localhost:4200", "LUME_DASHBOARD_TIMEOUT_SECONDS": "-1"}
        )
    assert caught.value.variables == ("PREFECT_API_URL", "LUME_DASHBOARD_TIMEOUT_SECONDS")
    config = DashboardConfig.from_environ(
        {"PREFECT_API_URL": "http://prefect:4200/api/", "LUME_DASHBOARD_NAMESPACE": "lume"}
    )
    assert (config.prefect_ui_url, config.cluster_mode, config.access_token) == (
        "http://prefect:4200",
        True,
        None,
    )


def test_grafana_dashboard_queries_only_metrics_the_operator_exports() -> None:
    dashboard = json.loads(GRAFANA.read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    used = {name for expr in expressions for name in re.findall(r"\blume_operator_[a-z_]+", expr)}
    exported = {
        sample_name
        for family in metrics.REGISTRY.collect()
        for sample_name in [family.name, f"{family.name}_total", f"{family.name}_bucket"]
    }
    assert used and used <= exported, used - exported
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_flow_name_is_what_the_operator_registers() -> None:
    spec = {"entrypoint": "examples/flows/text_model.py:text_model"}
    derived = flow_view_from_resource({"metadata": {"name": "tm-1"}, "spec": spec}, "http://ui", {})
    assert derived.flow_name == "text-model"
    registered = flow_view_from_resource(
        {"metadata": {"name": "tm-1"}, "spec": spec, "status": {"deploymentName": "renamed/tm-1"}},
        "http://ui",
        {},
    )
    assert registered.flow_name == "renamed"
