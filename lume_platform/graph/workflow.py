"""A workflow over a graph's outputs: regex task options, flow options, storage, and the Prefect flow."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow
from prefect.flows import Flow as FlowClass
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import Task as TaskClass
from prefect.types import BANNED_CHARACTERS, WITHOUT_BANNED_CHARACTERS

from lume_platform.graph.errors import GraphError
from lume_platform.graph.execution import CompiledGraph, CompiledNode
from lume_platform.graph.keys import digest, function_identity
from lume_platform.graph.nodes import GraphInput, ItemRef, Node, Ref
from lume_platform.graph.storage import GraphStorage

# Every option prefect.task / prefect.flow accepts, read from the installed Prefect (the ground truth).
TASK_OPTIONS = frozenset(inspect.signature(TaskClass.__init__).parameters) - {"self", "fn"}
FLOW_OPTIONS = frozenset(inspect.signature(FlowClass.__init__).parameters) - {"self", "fn"}


class Query:
    """The nodes of a workflow whose names fully match a regular expression."""

    def __init__(self, workflow: Workflow, pattern: str, names: list[str]) -> None:
        self.workflow = workflow
        self.pattern = pattern
        self.names = names

    def set_task_args(self, options: Mapping[str, Any]) -> Query:
        """Apply Prefect task options to the matched nodes, merged over options set by earlier queries.

        Later values replace earlier ones key by key, except ``tags``, which accumulate.
        """
        self.workflow._add_task_options(self.names, _check_options(options, TASK_OPTIONS, "task"))
        return self

    def exclude_from_storage(self) -> Query:
        """Never store or read the matched nodes' results (side effects, unpicklable results)."""
        self.workflow._exclude_from_storage(self.names)
        return self

    def __repr__(self) -> str:
        return f"Query({self.pattern!r} -> {self.names})"


