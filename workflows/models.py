"""Inputs and results of tempano's workflows, updates and activities (one model each, so signatures can grow).

Payloads carry ids, not documents: plans and attributes stay in the store, and activities read them there.
This module is pure data: the activity layer imports it, and it imports nothing with side effects.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TASK_QUEUE = "tempano"

Order = Literal["install", "uninstall"]
QueuePolicy = Literal["queue", "refuse"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


# ---------------------------------------------------------------- deployment workflow


class DeploymentInput(_Model):
    deployment_id: str
    blueprint_id: str
    policy: QueuePolicy = "queue"
    # Carried over continue-as-new:
    next_seq: int = 1
    queue: tuple[StartExecutionRequest, ...] = ()
    recent: tuple[ExecutionSummary, ...] = ()


class StartExecutionRequest(_Model):
    workflow: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    resume_of: str | None = None
    """Execution id to resume: only its failed and not-yet-run operations run."""
    rollback_of: str | None = None
    """Execution id whose creations to remove."""
    declared: bool = False
    """The caller checked the name against the plan's imperative workflows."""


class ExecutionRef(_Model):
    execution_id: str
    seq: int
    workflow: str
    workflow_id: str
    queued: bool = False


class ExecutionSummary(_Model):
    execution_id: str
    workflow: str
    status: str
    error: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    resume_chain: tuple[str, ...] = ()


class DeploymentStatusView(_Model):
    deployment_id: str
    current: ExecutionRef | None
    queued: tuple[ExecutionRef, ...]
    recent: tuple[ExecutionSummary, ...]
    closing: bool


class CancelRequest(_Model):
    execution_id: str


class TerminateNotice(_Model):
    execution_id: str
    reason: str


# ---------------------------------------------------------------- execution workflow


class ExecutionInput(_Model):
    deployment_id: str
    blueprint_id: str
    execution_id: str
    seq: int
    workflow: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    resume_chain: tuple[str, ...] = ()
    """Earlier executions this one resumes (oldest first): operations that succeeded there are skipped."""
    rollback_of: str | None = None


class ExecutionResult(_Model):
    execution_id: str
    status: str
    result: dict[str, Any] = Field(default_factory=dict)


class ScheduleInput(_Model):
    deployment_id: str
    execution_id: str
    instance_ids: tuple[str, ...] | None = None
    """None: every live instance of the deployment."""
    order: Order = "install"
    only_touched: bool = False
    """Uninstall: leave out instances never created and holding no resources."""


class ScheduleStep(_Model):
    node: str
    after: tuple[str, ...]
    instance_ids: tuple[str, ...]


class Schedule(_Model):
    steps: tuple[ScheduleStep, ...]

    @property
    def instance_count(self) -> int:
        return sum(len(s.instance_ids) for s in self.steps)


class Task(_Model):
    """One operation on one node instance (or one side of one relationship)."""

    key: str
    """Unique within the instance for this execution: ``Standard.create``, ``establish:link:net_1:source``."""
    instance_id: str
    operation: str
    implementation: str
    relationship: int | None = None
    target_id: str | None = None
    side: Literal["source", "target"] | None = None
    state_before: str | None = None
    state_after: str | None = None
    timeout_s: float
    heartbeat_timeout_s: float
    max_attempts: int
    initial_interval_s: float
    backoff: float
    max_interval_s: float


class BatchInput(_Model):
    deployment_id: str
    execution_id: str
    workflow: str
    node: str
    instance_ids: tuple[str, ...]
    phases: tuple[str, ...]
    final_state: str | None
    skip: tuple[str, ...] = ()
    """Execution ids whose succeeded operations are skipped (resume)."""
    continue_on_error: bool = False
    operation: str | None = None
    """Run this one operation (``Interface.op``) instead of phases (execute_operation, custom workflows)."""
    operation_inputs: dict[str, Any] | None = None
    max_attempts: int | None = None
    """Overrides the plan's retry attempts (health checks run once)."""
    only_targets: tuple[str, ...] | None = None
    """Relationship phases: only the relationships reaching these target instances (re-wiring peers)."""
    rerun: bool = False
    """Run even what succeeded in the executions this one resumes (health checks: their answer may differ)."""
    repeat: int = 1
    """How many times this execution has run these phases/this operation before, plus one: the second run of an
    operation on an instance in one execution gets task key ``<key>@2`` (events, resume and activity ids stay
    distinct; the idempotency key does not change)."""


