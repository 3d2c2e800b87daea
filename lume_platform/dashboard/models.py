"""The dashboard's JSON API documents (pydantic models: they are also its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

HealthState = Literal["up", "down", "not configured"]


class ServiceHealth(BaseModel):
    """One service the platform needs, and whether it answers."""

    name: str
    state: HealthState
    detail: str = Field(default="", description="What was checked and what it found (e.g. free space).")
    error: str | None = Field(default=None, description="Why the service is down.")
    used_bytes: int | None = None
    free_bytes: int | None = None
    total_bytes: int | None = None


class ConditionView(BaseModel):
    """A status condition of a Flow resource."""

    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None


class ScheduleView(BaseModel):
    """One schedule of a flow: its slug and timing in words."""

    slug: str | None
    timing: str
    active: bool


class RunView(BaseModel):
    """One Prefect flow run."""

    id: str
    name: str
    flow_name: str
    deployment_name: str | None
    state_type: str | None
    state_name: str | None
    expected_start_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    duration_seconds: float | None
    prefect_url: str


class FlowView(BaseModel):
    """A Flow resource (cluster mode) or a registered deployment (local mode), with its last runs."""

    name: str
    namespace: str | None
    flow_name: str
    phase: str
    message: str
    conditions: list[ConditionView]
    schedules: list[ScheduleView]
    deployment_id: str | None
    prefect_url: str | None
    last_runs: list[RunView]


class HourBucket(BaseModel):
    """Runs that started in one hour, counted by state type."""

    hour: datetime
    counts: dict[str, int]


class Overview(BaseModel):
    """Everything the Overview page shows."""

    mode: Literal["local", "cluster"]
    generated: datetime
    health: list[ServiceHealth]
    flows_by_phase: dict[str, int]
    flows_error: str | None = Field(default=None, description="Why flows could not be listed.")
    runs_by_state: dict[str, int]
    runs_per_hour: list[HourBucket]
    runs_error: str | None = Field(default=None, description="Why runs could not be listed.")


class ResultSummary(BaseModel):
    """One stored result, as listed."""

    unique_hash: str
    flow_name: str
    flow_run_id: str | None
    result_type: str
    created: datetime
    tags: list[str]
    inputs: dict[str, Any] = Field(description="Scalars only; larger values are summarised.")
    outputs: dict[str, Any] = Field(description="Scalars only; larger values are summarised.")


class ResultDetail(BaseModel):
    """One stored result in full (arrays and tables in their JSON form)."""

    unique_hash: str
    flow_name: str
    flow_run_id: str | None
    result_type: str
    created: datetime
    tags: list[str]
    inputs: Any
    outputs: Any


class ResultList(BaseModel):
    """A page of results and how many match in total."""

    total: int
    results: list[ResultSummary]


class ResultFields(BaseModel):
    """The numeric fields of a flow's results, for choosing what to plot."""

    flow_name: str
    numeric_fields: list[str]


class SeriesPoint(BaseModel):
    """One plotted result."""

    x: float | datetime
    y: float
    unique_hash: str


class Series(BaseModel):
    """A numeric result field against time or against another field."""

    flow_name: str
    x: str
    y: str
    points: list[SeriesPoint]
    skipped: int = Field(description="Results lacking a numeric value at x or y.")


class DeploymentView(BaseModel):
    """One version of a model."""

    deployment_id: int
    version: str
    deploy_date: datetime
    source: str
    image: str | None
    is_live: bool


class ModelView(BaseModel):
    """A model and its deployments; ``live_deployment_id`` is the newest live one."""

    model_id: int
    author: str
    laboratory: str
    facility: str
    beampath: str
    description: str
    created: datetime
    deployments: list[DeploymentView]
    live_deployment_id: int | None


class ProjectView(BaseModel):
    """A project and the flows registered in it."""

    project_name: str
    description: str
    created: datetime
    flows: list[str]


class ModelsOverview(BaseModel):
    """The model registry's contents."""

    projects: list[ProjectView]
    models: list[ModelView]


class ErrorDocument(BaseModel):
    """Every error answer: what went wrong, in one sentence."""

    detail: str
