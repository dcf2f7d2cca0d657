"""The Plan: what a blueprint compiles into and what the engine runs.

A plan is template-level and compact: node templates with their types' operations resolved, relationships,
instance counts, inputs, outputs, scaling groups and, for each built-in workflow, the template-level step graph.
Node instances are expanded from the counts at run time, so a plan grows with templates, not instances.

Values may hold run-time expressions, kept in their TOSCA form: ``{"get_attribute": [...]}``,
``{"get_operation_output": [...]}``, ``{"get_secret": "name"}``, ``{"concat": [...]}`` around those, and
``{"get_input": "name"}`` until :func:`tempano.blueprints.bind_inputs` substitutes the deployment's inputs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PLAN_FORMAT = 1

# Phases of the built-in workflows' steps. The engine maps each to node and relationship operations.
InstallPhase = Literal["create", "preconfigure", "configure", "postconfigure", "start", "establish"]
UninstallPhase = Literal["unlink", "stop", "delete"]
Phase = Literal[
    "create", "preconfigure", "configure", "postconfigure", "start", "establish", "unlink", "stop", "delete"
]

INSTALL_PHASES: tuple[Phase, ...] = ("create", "preconfigure", "configure", "postconfigure", "start", "establish")
UNINSTALL_PHASES: tuple[Phase, ...] = ("unlink", "stop", "delete")
START_PHASES: tuple[Phase, ...] = ("start",)
STOP_PHASES: tuple[Phase, ...] = ("stop",)

# Interface and operation names the phases use (short interface names, as in blueprints).
NODE_PHASE_OPERATIONS: dict[str, str] = {
    "create": "Standard.create",
    "configure": "Standard.configure",
    "start": "Standard.start",
    "stop": "Standard.stop",
    "delete": "Standard.delete",
}
RELATIONSHIP_PHASE_OPERATIONS: dict[str, tuple[str, str]] = {
    # phase -> (operation run on the source side, operation run on the target side)
    "preconfigure": ("Configure.pre_configure_source", "Configure.pre_configure_target"),
    "postconfigure": ("Configure.post_configure_source", "Configure.post_configure_target"),
    "establish": ("Configure.add_target", "Configure.add_source"),
    "unlink": ("Configure.remove_target", "Configure.remove_source"),
}

HOSTED_ON = "tosca.relationships.HostedOn"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetryPolicy(_Model):
    """How an operation is retried. Never forever: ``max_attempts`` is always finite."""

    max_attempts: int = Field(default=5, ge=1, le=100)
    initial_interval_s: float = Field(default=1.0, gt=0)
    backoff: float = Field(default=2.0, ge=1.0)
    max_interval_s: float = Field(default=60.0, gt=0)


class OperationSpec(_Model):
    """One operation: a plugin operation reference (``openstack.server.create``) with its inputs."""

    implementation: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(default=None, gt=0)
    """Start-to-close timeout; None means the engine's default."""
    heartbeat_timeout_s: float | None = Field(default=None, gt=0)
    retry: RetryPolicy | None = None
    """None means the engine's default policy."""


class RelationshipSpec(_Model):
    """A filled requirement: this node -> ``target`` node, with its relationship type's operations."""

    name: str
    """Requirement name (host, dependency, link, binding, ...)."""
    type: str
    type_hierarchy: tuple[str, ...]
    target: str
    properties: dict[str, Any] = Field(default_factory=dict)
    operations: dict[str, OperationSpec] = Field(default_factory=dict)
    """Keyed ``Interface.operation`` (``Configure.pre_configure_source``)."""

    def is_a(self, type_name: str) -> bool:
        return type_name == self.type or type_name in self.type_hierarchy


class Instances(_Model):
    """Instance counts of a node (or a scaling group): default at install, bounds for scale."""

    default: int = Field(default=1, ge=0)
    min: int = Field(default=0, ge=0)
    max: int | None = Field(default=None, ge=0)


