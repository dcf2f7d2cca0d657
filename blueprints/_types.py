"""The type hierarchy seen by the compiler: tosca-parser's normative types plus every type we loaded.

tosca-parser does not hand type-level interfaces to node templates, so the compiler reads types itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from toscaparser.elements.entity_type import EntityType

from tempano.blueprints._loader import TypeDef

_PROPERTY_DEFINITION_KEYS = frozenset(
    {
        "type",
        "description",
        "required",
        "default",
        "value",
        "constraints",
        "entry_schema",
        "key_schema",
        "status",
        "metadata",
    }
)
_NORMATIVE_PREFIXES = (
    "tosca.nodes.",
    "tosca.relationships.",
    "tosca.capabilities.",
    "tosca.interfaces.node.lifecycle.",
    "tosca.interfaces.relationship.",
    "tosca.artifacts.",
    "tosca.policies.",
    "tosca.groups.",
    "tosca.datatypes.",
    "tosca.datatypes.network.",
)
_INTERFACE_KEYWORDS = frozenset({"type", "inputs", "description", "notifications", "derived_from", "metadata"})


def short_interface(name: str) -> str:
    """``tosca.interfaces.node.lifecycle.Standard`` -> ``Standard``: plans use interface names as written."""
    return name.rsplit(".", 1)[-1]


class Operation:
    """An operation definition reduced to what the compiler needs, mergeable along a type chain."""

    __slots__ = ("implementation", "inputs", "origin", "timeout")

    def __init__(self) -> None:
        self.implementation: str | None = None
        self.timeout: Any = None
        self.inputs: dict[str, Any] = {}
        self.origin: tuple[str, tuple[str | int, ...]] = ("", ())
        """File and key path where the implementation was given (for error locations)."""

    def copy(self) -> Operation:
        op = Operation()
        op.implementation, op.timeout, op.inputs, op.origin = (
            self.implementation,
            self.timeout,
            dict(self.inputs),
            self.origin,
        )
        return op

    def refine(self, definition: Any, *, file: str, path: tuple[str | int, ...], in_type: bool) -> None:
        """Apply an operation definition (type level) or assignment (template level) on top of this one."""
        if definition is None:
            return
        if isinstance(definition, str):
            self.implementation, self.origin = definition, (file, path)
            return
        if not isinstance(definition, Mapping):
            return
        impl = definition.get("implementation")
        if isinstance(impl, Mapping):
            primary = impl.get("primary")
            if isinstance(primary, Mapping):  # TOSCA 1.3: an artifact definition
                primary = primary.get("file")
            if primary is not None:
                self.implementation, self.origin = str(primary), (file, (*path, "implementation", "primary"))
            if "timeout" in impl:
                self.timeout = impl["timeout"]
        elif impl is not None:
            self.implementation, self.origin = str(impl), (file, (*path, "implementation"))
        inputs = definition.get("inputs")
        if isinstance(inputs, Mapping):
            for name, value in inputs.items():
                if in_type and _is_property_definition(value):
                    if "value" in value:
                        self.inputs[str(name)] = value["value"]
                    elif "default" in value:
                        self.inputs[str(name)] = value["default"]
                else:
                    self.inputs[str(name)] = value


def _is_property_definition(value: Any) -> bool:
    return isinstance(value, Mapping) and "type" in value and set(value) <= _PROPERTY_DEFINITION_KEYS


def interface_operations(interface: Any) -> dict[str, Any]:
    """The operations of an interface definition or assignment, TOSCA 1.3 (``operations:``) or older style."""
    if not isinstance(interface, Mapping):
        return {}
    ops = interface.get("operations")
    if isinstance(ops, Mapping):
        return {str(k): v for k, v in ops.items()}
    return {str(k): v for k, v in interface.items() if k not in _INTERFACE_KEYWORDS}


def refine_operations(
    ops: dict[str, Operation], interfaces: Any, *, file: str, path: tuple[str | int, ...], in_type: bool
) -> None:
    """Apply an ``interfaces`` section (a type's, or a template's assignments) to ``ops``, keyed
    ``Interface.operation``; ``path`` locates the section in ``file``."""
    if not isinstance(interfaces, Mapping):
        return
    for iface_name, iface in interfaces.items():
        short = short_interface(str(iface_name))
        shared = iface.get("inputs") if isinstance(iface, Mapping) else None
        has_operations_key = isinstance(iface, Mapping) and isinstance(iface.get("operations"), Mapping)
        for op_name, op_def in interface_operations(iface).items():
            key = f"{short}.{op_name}"
            op = ops.get(key) or Operation()
            op_path = (*path, str(iface_name), *(("operations",) if has_operations_key else ()), op_name)
            if isinstance(shared, Mapping):
                op.refine({"inputs": shared}, file=file, path=op_path, in_type=in_type)
            op.refine(op_def, file=file, path=op_path, in_type=in_type)
            ops[key] = op


class TypeIndex:
    """Types by name: ours (with their source) over tosca-parser's normative ones."""

    def __init__(self, types: Mapping[str, TypeDef]) -> None:
        self._ours = types
        self._normative: Mapping[str, Any] = EntityType.TOSCA_DEF
        self._chains: dict[str, tuple[str, ...]] = {}
        self._merged_cache: dict[tuple[str, str], dict[str, Any]] = {}
        self._operations_cache: dict[str, dict[str, Operation]] = {}

    def canonical(self, name: str) -> str:
        """The full name of a type written short (``Compute``, ``tosca:Compute``), as tosca-parser allows."""
        if name in self._ours or name in self._normative:
            return name
        short = name[len("tosca:") :] if name.startswith("tosca:") else name
        for prefix in _NORMATIVE_PREFIXES:
            if prefix + short in self._normative:
                return prefix + short
        return name

    def definition(self, name: str) -> Mapping[str, Any] | None:
        name = self.canonical(name)
        ours = self._ours.get(name)
        if ours is not None:
            return ours.definition
        found = self._normative.get(name)
        return found if isinstance(found, Mapping) else None

    def source(self, name: str) -> TypeDef | None:
        return self._ours.get(self.canonical(name))

    def known(self, name: str) -> bool:
        return self.definition(name) is not None

    def chain(self, name: str) -> tuple[str, ...]:
        """``name`` and its ancestors, nearest first. Stops at an unknown parent or a loop."""
        cached = self._chains.get(name)
        if cached is not None:
            return cached
        chain: list[str] = []
        current: str | None = name
        while current is not None and current not in chain:
            current = self.canonical(current)
            definition = self.definition(current)
            if definition is None:
                break
            chain.append(current)
            parent = definition.get("derived_from")
            current = str(parent) if parent is not None else None
        result = tuple(chain)
        self._chains[name] = result
        return result

    def is_a(self, name: str, base: str) -> bool:
        return self.canonical(base) in self.chain(name)

    def _merged(self, name: str, section: str) -> dict[str, Any]:
        """The section merged along the type chain (cached: callers must not modify the result)."""
        cached = self._merged_cache.get((name, section))
        if cached is not None:
            return cached
        merged: dict[str, Any] = {}
        for type_name in reversed(self.chain(name)):
            defs = (self.definition(type_name) or {}).get(section)
            if isinstance(defs, Mapping):
                for key, value in defs.items():
                    merged[str(key)] = value
            elif isinstance(defs, list):  # requirements: a list of single-key mappings
                for item in defs:
                    if isinstance(item, Mapping):
                        for key, value in item.items():
                            merged[str(key)] = value
        self._merged_cache[(name, section)] = merged
        return merged

    def properties(self, name: str) -> dict[str, Any]:
        return self._merged(name, "properties")

    def defaults(self, name: str, section: str = "properties") -> dict[str, Any]:
        """The ``default`` of every property (or attribute) definition along the type chain (a fresh dict)."""
        return {
            key: definition["default"]
            for key, definition in self._merged(name, section).items()
            if isinstance(definition, Mapping) and "default" in definition
        }

    def capabilities(self, name: str) -> dict[str, Any]:
        return self._merged(name, "capabilities")

    def requirements(self, name: str) -> dict[str, Any]:
        return self._merged(name, "requirements")

    def operations(self, name: str) -> dict[str, Operation]:
        """Every operation of the type's interfaces, keyed ``Interface.operation`` (fresh copies)."""
        cached = self._operations_cache.get(name)
        if cached is None:
            cached = self._operations_cache[name] = self._operations(name)
        return {key: op.copy() for key, op in cached.items()}

    def _operations(self, name: str) -> dict[str, Operation]:
        result: dict[str, Operation] = {}
        for type_name in reversed(self.chain(name)):
            source = self.source(type_name)
            refine_operations(
                result,
                (self.definition(type_name) or {}).get("interfaces"),
                file=source.file if source else "<tosca normative types>",
                path=(*source.path, "interfaces") if source else (),
                in_type=True,
            )
        return result
