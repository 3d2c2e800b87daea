"""LUME platform: the library that flows, the operator and the CLI share."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lume_platform.errors import (
    AlreadyExists,
    ConfigurationError,
    ForbiddenQueryError,
    LumeError,
    NotFound,
    QueryError,
    RegistryError,
    ResultNotFound,
    ResultsError,
    UnsafePathError,
)

if TYPE_CHECKING:
    from lume_platform.files import (
        File,
        HDF5File,
        ImageFile,
        JSONFile,
        NumpyFile,
        TextFile,
        YAMLFile,
        file_from_representation,
    )
    from lume_platform.flow_of_flows import FlowOfFlows, parse_flow_of_flows
    from lume_platform.registry import ModelRegistry
    from lume_platform.results import Result, ResultRef, ResultsStore, open_results_store
    from lume_platform.services import Services, configure_services, reset_services
    from lume_platform.settings import LumeSettings, load_settings
    from lume_platform.tasks import (
        configure_services_task,
        load_db_result,
        load_file,
        lume_flow,
        lume_task,
        read_task_result,
        save_db_result,
        save_file,
    )

__version__ = "0.1.0"

# Everything but the errors is loaded on first use: the operator imports `lume_platform.flowspec` and
# must not pay for SQLAlchemy, h5py or Prefect's task machinery (about 20 MB of its memory).
_LAZY_MODULES = {
    "lume_platform.files": (
        "File", "HDF5File", "ImageFile", "JSONFile", "NumpyFile", "TextFile", "YAMLFile",
        "file_from_representation",
    ),
    "lume_platform.services": ("Services", "configure_services", "reset_services"),
    "lume_platform.settings": ("LumeSettings", "load_settings"),
    "lume_platform.registry": ("ModelRegistry",),
    "lume_platform.results": ("Result", "ResultRef", "ResultsStore", "open_results_store"),
    "lume_platform.flow_of_flows": ("FlowOfFlows", "parse_flow_of_flows"),
    "lume_platform.tasks": (
        "configure_services_task", "load_db_result", "load_file", "lume_flow", "lume_task",
        "read_task_result", "save_db_result", "save_file",
    ),
}  # fmt: skip
_LAZY = {name: module for module, names in _LAZY_MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lume_platform' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "AlreadyExists",
    "ConfigurationError",
    "File",
    "FlowOfFlows",
    "ForbiddenQueryError",
    "HDF5File",
    "ImageFile",
    "JSONFile",
    "LumeError",
    "LumeSettings",
    "ModelRegistry",
    "NotFound",
    "NumpyFile",
    "QueryError",
    "RegistryError",
    "Result",
    "ResultNotFound",
    "ResultRef",
    "ResultsError",
    "ResultsStore",
    "Services",
    "TextFile",
    "UnsafePathError",
    "YAMLFile",
    "configure_services",
    "configure_services_task",
    "file_from_representation",
    "load_db_result",
    "load_file",
    "load_settings",
    "lume_flow",
    "lume_task",
    "open_results_store",
    "parse_flow_of_flows",
    "read_task_result",
    "reset_services",
    "save_db_result",
    "save_file",
]
