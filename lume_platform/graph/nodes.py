"""Graph front end: functions that record calls as nodes, declared inputs, and indexed outputs."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any, Generic, ParamSpec, TypeVar, overload

from lume_platform.graph.errors import GraphError

P = ParamSpec("P")
R = TypeVar("R")

# Node names end up in Prefect task-run names, logs and index documents: printable text only.
_VALID_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


def check_node_name(name: object) -> str:
    """Return ``name`` if it can name a node, else raise a GraphError that says why."""
    if not isinstance(name, str) or not _VALID_NAME.fullmatch(name) or name.strip() != name:
        raise GraphError(
            f"invalid node name {name!r}: use 1-200 printable characters without leading/trailing spaces"
        )
    return name


class Ref:
    """Something a node can take as an argument: a node's output, a graph input, or an item of either."""

    def __getitem__(self, key: Any) -> ItemRef:
        return ItemRef(self.base, (*self.path, key))

    def __iter__(self) -> Iterator[Any]:
        # Without this, Python would iterate through __getitem__(0), (1), ... for ever.
        raise TypeError(
            f"{self!r} is a graph reference, not a value: take items with ref[0] or ref['key'], "
            "do not unpack it"
        )

    def __bool__(self) -> bool:
        raise TypeError(f"{self!r} is a graph reference: its truth value is only known when the graph runs")

    @property
    def base(self) -> Node | GraphInput:
        """The node or input this reference reads from."""
        raise NotImplementedError

    @property
    def path(self) -> tuple[Any, ...]:
        """The item keys applied, in order, to the base's value."""
        return ()


class GraphInput(Ref):
    """A declared input of a graph: it becomes a parameter of the generated Prefect flow."""

    REQUIRED: Any = inspect.Parameter.empty

    def __init__(self, name: str, default: Any, annotation: Any, description: str | None) -> None:
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise GraphError(
                f"invalid graph input name {name!r}: it becomes a flow parameter, so it must be a "
                "Python identifier not starting with '_'"
            )
        self.name = name
        self.default = default
        self.annotation = annotation
        self.description = description

    @property
    def base(self) -> GraphInput:
        return self

    @property
    def required(self) -> bool:
        """True when the flow parameter has no default."""
        return self.default is GraphInput.REQUIRED

    def __repr__(self) -> str:
        return f"graph_input({self.name!r})"


def graph_input(
    name: str, default: Any = GraphInput.REQUIRED, *, annotation: Any = Any, description: str | None = None
) -> GraphInput:
    """Declare an input of the graph; nodes take it like any argument, the flow takes it as a parameter.

    Parameters
    ----------
    name:
        The flow parameter's name (a Python identifier).
    default:
        The parameter's default; omit it to make the parameter required.
    annotation:
        The parameter's type: Prefect validates and coerces run parameters with it.
    description:
        Shown with the parameter in the Prefect UI.
    """
    return GraphInput(name, default, annotation, description)


class ItemRef(Ref):
    """An item of another reference's value (``node[0]``, ``node["key"]``, ``node["a"][1]``)."""

    def __init__(self, base: Node | GraphInput, path: tuple[Any, ...]) -> None:
        self._base = base
        self._path = path

    @property
    def base(self) -> Node | GraphInput:
        return self._base

    @property
    def path(self) -> tuple[Any, ...]:
        return self._path

    def __repr__(self) -> str:
        return repr(self._base) + "".join(f"[{key!r}]" for key in self._path)


