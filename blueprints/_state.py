"""What the parts of one compilation share (a Protocol, so each part can be typed without import cycles)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from tempano.blueprints._blueprint import Blueprint
from tempano.blueprints._errors import ErrorDetail
from tempano.blueprints._types import TypeIndex
from tempano.blueprints._yaml import Path_
from tempano.blueprints.plan import Instances, RelationshipSpec


class Node:
    """A node template while it compiles."""

    def __init__(self, name: str, template: Mapping[str, Any], type_name: str) -> None:
        self.name = name
        self.template = template
        self.type = type_name
        self.properties: dict[str, Any] = {}
        self.relationships: list[RelationshipSpec] = []
        self.requirement_paths: list[Path_] = []
        self.host: str | None = None
        self.instances = Instances(default=1, min=0, max=None)
        self.implemented_by: str | None = None


class CompileState(Protocol):
    """The compiler as its helpers see it."""

    blueprint: Blueprint
    types: TypeIndex
    errors: list[ErrorDetail]
    has_operation: Callable[[str], bool] | None
    topology: Mapping[str, Any]
    raw_nodes: Mapping[str, Any]
    nodes: dict[str, Node]

    def error(self, path: Path_, message: str, entity: str = "") -> None: ...

    def node_path(self, name: str, *rest: str | int) -> Path_: ...
