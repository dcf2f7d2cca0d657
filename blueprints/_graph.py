"""The built-in workflows' step graphs, and the cycle check of the dependency graph."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import TYPE_CHECKING

from tempano.blueprints.plan import (
    INSTALL_PHASES,
    START_PHASES,
    STOP_PHASES,
    UNINSTALL_PHASES,
    NodeSpec,
    Step,
    WorkflowGraph,
)

if TYPE_CHECKING:
    from tempano.blueprints._state import CompileState


def dependencies(nodes: Mapping[str, NodeSpec]) -> dict[str, tuple[str, ...]]:
    """Each node's relationship targets: what must be installed before it."""
    return {
        name: tuple(sorted({rel.target for rel in spec.relationships if rel.target in nodes}))
        for name, spec in nodes.items()
    }


def topological_order(deps: Mapping[str, tuple[str, ...]]) -> tuple[list[str], list[str]]:
    """Nodes in install order (ties broken by name), and the nodes left over because they sit on a cycle."""
    waiting = {name: len(targets) for name, targets in deps.items()}
    dependents: dict[str, list[str]] = {name: [] for name in deps}
    for name, targets in deps.items():
        for target in targets:
            dependents[target].append(name)
    ready = [name for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)
    return order, sorted(n for n, count in waiting.items() if count > 0)


def find_cycle(deps: Mapping[str, tuple[str, ...]], among: list[str]) -> list[str]:
    """One cycle through the leftover nodes, as a path that ends where it starts."""
    left = set(among)
    start = among[0]
    path = [start]
    seen = {start: 0}
    current = start
    while True:
        nxt = next(t for t in deps[current] if t in left)
        if nxt in seen:
            return [*path[seen[nxt] :], nxt]
        seen[nxt] = len(path)
        path.append(nxt)
        current = nxt


def build_workflows(compiler: CompileState, nodes: Mapping[str, NodeSpec]) -> dict[str, WorkflowGraph]:
    """install/uninstall/start/stop graphs; a dependency cycle is a compile error."""
    deps = dependencies(nodes)
    _, cyclic = topological_order(deps)
    if cyclic:
        cycle = find_cycle(deps, cyclic)
        first = cycle[0]
        compiler.error(
            compiler.node_path(first, "requirements"),
            f"the requirements form a dependency cycle: {' -> '.join(cycle)}; break it (a node cannot be "
            "installed before what it requires)",
            first,
        )
    reverse: dict[str, list[str]] = {name: [] for name in nodes}
    for name, targets in deps.items():
        for target in targets:
            reverse[target].append(name)
    forward = {name: deps[name] for name in sorted(nodes)}
    backward = {name: tuple(sorted(reverse[name])) for name in sorted(nodes)}

    def graph(after: Mapping[str, tuple[str, ...]], phases: tuple[str, ...]) -> WorkflowGraph:
        return WorkflowGraph(steps={name: Step(node=name, phases=phases, after=after[name]) for name in after})

    return {
        "install": graph(forward, INSTALL_PHASES),
        "uninstall": graph(backward, UNINSTALL_PHASES),
        "start": graph(forward, START_PHASES),
        "stop": graph(backward, STOP_PHASES),
    }
