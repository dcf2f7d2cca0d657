"""Run-time evaluation of TOSCA intrinsic functions kept in a plan.

Compile-time functions (get_input, get_property, concat/join/token over constants) are resolved by the compiler.
What remains in a plan is evaluated here, by the activity that runs an operation or computes outputs, against a
:class:`Resolver` that reads the runtime store: get_attribute, get_operation_output, get_secret, and
concat/join/token whose arguments contain those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

RUNTIME_FUNCTIONS = frozenset({"get_attribute", "get_operation_output", "get_secret"})
STRING_FUNCTIONS = frozenset({"concat", "join", "token"})
ALL_FUNCTIONS = RUNTIME_FUNCTIONS | STRING_FUNCTIONS | {"get_input", "get_property", "get_artifact"}


class FunctionError(ValueError):
    """A function could not be evaluated (unknown entity, missing attribute, bad arguments)."""


class Resolver(Protocol):
    """Answers the run-time functions for one evaluation context (an operation, or the deployment's outputs)."""

    def get_attribute(self, entity: str, path: Sequence[str | int]) -> Any:
        """``entity`` is SELF, SOURCE, TARGET, HOST or a node template name."""

    def get_operation_output(self, entity: str, interface: str, operation: str, name: str) -> Any: ...

    def get_secret(self, name: str) -> str: ...


def function_name(value: Any) -> str | None:
    """The function a value calls (``{"concat": [...]}`` -> ``concat``), or None for plain data."""
    if isinstance(value, Mapping) and len(value) == 1:
        (key,) = value.keys()
        if key in ALL_FUNCTIONS:
            return str(key)
    return None


def evaluate(value: Any, resolver: Resolver) -> Any:
    """``value`` with every function replaced by its result, recursively."""
    name = function_name(value)
    if name is None:
        if isinstance(value, Mapping):
            return {k: evaluate(v, resolver) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [evaluate(v, resolver) for v in value]
        return value
    args = value[name]
    if name == "get_attribute":
        items = _list(name, args, minimum=2)
        return resolver.get_attribute(str(items[0]), [_key(a) for a in items[1:]])
    if name == "get_operation_output":
        items = _list(name, args, minimum=4)
        return resolver.get_operation_output(str(items[0]), str(items[1]), str(items[2]), str(items[3]))
    if name == "get_secret":
        secret = args[0] if isinstance(args, list) and args else args
        return resolver.get_secret(str(evaluate(secret, resolver)))
    if name == "concat":
        return "".join(_text(evaluate(a, resolver)) for a in _list(name, args, minimum=1))
    if name == "join":
        items = _list(name, args, minimum=1)
        parts = evaluate(items[0], resolver)
        delimiter = _text(evaluate(items[1], resolver)) if len(items) > 1 else ""
        return delimiter.join(_text(p) for p in _list(name, parts, minimum=0))
    if name == "token":
        items = _list(name, args, minimum=3)
        text = _text(evaluate(items[0], resolver))
        separators = _text(evaluate(items[1], resolver))
        index = int(evaluate(items[2], resolver))
        return _tokenize(text, separators, index)
    raise FunctionError(f"{name} cannot be evaluated at run time; the compiler should have resolved it")


def _tokenize(text: str, separators: str, index: int) -> str:
    tokens: list[str] = []
    current: list[str] = []
    for char in text:
        if char in separators:
            tokens.append("".join(current))
            current = []
        else:
            current.append(char)
    tokens.append("".join(current))
    try:
        return tokens[index]
    except IndexError:
        raise FunctionError(f"token: {text!r} split on {separators!r} has no token {index}") from None


def _list(name: str, args: Any, *, minimum: int) -> list[Any]:
    if not isinstance(args, list | tuple) or len(args) < minimum:
        raise FunctionError(f"{name} takes a list of at least {minimum} arguments, got {args!r}")
    return list(args)


def _key(value: Any) -> str | int:
    return value if isinstance(value, int) else str(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
