"""Which plugin operations are installed, found through the ``tempano.plugins`` entry points.

tempano.blueprints imports nothing else of ours: plugins are read through the entry-point group, the same
public door every consumer uses, and duck-typed (a ``name`` and an ``operations`` mapping).
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "tempano.plugins"


@functools.lru_cache(maxsize=1)
def installed_operations() -> frozenset[str]:
    """Every ``plugin.operation`` reference installed (loaded once per process)."""
    found: set[str] = set()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            plugin = ep.load()
        except Exception:
            continue
        operations = getattr(plugin, "operations", None)
        name = getattr(plugin, "name", ep.name)
        if operations is not None:
            found.update(f"{name}.{op}" for op in operations)
    return frozenset(found)


def has_operation(reference: str) -> bool:
    """Whether ``reference`` (``openstack.server.create``) names an installed plugin operation."""
    return reference in installed_operations()
