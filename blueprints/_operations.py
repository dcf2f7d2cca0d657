"""Operation implementations: plugin operation references, playbooks and scripts, timeouts and retries.

Reserved operation inputs (removed from the inputs the plugin receives):

- ``tempano_timeout``: start-to-close timeout in seconds (TOSCA 1.3 ``implementation.timeout`` also works);
- ``tempano_heartbeat_timeout``: heartbeat timeout in seconds;
- ``tempano_retry``: ``{max_attempts, initial_interval, backoff, max_interval}`` (seconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tempano.blueprints._functions import Context, FunctionCompiler
from tempano.blueprints._loader import resolve_written
from tempano.blueprints._types import Operation, refine_operations
from tempano.blueprints._yaml import Path_
from tempano.blueprints.plan import OperationSpec, RelationshipSpec, RetryPolicy

if TYPE_CHECKING:
    from tempano.blueprints._state import CompileState, Node

PLAYBOOK_OPERATION = "ansible.playbook.run"
SCRIPT_OPERATION = "builtin.script"
_PLAYBOOK_SUFFIXES = (".yaml", ".yml")
_SCRIPT_SUFFIXES = (".sh", ".bash", ".py")
_RETRY_KEYS = {
    "max_attempts": "max_attempts",
    "initial_interval": "initial_interval_s",
    "backoff": "backoff",
    "max_interval": "max_interval_s",
}


class OperationCompiler:
    """Builds OperationSpecs for nodes and relationships of one compilation."""

    def __init__(self, compiler: CompileState, functions: FunctionCompiler) -> None:
        self._c = compiler
        self._f = functions

    def node_operations(self, node: Node) -> dict[str, OperationSpec]:
        ops = self._c.types.operations(node.type)
        if node.implemented_by and self._c.types.known(node.implemented_by):
            # NFV profile node: the mapped type's operations, unless the node's own types implement them.
            mapped = self._c.types.operations(node.implemented_by)
            ops = {**mapped, **{k: v for k, v in ops.items() if v.implementation}}
        self._apply_template(ops, node.template.get("interfaces"), self._c.node_path(node.name, "interfaces"))
        ctx = Context(self_node=node.name)
        return self._specs(ops, ctx, node.name, self._artifacts(node))

    def relationship_operations(self, node: Node, rel: RelationshipSpec, path: Path_) -> dict[str, OperationSpec]:
        ops = self._c.types.operations(rel.type)
        assignment = _requirement_assignment(node, path)
        rel_ref = assignment.get("relationship") if isinstance(assignment, Mapping) else None
        if isinstance(rel_ref, Mapping):
            self._apply_template(ops, rel_ref.get("interfaces"), (*path, "relationship", "interfaces"))
        elif isinstance(rel_ref, str):
            templates = self._c.topology.get("relationship_templates")
            template = templates.get(rel_ref) if isinstance(templates, Mapping) else None
            if isinstance(template, Mapping):
                rpath = ("topology_template", "relationship_templates", rel_ref, "interfaces")
                self._apply_template(ops, template.get("interfaces"), rpath)
        ctx = Context(self_node=node.name, source=node.name, target=rel.target, self_properties=rel.properties)
        return self._specs(ops, ctx, node.name)

    def _apply_template(self, ops: dict[str, Operation], interfaces: Any, path: Path_) -> None:
        refine_operations(ops, interfaces, file=self._c.blueprint.file, path=path, in_type=False)

    def _artifacts(self, node: Node) -> dict[str, str]:
        """The node's artifacts (type and template), name -> file: implementations may name them."""
        found: dict[str, str] = {}
        for type_name in reversed(self._c.types.chain(node.type)):
            defs = (self._c.types.definition(type_name) or {}).get("artifacts")
            found.update(_artifact_files(defs))
        found.update(_artifact_files(node.template.get("artifacts")))
        return found

    def _specs(
        self,
        ops: Mapping[str, Operation],
        ctx: Context,
        entity: str,
        artifacts: Mapping[str, str] | None = None,
    ) -> dict[str, OperationSpec]:
        specs: dict[str, OperationSpec] = {}
        for key in sorted(ops):
            spec = self._spec(key, ops[key], ctx, entity, artifacts or {})
            if spec is not None:
                specs[key] = spec
        return specs

    def _error(self, op: Operation, message: str, entity: str) -> None:
        file, path = op.origin
        doc = self._c.blueprint.sources.documents.get(file)
        if doc is None:
            self._c.error((), message, entity)
        else:
            self._c.errors.append(doc.positions.detail(path, message, entity))

    def _spec(
        self, key: str, op: Operation, ctx: Context, entity: str, artifacts: Mapping[str, str]
    ) -> OperationSpec | None:
        impl = op.implementation
        if not impl:
            return None
        impl = artifacts.get(impl, impl)
        inputs = dict(op.inputs)
        timeout = inputs.pop("tempano_timeout", op.timeout)
        heartbeat = inputs.pop("tempano_heartbeat_timeout", None)
        retry_raw = inputs.pop("tempano_retry", None)
        lowered = impl.lower()
        if lowered.endswith(_PLAYBOOK_SUFFIXES) or lowered.endswith(_SCRIPT_SUFFIXES):
            located = self._artifact(op, impl, key, entity)
            if located is None:
                return None
            impl = located
            if lowered.endswith(_PLAYBOOK_SUFFIXES):
                implementation, inputs = PLAYBOOK_OPERATION, {**inputs, "playbook": impl}
            else:
                implementation, inputs = SCRIPT_OPERATION, {**inputs, "script": impl}
        elif "/" in impl or "\\" in impl or "://" in impl:
            self._error(
                op,
                f"{key}: implementation {impl!r} is not a plugin operation (plugin.operation), a playbook "
                "(.yaml/.yml) or shell script (.sh)",
                entity,
            )
            return None
        else:
            implementation = impl
            if "." not in impl:
                self._error(
                    op,
                    f"{key}: implementation {impl!r} must name a plugin operation: plugin.operation",
                    entity,
                )
                return None
            if self._c.has_operation is not None and not self._c.has_operation(impl):
                self._error(
                    op,
                    f"{key}: no installed plugin provides operation {impl!r}; install the plugin or fix the "
                    "implementation",
                    entity,
                )
                return None
        file, path = op.origin
        compiled_inputs = self._f.compile_value(inputs, ctx, path if file == self._c.blueprint.file else (), entity)
        return OperationSpec(
            implementation=implementation,
            inputs=dict(sorted(compiled_inputs.items())),
            timeout_s=self._seconds(op, key, "timeout", timeout, entity),
            heartbeat_timeout_s=self._seconds(op, key, "heartbeat timeout", heartbeat, entity),
            retry=self._retry(op, key, retry_raw, entity),
        )

    def _artifact(self, op: Operation, impl: str, key: str, entity: str) -> str | None:
        """The artifact's path relative to the blueprint directory, or None (error recorded)."""
        if "://" in impl:
            self._error(op, f"{key}: artifact {impl!r} is a URL; ship the file inside the blueprint", entity)
            return None
        base = self._c.blueprint.base_dir
        # Relative to the root template (CSARs write ../Scripts/x.sh from Definitions/), then to the base.
        written = (resolve_written(self._c.blueprint.root_file.parent, impl), resolve_written(base, impl))
        candidates = [path for path in written if path is not None]
        for path in candidates:
            if path.is_relative_to(base) and path.is_file():
                return path.relative_to(base).as_posix()
        if candidates and not any(path.is_relative_to(base) for path in candidates):
            self._error(
                op,
                f"{key}: artifact {impl!r} is outside the blueprint directory; keep artifacts in it",
                entity,
            )
        else:
            self._error(op, f"{key}: artifact {impl!r} does not exist next to the blueprint", entity)
        return None

    def _seconds(self, op: Operation, key: str, what: str, value: Any, entity: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self._error(op, f"{key}: the {what} must be a positive number of seconds (got {value!r})", entity)
            return None
        return float(value)

    def _retry(self, op: Operation, key: str, value: Any, entity: str) -> RetryPolicy | None:
        if value is None:
            return None
        if not isinstance(value, Mapping) or set(value) - set(_RETRY_KEYS):
            self._error(op, f"{key}: tempano_retry takes a mapping with {', '.join(_RETRY_KEYS)}", entity)
            return None
        try:
            return RetryPolicy(**{_RETRY_KEYS[k]: v for k, v in value.items()})
        except ValueError as exc:
            self._error(op, f"{key}: invalid tempano_retry: {_first_line(exc)}", entity)
            return None


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]


def _requirement_assignment(node: Node, path: Path_) -> Any:
    requirements = node.template.get("requirements")
    index = path[-2]
    if isinstance(requirements, list) and isinstance(index, int) and index < len(requirements):
        entry = requirements[index]
        if isinstance(entry, Mapping):
            return entry.get(path[-1])
    return None


def _artifact_files(defs: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    if isinstance(defs, Mapping):
        for name, definition in defs.items():
            file = definition.get("file") if isinstance(definition, Mapping) else definition
            if isinstance(file, str):
                found[str(name)] = file
    return found
