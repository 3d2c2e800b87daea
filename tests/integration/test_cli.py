"""The `lume` CLI against the real test Prefect server and worker: apply, run, read the result."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lume_platform.cli import app
from lume_platform.services import Services

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_apply_run_watch_and_results_through_the_cli(
    tmp_path: Path, prefect_api: str, work_pool_name: str, lume_env: dict[str, str], lume_services: Services
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    manifest = tmp_path / "flow.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "lume.dev/v1alpha1",
                "kind": "Flow",
                "metadata": {"name": name},
                "spec": {
                    "entrypoint": "examples/flows/text_model.py:text_model",
                    "workingDir": str(ROOT),
                    "parameters": {"text": f"Hello {name}"},
                    "env": lume_env,
                },
            }
        )
    )
    runner = CliRunner()
    env = {"PREFECT_API_URL": prefect_api, "LUME_WORK_POOL": work_pool_name, "COLUMNS": "200", **lume_env}

    applied = runner.invoke(app, ["apply", "-f", str(manifest)], env=env)
    assert applied.exit_code == 0, applied.output
    assert f"flow.lume.dev/{name} created" in applied.output
    again = runner.invoke(app, ["apply", "-f", str(manifest)], env=env)
    assert f"flow.lume.dev/{name} unchanged" in again.output, again.output

    ran = runner.invoke(app, ["run", name, "--watch", "--timeout", "300"], env=env)
    assert ran.exit_code == 0, ran.output
    assert "Completed" in ran.output
    unique_hash = re.search(r'"unique_hash": "([0-9a-f]+)"', ran.output)
    assert unique_hash, ran.output

    shown = runner.invoke(app, ["results", "--hash", unique_hash.group(1), "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    documents = json.loads(shown.output)
    assert [d["inputs"]["text"] for d in documents] == [f"Hello {name}"]
    assert documents[0]["outputs"]["words"] == 2

    missing = runner.invoke(app, ["run", f"no-such-{name}"], env=env)
    assert missing.exit_code != 0 and "no deployment named" in missing.output
