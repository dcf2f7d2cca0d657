"""Workflow functions by name: the built-ins and the custom ones registered through the ``tempano.workflows``
entry-point group.

The worker passes this module through Temporal's sandbox, so what the worker registers at start-up is what
every workflow run sees (entry points are read once, outside the sandbox, never during a run).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tempano.workflows.api import WorkflowContext

WorkflowFn = Callable[["WorkflowContext", Mapping[str, Any]], Awaitable[Mapping[str, Any] | None]]
ENTRY_POINT_GROUP = "tempano.workflows"

_workflows: dict[str, WorkflowFn] = {}
_builtin: set[str] = set()


def register(name: str, fn: WorkflowFn, *, builtin: bool = False) -> None:
    """Makes ``fn`` startable by ``name`` (``tempano executions start NAME``)."""
    _workflows[name] = fn
    if builtin:
        _builtin.add(name)


def get(name: str) -> WorkflowFn | None:
    return _workflows.get(name)


def names() -> list[str]:
    return sorted(_workflows)


def is_builtin(name: str) -> bool:
    return name in _builtin


def load_custom_workflows() -> list[str]:
    """Registers every workflow function found under the entry-point group (call once, at worker start)."""
    from importlib.metadata import entry_points

    loaded: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        fn = ep.load()
        if not callable(fn):
            raise TypeError(f"entry point {ep.name!r} ({ep.value}) is not a workflow function")
        register(ep.name, fn)
        loaded.append(ep.name)
    return loaded
