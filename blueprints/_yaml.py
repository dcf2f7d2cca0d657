"""YAML loading that keeps source positions and refuses hostile input.

tosca-parser reports no lines, so every document is loaded here once, with libyaml's C parser when present,
into plain Python data plus a :class:`PositionMap` from each key path to its line and column. The same data is
then handed to tosca-parser (never re-read from disk), which also saves it a second YAML parse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from tempano.blueprints._errors import BlueprintLoadError, ErrorDetail

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlProblem:
    """What PyYAML found wrong, in one line, and where (1-based; 0 when it gives no place)."""

    problem: str
    line: int = 0
    column: int = 0


def yaml_problem(error: yaml.YAMLError, text: str) -> YamlProblem:
    """PyYAML's error (several lines, with a place in its own words) as one line and a place in ``text``."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "invalid YAML"
        return YamlProblem(problem, mark.line + 1, mark.column + 1) if mark else YamlProblem(problem)
    if isinstance(error, yaml.reader.ReaderError):  # a control character: a position, no line or column
        line_start = text.rfind("\n", 0, error.position) + 1
        return YamlProblem(
            f"character #x{error.character:04x} is not allowed",
            text.count("\n", 0, error.position) + 1,
            error.position - line_start + 1,
        )
    return YamlProblem(" ".join(str(error).split()))


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc]
    """libyaml's parser with a memo in front of PyYAML's implicit tag resolver.

    The resolver runs a list of regular expressions for every plain scalar, which dominates composing a large
    blueprint; keys and values repeat a lot ("type", "properties", true...), so a memo pays off.
    """

    _memo: dict[tuple[str, bool], str] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0] and len(value) < 64:
            key = (value, implicit[1])
            tag = self._memo.get(key)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(self._memo) < 100_000:
                    self._memo[key] = tag
            return tag
        return super().resolve(kind, value, implicit)


_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_SCALAR_CONSTRUCTORS: dict[str, Any] = {
    "tag:yaml.org,2002:null": yaml.constructor.SafeConstructor.construct_yaml_null,
    "tag:yaml.org,2002:bool": yaml.constructor.SafeConstructor.construct_yaml_bool,
    "tag:yaml.org,2002:int": yaml.constructor.SafeConstructor.construct_yaml_int,
    "tag:yaml.org,2002:float": yaml.constructor.SafeConstructor.construct_yaml_float,
    "tag:yaml.org,2002:binary": yaml.constructor.SafeConstructor.construct_yaml_binary,
}


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile blueprint from exhausting memory or time."""

    max_file_bytes: int = 32 * 1024 * 1024
    max_total_bytes: int = 128 * 1024 * 1024
    max_files: int = 500
    max_alias_expansion: int = 250_000
    """Nodes produced by expanding aliases (a 'billion laughs' document hits this)."""
    max_depth: int = 200


DEFAULT_LIMITS = Limits()


@dataclass
class PositionMap:
    """Line and column (1-based) of every mapping key and sequence item of one document, by key path."""

    file: str
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def find(self, path: Path_) -> tuple[int, int]:
        """Position of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            found = self.positions.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return self.positions.get((), (1, 1))

    def detail(self, path: Path_, message: str, entity: str = "") -> ErrorDetail:
        line, column = self.find(path)
        return ErrorDetail(message, self.file, line, column, entity)


@dataclass
class YamlDocument:
    """A loaded YAML document: its data and where each part of it came from."""

    file: str
    data: Any
    positions: PositionMap


def load_yaml_text(text: str, file: str, limits: Limits = DEFAULT_LIMITS) -> YamlDocument:
    """Parse ``text`` (the content of ``file``, used in messages) into data with positions."""
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_file_bytes:
        raise BlueprintLoadError(
            [ErrorDetail(f"the file is larger than {limits.max_file_bytes} bytes; split it into imports", file)]
        )
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        found = yaml_problem(exc, text)
        raise BlueprintLoadError(
            [
                ErrorDetail(
                    f"YAML syntax error: {found.problem}; fix the YAML at this place", file, found.line, found.column
                )
            ]
        ) from None
    finally:
        loader.dispose()
    positions = PositionMap(file)
    if node is None:
        return YamlDocument(file, None, positions)
    builder = _Builder(loader, file, positions, limits)
    data = builder.build(node, (), 0)
    return YamlDocument(file, data, positions)


