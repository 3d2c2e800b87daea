"""Content-addressed storage of node results: one checksummed file per key, written atomically."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import pickle
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from lume_platform.files import Filesystem, LocalFilesystem
from lume_platform.graph.errors import CorruptEntryError, GraphError

logger = logging.getLogger(__name__)

_MAGIC = b"LUME-GRAPH-ENTRY 1\n"
SERIALIZER = "pickle"


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
        self.filesystem = filesystem
        self.prefix = prefix.strip("/")
        self.index = index
        # The embedded index backend is SQLite: serialise records from the task threads.
        self._index_lock = threading.Lock()

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
            "created": dt.datetime.now(dt.UTC).isoformat(),
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


def entry_as_dict(entry: EntryInfo) -> dict[str, Any]:
    """The entry as a plain dict (for index documents and reports)."""
    return asdict(entry)


__all__ = ["CacheIndex", "EntryInfo", "GraphStorage", "entry_as_dict"]