class Node(Ref):
    """One recorded call of a node function; nothing runs until the workflow's flow runs."""

    def __init__(
        self, function: NodeFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.function = function
        self.args = args
        self.kwargs = kwargs
        self.explicit_name: str | None = None

    @property
    def base(self) -> Node:
        return self

    def set_name(self, name: str) -> Node:
        """Name this node (unique within its workflow); returns the node so calls chain."""
        self.explicit_name = check_node_name(name)
        return self

    def get_name(self) -> str:
        """The explicit name, or the default one (the function's) before a workflow numbers duplicates."""
        return self.explicit_name or self.function.default_name

    def references(self) -> list[Ref]:
        """Every reference among the arguments, nested lists/tuples/dicts included, in argument order."""
        found: list[Ref] = []
        for value in (*self.args, *self.kwargs.values()):
            found.extend(iter_refs(value))
        return found

    def upstream(self) -> list[Node | GraphInput]:
        """The distinct nodes and inputs this node reads, in argument order."""
        seen: dict[int, Node | GraphInput] = {}
        for ref in self.references():
            seen.setdefault(id(ref.base), ref.base)
        return list(seen.values())

    def __repr__(self) -> str:
        return f"<node {self.get_name()!r} of {self.function.qualified_name}>"


class NodeFunction(Generic[P, R]):
    """A plain function made into a node factory: calling it records a Node instead of running."""

    def __init__(self, func: Callable[P, R], name: str | None, version: str | None) -> None:
        if inspect.isclass(func) or not callable(func):
            raise GraphError(
                f"@node decorates functions only, not {func!r}: stateful (class) nodes cannot be cached by "
                "content; wrap the method chain in one function instead"
            )
        if inspect.iscoroutinefunction(func) or inspect.isgeneratorfunction(func):
            raise GraphError(f"@node needs a plain function returning its result; {func!r} is not one")
        self.func = func
        self.default_name = check_node_name(name or func.__name__)
        if version is not None and (not isinstance(version, str) or not version):
            raise GraphError(f"version of node function {func.__qualname__!r} must be a non-empty string")
        self.version = version
        self.signature = inspect.signature(func)
        functools.update_wrapper(self, func)

    @property
    def qualified_name(self) -> str:
        """``module:qualname``: the function's identity in cache keys and the index."""
        return f"{self.func.__module__}:{self.func.__qualname__}"

    def __call__(self, *args: Any, **kwargs: Any) -> Node:  # type: ignore[override]
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise GraphError(f"bad arguments for node function {self.func.__qualname__}: {exc}") from None
        return Node(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<node function {self.qualified_name}>"


@overload
def node(func: Callable[P, R], /) -> NodeFunction[P, R]: ...


@overload
def node(
    *, name: str | None = None, version: str | None = None
) -> Callable[[Callable[P, R]], NodeFunction[P, R]]: ...


def node(
    func: Callable[P, R] | None = None, /, *, name: str | None = None, version: str | None = None
) -> NodeFunction[P, R] | Callable[[Callable[P, R]], NodeFunction[P, R]]:
    """Make ``func`` a graph node function: ``func(...)`` then records a Node and runs nothing.

    Parameters
    ----------
    name:
        Default name of the nodes it creates (the function's name otherwise).
    version:
        The function's version in cache keys. Without it the hash of the function's source is used, so
        editing the function recomputes its nodes; set it when behaviour depends on code elsewhere.
    """
    if func is not None:
        return NodeFunction(func, name, version)

    def decorate(inner: Callable[P, R]) -> NodeFunction[P, R]:
        return NodeFunction(inner, name, version)

    return decorate


def iter_refs(value: Any) -> Iterator[Ref]:
    """Yield the references inside an argument value, looking into lists, tuples and dict values."""
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from iter_refs(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_refs(item)


def substitute(value: Any, resolve: Callable[[Ref], Any]) -> Any:
    """Rebuild ``value`` with every reference replaced by ``resolve(ref)``; other values are kept as is."""
    if isinstance(value, Ref):
        return resolve(value)
    if isinstance(value, list):
        return [substitute(item, resolve) for item in value]
    if isinstance(value, tuple):
        items = [substitute(item, resolve) for item in value]
        # Named tuples rebuild from positional fields.
        return type(value)._make(items) if hasattr(value, "_make") else type(value)(items)
    if isinstance(value, dict):
        return type(value)((key, substitute(item, resolve)) for key, item in value.items())
    return value


def apply_path(value: Any, path: tuple[Any, ...], what: str) -> Any:
    """Index ``value`` by each key of ``path``; a missing item raises a GraphError naming ``what``."""
    for key in path:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError) as exc:
            raise GraphError(
                f"{what}: cannot take item {key!r} of a {type(value).__name__} ({exc})"
            ) from None
    return value


__all__ = [
    "GraphInput",
    "ItemRef",
    "Node",
    "NodeFunction",
    "Ref",
    "apply_path",
    "check_node_name",
    "graph_input",
    "iter_refs",
    "node",
    "substitute",
]
