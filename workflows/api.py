"""The public workflow API: what the built-in workflows are written with, and what DevOps use for their own.

A workflow is an async function ``fn(ctx: WorkflowContext, params: Mapping) -> Mapping | None`` registered under
the ``tempano.workflows`` entry-point group (see :mod:`tempano.workflows.registry`). It runs inside Temporal's
deterministic workflow sandbox: use only ``ctx`` (and ``temporalio.workflow``) for anything that touches the
world; no I/O, clocks or randomness of your own.

Example, a rolling restart::

    async def rolling_restart(ctx: WorkflowContext, params: Mapping[str, Any]) -> None:
        for inst in await ctx.instances(node=params["node"]):
            await ctx.run_operation([inst.id], "Standard.stop")
            await ctx.run_operation([inst.id], "Standard.start")
            if not await ctx.check_health(inst.id):
                raise WorkflowFailure(f"{inst.id} is unhealthy after restart")
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar, cast

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, FailureError

with workflow.unsafe.imports_passed_through():
    from tempano.blueprints.plan import INSTALL_PHASES, UNINSTALL_PHASES
    from tempano.workflows.models import (
        BatchInput,
        BatchPlan,
        BatchResult,
        ExecutionInput,
        InstanceInfo,
        InstancesQuery,
        LogInput,
        OperationInput,
        OperationResult,
        Order,
        Schedule,
        ScheduleInput,
        StatesInput,
        SubgraphInput,
        SubgraphResult,
        Task,
    )

T = TypeVar("T")

BATCH_SIZE = 100
"""Instances per batch: one batch's history stays far below Temporal's limits (about 30-50 events/instance)."""
INLINE_LIMIT = 200
"""Up to this many instances in one lifecycle call run in the execution's own history; above, in child batches."""
MAX_CONCURRENCY = 100
"""Operations in flight per batch (Temporal allows 2,000 pending activities per run; we stay far below)."""
SHORT = timedelta(seconds=60)
STORE_HEARTBEAT = timedelta(seconds=10)
"""Store activities heartbeat every 2 s: a worker that dies during one is noticed in seconds, not after SHORT."""
STORE_RETRY = RetryPolicy(
    maximum_attempts=10, initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)
)


async def store_activity(name: str, arg: Any, summary: str, result_type: type[T] | None = None) -> T:
    """Runs one of the engine's short store activities (reads, state writes, events) with their shared options."""
    result: T = await workflow.execute_activity(
        name,
        arg,
        result_type=result_type,
        start_to_close_timeout=SHORT,
        heartbeat_timeout=STORE_HEARTBEAT,
        retry_policy=STORE_RETRY,
        summary=summary[:200],
    )
    return result


