"""Prefect tasks with the LUME-services names, and reading a named task's result from a finished flow run.

Results of ``save_file`` and ``save_db_result`` are small JSON documents persisted by Prefect, so that a
flow-of-flows (or any client) can read them after the run, from another process. Where they are kept
is decided here, once, from the service environment (see :func:`task_result_dir`): on the mounted
filesystem when there is one (every pod of the platform sees it), otherwise under ``LUME_HOME``. Prefect
records such results by absolute path, so a reader needs only that directory, not the writer's settings.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

from prefect import flow, get_client, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun

from lume_platform.errors import LumeError
from lume_platform.files import File, file_from_representation, file_type_named
from lume_platform.results import Result, ResultRef
from lume_platform.services import configure_services
from lume_platform.settings import default_home

P = ParamSpec("P")
R = TypeVar("R")

# How long read_task_result waits for task runs to show up: Prefect records them from events,
# a moment after the flow run itself is reported finished.
TASK_RUN_VISIBILITY_TIMEOUT = 30.0


class TaskResultError(LumeError, LookupError):
    """A named task's result cannot be read from a flow run (absent, ambiguous or not completed)."""


def task_result_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where LUME tasks persist results: ``<mount>/.lume/task-results``, else ``$LUME_HOME/task-results``.

    Read from the raw environment, without validation, because it is needed at import time; a malformed
    environment is reported by ``configure_services()`` when the task runs.
    """
    environ = os.environ if environ is None else environ
    prefix = "LUME_MOUNTED_FILESYSTEM__"
    mount = environ.get(prefix + "MOUNT_ALIAS") or environ.get(prefix + "MOUNT_PATH")
    if mount and os.path.isabs(mount):
        return Path(mount) / ".lume" / "task-results"
    home = environ.get("LUME_HOME")
    base = Path(home).expanduser() if home else default_home()
    return base / "task-results"


def _task_run_name() -> str:
    # The run is named exactly like the task, so that a task renamed with .with_options(name=...) is
    # found by that name in a finished flow run (LUME-services looked results up by task name).
    from prefect.runtime import task_run

    return str(task_run.task_name)


def _persisted(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "task_run_name": _task_run_name,
        "persist_result": True,
        "result_serializer": "json",
        "result_storage": task_result_dir(),
        # One record per task run: a save happens every time it is called, never answered from a cache
        # (with cache_policy=NO_CACHE Prefect would not write the result at all).
        "result_storage_key": "{task_run.id}.json",
    }


def _transient(name: str) -> dict[str, Any]:
    return {"name": name, "task_run_name": _task_run_name, "persist_result": False, "cache_policy": NO_CACHE}


def lume_task(fn: Callable[P, R] | None = None, *, name: str | None = None, **options: Any) -> Any:
    """``@task``, with the result persisted as JSON where other processes can read it.

    Use it for tasks whose results a flow-of-flows maps (``map_type: raw``) or ``read_task_result``
    reads; the result must be JSON-serializable. Use as ``@lume_task`` or ``@lume_task(name=...)``.
    """

    def decorate(function: Callable[P, R]) -> Any:
        return task(function, **{**_persisted(name or function.__name__), **options})

    return decorate if fn is None else decorate(fn)


def lume_flow(fn: Callable[P, R] | None = None, **options: Any) -> Any:
    """``@flow``, with the return value persisted as JSON where other processes can read it.

    ``flow_run.state.result()`` then works from any process that sees :func:`task_result_dir`
    (a flow-of-flows, ``lume run``, tests). Use as ``@lume_flow`` or ``@lume_flow(name=...)``.
    """

    def decorate(function: Callable[P, R]) -> Any:
        persisted = {"persist_result": True, "result_serializer": "json", "result_storage": task_result_dir()}
        return flow(function, **{**persisted, **options})

    return decorate if fn is None else decorate(fn)


@task(**_transient("configure_services"))
def configure_services_task() -> dict[str, Any]:
    """Configure the services of this process from the environment (LUME-services' first task).

    Not needed before the other tasks (they configure on first use), but fails the flow early and
    clearly when the environment is wrong. Returns a summary without secrets.
    """
    services = configure_services()
    return {
        "home": str(services.settings.data_dir),
        "filesystems": {identifier: str(fs.root) for identifier, fs in sorted(services.filesystems.items())},
        "model_db": "configured" if services.settings.model_db is not None else "embedded",
        "results_db": "configured" if services.settings.results_db is not None else "embedded",
    }


@task(**_persisted("save_file"))
def save_file(
    obj: Any, filename: str, filesystem_identifier: str = "local", file_type: str | type[File] = "TextFile"
) -> dict[str, str]:
    """Write ``obj`` to ``filename`` as ``file_type``; return the file representation."""
    file = file_type_named(file_type)(filename=filename, filesystem_identifier=filesystem_identifier)
    file.write(obj, configure_services().filesystem(filesystem_identifier))
    return file.representation()


@task(**_transient("load_file"))
def load_file(file_rep: Mapping[str, Any]) -> Any:
    """Read the object stored in the file that ``file_rep`` names."""
    file = file_from_representation(file_rep)
    return file.read(configure_services().filesystem(file.filesystem_identifier))


@task(**_persisted("save_db_result"))
def save_db_result(result: Result | Mapping[str, Any]) -> dict[str, Any]:
    """Store a result in the results database (once: the same result again gives the same reference)."""
    if not isinstance(result, Result):
        result = Result.model_validate(dict(result))
    ref = configure_services().results_store.insert(result)
    return ref.model_dump(mode="json")


@task(**_transient("load_db_result"))
def load_db_result(
    result_rep: Mapping[str, Any] | ResultRef, attribute_index: Sequence[str | int] | None = None
) -> Any:
    """The stored result that ``result_rep`` names, or its value at ``attribute_index`` (``[outputs, y]``)."""
    ref = dict(result_rep) if isinstance(result_rep, Mapping) else result_rep
    result = configure_services().results_store.get(ref)
    return result.get(list(attribute_index or []))


def _matches_task(run: TaskRun, task_name: str) -> bool:
    # Our tasks name their runs after the task; other tasks get Prefect's "<task name>-<counter>".
    return run.name == task_name or re.fullmatch(re.escape(task_name) + r"-\d+", run.name) is not None


def read_task_result(
    flow_run_id: UUID | str, task_name: str, timeout: float = TASK_RUN_VISIBILITY_TIMEOUT
) -> Any:
    """The result of the task called ``task_name`` in a finished flow run, read through the Prefect API.

    Raises
    ------
    TaskResultError
        If the flow run has no such task (naming the tasks it has), several runs of it, or the run
        did not complete.
    """
    flow_run_id = UUID(str(flow_run_id))
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            in_flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            runs = client.read_task_runs(flow_run_filter=in_flow_run)
            named = [run for run in runs if _matches_task(run, task_name)]
            settled = all(run.state is not None and run.state.is_final() for run in named)
            if (named and settled) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    if not named:
        present = sorted({run.name for run in runs})
        raise TaskResultError(
            f"flow run {flow_run_id} has no task {task_name!r}; its task runs: {', '.join(present) or 'none'}"
        )
    if len(named) > 1:
        raise TaskResultError(
            f"flow run {flow_run_id} ran task {task_name!r} {len(named)} times"
            f" ({', '.join(run.name for run in named)}): name each call with .with_options(name=...)"
        )
    run = named[0]
    if run.state is None or not run.state.is_completed():
        state = run.state.type.value if run.state is not None else "unknown"
        raise TaskResultError(f"task {task_name!r} of flow run {flow_run_id} did not complete ({state})")
    return run.state.result(raise_on_failure=True)


__all__ = [
    "TaskResultError",
    "configure_services_task",
    "load_db_result",
    "load_file",
    "lume_flow",
    "lume_task",
    "read_task_result",
    "save_db_result",
    "save_file",
    "task_result_dir",
]
