"""The MongoDB backend of the results store (any MongoDB wire-protocol server, FerretDB included)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError, InvalidURI, PyMongoError
from pymongo.errors import ConfigurationError as MongoConfigurationError

from lume_platform.errors import ConfigurationError, ResultNotFound, ResultsError, redact_url
from lume_platform.results.filters import AllOf, to_mongo
from lume_platform.results.models import Result, ResultRef
from lume_platform.results.store import RefLike, ResultsStore, as_ref, from_document, ref_of, to_document

DEFAULT_DATABASE = "lume"
DEFAULT_COLLECTION = "results"
_DUPLICATE_KEY = 11000
_REF_FIELDS = {"_id": 0, "unique_hash": 1, "flow_name": 1, "result_type": 1}
# The hash is also the document's `_id`: every server serves `_id` look-ups from an index (FerretDB's
# SQLite backend serves nothing else from one), so dedup and `get` stay fast however many results exist.
_RENAMED = {"unique_hash": "_id"}
# Insertion order, for ties in a sort: nanoseconds since the epoch, strictly growing within a process
# (bson's ObjectId() would do too, at 40x the cost of this counter).
_ORDER = "_order"
_order_lock = threading.Lock()
_last_order = 0


def _next_order() -> int:
    global _last_order
    with _order_lock:
        _last_order = max(_last_order + 1, time.time_ns())
        return _last_order

_HIDDEN = {"_id": 0, _ORDER: 0}
# Above this many duplicates in one bulk insert, one `$in` query beats one `_id` look-up each.
_SINGLE_LOOKUPS = 32
# Documents per insert_many round trip in the pipelined bulk path.
_CHUNK = 500


class MongoResultsStore(ResultsStore):
    """Results in one MongoDB collection, deduplicated by a unique index on ``unique_hash``.

    The indexes (unique ``unique_hash``; ``flow_name`` + ``created`` and ``created`` for the dashboard's
    by-flow and by-time reads) are created when the store connects, idempotently. Each document's ``_id``
    is its unique hash too, so that the dedup look-up and :meth:`get` are ``_id`` look-ups.
    """

    def __init__(self, url: str, database: str | None = None, *, collection: str = DEFAULT_COLLECTION,
                 timeout_seconds: float = 10.0) -> None:
        self.url = redact_url(url)
        timeout_ms = int(timeout_seconds * 1000)
        try:
            self._client: MongoClient[dict[str, Any]] = MongoClient(
                url, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
                appname="lume-platform",
            )
        except (InvalidURI, MongoConfigurationError, ValueError, TypeError) as error:
            raise ConfigurationError(f"invalid MongoDB URL {self.url}: {error}") from error
        default_database = self._client.get_default_database(DEFAULT_DATABASE).name
        self.database = database or default_database
        self._collection: Collection[dict[str, Any]] = self._client[self.database][collection]
        with self._translating(f"prepare the indexes of {self.database}.{collection}"):
            self._collection.create_index([("unique_hash", ASCENDING)], unique=True, name="unique_hash")
            self._collection.create_index([("flow_name", ASCENDING), ("created", DESCENDING)],
                                          name="flow_name_created")
            self._collection.create_index([("created", DESCENDING)], name="created")

    @contextmanager
    def _translating(self, action: str) -> Iterator[None]:
        """Turn driver errors into ResultsError naming the action and the (password-free) server."""
        try:
            yield
        except PyMongoError as error:
            raise ResultsError(f"could not {action} on MongoDB {self.url}: {error}") from error

    def _existing_refs(self, unique_hashes: list[str]) -> dict[str, ResultRef]:
        if len(unique_hashes) <= _SINGLE_LOOKUPS:
            found = (self._collection.find_one({"_id": h}, _REF_FIELDS) for h in unique_hashes)
            return {document["unique_hash"]: ref_of(document) for document in found if document}
        cursor = self._collection.find({"_id": {"$in": unique_hashes}}, _REF_FIELDS)
        return {document["unique_hash"]: ref_of(document) for document in cursor}

    @staticmethod
    def stored_document(result: Result) -> dict[str, Any]:
        """The exact document this backend stores for ``result`` (benchmarks insert it raw)."""
        document = to_document(result)
        document["_id"] = document["unique_hash"]
        document[_ORDER] = _next_order()
        return document

    def insert(self, result: Result) -> ResultRef:
        document = self.stored_document(result)
        with self._translating("insert a result"):
            try:
                # One round trip: the unique index, not a prior look-up, decides whether it is new.
                self._collection.insert_one(document)
            except DuplicateKeyError:
                existing = self._existing_refs([document["unique_hash"]])
                if document["unique_hash"] not in existing:
                    raise ResultsError(
                        f"result {document['unique_hash']} was reported as a duplicate but is not stored"
                    ) from None
                return existing[document["unique_hash"]]
        return ref_of(document)

    def _insert_chunk(self, documents: list[dict[str, Any]]) -> list[str]:
        """Insert ``documents`` (unordered); return the hashes that were stored already."""
        try:
            self._collection.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            write_errors = error.details.get("writeErrors", [])
            others = [e for e in write_errors if e.get("code") != _DUPLICATE_KEY]
            if others or error.details.get("writeConcernErrors"):
                raise ResultsError(f"could not insert results on MongoDB {self.url}: "
                                   f"{(others or error.details['writeConcernErrors'])[0]}") from error
            return [documents[e["index"]]["unique_hash"] for e in write_errors]
        return []

    def insert_many(self, results: Iterable[Result]) -> list[ResultRef]:
        hashes: list[str] = []
        refs: dict[str, ResultRef] = {}
        duplicates: list[str] = []
        pending: Future[list[str]] | None = None
        chunk: list[dict[str, Any]] = []
        # Encoding a chunk (Python) overlaps with the server storing the previous one (a wait on the
        # socket, which releases the GIL): the bulk path then costs about the server's time alone.
        with self._translating("insert results"), ThreadPoolExecutor(1, "lume-results-insert") as sender:
            for result in results:
                document = self.stored_document(result)
                unique_hash = document["unique_hash"]
                hashes.append(unique_hash)
                if unique_hash in refs:
                    continue  # equal results within one call are stored once
                refs[unique_hash] = ref_of(document)
                chunk.append(document)
                if len(chunk) == _CHUNK:
                    if pending is not None:
                        duplicates.extend(pending.result())
                    pending, chunk = sender.submit(self._insert_chunk, chunk), []
            if pending is not None:
                duplicates.extend(pending.result())
            if chunk:
                duplicates.extend(self._insert_chunk(chunk))
            refs.update(self._existing_refs(duplicates))
        return [refs[unique_hash] for unique_hash in hashes]

    def get(self, ref: RefLike) -> Result:
        unique_hash = as_ref(ref).unique_hash
        with self._translating("read a result"):
            document = self._collection.find_one({"_id": unique_hash}, _HIDDEN)
        if document is None:
            raise ResultNotFound(f"no stored result has unique_hash {unique_hash}")
        return from_document(document)

    def _find(self, tree: AllOf, sort: list[tuple[str, int]], limit: int | None, skip: int) -> list[Result]:
        order = [(_RENAMED.get(field, field), direction) for field, direction in sort]
        with self._translating("find results"):
            # Insertion order last: equal sort keys come back as on the embedded backend.
            cursor = self._collection.find(to_mongo(tree, _RENAMED), _HIDDEN,
                                           sort=[*order, (_ORDER, ASCENDING)], skip=skip, limit=limit or 0)
            return [from_document(document) for document in cursor]

    def _count(self, tree: AllOf) -> int:
        with self._translating("count results"):
            return self._collection.count_documents(to_mongo(tree, _RENAMED))

    def _distinct(self, field: str, tree: AllOf) -> list[Any]:
        with self._translating(f"list the distinct values of {field}"):
            return self._collection.distinct(_RENAMED.get(field, field), to_mongo(tree, _RENAMED))

    def delete_database(self) -> None:
        """Drop the whole database this store uses (for tests and benchmarks)."""
        with self._translating(f"drop database {self.database}"):
            self._client.drop_database(self.database)

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"MongoResultsStore({self.url!r}, {self.database!r})"
