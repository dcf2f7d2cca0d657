"""tempano's Temporal workflows: one long-lived DeploymentWorkflow per deployment, one ExecutionWorkflow per
execution (install, heal, scale, custom...), NodeBatchWorkflow children for large executions.

IDs are meaningful: ``dep:<deployment>``, ``dep:<deployment>:exec:<seq>:<workflow>``,
``dep:<deployment>:exec:<seq>:<workflow>:batch:<n>:<node>``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    TerminatedError,
    TimeoutError,
)

from tempano.workflows import builtin as _builtin  # noqa: F401 - registers the built-in workflows
from tempano.workflows import registry
from tempano.workflows.api import (
    PLAN_AHEAD,
    WorkflowContext,
    failure_message,
    resolve_workflow,
    run_batch,
    store_activity,
)

with workflow.unsafe.imports_passed_through():
    from tempano.workflows.models import (
        BatchInput,
        BatchResult,
        CancelRequest,
        DeploymentInput,
        DeploymentStatusView,
        ExecutionInput,
        ExecutionRef,
        ExecutionResult,
        ExecutionStatusInput,
        ExecutionSummary,
        ProgressView,
        QueuePolicy,
        RecordExecutionInput,
        StartExecutionRequest,
        TerminateNotice,
    )

SA_DEPLOYMENT = SearchAttributeKey.for_keyword("TempanoDeployment")
SA_BLUEPRINT = SearchAttributeKey.for_keyword("TempanoBlueprint")
SA_WORKFLOW = SearchAttributeKey.for_keyword("TempanoWorkflow")
SA_STATUS = SearchAttributeKey.for_keyword("TempanoStatus")
SEARCH_ATTRIBUTES = (SA_DEPLOYMENT, SA_BLUEPRINT, SA_WORKFLOW, SA_STATUS)

RECENT_KEPT = 50
DEPLOYMENT_STATUS = {
    # workflow -> (status while running, on success, on failure)
    "install": ("installing", "installed", "failed"),
    "uninstall": ("uninstalling", "uninstalled", "failed"),
    "reinstall": ("installing", "installed", "failed"),
}


def deployment_workflow_id(deployment_id: str) -> str:
    return f"dep:{deployment_id}"


def execution_workflow_id(deployment_id: str, seq: int, workflow_name: str) -> str:
    return f"dep:{deployment_id}:exec:{seq}:{workflow_name}"


def execution_id(deployment_id: str, seq: int) -> str:
    return f"{deployment_id}:{seq}"


@workflow.defn(name="NodeBatch")
class NodeBatchWorkflow:
    """A batch of node instances' operations, as a child of a large execution."""

    @workflow.run
    async def run(self, batch: BatchInput) -> BatchResult:
        return await run_batch(batch, local=False)


