"""Flow-of-flows: the LUME-services composition YAML, validated, run as a Prefect parent flow of deployments.

A composition names child flows in order; each child may take parameters from the task results of an
earlier child (``mapped_parameters``)::

    name: text-pipeline
    project_name: examples
    composing_flows:
      - name: append-text                 # a Prefect flow name; its deployment is looked up
      - name: text-model
        mapped_parameters:
          text_file:
            parent_flow_name: append-text
            parent_task_name: save_text_file
            map_type: file                # raw | file | db
          text:
            parent_flow_name: append-text
            parent_task_name: append
            map_type: raw

``map_type`` says what the mapped task returned: ``raw`` any JSON value, passed on as is; ``file`` a
file representation (checked, passed on, the child reads it with ``load_file``); ``db`` a result
reference, whose stored result is loaded and indexed with ``attribute_index`` (``[outputs, y]``).

Each child runs through its deployment with ``run_deployment``, one after the other; the parent reads
mapped task results through the Prefect API (see :func:`lume_platform.tasks.read_task_result`).
Deployments are found by flow name: the only deployment of the flow, else the one named like the
composition's ``project_name``, else the one named by ``deployment``. The operator registers a
composition as a deployment of :func:`flow_of_flows` with the composition as its ``composition``
parameter.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from prefect import get_client, get_run_logger
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.deployments import run_deployment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lume_platform.errors import FlowOfFlowsError
from lume_platform.files import file_from_representation, is_file_representation
from lume_platform.results import ResultRef
from lume_platform.services import configure_services
from lume_platform.tasks import TASK_RUN_VISIBILITY_TIMEOUT, TaskResultError, lume_flow, read_task_result

DEFAULT_CHILD_TIMEOUT_SECONDS = 3600.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MappedParameter(_Model):
    """Where a child's parameter comes from: a task of an earlier child flow."""

    parent_flow_name: str = Field(min_length=1)
    parent_task_name: str = Field(min_length=1)
    map_type: Literal["raw", "file", "db"] = "raw"
    attribute_index: list[str | int] | None = None
    # Written in LUME-services' own example but never used there; accepted so such files load.
    parent_project_name: str | None = None

    @model_validator(mode="after")
    def _index_only_for_db(self) -> MappedParameter:
        if self.attribute_index is not None and self.map_type != "db":
            raise ValueError("attribute_index applies to map_type db only")
        return self


class ComposingFlow(_Model):
    """One child flow of a composition."""

    name: str = Field(min_length=1, description="The Prefect flow name.")
    project_name: str | None = None
    deployment: str | None = Field(default=None, min_length=1, description="Deployment name, if ambiguous.")
    mapped_parameters: dict[str, MappedParameter] = Field(default_factory=dict)


class FlowOfFlows(_Model):
    """A composition: child flows run in order, with outputs mapped onto later children's parameters."""

    name: str = Field(min_length=1)
    project_name: str | None = None
    labels: list[str] = Field(default_factory=list)
    composing_flows: list[ComposingFlow] = Field(min_length=1)

    @model_validator(mode="after")
    def _references_are_earlier_flows(self) -> FlowOfFlows:
        problems: list[str] = []
        seen: set[str] = set()
        for child in self.composing_flows:
            if child.name in seen:
                problems.append(f"flow {child.name!r} appears twice in composing_flows")
            for parameter, mapped in child.mapped_parameters.items():
                if mapped.parent_flow_name not in seen:
                    later = mapped.parent_flow_name in self.flow_names
                    where = "a later flow" if later else "no composing flow"
                    problems.append(
                        f"{child.name}.{parameter}: parent_flow_name {mapped.parent_flow_name!r} is {where}"
                        " (it must be an earlier composing flow)"
                    )
            seen.add(child.name)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def flow_names(self) -> list[str]:
        """The child flow names, in order."""
        return [child.name for child in self.composing_flows]


def parse_flow_of_flows(source: str | Path | Mapping[str, Any]) -> FlowOfFlows:
    """A composition from YAML text, a YAML file or a mapping; FlowOfFlowsError names every fault."""
    if isinstance(source, Mapping):
        data: Any = dict(source)
    else:
        text = source.read_text(encoding="utf-8") if isinstance(source, Path) else source
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FlowOfFlowsError(f"flow-of-flows YAML does not parse: {exc}") from exc
    if not isinstance(data, Mapping):
        raise FlowOfFlowsError(f"a flow-of-flows is a mapping, got {type(data).__name__}")
    try:
        return FlowOfFlows.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            problems.append(f"{where}: {error['msg']}" if where else error["msg"])
        raise FlowOfFlowsError("invalid flow-of-flows: " + "; ".join(problems)) from exc


