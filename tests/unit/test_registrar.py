"""The Registrar's pure parts: FlowSpec → desired deployment, the field diff and the schedule plan."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

from prefect.client.schemas.objects import DeploymentSchedule
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

from lume_platform.flowspec import parse_flow_spec
from lume_platform.registrar import (
    SET_WORKING_DIRECTORY,
    deployment_changes,
    desired_deployment,
    job_variables,
    schedule_plan,
)

COMPOSITION = {"name": "c", "composing_flows": [{"name": "append-text"}]}
SPEC = {
    "entrypoint": "examples/flows/append_text.py:append_text",
    "parameters": {"text1": "a"},
    "tags": ["b", "a"],
    "image": "img:1",
    "env": {"X": "1"},
    "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}},
    "workingDir": "/srv/flows",
}


def _as_prefect_holds_it(spec: dict[str, Any], **overrides: Any) -> DeploymentResponse:
    desired = desired_deployment("append-text", parse_flow_spec(spec), "pool")
    fields: dict[str, Any] = {
        "id": uuid4(),
        "name": desired.name,
        "flow_id": uuid4(),
        "entrypoint": desired.entrypoint,
        "work_pool_name": desired.work_pool_name,
        "work_queue_name": "default",
        "description": "",
        "version": None,
        "parameters": desired.parameters,
        "tags": list(reversed(desired.tags)),
        "job_variables": desired.job_variables,
        "pull_steps": desired.pull_steps,
        "paused": False,
        "enforce_parameter_schema": False,
        "labels": {},
    }
    fields.update(overrides)
    return DeploymentResponse.model_validate(fields)


def test_desired_deployment_from_spec() -> None:
    desired = desired_deployment("append-text", parse_flow_spec(SPEC), "default-pool")
    assert desired.full_name == "append-text/append-text"
    assert desired.work_pool_name == "default-pool"
    assert desired.pull_steps == [{SET_WORKING_DIRECTORY: {"directory": "/srv/flows"}}]
    assert desired.job_variables == {
        "image": "img:1",
        "env": {"X": "1"},
        "cpu_request": "100m",
        "memory_limit": "1Gi",
    }


def test_pull_step_defaults_to_the_current_directory() -> None:
    desired = desired_deployment("x", parse_flow_spec({"entrypoint": "pkg.mod:fn"}), "pool")
    assert desired.pull_steps == [{SET_WORKING_DIRECTORY: {"directory": "."}}]
    assert job_variables(parse_flow_spec({"entrypoint": "pkg.mod:fn"})) == {}


def test_composition_becomes_a_parameter_of_the_parent_flow() -> None:
    spec = parse_flow_spec({"composition": COMPOSITION, "parameters": {"p": 1}})
    desired = desired_deployment("c", spec, "pool")
    assert desired.entrypoint.startswith("lume_platform.flow_of_flows:")
    assert desired.parameters == {"p": 1, "composition": COMPOSITION}


def test_no_changes_when_prefect_matches() -> None:
    desired = desired_deployment("append-text", parse_flow_spec(SPEC), "pool")
    assert deployment_changes(desired, _as_prefect_holds_it(SPEC)) == {}


def test_changes_name_only_what_differs() -> None:
    desired = desired_deployment("append-text", parse_flow_spec({**SPEC, "paused": True}), "pool")
    actual = _as_prefect_holds_it(SPEC, parameters={"text1": "other"}, work_queue_name="elsewhere")
    assert deployment_changes(desired, actual) == {
        "parameters": {"text1": "a"},
        "paused": True,
        "work_queue_name": "default",
    }


def test_removed_description_and_limit_are_cleared() -> None:
    desired = desired_deployment("append-text", parse_flow_spec(SPEC), "pool")
    actual = _as_prefect_holds_it(SPEC, description="old", enforce_parameter_schema=True)
    assert deployment_changes(desired, actual) == {"description": "", "enforce_parameter_schema": False}


def _held(slug: str | None, schedule: Any, active: bool = True) -> DeploymentSchedule:
    return DeploymentSchedule(id=uuid4(), schedule=schedule, active=active, slug=slug)


def test_schedule_plan_matches_by_slug() -> None:
    spec = parse_flow_spec(
        {
            **SPEC,
            "schedules": [
                {"slug": "same", "cron": "0 * * * *"},
                {"slug": "changed", "interval": 60},
                {"slug": "toggled", "cron": "5 * * * *", "active": False},
                {"slug": "new", "rrule": "FREQ=DAILY"},
            ],
        }
    )
    same = _held("same", CronSchedule(cron="0 * * * *", timezone="UTC"))
    changed = _held("changed", IntervalSchedule(interval=timedelta(seconds=120)))
    toggled = _held("toggled", CronSchedule(cron="5 * * * *"))
    gone = _held("gone", CronSchedule(cron="1 * * * *"))
    unnamed = _held(None, CronSchedule(cron="2 * * * *"))
    plan = schedule_plan(spec.schedules, [same, changed, toggled, gone, unnamed])
    assert sorted(plan.delete) == sorted([gone.id, unnamed.id])
    assert {schedule_id for schedule_id, _ in plan.update} == {changed.id, toggled.id}
    assert [schedule.slug for schedule in plan.create] == ["new"]


def test_schedule_plan_is_empty_when_in_sync() -> None:
    spec = parse_flow_spec({**SPEC, "schedules": [{"slug": "every", "interval": 600}]})
    held = _held("every", IntervalSchedule(interval=timedelta(seconds=600)))
    assert not schedule_plan(spec.schedules, [held])


def test_duplicated_slugs_in_prefect_are_collapsed() -> None:
    spec = parse_flow_spec({**SPEC, "schedules": [{"slug": "every", "interval": 600}]})
    first = _held("every", IntervalSchedule(interval=timedelta(seconds=600)))
    second = _held("every", IntervalSchedule(interval=timedelta(seconds=600)))
    plan = schedule_plan(spec.schedules, [first, second])
    assert plan.delete == [second.id] and not plan.update and not plan.create