@workflow.defn(name="Execution")
class ExecutionWorkflow:
    """One execution of a workflow (built-in, custom or TOSCA imperative) on a deployment."""

    @workflow.init
    def __init__(self, input: ExecutionInput) -> None:
        self.ctx = WorkflowContext(input)

    @workflow.run
    async def run(self, input: ExecutionInput) -> ExecutionResult:
        ctx = self.ctx
        statuses = DEPLOYMENT_STATUS.get(input.workflow)
        running = self._status(input, "running", deployment_status=statuses[0] if statuses else None)
        if workflow.patched(PLAN_AHEAD):
            ctx._starting(running)  # written while the workflow's first reads run; operations wait for it
        else:
            await running
        try:
            workflow.set_current_details(f"{input.workflow} starting")
            fn = await resolve_workflow(input.deployment_id, input.workflow)
            result = await fn(ctx, input.parameters)
            await ctx._started()
        except asyncio.CancelledError:
            # Graceful: the operations in flight were cancelled and have reported back (their instances are
            # back to the state they had); what succeeded stays, and a resume runs the rest.
            await _settled(ctx)
            # The deployment says so too ("cancelled", not "failed"): an operator stopped it half-way on purpose.
            await self._status(
                input, "cancelled", error="cancelled by request", deployment_status="cancelled" if statuses else None
            )
            workflow.set_current_details("cancelled")
            raise
        except Exception as e:
            # A plain exception (KeyError, TypeError...) in workflow code would otherwise fail the workflow *task*
            # and retry it forever, unseen: it ends the execution instead, saying so.
            await _settled(ctx)
            if isinstance(e, ApplicationError | ChildWorkflowError | ActivityError):
                message = failure_message(e)
            else:
                message = (
                    f"workflow {input.workflow!r} raised {type(e).__name__}: {e} (a bug in its code, not an "
                    "operation failure: fix the workflow, deploy it to the workers and start it again)"
                )
            await self._status(
                input,
                "failed",
                error=message,
                deployment_status=statuses[2] if statuses else None,
            )
            workflow.set_current_details(f"failed: {message[:300]}")
            raise ApplicationError(
                f"{input.workflow} on {input.deployment_id} failed: {message}",
                type="ExecutionFailed",
                non_retryable=True,
            ) from None
        await self._status(input, "succeeded", deployment_status=statuses[1] if statuses else None)
        workflow.set_current_details("succeeded")
        return ExecutionResult(execution_id=input.execution_id, status="succeeded", result=dict(result or {}))

    @workflow.query(name="progress")
    def progress(self) -> ProgressView:
        """What the execution is doing now: instances done, operations in flight."""
        return self.ctx.progress_state.view()

    async def _status(
        self,
        input: ExecutionInput,
        status: str,
        *,
        error: str | None = None,
        deployment_status: str | None = None,
    ) -> None:
        workflow.upsert_search_attributes([SA_STATUS.value_set(status)])
        await store_activity(
            "execution_status",
            ExecutionStatusInput(
                deployment_id=input.deployment_id,
                execution_id=input.execution_id,
                workflow=input.workflow,
                status=status,
                error=error,
                deployment_status=deployment_status,
            ),
            f"{input.execution_id} {status}",
        )


@dataclass
class _Pending:
    ref: ExecutionRef
    request: StartExecutionRequest
    chain: tuple[str, ...] = ()
    parameters: dict[str, object] = field(default_factory=dict)


