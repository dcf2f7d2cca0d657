"""``compile``: a validated :class:`Blueprint` into a :class:`Plan`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tempano.blueprints._blueprint import Blueprint
from tempano.blueprints._errors import BlueprintCompileError, ErrorDetail
from tempano.blueprints._functions import Context, FunctionCompiler
from tempano.blueprints._graph import build_workflows
from tempano.blueprints._nfv import implementing_type, initial_deltas, vdu_instances
from tempano.blueprints._operations import OperationCompiler
from tempano.blueprints._state import Node
from tempano.blueprints._types import TypeIndex
from tempano.blueprints._yaml import Path_
from tempano.blueprints.plan import (
    HOSTED_ON,
    InputSpec,
    Instances,
    NodeSpec,
    OutputSpec,
    Plan,
    RelationshipSpec,
    ScalingGroup,
)

_TOPOLOGY = "topology_template"
DEPENDS_ON = "tosca.relationships.DependsOn"
SCALING_POLICY = "tosca.policies.Scaling"


class Compiler:
    """One compilation: collects every error, raises them together at the end."""

    def __init__(self, blueprint: Blueprint, has_operation: Callable[[str], bool] | None) -> None:
        self.blueprint = blueprint
        self.types = TypeIndex(blueprint.sources.types)
        self.errors: list[ErrorDetail] = []
        self.has_operation = has_operation
        template = blueprint.template
        topology = template.get(_TOPOLOGY)
        self.topology: Mapping[str, Any] = topology if isinstance(topology, Mapping) else {}
        raw_nodes = self.topology.get("node_templates")
        self.raw_nodes: Mapping[str, Any] = raw_nodes if isinstance(raw_nodes, Mapping) else {}
        self.nodes: dict[str, Node] = {}

    def error(self, path: Path_, message: str, entity: str = "") -> None:
        self.errors.append(self.blueprint.detail(path, message, entity))

    def node_path(self, name: str, *rest: str | int) -> Path_:
        return (_TOPOLOGY, "node_templates", name, *rest)

    def run(self) -> Plan:
        for name in sorted(self.raw_nodes):
            raw = self.raw_nodes[name]
            raw = raw if isinstance(raw, Mapping) else {}
            type_name = self.types.canonical(str(raw.get("type", "")))
            if not self.types.known(type_name):
                self.error(self.node_path(name, "type"), f"unknown node type {type_name!r}", name)
            self.nodes[name] = Node(name, raw, type_name)
        for node in self.nodes.values():
            node.properties = self._properties(node)
            self._requirements(node)
        self._scaling()
        functions = FunctionCompiler(self)
        operations = OperationCompiler(self, functions)
        specs: dict[str, NodeSpec] = {}
        for name, node in sorted(self.nodes.items()):
            ctx = Context(self_node=name)
            properties = functions.compile_value(node.properties, ctx, self.node_path(name, "properties"))
            relationships = tuple(
                rel.model_copy(
                    update={
                        "properties": functions.compile_value(
                            rel.properties, Context(self_node=name, source=name, target=rel.target), path
                        ),
                        "operations": operations.relationship_operations(node, rel, path),
                    }
                )
                for rel, path in zip(node.relationships, node.requirement_paths, strict=True)
            )
            specs[name] = NodeSpec(
                name=name,
                type=node.type,
                type_hierarchy=self.types.chain(node.type)[1:],
                properties=properties,
                attributes=self._attributes(node),
                operations=operations.node_operations(node),
                relationships=relationships,
                host=node.host,
                instances=node.instances,
                implemented_by=node.implemented_by,
            )
        inputs = self._inputs()
        outputs = self._outputs(functions)
        workflows = build_workflows(self, specs)
        imperative = {}
        if "workflows" in self.topology:
            from tempano.blueprints._imperative import compile_imperative

            imperative = compile_imperative(self, functions)
        if self.errors:
            raise BlueprintCompileError(self.errors)
        metadata = self.blueprint.template.get("metadata")
        description = self.blueprint.template.get("description")
        return Plan(
            tosca_version=str(self.blueprint.template.get("tosca_definitions_version", "")),
            description=str(description).strip() if description else "",
            metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
            inputs=inputs,
            nodes=specs,
            outputs=outputs,
            groups=self.groups,
            workflows=workflows,
            imperative_workflows=imperative,
        )

    # -- properties and attributes ------------------------------------------------------------------

    def _properties(self, node: Node) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, definition in self.types.properties(node.type).items():
            if isinstance(definition, Mapping) and "default" in definition:
                values[name] = definition["default"]
        given = node.template.get("properties")
        if isinstance(given, Mapping):
            values.update({str(k): v for k, v in given.items()})
        return dict(sorted(values.items()))

    def _attributes(self, node: Node) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, definition in self.types.attributes(node.type).items():
            if isinstance(definition, Mapping) and "default" in definition:
                values[name] = definition["default"]
        given = node.template.get("attributes")
        if isinstance(given, Mapping):
            values.update({str(k): v for k, v in given.items()})
        return dict(sorted(values.items()))

    # -- requirements -------------------------------------------------------------------------------

    def _requirements(self, node: Node) -> None:
        requirements = node.template.get("requirements")
        if not isinstance(requirements, list):
            return
        declared = self.types.requirements(node.type)
        for index, entry in enumerate(requirements):
            if not isinstance(entry, Mapping) or len(entry) != 1:
                continue
            ((req_name, assignment),) = entry.items()
            path = self.node_path(node.name, "requirements", index, str(req_name))
            definition = declared.get(str(req_name))
            rel = self._relationship(node, str(req_name), assignment, definition, path)
            if rel is not None:
                node.relationships.append(rel)
                node.requirement_paths.append(path)
                if node.host is None and rel.is_a(HOSTED_ON):
                    node.host = rel.target

    def _relationship(
        self, node: Node, req_name: str, assignment: Any, definition: Any, path: Path_
    ) -> RelationshipSpec | None:
        target_ref: Any = assignment
        rel_ref: Any = None
        if isinstance(assignment, Mapping):
            target_ref = assignment.get("node")
            rel_ref = assignment.get("relationship")
        if target_ref is None:
            return None  # unfilled requirement: TOSCA lets the orchestrator leave or fill it
        target = self._target(node, req_name, str(target_ref), path)
        if target is None:
            return None
        properties: dict[str, Any] = {}
        rel_type: str | None = None
        if isinstance(rel_ref, Mapping):
            rel_type = str(rel_ref.get("type")) if rel_ref.get("type") else None
            props = rel_ref.get("properties")
            if isinstance(props, Mapping):
                properties.update(props)
        elif isinstance(rel_ref, str):
            templates = self.topology.get("relationship_templates")
            if isinstance(templates, Mapping) and isinstance(templates.get(rel_ref), Mapping):
                rel_template = templates[rel_ref]
                rel_type = str(rel_template.get("type"))
                props = rel_template.get("properties")
                if isinstance(props, Mapping):
                    properties.update(props)
            else:
                rel_type = rel_ref
        if rel_type is None and isinstance(definition, Mapping):
            declared = definition.get("relationship")
            if isinstance(declared, Mapping):
                declared = declared.get("type")
            if declared is not None:
                rel_type = str(declared)
        rel_type = self.types.canonical(rel_type or DEPENDS_ON)
        if not self.types.known(rel_type):
            self.error(path, f"unknown relationship type {rel_type!r}", node.name)
            return None
        defaults = {
            name: d["default"]
            for name, d in self.types.properties(rel_type).items()
            if isinstance(d, Mapping) and "default" in d
        }
        return RelationshipSpec(
            name=req_name,
            type=rel_type,
            type_hierarchy=self.types.chain(rel_type)[1:],
            target=target,
            properties=dict(sorted({**defaults, **properties}.items())),
        )

    def _target(self, node: Node, req_name: str, ref: str, path: Path_) -> str | None:
        if ref in self.raw_nodes:
            # A node requiring itself orders nothing; SOL001 top-level VNFDs write it for requirements that
            # lower-level (substituted) templates map, so it is accepted and dropped.
            return None if ref == node.name else ref
        if self.types.known(ref):
            # A node type instead of a template: the one template of that type satisfies it.
            matches = sorted(
                n for n, spec in self.nodes.items() if n != node.name and self.types.is_a(spec.type, ref)
            )
            if len(matches) == 1:
                return matches[0]
            found = ", ".join(matches) or "none"
            self.error(
                path,
                f"requirement {req_name!r} asks for a node of type {ref!r}: exactly one template must match "
                f"(found: {found}); name the target template instead",
                node.name,
            )
            return None
        self.error(
            path,
            f"requirement {req_name!r} targets {ref!r}, which is neither a node template nor a node type; "
            f"known templates: {', '.join(sorted(self.raw_nodes))}",
            node.name,
        )
        return None

    # -- scaling ----------------------------------------------------------------------------------

    def _scaling(self) -> None:
        self.groups: dict[str, ScalingGroup] = {}
        deltas = initial_deltas(self.topology.get("policies"))
        for node in self.nodes.values():
            node.implemented_by = implementing_type(self.types.chain(node.type))
            counts = vdu_instances(node.properties, deltas.get(node.name))
            if counts is not None:
                node.instances = counts
        for node in self.nodes.values():
            caps = node.template.get("capabilities")
            scalable = caps.get("scalable") if isinstance(caps, Mapping) else None
            props = scalable.get("properties") if isinstance(scalable, Mapping) else None
            if isinstance(props, Mapping):
                node.instances = self._instances(props, self.node_path(node.name, "capabilities", "scalable"))
        group_defs = self.topology.get("groups")
        group_defs = group_defs if isinstance(group_defs, Mapping) else {}
        policies = self.topology.get("policies")
        if not isinstance(policies, list):
            return
        for index, entry in enumerate(policies):
            if not isinstance(entry, Mapping) or len(entry) != 1:
                continue
            ((name, policy),) = entry.items()
            if not isinstance(policy, Mapping) or not self.types.is_a(
                str(policy.get("type")), SCALING_POLICY
            ):
                continue
            path: Path_ = (_TOPOLOGY, "policies", index, str(name))
            props = policy.get("properties")
            instances = self._instances(props if isinstance(props, Mapping) else {}, path)
            for target in policy.get("targets") or []:
                target = str(target)
                if target in self.nodes:
                    self.nodes[target].instances = instances
                elif isinstance(group_defs.get(target), Mapping):
                    members = tuple(sorted(str(m) for m in group_defs[target].get("members") or []))
                    self.groups[target] = ScalingGroup(name=target, members=members, instances=instances)
                else:
                    self.error(
                        path, f"the scaling policy targets {target!r}, which is no node or group", str(name)
                    )

    def _instances(self, props: Mapping[str, Any], path: Path_) -> Instances:
        def number(key: str, default: int | None) -> int | None:
            value = props.get(key, default)
            if value is None or value == "UNBOUNDED":
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                self.error(path, f"{key} must be a non-negative integer (got {value!r})")
                return default
            return value

        minimum = number("min_instances", 0) or 0
        maximum = number("max_instances", None)
        default = number("default_instances", None)
        if default is None:
            default = max(1, minimum)
        if default < minimum or (maximum is not None and default > maximum):
            self.error(path, f"default_instances {default} is outside min_instances..max_instances")
        return Instances(default=default, min=minimum, max=maximum)

    # -- inputs and outputs -------------------------------------------------------------------------

    def _inputs(self) -> dict[str, InputSpec]:
        raw = self.topology.get("inputs")
        specs: dict[str, InputSpec] = {}
        if not isinstance(raw, Mapping):
            return specs
        for name in sorted(raw):
            definition = raw[name] if isinstance(raw[name], Mapping) else {}
            constraints = definition.get("constraints") or []
            specs[str(name)] = InputSpec(
                type=str(definition.get("type", "string")),
                description=str(definition.get("description", "") or "").strip(),
                required=bool(definition.get("required", True)),
                default=definition.get("default"),
                constraints=tuple(c for c in constraints if isinstance(c, Mapping)),
                entry_schema=definition.get("entry_schema")
                if isinstance(definition.get("entry_schema"), Mapping)
                else None,
            )
        return specs

    def _outputs(self, functions: FunctionCompiler) -> dict[str, OutputSpec]:
        raw = self.topology.get("outputs")
        specs: dict[str, OutputSpec] = {}
        if not isinstance(raw, Mapping):
            return specs
        for name in sorted(raw):
            definition = raw[name] if isinstance(raw[name], Mapping) else {}
            path = (_TOPOLOGY, "outputs", name, "value")
            specs[str(name)] = OutputSpec(
                value=functions.compile_value(definition.get("value"), None, path, entity=str(name)),
                description=str(definition.get("description", "") or "").strip(),
            )
        return specs


def compile_blueprint(blueprint: Blueprint, *, has_operation: Callable[[str], bool] | None = None) -> Plan:
    """Compile a loaded blueprint into a plan; every problem is reported in one BlueprintCompileError."""
    return Compiler(blueprint, has_operation).run()