class NodeSpec(_Model):
    """A node template with everything its type hierarchy contributes."""

    name: str
    type: str
    type_hierarchy: tuple[str, ...]
    """The type's ancestors, nearest first, ending at tosca.nodes.Root."""
    properties: dict[str, Any] = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)
    """Initial attribute values (declared defaults)."""
    operations: dict[str, OperationSpec] = Field(default_factory=dict)
    """Keyed ``Interface.operation`` (``Standard.create``, ``Health.check``, ``Day2.update_rules``)."""
    relationships: tuple[RelationshipSpec, ...] = ()
    host: str | None = None
    """The node this one is hosted on (HostedOn target); its instances multiply per host instance."""
    instances: Instances = Instances()
    implemented_by: str | None = None
    """For NFV profile nodes (tosca.nodes.nfv.*): the tempano type whose operations implement the node."""
    nfv_type: str | None = None
    """For VNFD nodes rewritten onto tempano types (see the compiler's NFV mapping): the type as written."""

    def is_a(self, type_name: str) -> bool:
        return type_name == self.type or type_name in self.type_hierarchy


class InputSpec(_Model):
    type: str = "string"
    description: str = ""
    required: bool = True
    default: Any = None
    constraints: tuple[dict[str, Any], ...] = ()
    entry_schema: dict[str, Any] | None = None


class OutputSpec(_Model):
    value: Any
    description: str = ""


class ScalingGroup(_Model):
    """Nodes that scale together (TOSCA group + scaling policy)."""

    name: str
    members: tuple[str, ...]
    instances: Instances


class Step(_Model):
    """One node's part of a built-in workflow: its phases in order, after the steps it depends on."""

    node: str
    phases: tuple[Phase, ...]
    after: tuple[str, ...] = ()
    """Names of nodes whose step must complete first."""


class WorkflowGraph(_Model):
    """A built-in workflow at template level: a DAG of steps keyed by node name."""

    steps: dict[str, Step] = Field(default_factory=dict)


class WorkflowActivity(_Model):
    """One activity of a TOSCA imperative workflow step."""

    kind: Literal["set_state", "call_operation", "delegate", "inline"]
    value: str
    """The state, ``Interface.operation``, delegated workflow name or inlined workflow name."""
    inputs: dict[str, Any] = Field(default_factory=dict)


class WorkflowStep(_Model):
    """One step of a TOSCA imperative workflow."""

    target: str
    """A node template name (or a group name)."""
    target_relationship: str | None = None
    activities: tuple[WorkflowActivity, ...] = ()
    on_success: tuple[str, ...] = ()
    on_failure: tuple[str, ...] = ()
    filter: tuple[dict[str, Any], ...] = ()


class ImperativeWorkflow(_Model):
    """A TOSCA imperative workflow (topology_template.workflows), run by the engine's public workflow API."""

    description: str = ""
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    preconditions: tuple[dict[str, Any], ...] = ()
    steps: dict[str, WorkflowStep] = Field(default_factory=dict)


class Plan(_Model):
    """A compiled blueprint. JSON round-trip exact; ordering deterministic; :attr:`content_hash` identifies it."""

    format: int = PLAN_FORMAT
    tosca_version: str = ""
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    nodes: dict[str, NodeSpec] = Field(default_factory=dict)
    outputs: dict[str, OutputSpec] = Field(default_factory=dict)
    groups: dict[str, ScalingGroup] = Field(default_factory=dict)
    workflows: dict[str, WorkflowGraph] = Field(default_factory=dict)
    """Built-in workflows: install, uninstall, start, stop."""
    imperative_workflows: dict[str, ImperativeWorkflow] = Field(default_factory=dict)

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def node(self, name: str) -> NodeSpec:
        try:
            return self.nodes[name]
        except KeyError:
            raise KeyError(f"the plan has no node named {name!r}") from None
