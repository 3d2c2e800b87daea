"""The results-store interface shared by the MongoDB and the embedded backends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from pydantic import ValidationError

from lume_platform.errors import QueryError, ResultNotFound
from lume_platform.results.encoding import decode_value, encode_value
from lume_platform.results.filters import (
    AllOf,
    SortSpec,
    distinct_key,
    parse_filter,
    parse_path,
    parse_sort,
    sort_key,
)
from lume_platform.results.models import Result, ResultRef, compute_unique_hash

RefLike = ResultRef | Result | Mapping[str, Any] | str


def as_ref(ref: RefLike) -> ResultRef:
    """Accept a ResultRef, a stored Result, its JSON form, a LUME-services ``unique_rep`` or a bare hash.

    Raises
    ------
    QueryError
        If ``ref`` is none of these.
    """
    if isinstance(ref, ResultRef):
        return ref
    if isinstance(ref, Result):
        return ref.ref()
    try:
        if isinstance(ref, str):
            return ResultRef(unique_hash=ref, flow_name="")
        if isinstance(ref, Mapping) and isinstance(ref.get("query"), Mapping):
            # LUME-services passed {"project_name", "result_type_string", "query": {"unique_hash": …}}.
            return ResultRef(unique_hash=ref["query"].get("unique_hash"), flow_name="")
        if isinstance(ref, Mapping):
            return ResultRef.model_validate(ref)
    except ValidationError as error:
        raise QueryError(f"not a result reference: {ref!r} ({error.errors()[0]['msg']})") from error
    raise QueryError(f"not a result reference: {ref!r}")


def to_document(result: Result) -> dict[str, Any]:
    """The stored form of ``result``; its unique hash is recomputed from what is actually stored."""
    inputs = encode_value(result.inputs, "inputs")
    outputs = encode_value(result.outputs, "outputs")
    return {
        "unique_hash": compute_unique_hash(result.flow_name, inputs, outputs),
        "flow_name": result.flow_name,
        "flow_run_id": result.flow_run_id,
        "inputs": inputs,
        "outputs": outputs,
        "tags": list(result.tags),
        "created": result.created,
        "result_type": result.result_type,
    }


def from_document(document: Mapping[str, Any]) -> Result:
    """Invert :func:`to_document` (``created`` must already be a datetime; Result decodes the values)."""
    return Result(
        flow_name=document["flow_name"],
        flow_run_id=document.get("flow_run_id"),
        inputs=document.get("inputs", {}),
        outputs=document.get("outputs", {}),
        tags=document.get("tags", []),
        created=document["created"],
        result_type=document["result_type"],
        unique_hash=document["unique_hash"],
    )


def ref_of(document: Mapping[str, Any]) -> ResultRef:
    """The reference of a stored document."""
    return ResultRef(unique_hash=document["unique_hash"], flow_name=document["flow_name"],
                     result_type=document["result_type"])


class ResultsStore(ABC):
    """Stores flow results, one document per unique (flow name, inputs, outputs).

    Filters use the safe language of :mod:`lume_platform.results.filters`; ``sort`` takes ``"field"``,
    ``"-field"`` or ``[(field, 1|-1), …]``. Without a sort, results come in insertion order.
    """

    @abstractmethod
    def insert(self, result: Result) -> ResultRef:
        """Store ``result``; if an equal one (same unique hash) is stored already, return its reference."""

    @abstractmethod
    def insert_many(self, results: Iterable[Result]) -> list[ResultRef]:
        """Store many results in one round trip; references come back in the order given."""

    @abstractmethod
    def _find(self, tree: AllOf, sort: list[tuple[str, int]], limit: int | None, skip: int) -> list[Result]:
        """Backend part of :meth:`find`; every argument is validated already."""

    @abstractmethod
    def _count(self, tree: AllOf) -> int:
        """Backend part of :meth:`count`."""

    @abstractmethod
    def _distinct(self, field: str, tree: AllOf) -> list[Any]:
        """Backend part of :meth:`distinct`: encoded values, any order, duplicates allowed."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; the store cannot be used afterwards."""

    def find(self, filter: Mapping[str, Any] | None = None, *, sort: SortSpec = None,
             limit: int | None = None, skip: int = 0) -> list[Result]:
        """Results matching ``filter``, sorted, after skipping ``skip`` and at most ``limit`` of them."""
        tree = parse_filter(filter)
        sort_keys = parse_sort(sort)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise QueryError(f"limit must be a non-negative integer or None, got {limit!r}")
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            raise QueryError(f"skip must be a non-negative integer, got {skip!r}")
        if limit == 0:
            # MongoDB reads limit 0 as "no limit"; here it means what it says.
            return []
        return self._find(tree, sort_keys, limit, skip)

    def count(self, filter: Mapping[str, Any] | None = None) -> int:
        """How many stored results match ``filter``."""
        return self._count(parse_filter(filter))

    def distinct(self, field: str, filter: Mapping[str, Any] | None = None) -> list[Any]:
        """The distinct values of ``field`` among results matching ``filter``, in sort order.

        Array values count element by element, as in MongoDB.
        """
        parse_path(field)
        tree = parse_filter(filter)
        unique: dict[str, Any] = {}
        for value in self._distinct(field, tree):
            unique.setdefault(distinct_key(value), value)
        ordered = sorted(unique.values(), key=lambda v: sort_key({"v": v}, "v", 1))
        return [decode_value(v) for v in ordered]

    def find_one(self, filter: Mapping[str, Any] | None = None, *, sort: SortSpec = None) -> Result | None:
        """The first result matching ``filter``, or None."""
        found = self.find(filter, sort=sort, limit=1)
        return found[0] if found else None

    def get(self, ref: RefLike) -> Result:
        """The stored result a reference points to.

        Raises
        ------
        ResultNotFound
            If nothing is stored under the reference's unique hash.
        """
        unique_hash = as_ref(ref).unique_hash
        found = self.find({"unique_hash": unique_hash}, limit=1)
        if not found:
            raise ResultNotFound(f"no stored result has unique_hash {unique_hash}")
        return found[0]

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
