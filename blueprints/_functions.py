"""Compile-time intrinsic functions.

get_property is replaced by the value it names (which may itself hold a symbolic get_input); get_input stays
symbolic until :func:`bind_inputs`; concat/join/token over constants are folded; get_attribute and
get_operation_output are checked (their entity must exist) and kept for run time; get_secret stays as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tempano.blueprints._yaml import Path_
from tempano.blueprints.functions import STRING_FUNCTIONS, FunctionError, evaluate, function_name

if TYPE_CHECKING:
    from tempano.blueprints._state import CompileState

_KEYWORDS = frozenset({"SELF", "SOURCE", "TARGET", "HOST"})


@dataclass(frozen=True)
class Context:
    """What SELF, SOURCE, TARGET and HOST mean where a value is written."""

    self_node: str | None = None
    source: str | None = None
    target: str | None = None
    self_properties: Mapping[str, Any] | None = None
    """For relationship operations, SELF is the relationship: its properties."""


class _Constants:
    """A resolver for folding constant expressions: any run-time function reaching it is a bug."""

    def get_attribute(self, entity: str, path: Sequence[str | int]) -> Any:
        raise FunctionError("get_attribute cannot be folded at compile time")

    def get_operation_output(self, entity: str, interface: str, operation: str, name: str) -> Any:
        raise FunctionError("get_operation_output cannot be folded at compile time")

    def get_secret(self, name: str) -> str:
        raise FunctionError("get_secret is never evaluated at compile time")


def is_constant(value: Any) -> bool:
    """Whether ``value`` holds no function call at all."""
    if function_name(value) is not None:
        return False
    if isinstance(value, Mapping):
        return all(is_constant(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(is_constant(v) for v in value)
    return True


def fold(name: str, args: Any) -> Any:
    """Evaluate a string function whose arguments are constants (raises FunctionError when it cannot)."""
    return evaluate({name: args}, _Constants())


class FunctionCompiler:
    """Compiles values of one blueprint; errors go to the compiler with the value's location."""

    def __init__(self, compiler: CompileState) -> None:
        self._c = compiler
        self._resolving: list[tuple[str, tuple[Any, ...]]] = []

    def compile_value(self, value: Any, ctx: Context | None, path: Path_, entity: str = "") -> Any:
        kind = type(value)
        if kind is str or kind is int or kind is bool or kind is float or value is None:
            return value  # the common case, answered before any function lookup
        entity = entity or (ctx.self_node if ctx and ctx.self_node else "")
        name = function_name(value)
        if name is None:
            if isinstance(value, Mapping):
                return {str(k): self.compile_value(v, ctx, (*path, str(k)), entity) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [self.compile_value(v, ctx, (*path, i), entity) for i, v in enumerate(value)]
            return value
        args = value[name]
        fpath = (*path, name)
        if name == "get_input":
            input_name = args[0] if isinstance(args, list) and args else args
            inputs = self._c.topology.get("inputs")
            if not isinstance(inputs, Mapping) or str(input_name) not in inputs:
                self._c.error(fpath, f"get_input names {input_name!r}, which is not a declared input", entity)
            return {name: args}
        if name == "get_property":
            return self._get_property(args, ctx, fpath, entity)
        if name in {"get_attribute", "get_operation_output"}:
            self._check_entity(name, args, ctx, fpath, entity)
            return {name: self.compile_value(args, ctx, fpath, entity)}
        if name == "get_secret":
            return {name: args}
        if name in STRING_FUNCTIONS:
            compiled = self.compile_value(args, ctx, fpath, entity)
            if is_constant(compiled):
                try:
                    return fold(name, compiled)
                except (FunctionError, ValueError, TypeError) as exc:
                    self._c.error(fpath, f"{name}: {exc}", entity)
            return {name: compiled}
        return {name: self.compile_value(args, ctx, fpath, entity)}

    def _node_for(self, keyword: str, ctx: Context | None, fname: str, path: Path_, entity: str) -> str | None:
        if keyword in self._c.nodes:
            return keyword
        if keyword in _KEYWORDS:
            node = None
            if ctx is not None:
                node = {"SELF": ctx.self_node, "SOURCE": ctx.source, "TARGET": ctx.target}.get(keyword)
                if keyword == "HOST" and ctx.self_node:
                    node = self._c.nodes[ctx.self_node].host
            if node is None:
                where = "here" if ctx is None else f"for {ctx.self_node or 'this value'}"
                self._c.error(path, f"{fname}: {keyword} means nothing {where}", entity)
            return node
        self._c.error(
            path,
            f"{fname} names {keyword!r}, which is not a node template (nor SELF/SOURCE/TARGET/HOST)",
            entity,
        )
        return None

    def _check_entity(self, fname: str, args: Any, ctx: Context | None, path: Path_, entity: str) -> None:
        minimum = 2 if fname == "get_attribute" else 4
        if not isinstance(args, list) or len(args) < minimum:
            self._c.error(path, f"{fname} takes a list of at least {minimum} arguments", entity)
            return
        keyword = str(args[0])
        if keyword == "SELF" and ctx is not None and ctx.self_properties is not None:
            return
        self._node_for(keyword, ctx, fname, path, entity)

    def _get_property(self, args: Any, ctx: Context | None, path: Path_, entity: str) -> Any:
        if not isinstance(args, list) or len(args) < 2:
            self._c.error(path, "get_property takes a list: [entity, (capability,) property, (nested keys...)]", entity)
            return None
        keyword = str(args[0])
        if keyword == "SELF" and ctx is not None and ctx.self_properties is not None:
            found, value = _dig(ctx.self_properties, [str(args[1]), *args[2:]])
            if not found:
                self._c.error(path, f"get_property: the relationship has no property {args[1]!r}", entity)
            return self.compile_value(value, ctx, path, entity) if found else None
        node_name = self._node_for(keyword, ctx, "get_property", path, entity)
        while node_name is not None:
            found, value, owner = self._lookup(node_name, args[1:])
            if found:
                key = (owner, tuple(args[1:]))
                if key in self._resolving:
                    self._c.error(path, f"get_property loops back to {owner}.{args[1]}", entity)
                    return None
                self._resolving.append(key)
                try:
                    return self.compile_value(value, Context(self_node=owner), path, entity)
                finally:
                    self._resolving.pop()
            if keyword != "HOST":
                break
            # HOST looks up the hosting chain until a host has the property.
            node_name = self._c.nodes[node_name].host
        if node_name is not None or keyword != "HOST":
            self._c.error(
                path,
                f"get_property: node {node_name or keyword!r} has no property {'.'.join(str(a) for a in args[1:])!r}",
                entity,
            )
        else:
            self._c.error(path, f"get_property: no host of {ctx.self_node if ctx else '?'} has {args[1]!r}", entity)
        return None

    def _lookup(self, node_name: str, keys: list[Any]) -> tuple[bool, Any, str]:
        node = self._c.nodes[node_name]
        first = str(keys[0])
        if len(keys) >= 2:
            capabilities = self._c.types.capabilities(node.type)
            if first in capabilities:
                found, value = _dig(self._capability_properties(node_name, first), [str(keys[1]), *keys[2:]])
                if found:
                    return True, value, node_name
        declared = self._c.types.properties(node.type)
        if first not in node.properties and first not in declared:
            return False, None, node_name
        found, value = _dig(node.properties, [first, *keys[1:]])
        return found or len(keys) == 1, value, node_name

    def _capability_properties(self, node_name: str, capability: str) -> dict[str, Any]:
        node = self._c.nodes[node_name]
        definition = self._c.types.capabilities(node.type).get(capability)
        cap_type = definition.get("type") if isinstance(definition, Mapping) else definition
        values = self._c.types.defaults(cap_type) if isinstance(cap_type, str) else {}
        if isinstance(definition, Mapping) and isinstance(definition.get("properties"), Mapping):
            for name, prop in definition["properties"].items():
                if isinstance(prop, Mapping) and "default" in prop:
                    values[str(name)] = prop["default"]
                elif not isinstance(prop, Mapping):
                    values[str(name)] = prop
        caps = node.template.get("capabilities")
        assigned = caps.get(capability) if isinstance(caps, Mapping) else None
        if isinstance(assigned, Mapping) and isinstance(assigned.get("properties"), Mapping):
            values.update({str(k): v for k, v in assigned["properties"].items()})
        return values


def _dig(value: Any, keys: Sequence[Any]) -> tuple[bool, Any]:
    for key in keys:
        if isinstance(value, Mapping) and str(key) in value:
            value = value[str(key)]
        elif isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
            value = value[key]
        else:
            return False, None
    return True, value
