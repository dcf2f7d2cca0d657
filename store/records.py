"""What the store hands out: plain pydantic records (also the API's output schemas' building blocks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

DeploymentStatus = Literal[
    "created", "installing", "installed", "failed", "cancelled", "uninstalling", "uninstalled", "busy"
]
ExecutionStatus = Literal["pending", "running", "succeeded", "failed", "cancelled", "terminated"]
InstanceState = Literal[
    "uninitialized",
    "creating",
    "created",
    "configuring",
    "configured",
    "starting",
    "started",
    "stopping",
    "stopped",
    "deleting",
    "deleted",
    "error",
]


def _utc(value: datetime) -> datetime:
    """SQLite hands back the UTC time we stored without its time zone, PostgreSQL an aware time in the session's time
    zone: either way, the same aware UTC time, so the API shows one form whatever the backend."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
"""A time read from the store: always timezone-aware, in UTC. Every record's times have this type."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class BlueprintRecord(_Record):
    id: str
    description: str
    plan: dict[str, Any]
    plan_hash: str
    source_dir: str | None
    main_file: str | None
    created_at: UtcDatetime


class DeploymentRecord(_Record):
    id: str
    blueprint_id: str
    plan: dict[str, Any]
    inputs: dict[str, Any]
    labels: dict[str, str]
    status: str
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ExecutionRecord(_Record):
    id: str
    deployment_id: str
    seq: int
    workflow: str
    parameters: dict[str, Any]
    status: str
    workflow_id: str
    error: str | None
    created_at: UtcDatetime
    ended_at: UtcDatetime | None


class NodeInstanceRecord(_Record):
    deployment_id: str
    id: str
    node: str
    index: int
    host_id: str | None
    group_instance: str | None
    state: str
    attributes: dict[str, Any]
    outputs: dict[str, Any] = Field(default_factory=dict)
    removed: bool = False


class ResourceRecord(_Record):
    id: int
    deployment_id: str
    node_instance_id: str
    execution_id: str | None
    plugin: str
    kind: str
    resource_id: str
    idempotency_key: str
    data: dict[str, Any]
    external: bool
    created_at: UtcDatetime


class EventRecord(_Record):
    id: int
    deployment_id: str
    execution_id: str | None
    ts: UtcDatetime
    type: str
    level: str
    node_instance_id: str | None
    operation: str | None
    attempt: int | None
    duration_s: float | None
    message: str
    data: dict[str, Any]


class NewInstance(_Record):
    """A node instance to create (from topology expansion)."""

    id: str
    node: str
    index: int
    host_id: str | None = None
    group_instance: str | None = None


class NewEvent(_Record):
    """An event to add (once: a second one with the same key, from a retried activity, is ignored)."""

    key: str
    deployment_id: str
    message: str
    type: str = "log"
    level: str = "info"
    execution_id: str | None = None
    node_instance_id: str | None = None
    operation: str | None = None
    attempt: int | None = None
    duration_s: float | None = None
    data: dict[str, Any] = Field(default_factory=dict)