@dataclass(frozen=True)
class ResolvedChild:
    """A child flow with the deployment that runs it."""

    flow: ComposingFlow
    deployment_name: str
    full_name: str
    default_parameters: dict[str, Any]
    # None when the child's signature cannot be known here (its code is not importable).
    parameters: dict[str, bool] | None  # name -> required


def _signature_from_schema(schema: Mapping[str, Any] | None) -> dict[str, bool] | None:
    properties = (schema or {}).get("properties")
    if not properties:
        return None
    required = set((schema or {}).get("required", []))
    return {name: name in required for name in properties}


def _signature_from_entrypoint(entrypoint: str | None, working_dir: str | None) -> dict[str, bool] | None:
    """The child's parameters from its code, when this process can import it (local mode, same image)."""
    if not entrypoint:
        return None
    from prefect.flows import load_flow_from_entrypoint

    path, _, _ = entrypoint.rpartition(":")
    if path.endswith(".py") and not os.path.isabs(path) and working_dir:
        entrypoint = os.path.join(working_dir, entrypoint)
    try:
        child = load_flow_from_entrypoint(entrypoint)
    except Exception:
        return None
    signature = inspect.signature(child.fn)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return {
        name: parameter.default is inspect.Parameter.empty
        for name, parameter in signature.parameters.items()
        if parameter.kind is not inspect.Parameter.VAR_POSITIONAL
    }


def _working_dir(pull_steps: list[dict[str, Any]] | None) -> str | None:
    for step in pull_steps or []:
        for name, options in step.items():
            if name.endswith("set_working_directory") and isinstance(options, Mapping):
                directory = options.get("directory")
                return str(directory) if directory else None
    return None


def resolve(
    composition: FlowOfFlows, parameters: Mapping[str, Mapping[str, Any]] | None = None
) -> list[ResolvedChild]:
    """Find each child's deployment and check parameters; one FlowOfFlowsError names every fault.

    Checked here: flows without a deployment, ambiguous deployments, explicit or mapped parameters a
    child does not take, required parameters nobody gives, parameters given both explicitly and mapped,
    and ``parameters`` for flows not in the composition. Task names are checked when the parent runs
    (a flow's tasks are known only once it has run).
    """
    parameters = parameters or {}
    problems: list[str] = []
    unknown = sorted(set(parameters) - set(composition.flow_names))
    if unknown:
        problems.append(f"parameters given for flows not in the composition: {', '.join(unknown)}")
    of_children = FlowFilter(name=FlowFilterName(any_=composition.flow_names))
    with get_client(sync_client=True) as client:
        flow_names = {flow_.id: flow_.name for flow_ in client.read_flows(flow_filter=of_children)}
        deployments = client.read_deployments(flow_filter=of_children)
    by_flow: dict[str, list[Any]] = {}
    for deployment in deployments:
        by_flow.setdefault(flow_names.get(deployment.flow_id, ""), []).append(deployment)

    resolved: list[ResolvedChild] = []
    for child in composition.composing_flows:
        candidates = by_flow.get(child.name, [])
        chosen = _choose_deployment(child, composition, candidates, problems)
        if chosen is None:
            continue
        signature = _signature_from_schema(chosen.parameter_openapi_schema) or _signature_from_entrypoint(
            chosen.entrypoint, _working_dir(chosen.pull_steps)
        )
        explicit = dict(parameters.get(child.name, {}))
        both = sorted(set(explicit) & set(child.mapped_parameters))
        if both:
            problems.append(f"{child.name}: parameters both given and mapped: {', '.join(both)}")
        if signature is not None:
            for origin, names in (("mapped", child.mapped_parameters), ("given", explicit)):
                strangers = sorted(set(names) - set(signature))
                if strangers:
                    problems.append(
                        f"{child.name}: {origin} parameters the flow does not take: {', '.join(strangers)}"
                        f" (it takes: {', '.join(signature) or 'none'})"
                    )
            provided = set(explicit) | set(child.mapped_parameters) | set(chosen.parameters or {})
            missing = sorted(name for name, needed in signature.items() if needed and name not in provided)
            if missing:
                problems.append(f"{child.name}: required parameters nobody gives: {', '.join(missing)}")
        resolved.append(
            ResolvedChild(
                flow=child,
                deployment_name=chosen.name,
                full_name=f"{child.name}/{chosen.name}",
                default_parameters=dict(chosen.parameters or {}),
                parameters=signature,
            )
        )
    if problems:
        raise FlowOfFlowsError(f"flow-of-flows {composition.name!r}: " + "; ".join(problems))
    return resolved