class Workflow:
    """The graph that computes ``outputs``, with its options; ``generate_flow()`` gives the Prefect flow.

    Only the outputs' ancestors are part of the workflow. Node names (explicit ``set_name`` or the
    function's name, numbered ``name_1``, ``name_2``... when several nodes share it) are unique; two nodes
    given the same explicit name are an error.
    """

    def __init__(self, *outputs: Ref, name: str = "graph", description: str | None = None) -> None:
        if not outputs:
            raise GraphError("a workflow needs at least one output node")
        for output in outputs:
            if not isinstance(output, Ref):
                raise GraphError(f"workflow output {output!r} is not a graph node (call a @node function)")
            if isinstance(output.base, GraphInput):
                raise GraphError(f"workflow output {output!r} is a graph input, not a node")
        if not isinstance(name, str) or not re.fullmatch(WITHOUT_BANNED_CHARACTERS, name):
            raise GraphError(
                f"invalid workflow name {name!r}: it names the Prefect flow, so avoid {BANNED_CHARACTERS}"
            )
        self.name = name
        self.description = description
        self.outputs: tuple[Node | ItemRef, ...] = outputs  # type: ignore[assignment]
        self._order = _topological_order([output.base for output in outputs])  # type: ignore[misc]
        self._names = _assign_names(self._order)
        self._by_name = {name: node for node, name in zip(self._order, self._names.values(), strict=True)}
        self.inputs = _collect_inputs(self._order)
        self._task_options: dict[str, dict[str, Any]] = {name: {} for name in self._by_name}
        self._excluded: set[str] = set()
        self._flow_options: dict[str, Any] = {}
        self._storage: GraphStorage | None = None
        self._flow: Flow[..., Any] | None = None

    # --- inspection -------------------------------------------------------------------------------
    @property
    def node_names(self) -> list[str]:
        """Names of the workflow's nodes in a topological order."""
        return list(self._by_name)

    def name_of(self, node: Node) -> str:
        """The name a node has in this workflow."""
        try:
            return self._names[id(node)]
        except KeyError:
            raise GraphError(f"{node!r} is not part of workflow {self.name!r}") from None

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise GraphError(f"workflow {self.name!r} has no node named {name!r}") from None

    def task_options(self, name: str) -> dict[str, Any]:
        """The merged Prefect task options of node ``name`` (before the platform's defaults)."""
        self.node(name)
        return dict(self._task_options[name])

    def edges(self) -> list[tuple[str, str]]:
        """``(upstream, downstream)`` node-name pairs."""
        return [
            (self._names[id(up)], self._names[id(node)])
            for node in self._order
            for up in node.upstream()
            if isinstance(up, Node)
        ]

    # --- options ----------------------------------------------------------------------------------
    def query(self, pattern: str) -> Query:
        """The nodes whose names fully match ``pattern`` (a regular expression); none is an error."""
        try:
            compiled = re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise GraphError(f"invalid node-name pattern {pattern!r}: {exc}") from None
        names = [name for name in self._by_name if compiled.fullmatch(name)]
        if not names:
            raise GraphError(
                f"pattern {pattern!r} matches no node of workflow {self.name!r} (full match); "
                f"nodes: {', '.join(self._by_name)}"
            )
        return Query(self, pattern, names)

    def apply_task_rules(self, rules: list[Mapping[str, Any]] | str | os.PathLike[str]) -> Workflow:
        """Apply an ordered list of ``{match: regex, task: {...options}, store: false?}`` rules.

        The declarative form of ``query(match).set_task_args(task)``, for options kept in a YAML or
        JSON file (give its path) next to the workflow: later rules merge over earlier ones. Every rule
        is checked before any is applied, so a bad file changes nothing.
        """
        if isinstance(rules, (str, os.PathLike)):
            path = Path(rules)
            try:
                rules = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise GraphError(f"cannot read task rules from {path}: {exc}") from None
        if not isinstance(rules, list):
            raise GraphError(f"task rules must be a list of {{match, task, store}} mappings, not {rules!r}")
        checked: list[tuple[Query, dict[str, Any], bool]] = []
        for index, rule in enumerate(rules):
            where = f"task rule {index}"
            if not isinstance(rule, Mapping) or "match" not in rule:
                raise GraphError(f"{where}: needs a 'match' pattern, got {rule!r}")
            unknown = sorted(set(rule) - {"match", "task", "store"})
            if unknown:
                raise GraphError(f"{where}: unknown key(s) {unknown}; a rule has match, task and store")
            store = rule.get("store", True)
            if not isinstance(store, bool):
                raise GraphError(f"{where}: 'store' must be true or false, not {store!r}")
            try:
                query = self.query(rule["match"])
                options = _check_options(rule.get("task") or {}, TASK_OPTIONS, "task")
            except GraphError as exc:
                raise GraphError(f"{where}: {exc}") from None
            checked.append((query, options, store))
        for query, options, store in checked:
            query.set_task_args(options)
            if not store:
                query.exclude_from_storage()
        return self

    def set_flow_options(self, options: Mapping[str, Any]) -> Workflow:
        """Prefect flow options (``task_runner``, ``retries``, ``log_prints``...) over the defaults."""
        self._flow_options.update(_check_options(options, FLOW_OPTIONS, "flow"))
        self._flow = None
        return self

    def set_storage(self, storage: GraphStorage | str | Any | None) -> Workflow:
        """Cache node results in ``storage`` (a GraphStorage or a directory); None turns caching off."""
        if storage is not None and not isinstance(storage, GraphStorage):
            storage = GraphStorage(storage)
        self._storage = storage
        self._flow = None
        return self

    @property
    def storage(self) -> GraphStorage | None:
        """The storage results are cached in, if any."""
        return self._storage

    def _add_task_options(self, names: list[str], options: dict[str, Any]) -> None:
        for name in names:
            merged = self._task_options[name]
            for option, value in options.items():
                if option == "tags":
                    merged["tags"] = list(dict.fromkeys([*merged.get("tags", []), *value]))
                else:
                    merged[option] = value
        self._flow = None

    def _exclude_from_storage(self, names: list[str]) -> None:
        self._excluded.update(names)
        self._flow = None

    # --- the flow ---------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """A digest of the graph's structure and code, used as the flow's version."""
        return digest(
            [
                [name, node.function.qualified_name, _function_version_or_name(node)]
                for name, node in self._by_name.items()
            ]
            + [self.edges()]
        )[:16]

    def compile(self) -> CompiledGraph:
        """The run plan of the current graph and options (what a generated flow executes)."""
        return CompiledGraph(
            workflow_name=self.name,
            nodes=[
                CompiledNode(
                    name=name,
                    node=node,
                    task_options=dict(self._task_options[name]),
                    stored=self._storage is not None and name not in self._excluded,
                )
                for name, node in self._by_name.items()
            ],
            names={id(node): name for name, node in self._by_name.items()},
            outputs=self.outputs,
            storage=self._storage,
        )

    def generate_flow(self) -> Flow[..., Any]:
        """A Prefect flow whose parameters are the graph's inputs; it can run many times and be deployed."""
        if self._flow is not None:
            return self._flow
        compiled = self.compile()
        body = compiled.flow_function(self.inputs)
        options: dict[str, Any] = {
            "name": self.name,
            "version": self.fingerprint(),
            "description": self.description,
            "task_runner": ThreadPoolTaskRunner(),
        }
        options.update(self._flow_options)
        self._flow = FlowClass(body, **options)
        return self._flow

    def run(self, **inputs: Any) -> Any:
        """Run the graph now as a Prefect flow run; one output gives its value, several a tuple."""
        return self.generate_flow()(**inputs)

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, nodes={self.node_names}, inputs={list(self.inputs)})"


