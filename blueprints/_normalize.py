"""Rewrites of valid TOSCA that tosca-parser 2.15 cannot digest, applied to its copy of the template only.

- ``tosca_simple_yaml_1_1`` is refused by tosca-parser: validated as 1_2 (a superset for what it checks);
- TOSCA 1.3 short notations that crash it, in type definitions: a requirement definition given as a
  capability type (``- host: tosca.capabilities.Compute``) or without ``node``; a capability
  definition given as a bare type name (``host: tosca.capabilities.Compute``);
- in node templates: a capability assignment with no properties (``host: {}`` or ``host:``).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

_VERSION_ALIASES = {"tosca_simple_yaml_1_1": "tosca_simple_yaml_1_2"}


def normalize_for_parser(template: dict[str, Any]) -> dict[str, Any]:
    """Return ``template`` with the notations tosca-parser mishandles expanded (edited in place)."""
    version = template.get("tosca_definitions_version")
    if isinstance(version, str) and version in _VERSION_ALIASES:
        template["tosca_definitions_version"] = _VERSION_ALIASES[version]
    for section in ("node_types", "relationship_types", "group_types", "policy_types", "capability_types"):
        types = template.get(section)
        if isinstance(types, MutableMapping):
            for definition in types.values():
                if isinstance(definition, MutableMapping):
                    _normalize_type(definition)
    topology = template.get("topology_template")
    nodes = topology.get("node_templates") if isinstance(topology, MutableMapping) else None
    if isinstance(nodes, MutableMapping):
        for node in nodes.values():
            if isinstance(node, MutableMapping):
                _normalize_node(node)
    return template


def _normalize_type(definition: MutableMapping[str, Any]) -> None:
    capabilities = definition.get("capabilities")
    if isinstance(capabilities, MutableMapping):
        for name, capability in list(capabilities.items()):
            if isinstance(capability, str):
                capabilities[name] = {"type": capability}
    requirements = definition.get("requirements")
    if isinstance(requirements, list):
        for entry in requirements:
            if not isinstance(entry, MutableMapping):
                continue
            for name, requirement in list(entry.items()):
                if isinstance(requirement, str):
                    requirement = entry[name] = {"capability": requirement}
                if isinstance(requirement, MutableMapping) and "node" not in requirement:
                    # Without `node`, tosca-parser looks for a node type offering the capability and crashes
                    # (AttributeError on None) when none does; tosca.nodes.Root accepts any target.
                    requirement["node"] = "tosca.nodes.Root"


def _normalize_node(node: MutableMapping[str, Any]) -> None:
    capabilities = node.get("capabilities")
    if isinstance(capabilities, MutableMapping):
        for name, capability in list(capabilities.items()):
            # tosca-parser indexes capability["properties"] unconditionally (KeyError, TypeError otherwise).
            if capability is None:
                capabilities[name] = {"properties": {}}
            elif isinstance(capability, MutableMapping) and capability.get("properties") is None:
                capability["properties"] = {}