def _choose_deployment(
    child: ComposingFlow, composition: FlowOfFlows, candidates: list[Any], problems: list[str]
) -> Any | None:
    names = sorted(deployment.name for deployment in candidates)
    if not candidates:
        problems.append(f"unknown flow {child.name!r}: no deployment of it in Prefect")
        return None
    if child.deployment is not None:
        for deployment in candidates:
            if deployment.name == child.deployment:
                return deployment
        problems.append(f"flow {child.name!r} has no deployment {child.deployment!r} ({', '.join(names)})")
        return None
    if len(candidates) == 1:
        return candidates[0]
    project = child.project_name or composition.project_name
    for deployment in candidates:
        if project and deployment.name == project:
            return deployment
    problems.append(f"flow {child.name!r} has several deployments ({', '.join(names)}): set 'deployment'")
    return None


def _jsonable(value: Any) -> Any:
    # Parameters travel as JSON: numpy values from stored results become plain lists and numbers.
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def mapped_value(
    mapped: MappedParameter,
    parent_flow_run_id: Any,
    child: str,
    parameter: str,
    timeout: float = TASK_RUN_VISIBILITY_TIMEOUT,
) -> Any:
    """The value a mapped parameter gets from the finished parent flow run."""
    value = read_task_result(parent_flow_run_id, mapped.parent_task_name, timeout=timeout)
    where = f"{child}.{parameter} (from {mapped.parent_flow_name}.{mapped.parent_task_name})"
    if mapped.map_type == "raw":
        return value
    if mapped.map_type == "file":
        if not is_file_representation(value):
            raise FlowOfFlowsError(f"{where}: map_type file needs a file representation, got {value!r}")
        return file_from_representation(value).representation()
    try:
        ref = ResultRef.model_validate(value)
    except ValidationError as exc:
        raise FlowOfFlowsError(f"{where}: map_type db needs a result reference, got {value!r}") from exc
    result = configure_services().results_store.get(ref)
    try:
        return _jsonable(result.get(list(mapped.attribute_index or [])))
    except KeyError as exc:
        raise FlowOfFlowsError(f"{where}: {exc.args[0]}") from exc


def _mapped_values(plan: FlowOfFlows, child: ComposingFlow, flow_runs: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    problems: list[str] = []
    timeout = TASK_RUN_VISIBILITY_TIMEOUT
    for parameter, mapped in child.mapped_parameters.items():
        try:
            values[parameter] = mapped_value(
                mapped, flow_runs[mapped.parent_flow_name], child.name, parameter, timeout=timeout
            )
        except TaskResultError as exc:
            problems.append(f"{parameter}: {exc}")
            # The parent run has settled by now: further look-ups need not wait again.
            timeout = 0.0
    if problems:
        raise FlowOfFlowsError(f"flow-of-flows {plan.name!r}, child {child.name!r}: " + "; ".join(problems))
    return values


@lume_flow(name="flow-of-flows")
def flow_of_flows(
    composition: dict[str, Any],
    child_parameters: dict[str, dict[str, Any]] | None = None,
    child_timeout_seconds: float = DEFAULT_CHILD_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Run a flow-of-flows: each child deployment in order, mapped task results passed on.

    Parameters
    ----------
    composition
        The LUME-services flow-of-flows document (see the module docstring).
    child_parameters
        Explicit parameters per child flow name: ``{"append-text": {"text1": "a"}}``.
    child_timeout_seconds
        How long to wait for each child run.

    Returns
    -------
    dict
        ``{"flow_runs": {child flow name: flow run id}}``.
    """
    logger = get_run_logger()
    plan = parse_flow_of_flows(composition)
    children = resolve(plan, child_parameters)
    flow_runs: dict[str, Any] = {}
    for resolved_child in children:
        child = resolved_child.flow
        parameters = dict((child_parameters or {}).get(child.name, {}))
        parameters.update(_mapped_values(plan, child, flow_runs))
        logger.info("running %s with parameters %s", resolved_child.full_name, sorted(parameters))
        run = run_deployment(
            resolved_child.full_name,
            parameters=parameters,
            timeout=child_timeout_seconds,
            tags=[f"flow-of-flows:{plan.name}", *plan.labels],
        )
        state = run.state
        if state is None or not state.is_completed():
            what = state.type.value if state is not None else "no state"
            raise FlowOfFlowsError(
                f"flow-of-flows {plan.name!r}: child {child.name!r} (flow run {run.id}) ended {what}"
                + (f": {state.message}" if state is not None and state.message else "")
            )
        flow_runs[child.name] = run.id
    return {"flow_runs": {name: str(run_id) for name, run_id in flow_runs.items()}}


__all__ = [
    "ComposingFlow",
    "FlowOfFlows",
    "MappedParameter",
    "ResolvedChild",
    "flow_of_flows",
    "mapped_value",
    "parse_flow_of_flows",
    "resolve",
]
