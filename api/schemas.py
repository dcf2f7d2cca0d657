"""The REST API's input and output schemas (separate from the store's records, with OpenAPI examples)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from tempano.api.auth import Role

T = TypeVar("T")
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemError(BaseModel):
    """One problem in a request or blueprint: where it is and what is wrong."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    entity: str | None = None
    loc: list[str | int] | None = None


class Problem(BaseModel):
    """An RFC 9457 problem detail (media type application/problem+json)."""

    type: str = "about:blank"
    title: str = Field(examples=["Conflict"])
    status: int = Field(examples=[409])
    detail: str = Field(examples=["blueprint 'vfw' is used by deployment(s) vfw-1; delete them first"])
    instance: str | None = Field(default=None, examples=["/api/v1/blueprints/vfw"])
    errors: list[ProblemError] | None = None


class Page(BaseModel, Generic[T]):
    """One page of a listing."""

    items: list[T]
    total: int = Field(description="How many items match the filters in all")
    offset: int
    limit: int


# ---------------------------------------------------------------- blueprints


class RelationshipSummary(BaseModel):
    name: str
    type: str
    target: str


class NodeSummary(BaseModel):
    name: str
    type: str
    host: str | None
    instances: int = Field(description="Default instance count")
    relationships: list[RelationshipSummary]
    operations: list[str]


class InputSummary(BaseModel):
    type: str
    description: str = ""
    required: bool = True
    default: Any = None


class PlanSummary(BaseModel):
    """What a blueprint compiles into, in brief."""

    plan_hash: str = Field(examples=["9f2c1e..."])
    description: str = ""
    nodes: list[NodeSummary]
    inputs: dict[str, InputSummary]
    outputs: list[str]
    workflows: list[str] = Field(description="Workflows declared by the blueprint (besides the built-in ones)")


class BlueprintListItem(BaseModel):
    id: str = Field(examples=["vfw"])
    description: str
    plan_hash: str
    created_at: datetime


class BlueprintOut(BlueprintListItem):
    plan_summary: PlanSummary
    plan: dict[str, Any] | None = Field(default=None, description="The full plan (with ?plan=true)")


class ValidationOut(BaseModel):
    valid: Literal[True] = True
    plan_summary: PlanSummary


# ---------------------------------------------------------------- deployments


class DeploymentCreate(_In):
    blueprint_id: str = Field(pattern=ID_PATTERN, examples=["hello"])
    inputs: dict[str, Any] = Field(default_factory=dict, examples=[{"greeting": "bonjour"}])
    labels: dict[str, str] = Field(default_factory=dict, examples=[{"site": "paris", "tier": "gold"}])


class DeploymentListItem(BaseModel):
    id: str = Field(examples=["hello-1"])
    blueprint_id: str
    status: str = Field(examples=["installed"])
    labels: dict[str, str]
    created_at: datetime
    updated_at: datetime


class NodeInstanceOut(BaseModel):
    id: str = Field(examples=["backend_1"])
    node: str = Field(examples=["backend"])
    index: int
    host_id: str | None
    state: str = Field(examples=["started"])
    attributes: dict[str, Any]


class ResourceOut(BaseModel):
    """A resource a plugin created (the ledger uninstall and rollback work from)."""

    id: int
    plugin: str
    kind: str
    resource_id: str
    execution_id: str | None
    external: bool
    data: dict[str, Any]
    created_at: datetime


class NodeInstanceDetail(NodeInstanceOut):
    deployment_id: str
    group_instance: str | None
    operation_outputs: dict[str, Any]
    resources: list[ResourceOut]


class ExecutionOut(BaseModel):
    id: str = Field(examples=["hello-1:1"])
    deployment_id: str
    seq: int
    workflow: str = Field(examples=["install"])
    parameters: dict[str, Any] | None = Field(description="Null while queued: they are recorded when it starts")
    status: str = Field(
        examples=["succeeded"],
        description="queued (behind another execution of the deployment), pending, running, succeeded, failed, "
        "cancelled or terminated",
    )
    workflow_id: str = Field(examples=["dep:hello-1:exec:1:install"])
    error: str | None
    created_at: datetime | None = Field(description="When it started; null while queued")
    ended_at: datetime | None
    ui: str = Field(description="The execution's page in the Temporal web UI")


class DeploymentOut(DeploymentListItem):
    inputs: dict[str, Any]
    node_instances: list[NodeInstanceOut]
    outputs: dict[str, Any]
    current_execution: ExecutionOut | None
    ui: str = Field(description="The deployment's workflows in the Temporal web UI")


# ---------------------------------------------------------------- executions


class ExecutionStart(_In):
    deployment_id: str = Field(pattern=ID_PATTERN, examples=["hello-1"])
    workflow: str = Field(
        min_length=1, max_length=200, examples=["install"], description="A built-in, custom or declared workflow"
    )
    parameters: dict[str, Any] = Field(default_factory=dict, examples=[{"node": "backend", "delta": 1}])


class ExecutionRefOut(BaseModel):
    execution_id: str = Field(examples=["hello-1:1"])
    seq: int
    workflow: str
    workflow_id: str
    queued: bool = Field(description="True when it waits behind another execution of the deployment")
    ui: str


class ActionOut(BaseModel):
    result: str = Field(examples=["cancellation requested"])


class EventOut(BaseModel):
    id: int
    deployment_id: str
    execution_id: str | None
    ts: datetime
    type: str = Field(examples=["operation_succeeded"])
    level: str
    node_instance_id: str | None
    operation: str | None
    attempt: int | None
    duration_s: float | None
    message: str
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventOut]
    next_after: int = Field(description="Pass as ?after= to get the next events")


class WorkflowsOut(BaseModel):
    builtin: list[str]
    custom: list[str]


# ---------------------------------------------------------------- secrets and tokens


class SecretIn(_In):
    value: str = Field(max_length=65536, examples=["s3cr3t"], description="Write-only: never returned")


class SecretList(BaseModel):
    names: list[str]


class TokenCreate(_In):
    name: str = Field(min_length=1, max_length=200, examples=["ci-pipeline"])
    role: Role = Field(examples=["operator"])


class TokenOut(BaseModel):
    id: str
    name: str
    role: str
    created_at: datetime
    revoked: bool


class TokenCreated(TokenOut):
    token: str = Field(description="The bearer token; shown only now, never again")


class WhoAmI(BaseModel):
    token_id: str
    name: str
    role: str


class Status(BaseModel):
    status: str = Field(examples=["ok"])
