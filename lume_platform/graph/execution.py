"""Running a graph inside a Prefect flow: content keys, the cache plan, one task run per node."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.futures import PrefectFuture, wait
from prefect.states import Completed
from prefect.tasks import Task

from lume_platform.graph.errors import CorruptEntryError, GraphRunError
from lume_platform.graph.keys import canonical, digest, function_identity
from lume_platform.graph.nodes import GraphInput, ItemRef, Node, Ref, apply_path, substitute
from lume_platform.graph.storage import GraphStorage

_module_logger = logging.getLogger(__name__)


def _logger() -> Any:
    try:
        return get_run_logger()
    except MissingContextError:
        return _module_logger


def _current_flow_run_id() -> str | None:
    from prefect.context import TaskRunContext

    context = TaskRunContext.get()
    return str(context.task_run.flow_run_id) if context and context.task_run.flow_run_id else None


@dataclass
class CompiledNode:
    """A node with its workflow name, merged task options and storage choice, and its Prefect tasks."""

    name: str
    node: Node
    task_options: dict[str, Any]
    stored: bool
    identity: str = ""
    upstream_nodes: list[Node] = field(default_factory=list)
    input_names: list[str] = field(default_factory=list)
    compute_task: Task[..., Any] | None = None
    load_task: Task[..., Any] | None = None


class CompiledGraph:
    """The immutable plan a generated flow runs; each flow run walks it afresh (no state is used up)."""

    def __init__(
        self,
        workflow_name: str,
        nodes: list[CompiledNode],
        names: dict[int, str],
        outputs: tuple[Node | ItemRef, ...],
        storage: GraphStorage | None,
    ) -> None:
        self.workflow_name = workflow_name
        self.nodes = nodes
        self.names = names
        self.by_id = {id(entry.node): entry for entry in nodes}
        self.outputs = outputs
        self.storage = storage
        for entry in nodes:
            upstream = entry.node.upstream()
            entry.upstream_nodes = [parent for parent in upstream if isinstance(parent, Node)]
            entry.input_names = [parent.name for parent in upstream if isinstance(parent, GraphInput)]
            # Computed once when the flow is generated: hashing sources on every run is wasted work.
            entry.identity = function_identity(entry.node.function) if storage is not None else ""
            if storage is not None:
                # Literal arguments never change between runs: an argument without a stable encoding
                # is reported now, when the flow is generated, rather than in the middle of a run.
                where = f"node {entry.name!r}"
                canonical(list(entry.node.args), _placeholder, f"{where} positional arguments")
                canonical(entry.node.kwargs, _placeholder, f"{where} keyword arguments")
            entry.compute_task = self._task(entry, self._compute_function(entry))
            entry.load_task = self._task(entry, self._load_function(entry))

    # --- Prefect tasks ----------------------------------------------------------------------------
    @staticmethod
    def _task(entry: CompiledNode, function: Callable[..., Any]) -> Task[..., Any]:
        options = dict(entry.task_options)
        options.setdefault("name", entry.name)
        # A callable, because Prefect would str.format() a string with the task's parameters.
        options.setdefault("task_run_name", _constant(entry.name))
        if "cache_policy" not in options and "cache_key_fn" not in options:
            # The graph storage is the cache; Prefect hashing every input (arrays...) would be waste.
            options["cache_policy"] = NO_CACHE
        return Task(function, **options)

    def _compute_function(self, entry: CompiledNode) -> Callable[..., Any]:
        def compute_node(upstream: dict[str, Any], inputs: dict[str, Any], cache_key: str | None) -> Any:
            value = self._call(entry, lambda ref: self._resolve(ref, upstream, inputs))
            if cache_key is not None:
                self._save(entry, cache_key, value)
            return value

        return compute_node

    def _load_function(self, entry: CompiledNode) -> Callable[..., Any]:
        def load_node(inputs: dict[str, Any], cache_key: str) -> Any:
            assert self.storage is not None
            try:
                value = self.storage.load(cache_key)
            except (CorruptEntryError, FileNotFoundError) as exc:
                _logger().warning("node %r: stored result unusable (%s); recomputing it", entry.name, exc)
                return self._materialize(entry, inputs, self.keys(inputs), {}, try_storage=False)
            return Completed(data=value, name="Cached", message=f"read from graph storage ({cache_key[:12]})")

        return load_node

    # --- node evaluation --------------------------------------------------------------------------
    def _resolve(self, ref: Ref, upstream: dict[str, Any], inputs: dict[str, Any]) -> Any:
        base = ref.base
        value = inputs[base.name] if isinstance(base, GraphInput) else upstream[self.names[id(base)]]
        return apply_path(value, ref.path, f"argument {ref!r}")

    def _call(self, entry: CompiledNode, resolve: Callable[[Ref], Any]) -> Any:
        args = substitute(entry.node.args, resolve)
        kwargs = substitute(entry.node.kwargs, resolve)
        return entry.node.function.func(*args, **kwargs)

    def _save(self, entry: CompiledNode, cache_key: str, value: Any) -> None:
        assert self.storage is not None
        self.storage.save(
            cache_key,
            value,
            node=entry.name,
            workflow=self.workflow_name,
            function=entry.identity,
            flow_run_id=_current_flow_run_id(),
        )

    def _materialize(
        self,
        entry: CompiledNode,
        inputs: dict[str, Any],
        keys: dict[int, str],
        memo: dict[int, Any],
        *,
        try_storage: bool = True,
    ) -> Any:
        """Value of ``entry`` in this thread: from storage when valid, else computed (and stored).

        The fallback of a load whose entry turned out corrupt: its upstream values were never planned,
        so they are materialised here, recursively, with the same rules.
        """
        if id(entry.node) in memo:
            return memo[id(entry.node)]
        key = keys.get(id(entry.node))
        if try_storage and entry.stored and key is not None and self.storage is not None:
            try:
                memo[id(entry.node)] = self.storage.load(key)
                return memo[id(entry.node)]
            except FileNotFoundError:
                pass
            except CorruptEntryError as exc:
                _logger().warning("node %r: stored result unusable (%s); recomputing it", entry.name, exc)
        upstream = {
            self.names[id(parent)]: self._materialize(self.by_id[id(parent)], inputs, keys, memo)
            for parent in entry.upstream_nodes
        }
        value = self._call(entry, lambda ref: self._resolve(ref, upstream, inputs))
        if entry.stored and key is not None:
            self._save(entry, key, value)
        memo[id(entry.node)] = value
        return value

    # --- keys and plan ----------------------------------------------------------------------------
    def keys(self, inputs: dict[str, Any]) -> dict[int, str]:
        """The content key of every node, from its function, literal arguments and upstream keys."""
        keys: dict[int, str] = {}
        for entry in self.nodes:

            def encode_ref(ref: Ref, at: str = entry.name) -> Any:
                base = ref.base
                if isinstance(base, GraphInput):
                    if base.name not in inputs:
                        return ["absent-input", base.name]
                    item = apply_path(inputs[base.name], ref.path, f"node {at!r}, argument {ref!r}")
                    return ["input", canonical(item, where=f"node {at!r}: input {ref!r}")]
                path = canonical(list(ref.path), where=f"node {at!r}: item path of {ref!r}")
                return ["node", keys[id(base)], path]

            where = f"node {entry.name!r}"
            structure = [
                entry.identity,
                canonical(list(entry.node.args), encode_ref, f"{where} positional arguments"),
                canonical(entry.node.kwargs, encode_ref, f"{where} keyword arguments"),
            ]
            keys[id(entry.node)] = digest(structure)
        return keys

    def by_name(self, per_node: dict[int, str]) -> dict[str, str]:
        """A per-node mapping (keys, plan) keyed by node name instead of node identity."""
        return {self.names[node_id]: value for node_id, value in per_node.items()}

    def plan(self, keys: dict[int, str]) -> dict[int, str]:
        """``load`` or ``compute`` for each node the outputs need; ancestors of stored nodes are skipped."""
        needed = {id(output.base) for output in self.outputs}
        actions: dict[int, str] = {}
        for entry in reversed(self.nodes):
            node_id = id(entry.node)
            if node_id not in needed:
                continue
            if entry.stored and self.storage is not None and self.storage.contains(keys[node_id]):
                actions[node_id] = "load"
            else:
                actions[node_id] = "compute"
                needed.update(id(parent) for parent in entry.upstream_nodes)
        return actions

    # --- the flow body ----------------------------------------------------------------------------
    def run(self, inputs: dict[str, Any]) -> Any:
        """Submit every needed node, futures passed downstream, then wait and return the outputs."""
        keys = self.keys(inputs) if self.storage is not None else {}
        actions = self.plan(keys)
        futures: dict[int, PrefectFuture[Any]] = {}
        for entry in self.nodes:
            action = actions.get(id(entry.node))
            if action is None:
                continue
            if action == "load":
                ancestors_inputs = {name: inputs[name] for name in self._ancestor_inputs(entry)}
                futures[id(entry.node)] = entry.load_task.submit(  # type: ignore[union-attr]
                    inputs=ancestors_inputs, cache_key=keys[id(entry.node)]
                )
            else:
                upstream = {self.names[id(parent)]: futures[id(parent)] for parent in entry.upstream_nodes}
                futures[id(entry.node)] = entry.compute_task.submit(  # type: ignore[union-attr]
                    upstream=upstream,
                    inputs={name: inputs[name] for name in entry.input_names},
                    cache_key=keys.get(id(entry.node)) if entry.stored else None,
                )
        wait(list(futures.values()))
        self._raise_for_failures(futures)
        values = [
            apply_path(futures[id(output.base)].result(), output.path, f"output {output!r}")
            for output in self.outputs
        ]
        return values[0] if len(values) == 1 else tuple(values)

    def _ancestor_inputs(self, entry: CompiledNode) -> list[str]:
        names: dict[str, None] = {}
        stack = [entry]
        seen: set[int] = set()
        while stack:
            current = stack.pop()
            if id(current.node) in seen:
                continue
            seen.add(id(current.node))
            names.update(dict.fromkeys(current.input_names))
            stack.extend(self.by_id[id(parent)] for parent in current.upstream_nodes)
        return list(names)

    def _raise_for_failures(self, futures: dict[int, PrefectFuture[Any]]) -> None:
        failed: dict[str, str] = {}
        not_run: list[str] = []
        for node_id, future in futures.items():
            state = future.state
            if state.is_completed():
                continue
            name = self.names[node_id]
            if state.is_failed() or state.is_crashed():
                failed[name] = state.message or state.name or "failed"
            else:
                not_run.append(name)
        if failed or not_run:
            raise GraphRunError(self.workflow_name, failed, not_run)

    def flow_function(self, inputs: dict[str, GraphInput]) -> Callable[..., Any]:
        """The function the Prefect flow wraps: keyword parameters named after the graph inputs."""

        def run_graph(**parameters: Any) -> Any:
            return self.run(parameters)

        run_graph.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter(
                    graph_input.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=graph_input.default,
                    annotation=graph_input.annotation,
                )
                for graph_input in inputs.values()
            ]
        )
        described = [f"    {i.name}: {i.description}" for i in inputs.values() if i.description]
        run_graph.__doc__ = f"Run workflow graph {self.workflow_name!r}." + (
            "\n\nArgs:\n" + "\n".join(described) if described else ""
        )
        run_graph.__name__ = run_graph.__qualname__ = self.workflow_name.replace("-", "_")
        return run_graph


def _placeholder(ref: Ref) -> None:
    return None


def _constant(name: str) -> Callable[[], str]:
    def task_run_name() -> str:
        return name

    return task_run_name


__all__ = ["CompiledGraph", "CompiledNode"]
