"""The compiler's public functions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tempano.blueprints._blueprint import Blueprint, load
from tempano.blueprints._compiler import compile_blueprint
from tempano.blueprints._gc import paused_gc
from tempano.blueprints._inputs import bind_inputs
from tempano.blueprints._plugins import has_operation as installed_operation
from tempano.blueprints.plan import Plan


def compile(blueprint: Blueprint, *, has_operation: Callable[[str], bool] | None = installed_operation) -> Plan:
    """Compile a loaded blueprint into a plan; inputs stay symbolic (``{"get_input": name}``).

    ``has_operation`` says whether a plugin operation reference exists (default: the installed plugins);
    None skips that check.
    """
    with paused_gc():
        return compile_blueprint(blueprint, has_operation=has_operation)


def compile_path(
    path: str | Path,
    *,
    inputs: Mapping[str, Any] | None = None,
    allow_remote_imports: bool = False,
    has_operation: Callable[[str], bool] | None = installed_operation,
    confine: bool = False,
) -> Plan:
    """Load and compile a blueprint, and bind ``inputs`` when given; a CSAR's extraction is removed afterwards.
    ``confine``: imports may not leave the blueprint's directory (see :func:`load`)."""
    blueprint = load(path, allow_remote_imports=allow_remote_imports, confine=confine)
    try:
        plan = compile(blueprint, has_operation=has_operation)
    finally:
        blueprint.cleanup()
    return bind_inputs(plan, inputs) if inputs is not None else plan
