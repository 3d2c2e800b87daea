"""The committed CRDs are exactly what the pydantic models generate, so schema and models cannot drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lume_operator import crds
from lume_platform.flowspec import FlowRunSpec, FlowSpec

ROOT = Path(__file__).resolve().parents[2]


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_committed_crds_match_the_models() -> None:
    for name, text in crds.rendered().items():
        committed = (ROOT / "charts" / "lume-platform" / "crds" / name).read_text()
        assert committed == text, f"{name} is stale: run `python -m lume_operator.crds`"


def _walk_properties(model_schema: dict[str, Any], crd_schema: dict[str, Any], path: str) -> None:
    """Every model field is in the CRD under the same name, with the same requiredness and type."""
    model_props = model_schema.get("properties", {})
    crd_props = crd_schema.get("properties", {})
    assert set(model_props) == set(crd_props), path
    assert set(model_schema.get("required", [])) == set(crd_schema.get("required", [])), path


def test_every_spec_field_is_in_the_crd() -> None:
    for model, crd in ((FlowSpec, crds.flow_crd()), (FlowRunSpec, crds.flow_run_crd())):
        spec = _schema(crd)["properties"]["spec"]
        _walk_properties(crds.spec_schema(model), spec, model.__name__)
        fields = {info.alias or name for name, info in model.model_fields.items()}
        assert fields == set(spec["properties"])


def test_crds_are_structural() -> None:
    def check(node: Any, path: str) -> None:
        if isinstance(node, dict):
            assert "anyOf" not in node and "$ref" not in node, path
            if "properties" in node:
                assert node.get("type") == "object", path
                for key, child in node["properties"].items():
                    check(child, f"{path}.{key}")
            if "items" in node:
                check(node["items"], f"{path}[]")
            if node.get("type") == "object" and "properties" not in node and not path.endswith(".metadata"):
                assert node.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in node, (
                    path
                )

    for crd in (crds.flow_crd(), crds.flow_run_crd()):
        check(_schema(crd), crd["metadata"]["name"])


def test_schedule_slugs_are_list_map_keys_and_cel_rules_exist() -> None:
    spec = _schema(crds.flow_crd())["properties"]["spec"]
    assert spec["properties"]["schedules"]["x-kubernetes-list-map-keys"] == ["slug"]
    rules = [rule["rule"] for rule in spec["properties"]["schedules"]["items"]["x-kubernetes-validations"]]
    assert any("has(self.cron)" in rule for rule in rules)
    assert "x-kubernetes-validations" in spec["properties"]["entrypoint"]
    run_spec = _schema(crds.flow_run_crd())["properties"]["spec"]
    assert run_spec["properties"]["flowRef"]["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"


def test_printer_columns_show_state_at_a_glance() -> None:
    for crd in (crds.flow_crd(), crds.flow_run_crd()):
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        names = {column["name"] for column in version["additionalPrinterColumns"]}
        assert {"Phase", "Age", "Message"} <= names


def test_example_manifests_are_valid_specs() -> None:
    documents = [
        document
        for path in sorted((ROOT / "examples").glob("**/*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        # examples/ also holds other YAML (e.g. a LUME-services flow-of-flows file).
        if isinstance(document, dict) and str(document.get("apiVersion", "")).startswith("lume.dev/")
    ]
    assert len(documents) >= 3, "examples/ should hold Flow manifests of the example flows"
    for document in documents:
        assert document["apiVersion"] == "lume.dev/v1alpha1"
        model = FlowSpec if document["kind"] == "Flow" else FlowRunSpec
        model.model_validate(document["spec"], by_alias=True)


def test_operator_rules_grant_no_wildcards() -> None:
    rules = yaml.safe_load((ROOT / "charts" / "lume-platform" / "files" / "operator-rules.yaml").read_text())
    assert isinstance(rules, list) and rules
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
