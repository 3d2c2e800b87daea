"""Workflow graphs: plain functions composed into a DAG and run as a Prefect flow, cached by content."""

from lume_platform.graph.errors import CorruptEntryError, GraphError, GraphRunError
from lume_platform.graph.nodes import GraphInput, ItemRef, Node, NodeFunction, graph_input, node
from lume_platform.graph.storage import ENTRY_RESULT_TYPE, EntryInfo, GraphStorage, ResultsStoreIndex
from lume_platform.graph.workflow import Query, Workflow

__all__ = [
    "ENTRY_RESULT_TYPE",
    "CorruptEntryError",
    "EntryInfo",
    "GraphError",
    "GraphInput",
    "GraphRunError",
    "GraphStorage",
    "ItemRef",
    "Node",
    "NodeFunction",
    "Query",
    "ResultsStoreIndex",
    "Workflow",
    "graph_input",
    "node",
]