def _function_version_or_name(node: Node) -> str:
    try:
        return function_identity(node.function)
    except GraphError:
        return node.function.qualified_name


def _check_options(options: Mapping[str, Any], allowed: frozenset[str], kind: str) -> dict[str, Any]:
    if not isinstance(options, Mapping):
        raise GraphError(f"{kind} options must be a mapping of option name to value, not {options!r}")
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise GraphError(f"unknown Prefect {kind} option(s) {unknown}; allowed: {sorted(allowed)}")
    checked = dict(options)
    if "tags" in checked:
        tags = checked["tags"]
        if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags or ()):
            raise GraphError(f"{kind} option 'tags' must be a list of strings, not {tags!r}")
        checked["tags"] = list(tags)
    return checked


def _topological_order(roots: list[Node]) -> list[Node]:
    """Ancestors of ``roots`` (roots included), each after its upstream nodes, in argument order."""
    order: list[Node] = []
    done: set[int] = set()
    # Iterative depth-first post-order: long chains must not hit the recursion limit.
    stack: list[tuple[Node, bool]] = [(root, False) for root in reversed(roots)]
    while stack:
        current, expanded = stack.pop()
        if id(current) in done:
            continue
        if expanded:
            done.add(id(current))
            order.append(current)
            continue
        stack.append((current, True))
        for parent in reversed(current.upstream()):
            if isinstance(parent, Node) and id(parent) not in done:
                stack.append((parent, False))
    return order


def _assign_names(order: list[Node]) -> dict[int, str]:
    explicit: dict[str, Node] = {}
    for current in order:
        name = current.explicit_name
        if name is None:
            continue
        if name in explicit:
            raise GraphError(
                f"two nodes are named {name!r} ({explicit[name]!r} and {current!r}); node names must be "
                "unique within a workflow: give one of them another name with set_name()"
            )
        explicit[name] = current
    by_default: dict[str, list[Node]] = {}
    for current in order:
        if current.explicit_name is None:
            by_default.setdefault(current.function.default_name, []).append(current)
    names = {id(current): name for name, current in explicit.items()}
    taken = set(explicit)
    for base, group in by_default.items():
        if len(group) == 1 and base not in taken:
            names[id(group[0])] = base
            taken.add(base)
            continue
        number = 0
        for current in group:
            number += 1
            while f"{base}_{number}" in taken:
                number += 1
            names[id(current)] = f"{base}_{number}"
            taken.add(f"{base}_{number}")
    return {id(current): names[id(current)] for current in order}


def _collect_inputs(order: list[Node]) -> dict[str, GraphInput]:
    inputs: dict[str, GraphInput] = {}
    for current in order:
        for parent in current.upstream():
            if not isinstance(parent, GraphInput):
                continue
            known = inputs.setdefault(parent.name, parent)
            if known is not parent:
                raise GraphError(
                    f"two different graph inputs are named {parent.name!r}; declare each input once and "
                    "pass the same object to every node that needs it"
                )
    return inputs


__all__ = ["FLOW_OPTIONS", "TASK_OPTIONS", "Query", "Workflow"]
