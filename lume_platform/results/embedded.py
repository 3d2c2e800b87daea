"""The embedded backend of the results store: JSON documents in one SQLite file, for local mode.

The fields that reads select and sort on (flow name, run id, type, hash, creation time) are columns with
indexes; inputs, outputs and tags are one JSON document. Conditions on the indexed columns go to SQL;
everything else is evaluated with the MongoDB matching rules of :mod:`lume_platform.results.filters`, so
both backends answer the same filter the same way.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from lume_platform.errors import ResultsError
from lume_platform.results.filters import (
    MISSING,
    SCALAR_FIELDS,
    AllOf,
    Condition,
    Node,
    matches,
    resolve,
    sort_key,
)
from lume_platform.results.models import Result, ResultRef
from lume_platform.results.store import ResultsStore, from_document, ref_of, to_document

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    unique_hash TEXT NOT NULL,
    flow_name TEXT NOT NULL,
    flow_run_id TEXT,
    result_type TEXT NOT NULL,
    created TEXT NOT NULL,
    document TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS results_unique_hash ON results (unique_hash);
CREATE INDEX IF NOT EXISTS results_flow_name_created ON results (flow_name, created);
CREATE INDEX IF NOT EXISTS results_created ON results (created);
"""

_INSERT = (
    "INSERT INTO results (unique_hash, flow_name, flow_run_id, result_type, created, document) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (unique_hash) DO NOTHING"
)
_COLUMNS = "unique_hash, flow_name, flow_run_id, result_type, created, document"
_SQL_COMPARISONS = {"$eq": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
# SQLite allows 32766 bound parameters; stay well below in IN lists.
_CHUNK = 500


def _stored_time(moment: datetime) -> str:
    # Fixed width (microseconds, +00:00), so that text order is time order.
    return moment.isoformat(timespec="microseconds")


def _row(document: dict[str, Any]) -> tuple[Any, ...]:
    body = {"inputs": document["inputs"], "outputs": document["outputs"], "tags": document["tags"]}
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (document["unique_hash"], document["flow_name"], document["flow_run_id"], document["result_type"],
            _stored_time(document["created"]), text)


def _document(row: Sequence[Any]) -> dict[str, Any]:
    unique_hash, flow_name, flow_run_id, result_type, created, body = row
    document: dict[str, Any] = json.loads(body)
    document.update(unique_hash=unique_hash, flow_name=flow_name, flow_run_id=flow_run_id,
                    result_type=result_type, created=datetime.fromisoformat(created))
    return document


def _sql_operand(condition: Condition) -> Any | None:
    """The SQL form of an operand whose column comparison is exact, or None if SQL cannot decide it."""
    operand = condition.operand
    if condition.path == ("created",):
        return _stored_time(operand) if isinstance(operand, datetime) else None
    return operand if isinstance(operand, str) else None


def _push_down(tree: AllOf) -> tuple[list[str], list[Any], list[Node]]:
    """Split a filter into SQL conditions on indexed columns and the rest, evaluated in Python.

    Only conditions whose SQL answer equals the MongoDB answer go to SQL: equality, ``$in`` and ranges on
    a scalar column with an operand of the column's own kind.
    """
    clauses: list[str] = []
    parameters: list[Any] = []
    rest: list[Node] = []
    pending: list[Node] = list(tree.children)
    while pending:
        node = pending.pop(0)
        if isinstance(node, AllOf):
            pending[:0] = node.children
            continue
        if isinstance(node, Condition) and len(node.path) == 1 and node.path[0] in SCALAR_FIELDS:
            column = node.path[0]
            if node.operator in _SQL_COMPARISONS and (value := _sql_operand(node)) is not None:
                clauses.append(f"{column} {_SQL_COMPARISONS[node.operator]} ?")
                parameters.append(value)
                continue
            if node.operator == "$in":
                values = [_sql_operand(Condition(node.path, "$eq", v)) for v in node.operand]
                if all(v is not None for v in values):
                    clauses.append(f"{column} IN ({', '.join('?' * len(values))})" if values else "0")
                    parameters.extend(values)
                    continue
        rest.append(node)
    return clauses, parameters, rest


class EmbeddedResultsStore(ResultsStore):
    """Results in a SQLite file (created with its directory if missing); safe across threads and processes."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            if str(self.path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: each statement is its own transaction unless we BEGIN one.
            self._connection = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                               check_same_thread=False)
        except (OSError, sqlite3.Error) as error:
            raise ResultsError(f"cannot open the embedded results store {self.path}: {error}") from error
        with self._translating("prepare"):
            version = self._connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ResultsError(f"{self.path} holds results schema version {version}; this LUME platform "
                                   f"reads version {SCHEMA_VERSION}: upgrade it")
            # WAL lets a reader (the dashboard) run while a flow writes.
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.executescript(_SCHEMA)
            self._connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _translating(self, action: str) -> Iterator[sqlite3.Connection]:
        """Serialise access to the connection and name the store in any SQLite error."""
        with self._lock:
            try:
                yield self._connection
            except sqlite3.Error as error:
                message = f"could not {action} the embedded results store {self.path}: {error}"
                raise ResultsError(message) from error

    def _existing_refs(self, connection: sqlite3.Connection,
                       unique_hashes: list[str]) -> dict[str, ResultRef]:
        refs: dict[str, ResultRef] = {}
        for start in range(0, len(unique_hashes), _CHUNK):
            chunk = unique_hashes[start : start + _CHUNK]
            rows = connection.execute(
                "SELECT unique_hash, flow_name, result_type FROM results "
                f"WHERE unique_hash IN ({', '.join('?' * len(chunk))})", chunk,
            )
            for unique_hash, flow_name, result_type in rows:
                refs[unique_hash] = ResultRef(unique_hash=unique_hash, flow_name=flow_name,
                                              result_type=result_type)
        return refs

    def insert(self, result: Result) -> ResultRef:
        document = to_document(result)
        row = _row(document)
        with self._translating("insert a result into") as connection:
            if connection.execute(_INSERT, row).rowcount == 1:
                return ref_of(document)
            return self._existing_refs(connection, [document["unique_hash"]])[document["unique_hash"]]

    def insert_many(self, results: Iterable[Result]) -> list[ResultRef]:
        documents = [to_document(result) for result in results]
        if not documents:
            return []
        rows = [_row(document) for document in documents]
        with self._translating("insert results into") as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                refs = self._existing_refs(connection, list({d["unique_hash"]: None for d in documents}))
                connection.executemany(_INSERT, rows)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        for document in documents:
            refs.setdefault(document["unique_hash"], ref_of(document))
        return [refs[document["unique_hash"]] for document in documents]

    def _select(self, tree: AllOf, sort: list[tuple[str, int]], limit: int | None,
                skip: int) -> list[dict[str, Any]]:
        clauses, parameters, rest = _push_down(tree)
        sql = f"SELECT {_COLUMNS} FROM results"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        in_sql = not rest and all(field in SCALAR_FIELDS for field, _ in sort)
        if in_sql:
            order = [f"{field} {'ASC' if direction == 1 else 'DESC'}" for field, direction in sort]
            sql += " ORDER BY " + ", ".join([*order, "id ASC"])
            if limit is not None or skip:
                sql += " LIMIT ? OFFSET ?"
                parameters = [*parameters, -1 if limit is None else limit, skip]
        else:
            sql += " ORDER BY id ASC"
        with self._translating("read") as connection:
            rows = connection.execute(sql, parameters).fetchall()
        documents = [_document(row) for row in rows]
        if in_sql:
            return documents
        remainder = AllOf(tuple(rest))
        documents = [d for d in documents if matches(remainder, d)]
        # Stable sorts, least significant key first, give a multi-key sort with mixed directions.
        for field, direction in reversed(sort):
            documents.sort(key=lambda d, f=field, s=direction: sort_key(d, f, s), reverse=direction == -1)
        return documents[skip:] if limit is None else documents[skip : skip + limit]

    def _find(self, tree: AllOf, sort: list[tuple[str, int]], limit: int | None, skip: int) -> list[Result]:
        return [from_document(document) for document in self._select(tree, sort, limit, skip)]

    def _count(self, tree: AllOf) -> int:
        clauses, parameters, rest = _push_down(tree)
        if rest:
            return len(self._select(tree, [], None, 0))
        sql = "SELECT COUNT(*) FROM results" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        with self._translating("count in") as connection:
            return int(connection.execute(sql, parameters).fetchone()[0])

    def _distinct(self, field: str, tree: AllOf) -> list[Any]:
        path = field.split(".")
        values: list[Any] = []
        for document in self._select(tree, [], None, 0):
            for value in resolve(document, path):
                if isinstance(value, list):
                    values.extend(value)
                elif value is not MISSING:
                    values.append(value)
        return values

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __repr__(self) -> str:
        return f"EmbeddedResultsStore({str(self.path)!r})"

