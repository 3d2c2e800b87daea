"""FlowSpec and FlowRunSpec: the specs of the Flow and FlowRun resources, shared by operator and CLI."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

API_GROUP = "lume.dev"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"

# `package.module:function` or `path/to/file.py:function`; the CRD's CEL rule uses the same expression.
ENTRYPOINT_PATTERN = (
    r"^([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*|[^:\s]+\.py):[A-Za-z_][A-Za-z0-9_]*$"
)
ENTRYPOINT_MESSAGE = "must look like 'package.module:function' or 'path/to/file.py:function'"
# Slugs and deployment names travel in URLs and Kubernetes names: keep them DNS-label-like.
SLUG_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Kubernetes CPU/memory quantities, e.g. 500m, 2, 1.5, 512Mi, 1G.
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
# Prefect reserves work pool names that start with "prefect" (403 "reserved for internal use").
WORK_POOL_PATTERN = r"^[A-Za-z0-9][-A-Za-z0-9_.]*$"
WORK_POOL_MESSAGE = "must not start with 'prefect' (Prefect reserves those names)"
# The parent flow that runs a flow-of-flows composition (lume_platform.flow_of_flows, by the core engineer).
COMPOSITION_ENTRYPOINT = "lume_platform.flow_of_flows:flow_of_flows"
COMPOSITION_PARAMETER = "composition"


class InvalidSpec(ValueError):
    """A Flow or FlowRun spec that cannot be accepted; the message names every field at fault."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class _SpecModel(BaseModel):
    """camelCase on the wire (as in the CRDs), snake_case in Python; unknown fields are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
    )


class Schedule(_SpecModel):
    """One schedule of a deployment, reconciled in Prefect by its slug."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.cron), has(self.interval), has(self.rrule)].filter(x, x).size() == 1",
                    "message": "a schedule needs exactly one of cron, interval, rrule",
                }
            ]
        }
    )

    slug: str = Field(pattern=SLUG_PATTERN, max_length=63, description="Stable name of this schedule.")
    cron: str | None = Field(default=None, min_length=1, description="A cron expression.")
    interval: int | None = Field(default=None, ge=1, description="Seconds between runs.")
    rrule: str | None = Field(default=None, min_length=1, description="An RFC 5545 recurrence rule.")
    timezone: str | None = Field(
        default=None, min_length=1, description="IANA time zone, e.g. Europe/Berlin."
    )
    active: bool = Field(default=True, description="Whether Prefect schedules runs from it.")

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Schedule:
        given = [kind for kind in ("cron", "interval", "rrule") if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"needs exactly one of cron, interval, rrule (got {', '.join(given) or 'none'})")
        return self


class ResourceAmounts(_SpecModel):
    """CPU and memory as Kubernetes quantities."""

    cpu: str | None = Field(default=None, pattern=QUANTITY_PATTERN, description="e.g. 500m or 2.")
    memory: str | None = Field(default=None, pattern=QUANTITY_PATTERN, description="e.g. 512Mi or 2Gi.")


class Resources(_SpecModel):
    """Requests and limits of the flow-run pod (ignored by a process work pool)."""

    requests: ResourceAmounts | None = None
    limits: ResourceAmounts | None = None


