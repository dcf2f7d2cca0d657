"""The blueprint error tree.

::

    BlueprintError            every problem with a blueprint, with one ErrorDetail per problem
    ├── BlueprintLoadError    the files themselves: YAML syntax, size limits, imports, CSAR layout
    ├── BlueprintCompileError TOSCA validation and compile checks (types, requirements, functions, cycles)
    └── InputError            deployment inputs refused by bind_inputs
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorDetail:
    """One problem: what is wrong, where (file, 1-based line and column), and which entity it concerns."""

    message: str
    file: str = ""
    line: int = 0
    column: int = 0
    entity: str = ""

    def __str__(self) -> str:
        where = self.file or "<blueprint>"
        if self.line:
            where = f"{where}:{self.line}:{self.column}"
        entity = f" {self.entity}:" if self.entity else ""
        return f"{where}:{entity} {self.message}"


class BlueprintError(Exception):
    """A blueprint (or the inputs given to it) cannot be used; ``errors`` says every reason and where."""

    def __init__(self, errors: Iterable[ErrorDetail] | str) -> None:
        if isinstance(errors, str):
            errors = [ErrorDetail(errors)]
        self.errors: list[ErrorDetail] = sorted(
            dict.fromkeys(errors), key=lambda e: (e.file, e.line, e.column, e.entity, e.message)
        )
        if not self.errors:
            self.errors = [ErrorDetail("the blueprint is invalid (no detail was given)")]
        super().__init__("\n".join(str(e) for e in self.errors))


class BlueprintLoadError(BlueprintError):
    """The blueprint's files could not be read: syntax, size, imports, archive layout."""


class BlueprintCompileError(BlueprintError):
    """The blueprint is readable but not valid TOSCA, or cannot compile into a plan."""


class InputError(BlueprintError):
    """Deployment inputs do not match the plan's input definitions."""