class WorkflowFailure(ApplicationError):
    """Raise this from a workflow to fail the execution with a message (never retried)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="WorkflowFailure", non_retryable=True)


def failure_message(error: BaseException) -> str:
    """The innermost meaningful message of a Temporal failure chain."""
    current: BaseException | None = error
    message = str(error)
    while current is not None:
        if isinstance(current, ApplicationError) and current.message:
            message = current.message
        elif isinstance(current, FailureError) and not isinstance(current, ActivityError | ChildWorkflowError):
            message = current.message or message
        current = current.__cause__
    return message


class WorkflowContext:
    """One execution's view of its deployment, and the operations it may run."""

    def __init__(self, input: ExecutionInput) -> None:
        self.input = input
        self.deployment_id = input.deployment_id
        self.execution_id = input.execution_id
        self.workflow = input.workflow
        self.parameters: Mapping[str, Any] = input.parameters
        self._log_seq = 0
        self._batch_seq = 0
        self._progress_done = 0
        self._progress_total = 0

    # ---------------------------------------------------------------- reading

    async def instances(self, node: str | None = None, ids: Sequence[str] | None = None) -> list[InstanceInfo]:
        """Live node instances (all, one node's, or the given ids), with states and attributes."""
        result: list[InstanceInfo] = await store_activity(
            "list_instances",
            InstancesQuery(deployment_id=self.deployment_id, node=node, instance_ids=tuple(ids) if ids else None),
            f"list instances{' of ' + node if node else ''}",
            list[InstanceInfo],
        )
        return result

    async def subgraph(self, instance_ids: Sequence[str]) -> SubgraphResult:
        """The instances, everything contained in them, and the peers with relationships into them."""
        result: SubgraphResult = await store_activity(
            "subgraph",
            SubgraphInput(deployment_id=self.deployment_id, instance_ids=tuple(instance_ids)),
            f"subgraph of {', '.join(instance_ids)}",
            SubgraphResult,
        )
        return result

    # ---------------------------------------------------------------- doing

    async def run_operation(
        self,
        instance_ids: Sequence[str],
        operation: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        max_attempts: int | None = None,
        continue_on_error: bool = False,
    ) -> BatchResult:
        """Runs one operation (``Interface.op``) on the given instances, in parallel."""
        return await self._batches(
            instance_ids,
            node=operation,
            phases=(),
            final_state=None,
            operation=operation,
            operation_inputs=dict(inputs) if inputs else None,
            max_attempts=max_attempts,
            continue_on_error=continue_on_error,
        )

    async def lifecycle(
        self,
        instance_ids: Sequence[str] | None,
        phases: Sequence[str],
        *,
        order: Order = "install",
        final_state: str | None = None,
        only_touched: bool = False,
        continue_on_error: bool = False,
        only_targets: Sequence[str] | None = None,
    ) -> None:
        """Runs lifecycle phases over instances (None: all) in graph order: a node's instances start once every
        node they depend on (install) or that depends on them (uninstall) is done. Independent branches run in
        parallel. Raises :class:`WorkflowFailure` naming each failed instance, operation and message."""
        schedule: Schedule = await store_activity(
            "schedule",
            ScheduleInput(
                deployment_id=self.deployment_id,
                execution_id=self.execution_id,
                instance_ids=tuple(instance_ids) if instance_ids is not None else None,
                order=order,
                only_touched=only_touched,
            ),
            f"{order} order of {'all' if instance_ids is None else len(instance_ids)} instances",
            Schedule,
        )
        self._progress_total += schedule.instance_count
        children = schedule.instance_count > INLINE_LIMIT
        pending = {s.node: s for s in schedule.steps}
        done: set[str] = set()
        failures: dict[str, str] = {}
        running: dict[asyncio.Task[BatchResult], str] = {}
        while pending or running:
            if not failures or continue_on_error:
                for name in sorted(pending):
                    step = pending[name]
                    if all(a in done for a in step.after):
                        del pending[name]
                        coro = self._batches(
                            step.instance_ids,
                            node=name,
                            phases=tuple(phases),
                            final_state=final_state,
                            children=children,
                            continue_on_error=continue_on_error,
                            only_targets=only_targets,
                        )
                        running[asyncio.ensure_future(coro)] = name
            if not running:
                break
            finished, _ = await workflow.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
            for fut in finished:
                name = running.pop(fut)
                try:
                    result = fut.result()
                except WorkflowFailure as e:
                    failures[name] = e.message
                    continue
                done.add(name)
                failures.update(result.failed)
            self._report(sorted(running.values()))
        if failures:
            raise WorkflowFailure("; ".join(failures[k] for k in sorted(failures)))
        blocked = sorted(pending)
        if blocked:
            raise WorkflowFailure(f"nodes {', '.join(blocked)} never became ready (a dependency cycle?)")

    async def install(self, instance_ids: Sequence[str] | None = None) -> None:
        """create, configure and start instances with their relationship operations, in dependency order."""
        await self.lifecycle(instance_ids, INSTALL_PHASES, order="install", final_state="started")

    async def uninstall(self, instance_ids: Sequence[str] | None = None, *, continue_on_error: bool = False) -> None:
        """unlink, stop and delete instances in reverse dependency order; skips what was never created."""
        await self.lifecycle(
            instance_ids,
            UNINSTALL_PHASES,
            order="uninstall",
            final_state="deleted",
            only_touched=True,
            continue_on_error=continue_on_error,
        )

    async def relink(self, peers: Mapping[str, Sequence[str]], phases: Sequence[str]) -> None:
        """Re-runs relationship phases from peer instances to the given targets (after heal or scale)."""
        targets = sorted({t for ts in peers.values() for t in ts})
        if peers:
            await self.lifecycle(sorted(peers), phases, order="install", only_targets=targets)

    async def set_state(self, instance_ids: Sequence[str], state: str) -> None:
        await store_activity(
            "set_states",
            StatesInput(deployment_id=self.deployment_id, instance_ids=tuple(instance_ids), state=state),
            f"{len(instance_ids)} instance(s) -> {state}",
        )

    async def check_health(self, instance_id: str) -> bool:
        """Runs the instance's ``Health.check`` once: False if it fails or answers ``healthy: false``.
        An instance whose node has no health check is healthy unless its state is ``error``."""
        (info,) = await self.instances(ids=[instance_id])
        if "Health.check" not in info.operations:
            return info.state != "error"
        result = await self.run_operation([instance_id], "Health.check", max_attempts=1, continue_on_error=True)
        return instance_id in result.succeeded

    async def wait_for(self, condition: Callable[[], bool], timeout: timedelta | None = None) -> bool:
        """Waits until ``condition()`` holds (re-checked whenever the workflow wakes); False on timeout."""
        try:
            await workflow.wait_condition(condition, timeout=timeout)
        except TimeoutError:
            return False
        return True

    async def sleep(self, delay: timedelta) -> None:
        """A durable timer."""
        await workflow.sleep(delay)

    async def call_workflow(self, name: str, parameters: Mapping[str, Any] | None = None) -> Mapping[str, Any] | None:
        """Runs another registered workflow inline, as part of this execution."""
        from tempano.workflows import registry

        fn = registry.get(name)
        if fn is None:
            raise WorkflowFailure(f"no workflow named {name!r} (known: {', '.join(registry.names())})")
        result: Mapping[str, Any] | None = await cast(Any, fn)(self, dict(parameters or {}))
        return result

    async def log(self, message: str, *, instance_id: str | None = None, level: str = "info") -> None:
        """A line in the execution's lifecycle history."""
        self._log_seq += 1
        await store_activity(
            "log_event",
            LogInput(
                deployment_id=self.deployment_id,
                execution_id=self.execution_id,
                key=f"wflog:{self._log_seq}",
                message=message,
                level=level,
                node_instance_id=instance_id,
            ),
            message[:100],
        )

    def progress(self, details: str) -> None:
        """What the Temporal UI shows as this execution's current details."""
        workflow.set_current_details(details)

    # ---------------------------------------------------------------- internals

    def _report(self, running: Sequence[str]) -> None:
        text = f"{self._progress_done}/{self._progress_total} instances done"
        if running:
            text += f"; running: {', '.join(running[:10])}" + ("..." if len(running) > 10 else "")
        workflow.set_current_details(text)

    async def _batches(
        self,
        instance_ids: Sequence[str],
        *,
        node: str,
        phases: tuple[str, ...],
        final_state: str | None,
        children: bool = False,
        operation: str | None = None,
        operation_inputs: dict[str, Any] | None = None,
        max_attempts: int | None = None,
        continue_on_error: bool = False,
        only_targets: Sequence[str] | None = None,
    ) -> BatchResult:
        chunks = [tuple(instance_ids[i : i + BATCH_SIZE]) for i in range(0, len(instance_ids), BATCH_SIZE)]
        inputs = [
            BatchInput(
                deployment_id=self.deployment_id,
                execution_id=self.execution_id,
                workflow=self.workflow,
                node=node,
                instance_ids=chunk,
                phases=phases,
                final_state=final_state,
                skip=self.input.resume_chain,
                continue_on_error=continue_on_error,
                operation=operation,
                operation_inputs=operation_inputs,
                max_attempts=max_attempts,
                only_targets=tuple(only_targets) if only_targets is not None else None,
            )
            for chunk in chunks
        ]
        if children:
            results = await asyncio.gather(*(self._child_batch(b) for b in inputs))
        else:
            results = await asyncio.gather(*(run_batch(b) for b in inputs))
        merged = BatchResult(
            succeeded=tuple(i for r in results for i in r.succeeded),
            failed={k: v for r in results for k, v in r.failed.items()},
            operations=sum(r.operations for r in results),
        )
        self._progress_done += len(merged.succeeded)
        if merged.failed and not continue_on_error:
            raise WorkflowFailure("; ".join(merged.failed[k] for k in sorted(merged.failed)))
        return merged

    async def _child_batch(self, batch: BatchInput) -> BatchResult:
        self._batch_seq += 1
        what = batch.operation or "+".join(batch.phases)
        try:
            result: BatchResult = await workflow.execute_child_workflow(
                "NodeBatch",
                batch,
                id=f"{workflow.info().workflow_id}:batch:{self._batch_seq}:{batch.node}",
                result_type=BatchResult,
                static_summary=f"{batch.node}: {what} on {len(batch.instance_ids)} instances",
            )
        except ChildWorkflowError as e:
            raise WorkflowFailure(failure_message(e)) from None
        return result