class FlowSpec(_SpecModel):
    """What a Flow resource asks for: one Prefect deployment of one flow."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.entrypoint) != has(self.composition)",
                    "message": "a Flow needs exactly one of entrypoint, composition",
                }
            ]
        }
    )

    entrypoint: str | None = Field(
        default=None,
        max_length=512,
        description="package.module:function or path/to/file.py:function (not with composition).",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": f"self.matches(r'{ENTRYPOINT_PATTERN}')", "message": ENTRYPOINT_MESSAGE}
            ]
        },
    )
    image: str | None = Field(default=None, min_length=1, description="Image of the flow-run pod.")
    flow_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Prefect flow name; defaults to the function name with '-' for '_'.",
    )
    description: str | None = Field(default=None, max_length=5000)
    version: str | None = Field(default=None, min_length=1, max_length=200)
    parameters: dict[str, Any] = Field(default_factory=dict, description="Default parameters of the runs.")
    schedules: list[Schedule] = Field(
        default_factory=list,
        max_length=20,
        # The API server then rejects two schedules with one slug.
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["slug"]},
    )
    work_pool: str | None = Field(
        default=None,
        max_length=200,
        pattern=WORK_POOL_PATTERN,
        description="Defaults to the platform's pool.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "!self.lowerAscii().startsWith('prefect')", "message": WORK_POOL_MESSAGE}
            ]
        },
    )
    work_queue: str | None = Field(default=None, min_length=1, max_length=200)
    tags: list[str] = Field(
        default_factory=list, max_length=50, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment of the flow-run.")
    resources: Resources | None = None
    concurrency_limit: int | None = Field(default=None, ge=1, description="Most runs active at once.")
    paused: bool = Field(default=False, description="A paused deployment schedules no runs.")
    working_dir: str | None = Field(
        default=None,
        min_length=1,
        description="Directory the run starts in (relative entrypoints resolve here).",
    )
    composition: dict[str, Any] | None = Field(
        default=None,
        description="A flow-of-flows (LUME-services YAML schema) run by the library's parent flow.",
    )

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint_format(cls, entrypoint: str | None) -> str | None:
        if entrypoint is not None and not re.fullmatch(ENTRYPOINT_PATTERN, entrypoint):
            raise ValueError(ENTRYPOINT_MESSAGE)
        return entrypoint

    @field_validator("tags")
    @classmethod
    def _tags_are_words(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not tag.strip():
                raise ValueError("tags must not be empty strings")
        if len(set(tags)) != len(tags):
            raise ValueError("tags must be unique")
        return tags

    @field_validator("work_pool")
    @classmethod
    def _pool_not_reserved(cls, pool: str | None) -> str | None:
        if pool is not None and pool.lower().startswith("prefect"):
            raise ValueError(WORK_POOL_MESSAGE)
        return pool

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        bad = [name for name in env if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)]
        if bad:
            raise ValueError(f"invalid environment variable names: {', '.join(sorted(bad))}")
        return env

    @field_validator("schedules")
    @classmethod
    def _slugs_unique(cls, schedules: list[Schedule]) -> list[Schedule]:
        slugs = [schedule.slug for schedule in schedules]
        duplicated = sorted({slug for slug in slugs if slugs.count(slug) > 1})
        if duplicated:
            raise ValueError(f"schedule slugs must be unique: {', '.join(duplicated)}")
        return schedules

    @field_validator("composition")
    @classmethod
    def _composition_is_valid(cls, composition: dict[str, Any] | None) -> dict[str, Any] | None:
        if composition is not None:
            # The parent flow's own parser: a bad composition fails at apply time, not at run time.
            from lume_platform.flow_of_flows import parse_flow_of_flows

            parse_flow_of_flows(composition)
        return composition

    @model_validator(mode="after")
    def _entrypoint_or_composition(self) -> FlowSpec:
        if (self.entrypoint is None) == (self.composition is None):
            raise ValueError("needs exactly one of entrypoint, composition")
        return self

    @property
    def effective_entrypoint(self) -> str:
        """The entrypoint Prefect runs: the user's, or the library's parent flow for a composition."""
        return self.entrypoint if self.entrypoint is not None else COMPOSITION_ENTRYPOINT

    @property
    def effective_flow_name(self) -> str:
        """The Prefect flow name: explicit, else the function name as Prefect's @flow would name it."""
        if self.flow_name:
            return self.flow_name
        return self.effective_entrypoint.rsplit(":", 1)[1].replace("_", "-")


class FlowRunSpec(_SpecModel):
    """What a FlowRun resource asks for: one run of a Flow's deployment."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "a FlowRun's spec cannot change: create a new FlowRun"}
            ]
        }
    )

    flow_ref: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="The name of a Flow in the same namespace.",
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "flowRef is immutable"}]
        },
    )
    parameters: dict[str, Any] = Field(default_factory=dict, description="Overrides the Flow's parameters.")
    job_variables: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the work pool's job."
    )


def describe_errors(error: ValidationError, prefix: str = "spec") -> list[str]:
    """One 'spec.field[0].sub: message' line per problem, with the manifest's (camelCase) field names."""
    problems = []
    for item in error.errors():
        path = prefix
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{path}: {message}")
    return problems


def parse_flow_spec(spec: Any) -> FlowSpec:
    """Validate a Flow's spec (from a manifest or a CR body); raise InvalidSpec naming the fields."""
    if not isinstance(spec, dict):
        raise InvalidSpec(["spec: must be a mapping"])
    try:
        return FlowSpec.model_validate(dict(spec), by_alias=True)
    except ValidationError as error:
        raise InvalidSpec(describe_errors(error)) from None


def parse_flow_run_spec(spec: Any) -> FlowRunSpec:
    """Validate a FlowRun's spec; raise InvalidSpec naming the fields."""
    if not isinstance(spec, dict):
        raise InvalidSpec(["spec: must be a mapping"])
    try:
        return FlowRunSpec.model_validate(dict(spec), by_alias=True)
    except ValidationError as error:
        raise InvalidSpec(describe_errors(error)) from None
