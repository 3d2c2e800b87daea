"""The results store: flow results in MongoDB or in an embedded SQLite file, deduplicated, safely queried."""

from __future__ import annotations

from pathlib import Path

from lume_platform.errors import ConfigurationError, redact_url
from lume_platform.results.embedded import EmbeddedResultsStore
from lume_platform.results.encoding import decode_value, encode_value
from lume_platform.results.filters import parse_filter
from lume_platform.results.models import Result, ResultRef, compute_unique_hash
from lume_platform.results.mongo import MongoResultsStore
from lume_platform.results.store import ResultsStore, as_ref

_EMBEDDED_SCHEMES = ("sqlite:///", "file://")


def open_results_store(url: str | Path, database: str | None = None) -> ResultsStore:
    """Open the store a URL names: ``mongodb://`` or ``mongodb+srv://`` → MongoDB (in ``database``);
    ``sqlite:///relative/file``, ``sqlite:////absolute/file``, ``file:///…`` or a plain path → embedded.

    Raises
    ------
    ConfigurationError
        If the URL names another kind of server.
    """
    text = str(url)
    if text.startswith(("mongodb://", "mongodb+srv://")):
        return MongoResultsStore(text, database)
    for scheme in _EMBEDDED_SCHEMES:
        if text.startswith(scheme):
            path = text[len(scheme):]
            if not path:
                raise ConfigurationError(f"results store URL {text!r} names no file")
            return EmbeddedResultsStore(Path(path).expanduser())
    if text == "sqlite://":
        return EmbeddedResultsStore(Path(":memory:"))
    if "://" in text:
        raise ConfigurationError(f"unsupported results store URL {redact_url(text)}: use mongodb://…, "
                                 "sqlite:///path/to/results.db or a file path")
    if not text:
        raise ConfigurationError("the results store URL is empty")
    return EmbeddedResultsStore(Path(text).expanduser())


__all__ = [
    "EmbeddedResultsStore",
    "MongoResultsStore",
    "Result",
    "ResultRef",
    "ResultsStore",
    "as_ref",
    "compute_unique_hash",
    "decode_value",
    "encode_value",
    "open_results_store",
    "parse_filter",
]