@workflow.defn(name="Deployment")
class DeploymentWorkflow:
    """Lives as long as the deployment: takes execution requests (Workflow Updates), runs them one at a time,
    answers queries, and continues as new when its history grows."""

    @workflow.init
    def __init__(self, input: DeploymentInput) -> None:
        # State is set here, not in run(): an update may arrive in the very first workflow task.
        self.deployment_id = input.deployment_id
        self.blueprint_id = input.blueprint_id
        self.policy: QueuePolicy = input.policy
        self.next_seq = input.next_seq
        self.queue: list[_Pending] = []
        self.current: _Pending | None = None
        self.current_handle: workflow.ChildWorkflowHandle[ExecutionWorkflow, ExecutionResult] | None = None
        self.recent: list[ExecutionSummary] = list(input.recent)
        self.closing = False
        self.terminate_reasons: dict[str, str] = {}
        for req in input.queue:
            self._enqueue(req)

    @workflow.run
    async def run(self, input: DeploymentInput) -> None:
        workflow.set_current_details("idle")
        while True:
            await workflow.wait_condition(
                lambda: bool(self.queue) or self.closing or workflow.info().is_continue_as_new_suggested()
            )
            if self.queue:
                await self._run_next()
                continue
            if self.closing:
                # Let update handlers finish before the run ends.
                await workflow.wait_condition(workflow.all_handlers_finished)
                return
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(
                DeploymentInput(
                    deployment_id=self.deployment_id,
                    blueprint_id=self.blueprint_id,
                    policy=self.policy,
                    next_seq=self.next_seq,
                    queue=tuple(p.request for p in self.queue),
                    recent=tuple(self.recent[-RECENT_KEPT:]),
                )
            )

    async def _run_next(self) -> None:
        pending = self.queue.pop(0)
        self.current = pending
        ref = pending.ref
        workflow.set_current_details(f"running {ref.workflow} ({ref.execution_id})")
        status, error = "succeeded", None
        try:
            await store_activity(
                "record_execution",
                RecordExecutionInput(
                    deployment_id=self.deployment_id,
                    execution_id=ref.execution_id,
                    seq=ref.seq,
                    workflow=ref.workflow,
                    parameters=dict(pending.parameters),
                    workflow_id=ref.workflow_id,
                ),
                f"record {ref.execution_id}",
            )
            self.current_handle = await workflow.start_child_workflow(
                ExecutionWorkflow.run,
                ExecutionInput(
                    deployment_id=self.deployment_id,
                    blueprint_id=self.blueprint_id,
                    execution_id=ref.execution_id,
                    seq=ref.seq,
                    workflow=ref.workflow,
                    parameters=dict(pending.parameters),
                    resume_chain=pending.chain,
                    rollback_of=pending.request.rollback_of,
                ),
                id=ref.workflow_id,
                static_summary=f"{ref.workflow} {self.deployment_id} (execution {ref.seq})",
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SA_DEPLOYMENT, self.deployment_id),
                        SearchAttributePair(SA_BLUEPRINT, self.blueprint_id),
                        SearchAttributePair(SA_WORKFLOW, ref.workflow),
                        SearchAttributePair(SA_STATUS, "running"),
                    ]
                ),
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            )
            await self.current_handle
        except ChildWorkflowError as e:
            status, error = ("cancelled", "cancelled") if _is_cancel(e) else ("failed", failure_message(e))
            if isinstance(e.cause, TerminatedError | TimeoutError):
                # The execution could not record its own end: record it here, and settle its instances.
                status = "terminated" if isinstance(e.cause, TerminatedError) else "failed"
                reason = self.terminate_reasons.pop(ref.execution_id, "no reason given")
                error = (
                    f"terminated by an operator ({reason}); operations it was running may have been cut short: "
                    "instances left half-way are marked 'error'; resume, heal or uninstall from there"
                    if isinstance(e.cause, TerminatedError)
                    else f"the execution timed out ({e.cause.message})"
                )
                await store_activity(
                    "execution_status",
                    ExecutionStatusInput(
                        deployment_id=self.deployment_id,
                        execution_id=ref.execution_id,
                        workflow=ref.workflow,
                        status=status,
                        error=error,
                        deployment_status="failed" if ref.workflow in DEPLOYMENT_STATUS else None,
                        settle=True,
                    ),
                    f"{ref.execution_id} {status}",
                )
        except ApplicationError as e:
            status, error = "failed", e.message
        finally:
            self.current = None
            self.current_handle = None
        self.recent.append(
            ExecutionSummary(
                execution_id=ref.execution_id,
                workflow=ref.workflow,
                status=status,
                error=error,
                parameters=dict(pending.parameters),
                resume_chain=pending.chain,
            )
        )
        self.recent = self.recent[-RECENT_KEPT:]
        workflow.set_current_details(f"idle; last: {ref.workflow} {status}")

    def _enqueue(self, req: StartExecutionRequest) -> ExecutionRef:
        name, parameters = req.workflow, dict(req.parameters)
        chain: tuple[str, ...] = ()
        if req.resume_of:
            original = self._find(req.resume_of)
            name, parameters = original.workflow, dict(original.parameters)
            chain = (*original.resume_chain, original.execution_id)
        elif req.rollback_of:
            self._find(req.rollback_of)
            name, parameters = "rollback", {"execution_id": req.rollback_of}
        seq = self.next_seq
        self.next_seq += 1
        ref = ExecutionRef(
            execution_id=execution_id(self.deployment_id, seq),
            seq=seq,
            workflow=name,
            workflow_id=execution_workflow_id(self.deployment_id, seq, name),
            queued=self.current is not None or bool(self.queue),
        )
        self.queue.append(_Pending(ref=ref, request=req, chain=chain, parameters=parameters))
        return ref

    def _find(self, execution: str) -> ExecutionSummary:
        for summary in reversed(self.recent):
            if summary.execution_id == execution:
                return summary
        if self.current is not None and self.current.ref.execution_id == execution:
            # Its end is recorded in the store a moment before here: a resume or rollback asked in between
            # is queued behind it.
            return ExecutionSummary(
                execution_id=execution,
                workflow=self.current.ref.workflow,
                status="ending",
                parameters=dict(self.current.parameters),
                resume_chain=self.current.chain,
            )
        raise ApplicationError(
            f"deployment {self.deployment_id} has no finished execution {execution!r} to resume or roll back "
            "(it is still running, or too old)",
            type="UnknownExecution",
            non_retryable=True,
        )

    @workflow.update(name="start_execution")
    async def start_execution(self, req: StartExecutionRequest) -> ExecutionRef:
        return self._enqueue(req)

    @start_execution.validator
    def validate_start(self, req: StartExecutionRequest) -> None:
        if self.closing:
            raise ApplicationError(f"deployment {self.deployment_id} is being deleted", type="Closing")
        if self.policy == "refuse" and (self.current is not None or self.queue):
            busy = self.current.ref if self.current else self.queue[0].ref
            raise ApplicationError(
                f"deployment {self.deployment_id} is busy with {busy.workflow} ({busy.execution_id}); "
                "wait for it to finish or cancel it",
                type="Busy",
            )
        if req.resume_of or req.rollback_of:
            self._find(req.resume_of or req.rollback_of or "")
            return
        if registry.get(req.workflow) is None and not req.declared:
            raise ApplicationError(
                f"no workflow named {req.workflow!r}; known: {', '.join(registry.names())}", type="UnknownWorkflow"
            )

    @workflow.update(name="cancel_execution")
    async def cancel_execution(self, req: CancelRequest) -> str:
        for pending in list(self.queue):
            if pending.ref.execution_id == req.execution_id:
                self.queue.remove(pending)
                self.recent.append(
                    ExecutionSummary(
                        execution_id=req.execution_id,
                        workflow=pending.ref.workflow,
                        status="cancelled",
                        parameters=dict(pending.parameters),
                        resume_chain=pending.chain,
                    )
                )
                return "removed from the queue"
        if self.current is not None and self.current.ref.execution_id == req.execution_id and self.current_handle:
            self.current_handle.cancel()
            return "cancellation requested"
        raise ApplicationError(
            f"execution {req.execution_id} is neither running nor queued on {self.deployment_id}", type="NotRunning"
        )

    @workflow.signal(name="terminating")
    def terminating(self, req: TerminateNotice) -> None:
        """An operator is about to terminate an execution: the reason goes into its record."""
        self.terminate_reasons[req.execution_id] = req.reason

    @workflow.signal(name="close")
    def close(self) -> None:
        """Ends the deployment workflow once its queue is empty (the deployment is being deleted)."""
        self.closing = True

    @workflow.query(name="status")
    def status(self) -> DeploymentStatusView:
        return DeploymentStatusView(
            deployment_id=self.deployment_id,
            current=self.current.ref if self.current else None,
            queued=tuple(p.ref for p in self.queue),
            recent=tuple(self.recent[-10:]),
            closing=self.closing,
        )


async def _settled(ctx: WorkflowContext) -> None:
    """The "running" status is written or has failed (an end status is never overwritten by it)."""
    await asyncio.gather(ctx._started(), return_exceptions=True)


def _is_cancel(error: ChildWorkflowError) -> bool:
    from temporalio.exceptions import CancelledError

    return isinstance(error.cause, CancelledError)


WORKFLOWS = [DeploymentWorkflow, ExecutionWorkflow, NodeBatchWorkflow]