class BatchPlan(_Model):
    """For each instance, its tasks phase by phase (phases with no operation are left out)."""

    tasks: dict[str, tuple[tuple[Task, ...], ...]]
    skipped: int = 0


class BatchResult(_Model):
    succeeded: tuple[str, ...] = ()
    failed: dict[str, str] = Field(default_factory=dict)
    """Instance id -> failure message."""
    operations: int = 0
    unhealthy: tuple[str, ...] = ()
    """Instances whose operation succeeded but answered ``healthy: false`` (health checks)."""


class OperationInput(_Model):
    deployment_id: str
    execution_id: str
    workflow: str
    task: Task
    inputs: dict[str, Any] | None = None
    """Extra inputs (day-2 operations called with parameters), merged over the plan's."""


class OperationResult(_Model):
    outputs: dict[str, Any] = Field(default_factory=dict)
    healthy: bool | None = None


class ChainInput(_Model):
    """An instance's consecutive operations of one step, run in order by one activity (``run_operations``)."""

    deployment_id: str
    execution_id: str
    workflow: str
    tasks: tuple[Task, ...]
    inputs: dict[str, Any] | None = None


class ChainResult(_Model):
    operations: int = 0
    """How many ran (those that had succeeded in an earlier attempt are not run again)."""
    unhealthy: bool = False


class StatesInput(_Model):
    deployment_id: str
    instance_ids: tuple[str, ...]
    state: str
    execution_id: str | None = None
    """When set, the change is recorded as a ``state_changed`` event of that execution."""


class ExecutionStatusInput(_Model):
    deployment_id: str
    execution_id: str
    workflow: str
    status: str
    error: str | None = None
    deployment_status: str | None = None
    message: str | None = None
    settle: bool = False
    """The execution was stopped abruptly (terminated): instances left in a transitional state
    (creating, configuring...) are set to ``error``, so nobody takes them for busy."""


class RecordExecutionInput(_Model):
    deployment_id: str
    execution_id: str
    seq: int
    workflow: str
    parameters: dict[str, Any]
    workflow_id: str


class InstancesQuery(_Model):
    deployment_id: str
    node: str | None = None
    instance_ids: tuple[str, ...] | None = None


class InstanceInfo(_Model):
    id: str
    node: str
    index: int = 0
    """The instance's number (``vm_3`` is 3): the order instances were made in."""
    host_id: str | None
    state: str
    group_instance: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    operations: tuple[str, ...] = ()
    """The node's operations (``Interface.op``)."""


class ScaleInput(_Model):
    deployment_id: str
    execution_id: str
    target: str
    delta: int
    instance_ids: tuple[str, ...] = ()
    resume_chain: tuple[str, ...] = ()
    """Earlier executions this one resumes: a scale-out they began is completed, not repeated."""


class ScaleResult(_Model):
    added: tuple[str, ...] = ()
    removing: tuple[str, ...] = ()
    """For scale-in: the instances (with what they contain) to uninstall and remove."""
    peers: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Existing source instances whose relationships now include new targets (to establish)."""


class SubgraphInput(_Model):
    deployment_id: str
    instance_ids: tuple[str, ...]


class SubgraphResult(_Model):
    instance_ids: tuple[str, ...]
    peers: tuple[str, ...] = ()
    """Instances outside the subgraph with relationships into it."""


class LogInput(_Model):
    deployment_id: str
    execution_id: str
    key: str
    message: str
    level: str = "info"
    node_instance_id: str | None = None
    type: str = "workflow_log"
    operation: str | None = None


class RollbackInput(_Model):
    deployment_id: str
    execution_id: str
    of_execution: str


class RollbackPlan(_Model):
    instance_ids: tuple[str, ...]
    """Instances the execution created (ledger entries it recorded, or a create it started): to uninstall."""
    added: tuple[str, ...] = ()
    """Instances a scale-out added: removed from the deployment once uninstalled."""


class ImperativeQuery(_Model):
    deployment_id: str
    name: str


class ProgressView(_Model):
    """What an execution is doing now (the ``progress`` query)."""

    details: str
    waiting_on: tuple[str, ...] = ()
    """The operations in flight: ``<instance> <operation> (<implementation>)``."""
    done: int = 0
    total: int = 0


DeploymentInput.model_rebuild()
