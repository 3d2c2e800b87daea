"""Content-addressed storage of node results: one checksummed file per key, written atomically."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import pickle
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lume_platform.files import Filesystem, LocalFilesystem
from lume_platform.graph.errors import CorruptEntryError, GraphError

if TYPE_CHECKING:
    from lume_platform.results import ResultsStore
    from lume_platform.services import Services

logger = logging.getLogger(__name__)

_MAGIC = b"LUME-GRAPH-ENTRY 1\n"
SERIALIZER = "pickle"
# result_type of index documents in the results store.
ENTRY_RESULT_TYPE = "graph_cache_entry"


@dataclass(frozen=True)
class EntryInfo:
    """What the index records about one stored node result."""

    key: str
    node: str
    workflow: str
    function: str
    path: str
    sha256: str
    size: int
    serializer: str
    created: str
    flow_run_id: str | None = None


class CacheIndex(Protocol):
    """Where entry descriptions are recorded so they can be queried (the results store)."""

    def record(self, entry: EntryInfo) -> None:
        """Record one written entry."""

    def find(self, workflow: str | None = None, node: str | None = None) -> list[EntryInfo]:
        """Entries of a workflow and/or node, newest first."""


class ResultsStoreIndex:
    """The cache index kept in the platform's results store, one ``graph_cache_entry`` result per entry.

    Query it like any result: ``store.find({"result_type": "graph_cache_entry", "inputs.node": "s1"})``;
    ``flow_name`` is the workflow's name, ``inputs`` hold node, key and function, ``outputs`` the file.
    """

    def __init__(self, store: ResultsStore | Callable[[], ResultsStore]) -> None:
        # A callable defers connecting until the first record: graphs that never store need no database.
        self._store = store

    @property
    def store(self) -> ResultsStore:
        """The results store (connected on first use when given as a callable)."""
        return self._store() if callable(self._store) else self._store

    def record(self, entry: EntryInfo) -> None:
        from lume_platform.results import Result

        self.store.insert(
            Result(
                flow_name=entry.workflow,
                flow_run_id=entry.flow_run_id,
                inputs={"node": entry.node, "cache_key": entry.key, "function": entry.function},
                outputs={
                    "path": entry.path,
                    "sha256": entry.sha256,
                    "size": entry.size,
                    "serializer": entry.serializer,
                },
                tags=["lume-graph", f"node:{entry.node}"],
                created=dt.datetime.fromisoformat(entry.created),
                result_type=ENTRY_RESULT_TYPE,
            )
        )

    def find(self, workflow: str | None = None, node: str | None = None) -> list[EntryInfo]:
        query: dict[str, Any] = {"result_type": ENTRY_RESULT_TYPE}
        if workflow is not None:
            query["flow_name"] = workflow
        if node is not None:
            query["inputs.node"] = node
        return [
            EntryInfo(
                key=result.inputs["cache_key"],
                node=result.inputs["node"],
                workflow=result.flow_name,
                function=result.inputs["function"],
                path=result.outputs["path"],
                sha256=result.outputs["sha256"],
                size=result.outputs["size"],
                serializer=result.outputs["serializer"],
                created=result.created.isoformat(),
                flow_run_id=result.flow_run_id,
            )
            for result in self.store.find(query, sort="-created")
        ]

    def __repr__(self) -> str:
        return f"ResultsStoreIndex({self._store!r})"


class GraphStorage:
    """Node results keyed by content, each saved as soon as its node finishes.

    Entries live under ``prefix`` in a library filesystem (``local`` or the shared ``mounted`` one), whose
    atomic writes and path checks they rely on. Lookups go to the files only (one ``exists`` per node),
    so the cache works even when the index is unreachable; the index makes entries queryable.
    """

    def __init__(
        self,
        filesystem: Filesystem | str | os.PathLike[str],
        *,
        prefix: str = "graph-cache",
        index: CacheIndex | None = None,
    ) -> None:
        if isinstance(filesystem, (str, os.PathLike)):
            filesystem = LocalFilesystem(Path(filesystem).expanduser())
        if not isinstance(filesystem, Filesystem):
            raise GraphError(
                f"graph storage needs a directory or a lume_platform.files Filesystem, not {filesystem!r}"
            )
        self.filesystem = filesystem
        self.prefix = prefix.strip("/")
        self.index = index
        # The embedded index backend is SQLite: serialise records from the task threads.
        self._index_lock = threading.Lock()

    @classmethod
    def from_services(
        cls, filesystem: str | None = None, *, prefix: str = "graph-cache", services: Services | None = None
    ) -> GraphStorage:
        """Storage on a filesystem of ``configure_services()``, indexed in its results store.

        ``filesystem`` defaults to the mounted (shared) filesystem when one is configured, so that every
        flow-run pod of a cluster shares the cache, and to ``local`` otherwise.
        """
        if services is None:
            from lume_platform.services import configure_services

            services = configure_services()
        if filesystem is None:
            mounted = services.settings.mounted_filesystem
            filesystem = mounted.identifier if mounted is not None else "local"
        chosen = services.filesystem(filesystem)
        return cls(chosen, prefix=prefix, index=ResultsStoreIndex(lambda: services.results_store))

    def location(self, key: str) -> str:
        """Filename of a key's entry in the filesystem; a two-character fan-out keeps directories small."""
        if len(key) != 64 or any(char not in "0123456789abcdef" for char in key):
            raise GraphError(f"invalid cache key {key!r}")
        return f"{self.prefix}/{key[:2]}/{key}.entry" if self.prefix else f"{key[:2]}/{key}.entry"

    def contains(self, key: str) -> bool:
        """Whether an entry exists for ``key`` (its content is verified when loaded)."""
        return self.filesystem.exists(self.location(key))

    def load(self, key: str) -> Any:
        """The stored value; FileNotFoundError when absent, CorruptEntryError when it cannot be trusted."""
        data: bytes = self.filesystem.read_with(self.location(key), Path.read_bytes)  # type: ignore[assignment]
        header, payload = _split(data, key)
        if header.get("key") != key:
            raise CorruptEntryError(f"entry {key} holds the result of key {header.get('key')!r}")
        if header.get("size") != len(payload):
            raise CorruptEntryError(f"entry {key} is truncated: {len(payload)} of {header.get('size')} bytes")
        if header.get("sha256") != hashlib.sha256(payload).hexdigest():
            raise CorruptEntryError(f"entry {key} fails its sha256 checksum")
        if header.get("serializer") != SERIALIZER:
            raise CorruptEntryError(f"entry {key} uses unknown serializer {header.get('serializer')!r}")
        try:
            return pickle.loads(payload)
        except Exception as exc:  # a verified payload that does not unpickle: e.g. a class that moved
            raise CorruptEntryError(f"entry {key} cannot be unpickled: {exc}") from exc

    def save(
        self, key: str, value: Any, *, node: str, workflow: str, function: str, flow_run_id: str | None = None
    ) -> EntryInfo:
        """Write ``value`` under ``key`` atomically and record it in the index."""
        try:
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise GraphError(
                f"result of node {node!r} cannot be stored ({type(exc).__name__}: {exc}); "
                "exclude it from storage with workflow.query(...).exclude_from_storage()"
            ) from exc
        header = {
            "key": key,
            "node": node,
            "workflow": workflow,
            "function": function,
            "serializer": SERIALIZER,
            "size": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "created": _now_in_milliseconds().isoformat(),
        }
        head = json.dumps(header, sort_keys=True).encode() + b"\n"
        content = _MAGIC + head + payload
        path = self.filesystem.write_with(self.location(key), lambda target: target.write_bytes(content))
        entry = EntryInfo(path=str(path), flow_run_id=flow_run_id, **header)
        if self.index is not None:
            try:
                with self._index_lock:
                    self.index.record(entry)
            except Exception as exc:  # the file is the cache; a missing index row only hides it from queries
                logger.warning("could not index the cache entry of node %r (%s): %s", node, key, exc)
        return entry

    def entries(self, workflow: str | None = None, node: str | None = None) -> list[EntryInfo]:
        """Indexed entries of a workflow and/or node, newest first."""
        if self.index is None:
            raise GraphError("this graph storage has no index: pass index=... to GraphStorage")
        return self.index.find(workflow=workflow, node=node)

    def __repr__(self) -> str:
        return f"GraphStorage({self.filesystem!r}, prefix={self.prefix!r}, index={self.index!r})"


def _now_in_milliseconds() -> dt.datetime:
    # The results store keeps milliseconds (BSON dates): the file and its index entry then agree.
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _split(data: bytes, key: str) -> tuple[dict[str, Any], bytes]:
    if not data.startswith(_MAGIC):
        raise CorruptEntryError(f"entry {key} does not start with the entry marker")
    end = data.find(b"\n", len(_MAGIC))
    if end < 0:
        raise CorruptEntryError(f"entry {key} has no complete header")
    try:
        header = json.loads(data[len(_MAGIC) : end])
    except ValueError as exc:
        raise CorruptEntryError(f"entry {key} has an unreadable header: {exc}") from exc
    if not isinstance(header, dict):
        raise CorruptEntryError(f"entry {key} has an unreadable header")
    return header, data[end + 1 :]


__all__ = [
    "ENTRY_RESULT_TYPE",
    "CacheIndex",
    "EntryInfo",
    "GraphStorage",
    "ResultsStoreIndex",
]