def load_yaml_bytes(raw: bytes, file: str, limits: Limits = DEFAULT_LIMITS) -> YamlDocument:
    """Like :func:`load_yaml_text` for raw bytes, refusing what is not UTF-8."""
    if len(raw) > limits.max_file_bytes:
        raise BlueprintLoadError(
            [ErrorDetail(f"the file is larger than {limits.max_file_bytes} bytes; split it into imports", file)]
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BlueprintLoadError(
            [ErrorDetail(f"the file is not UTF-8 text (byte {exc.start}); save it as UTF-8", file)]
        ) from None
    return load_yaml_text(text, file, limits)


class _Builder:
    """Turns a composed node graph into data, recording positions and bounding alias expansion."""

    def __init__(self, loader: Any, file: str, positions: PositionMap, limits: Limits) -> None:
        self._loader = loader
        self._file = file
        self._positions = positions.positions
        self._limits = limits
        self._seen: set[int] = set()
        self._active: set[int] = set()
        self._expanded = 0
        self._in_alias = 0

    def _error(self, node: Any, message: str) -> BlueprintLoadError:
        mark = node.start_mark
        return BlueprintLoadError([ErrorDetail(message, self._file, mark.line + 1, mark.column + 1)])

    def build(self, node: Any, path: Path_, depth: int) -> Any:
        if depth > self._limits.max_depth:
            raise self._error(node, f"the document is nested deeper than {self._limits.max_depth} levels")
        key = id(node)
        aliased = key in self._seen
        if aliased or self._in_alias:
            # Walking an alias again: bound the total so exponential expansion ('billion laughs') stops early.
            self._expanded += 1
            if self._expanded > self._limits.max_alias_expansion:
                raise self._error(
                    node,
                    f"YAML aliases expand to more than {self._limits.max_alias_expansion} nodes "
                    "(a 'billion laughs' document?); use fewer nested aliases",
                )
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if key in self._active:
            raise self._error(node, "a YAML alias refers to the node that contains it (a recursive structure)")
        self._seen.add(key)
        self._active.add(key)
        self._in_alias += aliased
        try:
            if isinstance(node, yaml.SequenceNode):
                items = []
                for index, item in enumerate(node.value):
                    self._positions[(*path, index)] = (item.start_mark.line + 1, item.start_mark.column + 1)
                    items.append(self.build(item, (*path, index), depth + 1))
                return items
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path, depth)
        finally:
            self._active.discard(key)
            self._in_alias -= aliased
        raise self._error(node, f"unsupported YAML node {node.tag}")

    def _scalar(self, node: Any) -> Any:
        tag = node.tag
        if tag in (_STR, _TIMESTAMP):
            # Timestamps stay text: the plan is JSON, and TOSCA validates timestamp values itself.
            return node.value
        constructor = _SCALAR_CONSTRUCTORS.get(tag)
        if constructor is not None:
            try:
                return constructor(self._loader, node)
            except (yaml.YAMLError, ValueError) as exc:
                raise self._error(node, f"invalid scalar: {exc}") from None
        raise self._error(node, f"unknown YAML tag {tag!r}; remove the tag")

    def _mapping(self, node: Any, path: Path_, depth: int) -> dict[str, Any]:
        base: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                continue
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    raise self._error(source, "a merge key (<<) must refer to a mapping")
                # Built before the mapping's own keys so that their positions win over the merged ones.
                for name, value in self.build(source, path, depth + 1).items():
                    base.setdefault(name, value)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise self._error(key_node, "a mapping key must be a plain value, not a list or mapping")
            name = str(key_node.value)
            if name in result:
                raise self._error(key_node, f"duplicate key {name!r} in this mapping; remove or rename one of them")
            child = (*path, name)
            self._positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[name] = self.build(value_node, child, depth + 1)
        for name, value in base.items():
            result.setdefault(name, value)
        return result
