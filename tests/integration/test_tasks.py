"""The LUME tasks in flows run by the test worker; their results read back by task name from this process.

The flows below are deployed from this very file (the worker's working directory is the repository).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.engine import make_url

from lume_platform.files import JSONFile, NumpyFile, TextFile, YAMLFile
from lume_platform.results import Result
from lume_platform.services import Services
from lume_platform.settings import load_settings
from lume_platform.tasks import (
    TaskResultError,
    configure_services_task,
    load_db_result,
    load_file,
    lume_flow,
    read_task_result,
    save_db_result,
    save_file,
)

pytestmark = pytest.mark.integration

THIS_FILE = "tests/integration/test_tasks.py"
RESULT = {
    "flow_name": "task-tests",
    "inputs": {"x": [1.0, 2.0]},
    "outputs": {"y": [10.0, 20.0], "label": "ok"},
}


@lume_flow
def files_flow(filesystem_identifier: str) -> dict[str, Any]:
    """Save one file of several types under distinct task names, then load each back."""
    configure_services_task()
    saved = {
        "text": save_file.with_options(name="save_text")(
            "some text", "t/a.txt", filesystem_identifier, "TextFile"
        ),
        "json": save_file.with_options(name="save_json")(
            {"k": [1, 2]}, "t/b.json", filesystem_identifier, JSONFile
        ),
        "yaml": save_file.with_options(name="save_yaml")(
            {"a": 1}, "t/c.yaml", filesystem_identifier, "YAMLFile"
        ),
        "numpy": save_file.with_options(name="save_numpy")(
            np.arange(4), "t/d.npy", filesystem_identifier, NumpyFile
        ),
    }
    loaded = {kind: load_file(representation) for kind, representation in saved.items()}
    loaded["numpy"] = loaded["numpy"].tolist()
    return {"saved": saved, "loaded": loaded}


@lume_flow
def results_flow() -> dict[str, Any]:
    """Save the same result twice (two task names), then read values back with attribute_index."""
    first = save_db_result.with_options(name="save_first")(Result.model_validate(RESULT))
    second = save_db_result.with_options(name="save_second")(dict(RESULT))
    return {
        "first": first,
        "second": second,
        "y1": load_db_result(first, ["outputs", "y", 1]),
        "inputs": load_db_result(second, ["inputs"]),
    }


@lume_flow
def unnamed_saves_flow() -> None:
    """Two saves under the same (default) task name: ambiguous for read_task_result."""
    save_file("one", "u/1.txt")
    save_file("two", "u/2.txt")


@lume_flow
def configure_only_flow() -> dict[str, Any]:
    """Only configure the services (fails the run when the environment is wrong)."""
    return configure_services_task()


@pytest.mark.parametrize("filesystem", ["local", "mounted"])
def test_saves_are_told_apart_by_task_name(
    deploy: Any, run: Any, lume_env: dict[str, str], lume_services: Services, filesystem: str
) -> None:
    flow_run = run(
        deploy(entrypoint=f"{THIS_FILE}:files_flow", env=lume_env), {"filesystem_identifier": filesystem}
    )
    assert flow_run.state.is_completed(), flow_run.state.message
    returned = flow_run.state.result()
    assert returned["loaded"] == {
        "text": "some text",
        "json": {"k": [1, 2]},
        "yaml": {"a": 1},
        "numpy": [0, 1, 2, 3],
    }
    for kind, file_type, filename in (
        ("text", TextFile, "t/a.txt"),
        ("json", JSONFile, "t/b.json"),
        ("yaml", YAMLFile, "t/c.yaml"),
        ("numpy", NumpyFile, "t/d.npy"),
    ):
        representation = read_task_result(flow_run.id, f"save_{kind}")
        assert representation == returned["saved"][kind]
        assert representation == {
            "filename": filename,
            "file_type": file_type.__name__,
            "filesystem_identifier": filesystem,
        }
        # This process, configured like the run, finds the same file.
        assert lume_services.filesystem(filesystem).exists(filename)
    if filesystem == "mounted":
        assert (
            Path(lume_env["LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS"]) / "t" / "a.txt"
        ).read_text() == "some text"


def test_db_results_are_stored_once_and_loaded_by_attribute_index(
    deploy: Any, run: Any, lume_env: dict[str, str], lume_services: Services
) -> None:
    flow_run = run(deploy(entrypoint=f"{THIS_FILE}:results_flow", env=lume_env))
    assert flow_run.state.is_completed(), flow_run.state.message
    returned = flow_run.state.result()
    assert returned["first"] == returned["second"]
    assert returned["y1"] == 20.0
    assert returned["inputs"] == {"x": [1.0, 2.0]}
    assert lume_services.results_store.count({}) == 1
    assert read_task_result(flow_run.id, "save_first") == returned["first"]
    assert read_task_result(flow_run.id, "save_second") == returned["first"]


def test_reading_a_missing_or_ambiguous_task_result_names_the_problem(
    deploy: Any, run: Any, lume_env: dict[str, str]
) -> None:
    flow_run = run(deploy(entrypoint=f"{THIS_FILE}:unnamed_saves_flow", env=lume_env))
    assert flow_run.state.is_completed(), flow_run.state.message
    with pytest.raises(TaskResultError, match="2 times"):
        read_task_result(flow_run.id, "save_file")
    with pytest.raises(TaskResultError, match=r"no task 'save_text_file'.*save_file"):
        read_task_result(flow_run.id, "save_text_file", timeout=1)


def test_a_broken_environment_fails_the_run_naming_every_variable(
    deploy: Any, run: Any, lume_env: dict[str, str]
) -> None:
    broken = {**lume_env, "LUME_MODEL_DB__PORT": "not-a-port", "LUME_RESULTS_DB__USERNAME": "alone"}
    del broken["LUME_RESULTS_DB__URL"]
    broken["LUME_RESULTS_DB__HOST"] = "127.0.0.1"
    flow_run = run(deploy(entrypoint=f"{THIS_FILE}:configure_only_flow", env=broken))
    assert flow_run.state.is_failed()
    message = flow_run.state.message or ""
    for variable in (
        "LUME_MODEL_DB__PORT",
        "LUME_MODEL_DB__HOST",
        "LUME_RESULTS_DB__PORT",
        "LUME_RESULTS_DB__PASSWORD",
    ):
        assert variable in message, f"{variable} not named in: {message}"


def test_configure_services_task_reports_the_services(
    deploy: Any, run: Any, lume_env: dict[str, str]
) -> None:
    flow_run = run(deploy(entrypoint=f"{THIS_FILE}:configure_only_flow", env=lume_env))
    assert flow_run.state.is_completed(), flow_run.state.message
    assert flow_run.state.result() == {
        "home": lume_env["LUME_HOME"],
        "filesystems": {
            "local": str(Path(lume_env["LUME_HOME"]) / "files"),
            "mounted": lume_env["LUME_MOUNTED_FILESYSTEM__MOUNT_ALIAS"],
        },
        "model_db": "embedded",
        "results_db": "configured",
    }


def test_configure_services_reaches_mysql_and_mongodb_from_the_lume_services_variables(
    tmp_path: Path, mysql_url: str, tmp_mysql_database: str, mongodb_url: str, tmp_mongo_database: str
) -> None:
    mysql = make_url(mysql_url)
    mongo_host, mongo_port = mongodb_url.split("://", 1)[1].strip("/").split(":")
    environ = {
        "LUME_HOME": str(tmp_path),
        "LUME_MODEL_DB__HOST": str(mysql.host),
        "LUME_MODEL_DB__PORT": str(mysql.port),
        "LUME_MODEL_DB__USER": str(mysql.username),
        "LUME_MODEL_DB__PASSWORD": str(mysql.password),
        "LUME_MODEL_DB__DATABASE": tmp_mysql_database,
        "LUME_RESULTS_DB__HOST": mongo_host,
        "LUME_RESULTS_DB__PORT": mongo_port,
        "LUME_RESULTS_DB__DATABASE": tmp_mongo_database,
    }
    services = Services(load_settings(environ))
    try:
        services.model_registry.ensure_project("lume-services-names", "reached through LUME_MODEL_DB__*")
        assert [p.project_name for p in services.model_registry.list_projects()] == ["lume-services-names"]
        ref = services.results_store.insert(Result.model_validate(RESULT))
        assert services.results_store.get(ref).outputs == RESULT["outputs"]
        assert services.results_store.count({}) == 1
    finally:
        services.close()
    # Nothing of the embedded defaults was created: both databases are the configured servers.
    assert not (tmp_path / "registry.sqlite").exists()
    assert not (tmp_path / "results.sqlite").exists()