async def run_batch(batch: BatchInput) -> BatchResult:
    """Runs a batch's tasks: instances in parallel (bounded), each instance's tasks in phase order."""
    plan: BatchPlan = await store_activity(
        "plan_batch",
        batch,
        f"plan {batch.operation or '+'.join(batch.phases)} for {len(batch.instance_ids)} x {batch.node}",
        BatchPlan,
    )
    semaphore = asyncio.Semaphore(MAX_CONCURRENCY)
    operations = 0

    async def one(instance_id: str) -> None:
        nonlocal operations
        async with semaphore:
            for phase_tasks in plan.tasks.get(instance_id, ()):
                for task in phase_tasks:
                    await _run_task(batch, task)
                    operations += 1

    outcomes = await asyncio.gather(*(one(i) for i in batch.instance_ids), return_exceptions=True)
    succeeded: list[str] = []
    failed: dict[str, str] = {}
    for instance_id, outcome in zip(batch.instance_ids, outcomes, strict=True):
        if isinstance(outcome, asyncio.CancelledError):
            raise outcome
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, ActivityError | ApplicationError):
                raise outcome
            failed[instance_id] = failure_message(outcome)
        else:
            succeeded.append(instance_id)
    if batch.final_state and succeeded:
        await store_activity(
            "set_states",
            StatesInput(deployment_id=batch.deployment_id, instance_ids=tuple(succeeded), state=batch.final_state),
            f"{len(succeeded)} x {batch.node} -> {batch.final_state}",
        )
    if failed and batch.operation != "Health.check":
        await store_activity(
            "set_states",
            StatesInput(deployment_id=batch.deployment_id, instance_ids=tuple(sorted(failed)), state="error"),
            f"{len(failed)} x {batch.node} -> error",
        )
    return BatchResult(succeeded=tuple(succeeded), failed=failed, operations=operations)


async def _run_task(batch: BatchInput, task: Task) -> OperationResult:
    target = f" -> {task.target_id}" if task.target_id else ""
    result: OperationResult = await workflow.execute_activity(
        "run_operation",
        OperationInput(
            deployment_id=batch.deployment_id,
            execution_id=batch.execution_id,
            workflow=batch.workflow,
            task=task,
            inputs=batch.operation_inputs,
        ),
        result_type=OperationResult,
        activity_id=f"{task.instance_id}:{task.key}",
        start_to_close_timeout=timedelta(seconds=task.timeout_s),
        heartbeat_timeout=timedelta(seconds=task.heartbeat_timeout_s),
        retry_policy=RetryPolicy(
            maximum_attempts=task.max_attempts,
            initial_interval=timedelta(seconds=task.initial_interval_s),
            backoff_coefficient=task.backoff,
            maximum_interval=timedelta(seconds=task.max_interval_s),
            non_retryable_error_types=["UnknownOperation", "FunctionError"],
        ),
        cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        summary=f"{task.instance_id} {task.operation}{target}: {task.implementation}",
    )
    return result
