"""Finds plugins through the ``tempano.plugins`` entry-point group and resolves implementation references."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import entry_points

from tempano.plugins.contract import OperationFn, Plugin

ENTRY_POINT_GROUP = "tempano.plugins"


class UnknownOperation(LookupError):
    """An implementation reference names a plugin or operation that is not installed."""


class PluginRegistry:
    """Plugins by name; resolves ``plugin.operation.path`` references (``openstack.server.create``)."""

    def __init__(self, plugins: Iterable[Plugin] = ()) -> None:
        self._plugins: dict[str, Plugin] = {}
        for plugin in plugins:
            self.add(plugin)

    def add(self, plugin: Plugin) -> None:
        self._plugins[plugin.name] = plugin

    @property
    def plugins(self) -> dict[str, Plugin]:
        return dict(self._plugins)

    def split(self, reference: str) -> tuple[str, str]:
        plugin, _, operation = reference.partition(".")
        return plugin, operation

    def has(self, reference: str) -> bool:
        plugin, operation = self.split(reference)
        return plugin in self._plugins and operation in self._plugins[plugin].operations

    def resolve(self, reference: str) -> OperationFn:
        plugin_name, operation = self.split(reference)
        plugin = self._plugins.get(plugin_name)
        if plugin is None:
            known = ", ".join(sorted(self._plugins)) or "none"
            raise UnknownOperation(
                f"no plugin named {plugin_name!r} for operation {reference!r} (installed plugins: {known}); "
                "install the plugin package or fix the implementation reference"
            )
        fn = plugin.operations.get(operation)
        if fn is None:
            known = ", ".join(sorted(plugin.operations)) or "none"
            raise UnknownOperation(f"plugin {plugin_name!r} has no operation {operation!r} (it has: {known})")
        return fn


def load_plugins() -> PluginRegistry:
    """Every plugin installed under the entry-point group."""
    registry = PluginRegistry()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        plugin = ep.load()
        if not isinstance(plugin, Plugin):
            raise TypeError(f"entry point {ep.name!r} ({ep.value}) is not a tempano Plugin")
        registry.add(plugin)
    return registry
