"""The Flow and FlowRun CustomResourceDefinitions, generated from the pydantic models so the two never drift.

After changing lume_platform.flowspec, `python -m lume_operator.crds` rewrites charts/lume-platform/crds/.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from lume_platform.flowspec import API_GROUP, API_VERSION, FlowRunSpec, FlowSpec

CRD_DIR = Path(__file__).resolve().parents[2] / "charts" / "lume-platform" / "crds"

_CONDITIONS = {
    "type": "array",
    "description": "Ready and Synced, as metav1.Condition.",
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
    "items": {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer", "format": "int64"},
        },
    },
}

FLOW_STATUS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "phase": {"type": "string", "enum": ["Pending", "Ready", "Error"]},
        "deploymentId": {"type": "string"},
        "flowId": {"type": "string"},
        "deploymentName": {"type": "string", "description": "flow-name/deployment-name in Prefect."},
        "workPool": {"type": "string"},
        "message": {"type": "string"},
        "conditions": _CONDITIONS,
        "observedGeneration": {"type": "integer", "format": "int64"},
        "lastSyncTime": {"type": "string", "format": "date-time"},
    },
}

FLOW_RUN_STATUS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "phase": {
            "type": "string",
            "enum": [
                "Pending",
                "Scheduled",
                "Running",
                "Completed",
                "Failed",
                "Crashed",
                "Cancelled",
                "Cancelling",
                "Paused",
                "Error",
            ],
        },
        "flowRunId": {"type": "string"},
        "flowRunName": {"type": "string"},
        "deploymentId": {"type": "string"},
        "startTime": {"type": "string", "format": "date-time"},
        "endTime": {"type": "string", "format": "date-time"},
        "message": {"type": "string"},
        "results": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "conditions": _CONDITIONS,
        "observedGeneration": {"type": "integer", "format": "int64"},
    },
}

_DROPPED_KEYS = {"title", "additionalProperties", "$defs"}


def _openapi(node: Any, defs: dict[str, Any]) -> Any:
    """Turn a pydantic JSON schema node into a structural OpenAPI v3 schema node."""
    if isinstance(node, list):
        return [_openapi(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        resolved = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[1]])
        resolved.update({key: value for key, value in node.items() if key != "$ref"})
        return _openapi(resolved, defs)
    if "anyOf" in node:
        # Optional[X] is anyOf [X, null]: an absent field says "null" in Kubernetes.
        choices = [choice for choice in node["anyOf"] if choice.get("type") != "null"]
        if len(choices) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {node}")
        merged = {key: value for key, value in node.items() if key != "anyOf"}
        merged.update(choices[0])
        return _openapi(merged, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "default" and value in (None, [], {}):
            continue
        if key == "properties":
            out[key] = {name: _openapi(child, defs) for name, child in value.items()}
        else:
            out[key] = _openapi(value, defs)
    additional = node.get("additionalProperties")
    if out.get("type") == "object" and "properties" not in out:
        if isinstance(additional, dict) and additional:
            out["additionalProperties"] = _openapi(additional, defs)
        else:
            # A free-form object (parameters, job variables, a composition): keep whatever the user wrote.
            out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def spec_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI schema of a spec model, with the manifest's camelCase names."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return _openapi(schema, schema.get("$defs", {}))


def _crd(
    kind: str,
    plural: str,
    short_names: list[str],
    spec: dict[str, Any],
    status: dict[str, Any],
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["lume"],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def flow_crd() -> dict[str, Any]:
    """flows.lume.dev: a Prefect deployment declared as a Kubernetes resource."""
    return _crd(
        "Flow",
        "flows",
        ["lf"],
        spec_schema(FlowSpec),
        FLOW_STATUS,
        [
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Flow", "type": "string", "jsonPath": ".status.deploymentName"},
            {"name": "Deployment", "type": "string", "jsonPath": ".status.deploymentId"},
            {"name": "Pool", "type": "string", "jsonPath": ".status.workPool"},
            {
                "name": "Synced",
                "type": "string",
                "jsonPath": ".status.conditions[?(@.type=='Synced')].status",
            },
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            {"name": "Message", "type": "string", "jsonPath": ".status.message"},
        ],
    )


def flow_run_crd() -> dict[str, Any]:
    """flowruns.lume.dev: one run of a Flow's deployment."""
    return _crd(
        "FlowRun",
        "flowruns",
        ["lfr"],
        spec_schema(FlowRunSpec),
        FLOW_RUN_STATUS,
        [
            {"name": "Flow", "type": "string", "jsonPath": ".spec.flowRef"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Run", "type": "string", "jsonPath": ".status.flowRunName"},
            {"name": "Run ID", "type": "string", "jsonPath": ".status.flowRunId", "priority": 1},
            {"name": "Started", "type": "date", "jsonPath": ".status.startTime"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            {"name": "Message", "type": "string", "jsonPath": ".status.message"},
        ],
    )


def rendered() -> dict[str, str]:
    """File name → YAML text of every CRD, as committed under charts/lume-platform/crds/."""
    header = "# Generated by `python -m lume_operator.crds` from lume_platform/flowspec.py: do not edit.\n"
    return {
        f"{crd['metadata']['name']}.yaml": header + yaml.safe_dump(crd, sort_keys=False, width=120)
        for crd in (flow_crd(), flow_run_crd())
    }


def main() -> int:
    """Write the CRD files."""
    CRD_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (CRD_DIR / name).write_text(text)
        print(f"wrote {CRD_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
