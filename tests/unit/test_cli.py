"""The `lume` CLI's offline parts: manifests, parameters, paths, and errors that name what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lume_platform.cli import CliError, _parse_parameters, app, local_flow_spec, read_manifests
from lume_platform.flowspec import parse_flow_spec

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_example_manifest_reads() -> None:
    manifests = read_manifests(ROOT / "examples" / "flows" / "append-text.yaml")
    assert [(m.kind, m.name) for m in manifests] == [("Flow", "append-text")]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "no Flow or FlowRun"),
        ("- a\n- b\n", "must be a mapping"),
        ("apiVersion: v1\nkind: Flow\nmetadata: {name: x}\n", "apiVersion must be lume.dev/v1alpha1"),
        ("apiVersion: lume.dev/v1alpha1\nkind: Pod\nmetadata: {name: x}\n", "kind must be Flow or FlowRun"),
        ("apiVersion: lume.dev/v1alpha1\nkind: Flow\nspec: {}\n", "metadata.name is required"),
        ("a: [b\n", "cannot read it as YAML"),
    ],
)
def test_bad_manifests_are_named(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(CliError, match=words):
        read_manifests(path)


def test_parameters_take_yaml_values() -> None:
    assert _parse_parameters(["a=3", "b=true", "c=[1, 2]", "d=hello world", "e="]) == {
        "a": 3,
        "b": True,
        "c": [1, 2],
        "d": "hello world",
        "e": "",
    }
    with pytest.raises(CliError, match="key=value"):
        _parse_parameters(["novalue"])


def test_file_entrypoints_run_from_where_the_manifest_was_applied(tmp_path: Path) -> None:
    spec = local_flow_spec(parse_flow_spec({"entrypoint": "flows/f.py:f"}), tmp_path)
    assert spec.working_dir == str(tmp_path.resolve())
    relative = local_flow_spec(parse_flow_spec({"entrypoint": "pkg.m:f", "workingDir": "sub"}), tmp_path)
    assert relative.working_dir == str((tmp_path / "sub").resolve())
    module = local_flow_spec(parse_flow_spec({"entrypoint": "pkg.m:f"}), tmp_path)
    assert module.working_dir is None


def test_apply_rejects_an_invalid_spec_before_touching_prefect(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "apiVersion: lume.dev/v1alpha1\nkind: Flow\nmetadata: {name: bad}\n"
        "spec: {entrypoint: nocolon, schedules: [{slug: s}]}\n"
    )
    # An unroutable API URL: reaching Prefect would fail differently from the validation error.
    result = runner.invoke(app, ["--api-url", "http://127.0.0.1:9/api", "apply", "-f", str(path)])
    assert result.exit_code == 1
    assert "spec.entrypoint" in result.output and "spec.schedules[0]" in result.output


def test_apply_reports_an_unreachable_prefect_clearly() -> None:
    result = runner.invoke(
        app,
        ["--api-url", "http://127.0.0.1:9/api", "apply", "-f", str(ROOT / "examples/flows/append-text.yaml")],
    )
    assert result.exit_code == 1
    assert "unreachable" in result.output or "Prefect" in result.output, result.output
