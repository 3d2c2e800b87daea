"""The example flows, deployed to the real test Prefect server and run by its process worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lume_platform.files import TextFile
from lume_platform.services import Services
from lume_platform.tasks import read_task_result

pytestmark = pytest.mark.integration

APPEND_TEXT = "examples/flows/append_text.py:append_text"
TEXT_MODEL = "examples/flows/text_model.py:text_model"


@pytest.mark.parametrize("filesystem", ["local", "mounted"])
def test_append_text_saves_the_joined_text(
    deploy: Any, run: Any, lume_env: dict[str, str], lume_services: Services, filesystem: str
) -> None:
    full_name = deploy(entrypoint=APPEND_TEXT, env=lume_env)
    filename = "examples/greeting.txt" if filesystem == "local" else "/lume-shared-data/examples/greeting.txt"
    flow_run = run(
        full_name,
        {"text1": "Hello ", "text2": filesystem, "filename": filename, "filesystem_identifier": filesystem},
    )
    assert flow_run.state.is_completed(), flow_run.state.message
    representation = flow_run.state.result()
    assert representation == {
        "filename": filename,
        "file_type": "TextFile",
        "filesystem_identifier": filesystem,
    }
    # The file is where the test's settings say: in LUME_HOME/files, or under the mount alias.
    root = (
        Path(lume_env["LUME_HOME"]) / "files"
        if filesystem == "local"
        else Path(lume_env["LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS"])
    )
    assert (root / "examples" / "greeting.txt").read_text() == f"Hello {filesystem}"
    assert (
        TextFile.model_validate({"filename": filename, "filesystem_identifier": filesystem}).read(
            lume_services.filesystem(filesystem)
        )
        == f"Hello {filesystem}"
    )
    # The named tasks' results are readable from this process, by task name.
    assert read_task_result(flow_run.id, "save_text_file") == representation
    assert read_task_result(flow_run.id, "append") == f"Hello {filesystem}"


def test_append_text_refuses_a_filename_outside_the_filesystem(
    deploy: Any, run: Any, lume_env: dict[str, str], tmp_path: Path
) -> None:
    full_name = deploy(entrypoint=APPEND_TEXT, env=lume_env)
    flow_run = run(full_name, {"text1": "a", "text2": "b", "filename": "../../escaped.txt"})
    assert flow_run.state.is_failed()
    assert "UnsafePathError" in (flow_run.state.message or "") or "outside" in (flow_run.state.message or "")
    assert not list(tmp_path.rglob("escaped.txt"))


def test_text_model_stores_its_result_and_reads_it_back(
    deploy: Any, run: Any, lume_env: dict[str, str], lume_services: Services
) -> None:
    full_name = deploy(entrypoint=TEXT_MODEL, env=lume_env)
    flow_run = run(full_name, {"text": "Hello LUME world"})
    assert flow_run.state.is_completed(), flow_run.state.message
    returned = flow_run.state.result()
    expected = {"characters": 16, "words": 3, "vowel_fraction": round(5 / 14, 6), "file_matches_text": None}
    assert returned["outputs"] == expected
    # The document is really in the test's MongoDB database, once, with the run's identity.
    store = lume_services.results_store
    assert store.count({}) == 1
    stored = store.get(returned["result"])
    assert stored.flow_name == "text-model"
    assert stored.flow_run_id == str(flow_run.id)
    assert stored.inputs == {"text": "Hello LUME world", "text_file": None}
    assert stored.outputs == expected
    assert read_task_result(flow_run.id, "save_db_result") == returned["result"]


def test_text_model_reads_a_file_saved_by_append_text(
    deploy: Any, run: Any, lume_env: dict[str, str], lume_services: Services
) -> None:
    append = run(deploy(entrypoint=APPEND_TEXT, env=lume_env), {"text1": "abc ", "text2": "def"})
    assert append.state.is_completed(), append.state.message
    model = run(deploy(entrypoint=TEXT_MODEL, env=lume_env), {"text_file": append.state.result()})
    assert model.state.is_completed(), model.state.message
    assert model.state.result()["outputs"] == {
        "characters": 7,
        "words": 2,
        "vowel_fraction": round(2 / 6, 6),
        "file_matches_text": None,
    }
