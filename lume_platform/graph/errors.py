"""Errors of workflow graphs: a bad graph, bad options, a failed run, an unusable cache entry."""

from __future__ import annotations

from lume_platform.errors import LumeError


class GraphError(LumeError, ValueError):
    """A graph, a query or an option is invalid; the message names the node or option at fault."""


class GraphRunError(LumeError, RuntimeError):
    """One or more nodes failed; ``failed`` names them, ``not_run`` names those left waiting on them."""

    def __init__(self, workflow: str, failed: dict[str, str], not_run: list[str]) -> None:
        self.workflow = workflow
        self.failed = dict(failed)
        self.not_run = list(not_run)
        details = "; ".join(f"{name}: {reason}" for name, reason in self.failed.items())
        message = f"workflow {workflow!r}: {len(self.failed)} node(s) failed ({details})"
        if self.not_run:
            message += f"; not run because an upstream node failed: {', '.join(self.not_run)}"
        message += ". Nodes that finished were stored; the next run resumes from them."
        super().__init__(message)


class CorruptEntryError(LumeError):
    """A stored node result cannot be trusted (truncated, checksum mismatch, wrong key)."""


__all__ = ["CorruptEntryError", "GraphError", "GraphRunError"]
