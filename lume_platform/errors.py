"""Domain exceptions of the LUME platform, one tree for the library, the operator and the CLI.

::

    LumeError
     ├── ConfigurationError         the service environment is missing or malformed
     ├── RegistryError              the model registry (MySQL / SQLite)
     │    ├── InvalidRecordError    a value is malformed (too long, empty, unknown field…)
     │    ├── AlreadyExists         a uniqueness constraint would be violated
     │    └── NotFound              no row matches
     ├── ResultsError               the results store (MongoDB / embedded)
     │    ├── QueryError            a filter, sort or field is malformed
     │    │    └── ForbiddenQueryError   an operator outside the safe filter language
     │    ├── ResultNotFound        no document matches a reference
     │    └── ResultEncodingError   a value cannot be stored without pickle
     ├── FilesError                 files and filesystems
     │    ├── UnsafePathError       a filename escapes its filesystem's root
     │    └── UnknownFilesystemError
     └── FlowOfFlowsError           a composition names unknown flows, tasks or parameters

Callers catch ``LumeError`` for "any platform failure" and the leaves for a specific remedy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for error messages and logs."""
    return re.sub(r"(//[^/@:]*):[^/@]*@", r"\1:***@", url)


class LumeError(Exception):
    """Base of every error the platform raises on purpose."""


class ConfigurationError(LumeError, ValueError):
    """The service environment is missing or malformed; ``variables`` names every one at fault."""

    def __init__(self, message: str, variables: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.variables: tuple[str, ...] = tuple(variables)


class RegistryError(LumeError):
    """A model-registry operation failed."""


class InvalidRecordError(RegistryError, ValueError):
    """A value given to the registry is malformed (too long, empty, unknown field…)."""


def _describe_key(key: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in key.items())


class AlreadyExists(RegistryError):
    """A row with the same unique key already exists in ``table``."""

    def __init__(self, table: str, key: Mapping[str, Any]) -> None:
        self.table = table
        self.key = dict(key)
        super().__init__(f"{table} already has a row with {_describe_key(self.key)}")


class NotFound(RegistryError, LookupError):
    """No row of ``table`` matches ``key``."""

    def __init__(self, table: str, key: Mapping[str, Any]) -> None:
        self.table = table
        self.key = dict(key)
        super().__init__(f"{table} has no row with {_describe_key(self.key)}")


class ResultsError(LumeError):
    """A results-store operation failed."""


class QueryError(ResultsError, ValueError):
    """A filter, sort specification or field name is malformed."""


class ForbiddenQueryError(QueryError):
    """A filter uses ``operator``, which the safe filter language does not allow."""

    def __init__(self, operator: str, reason: str) -> None:
        self.operator = operator
        super().__init__(f"forbidden query operator {operator!r}: {reason}")


class ResultNotFound(ResultsError, LookupError):
    """No stored result matches a reference or filter."""


class ResultEncodingError(ResultsError, TypeError):
    """A value in a result cannot be encoded as JSON-compatible data (pickle is never used)."""


class FilesError(LumeError):
    """A file or filesystem operation failed."""


class UnsafePathError(FilesError, ValueError):
    """A filename escapes the root of its filesystem (``..``, an outside absolute path, a symlink)."""


class UnknownFilesystemError(FilesError, LookupError):
    """No filesystem is configured under the requested identifier."""


class FlowOfFlowsError(LumeError, ValueError):
    """A flow-of-flows composition is invalid (unknown flows, tasks or parameters)."""


__all__ = [
    "AlreadyExists",
    "ConfigurationError",
    "FilesError",
    "FlowOfFlowsError",
    "ForbiddenQueryError",
    "InvalidRecordError",
    "LumeError",
    "NotFound",
    "QueryError",
    "RegistryError",
    "ResultEncodingError",
    "ResultNotFound",
    "ResultsError",
    "UnknownFilesystemError",
    "UnsafePathError",
    "redact_url",
]
