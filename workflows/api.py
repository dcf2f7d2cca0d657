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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar, cast

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    FailureError,
    RetryState,
    TimeoutError,
    TimeoutType,
)

from tempano.workflows import registry
from tempano.workflows.registry import WorkflowFn

with workflow.unsafe.imports_passed_through():
    from tempano.blueprints.plan import INSTALL_PHASES, NODE_PHASE_OPERATIONS, UNINSTALL_PHASES, ImperativeWorkflow
    from tempano.workflows.models import (
        BatchInput,
        BatchPlan,
        BatchResult,
        ChainInput,
        ChainResult,
        ExecutionInput,
        ImperativeQuery,
        InstanceInfo,
        InstancesQuery,
        LogInput,
        OperationInput,
        OperationResult,
        Order,
        ProgressView,
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


LOCAL_STORE_ACTIVITIES = "local-store-activities"
"""Patch id: store activities run as local activities (histories recorded before it replay the old way)."""
OPERATION_CHAINS = "operation-chains"
"""Patch id: an instance's consecutive operations of a step run in one activity (``run_operations``)."""
PLAN_AHEAD = "plan-ahead"
"""Patch id: a step's operations are planned while the steps it waits on run, and the execution's "running"
status is written while its first reads run, so no store round trip sits between two steps."""


async def store_activity(
    name: str, arg: Any, summary: str, result_type: type[T] | None = None, *, local: bool = True
) -> T:
    """Runs one of the engine's short store activities (reads, state writes, events) with their shared options.

    They are local activities: run by the worker that runs the workflow task, recorded as one marker event, and
    no round trip through the server, so a step of a DAG (plan a batch, run its operations, set its states)
    costs one server round trip per operation and nothing more. A worker that dies during one is noticed
    through the workflow task's timeout (seconds), and the activity runs again on another worker (they are all
    idempotent). ``local=False`` (NodeBatch children): a hundred children starting at once would each hold a
    workflow task open behind the operations already running on the worker."""
    if local and workflow.patched(LOCAL_STORE_ACTIVITIES):
        done: T = await workflow.execute_local_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=SHORT,
            retry_policy=STORE_RETRY,
            summary=summary[:200],
        )
        return done
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


async def resolve_workflow(deployment_id: str, name: str) -> WorkflowFn:
    """A workflow by name: a built-in, else the deployment's TOSCA imperative workflow, else a custom one."""
    from tempano.workflows import imperative  # it builds on this module

    fn = registry.get(name)
    if fn is not None and registry.is_builtin(name):
        return fn
    definition: ImperativeWorkflow | None = await store_activity(
        "imperative_workflow",
        ImperativeQuery(deployment_id=deployment_id, name=name),
        f"imperative workflow {name}",
        ImperativeWorkflow,
    )
    if definition is not None:
        return imperative.bind(name, definition)
    if fn is None:
        raise WorkflowFailure(
            f"no workflow named {name!r}: neither built in, nor in the blueprint's workflows, nor registered under "
            f"the tempano.workflows entry points (known: {', '.join(registry.names())})"
        )
    return fn


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


def progress_text(done: int, total: int, waiting: Sequence[str], note: str = "") -> str:
    """ "3/12 instances done; waiting on a, b, c, d, e and 2 more" (or the note when nothing is in flight)."""
    parts = [f"{done}/{total} instances done"] if total else []
    if waiting:
        more = len(waiting) - Progress.SHOWN
        parts.append(f"waiting on {', '.join(waiting[: Progress.SHOWN])}" + (f" and {more} more" if more > 0 else ""))
    elif note:
        parts.append(note)
    return "; ".join(parts) or "working"


class Progress:
    """What a run (an execution or a batch child) is doing now, kept as the workflow's current details so the
    Temporal UI and ``tempano executions show`` say what it waits on."""

    SHOWN = 5

    def __init__(self) -> None:
        self.done = 0
        self.total = 0
        self.note = ""
        self.inflight: dict[str, str] = {}

    def started(self, key: str, text: str) -> None:
        self.inflight[key] = text
        self.show()

    def ended(self, key: str) -> None:
        self.inflight.pop(key, None)
        self.show()

    def text(self) -> str:
        return progress_text(self.done, self.total, sorted(self.inflight.values()), self.note)

    def show(self) -> None:
        if workflow.in_workflow():  # not while the worker evicts the run (its coroutines close outside the loop)
            workflow.set_current_details(self.text()[:2000])

    def view(self) -> ProgressView:
        return ProgressView(
            details=self.text(), waiting_on=tuple(sorted(self.inflight.values())), done=self.done, total=self.total
        )


class WorkflowContext:
    """One execution's view of its deployment, and the operations it may run.

    Every method is deterministic workflow code: reads and writes go through short activities, operations
    through the ``run_operation`` activity (retries, timeouts and heartbeats from the blueprint).
    """

    def __init__(self, input: ExecutionInput) -> None:
        self.input = input
        self.deployment_id = input.deployment_id
        self.execution_id = input.execution_id
        self.workflow = input.workflow
        self.parameters: Mapping[str, Any] = input.parameters
        self.progress_state = Progress()
        self._log_seq = 0
        self._batch_seq = 0
        self._runs: dict[str, dict[str | None, int]] = {}
        self._running: asyncio.Future[None] | None = None

    def _starting(self, status: Awaitable[None]) -> None:
        """For the engine: the execution's "running" status, written while the workflow's first reads run (the
        operations wait for it, see :meth:`_started`)."""
        self._running = asyncio.ensure_future(status)

    async def _started(self) -> None:
        """Waits until the "running" status is written (raises if it could not be)."""
        if self._running is not None:
            await asyncio.shield(self._running)  # a cancelled caller leaves the write to finish

    def _repeat(self, tokens: Sequence[str], instance_ids: Sequence[str] | None) -> int:
        """1 + how many earlier calls of this execution ran one of these phases/operations on one of these
        instances (None: all). Task keys so stay unique within an execution, and identical between an execution
        and its resumption (the same code makes the same calls)."""
        seen = 0
        for token in tokens:
            runs = self._runs.get(token, {})
            if instance_ids is None or None in runs:
                seen = max(seen, *runs.values(), 0)
            else:
                seen = max(seen, *(runs.get(i, 0) for i in instance_ids), 0)
        repeat = seen + 1
        for token in tokens:
            runs = self._runs.setdefault(token, {})
            for i in [None] if instance_ids is None else instance_ids:
                runs[i] = repeat
        return repeat

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

    async def instance(self, instance_id: str) -> InstanceInfo:
        """One live node instance; fails the execution with a clear message if there is none by that id."""
        found = await self.instances(ids=[instance_id])
        if not found:
            raise WorkflowFailure(
                f"deployment {self.deployment_id} has no live node instance {instance_id!r}; "
                "list them with `tempano deployments get` (node instances) and pass one of those ids"
            )
        return found[0]

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
        rerun: bool = False,
    ) -> BatchResult:
        """Runs one operation (``Interface.op``) on the given instances, in parallel, and returns which
        succeeded and which failed (with the failure message). Raises :class:`WorkflowFailure` on the first
        failure unless ``continue_on_error``. ``inputs`` are merged over the operation's blueprint inputs (they
        may use get_attribute and the like); ``max_attempts`` overrides the blueprint's retry policy. When the execution
        resumes another, what succeeded there is skipped unless ``rerun`` (checks whose answer may have changed)."""
        return await self._batches(
            self._batch_inputs(
                list(instance_ids),
                node=operation,
                phases=(),
                final_state=None,
                operation=operation,
                operation_inputs=dict(inputs) if inputs else None,
                max_attempts=max_attempts,
                continue_on_error=continue_on_error,
                repeat=self._repeat([operation], list(instance_ids)),
                rerun=rerun,
            )
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
        self.progress_state.total += schedule.instance_count
        tokens = [*phases, *(NODE_PHASE_OPERATIONS[p] for p in phases if p in NODE_PHASE_OPERATIONS)]
        repeat = self._repeat(tokens, None if instance_ids is None else list(instance_ids))
        children = schedule.instance_count > INLINE_LIMIT
        pending = {s.node: s for s in schedule.steps}
        done: set[str] = set()
        failures: dict[str, str] = {}
        running: dict[asyncio.Task[BatchResult], str] = {}

        def batches(name: str) -> list[BatchInput]:
            return self._batch_inputs(
                pending[name].instance_ids,
                node=name,
                phases=tuple(phases),
                final_state=final_state,
                continue_on_error=continue_on_error,
                only_targets=only_targets,
                repeat=repeat,
            )

        # A step's batches are planned once every step it waits on has started, while they run: when they end,
        # its operations start at once. (Child batches plan themselves.)
        ahead = not children and workflow.patched(PLAN_AHEAD)
        planned: dict[str, tuple[list[BatchInput], list[asyncio.Task[BatchPlan]]]] = {}
        try:
            while pending or running:
                if not failures or continue_on_error:
                    for name in sorted(pending):
                        if all(a in done for a in pending[name].after):
                            inputs, plans = planned.pop(name, None) or (batches(name), None)
                            del pending[name]
                            coro = self._batches(inputs, children=children, plans=plans)
                            running[asyncio.ensure_future(coro)] = name
                    started = done | set(running.values())
                    for name in sorted(pending):
                        if ahead and name not in planned and all(a in started for a in pending[name].after):
                            inputs = batches(name)
                            planned[name] = (inputs, [asyncio.ensure_future(_plan(b)) for b in inputs])
                if not running:
                    break
                try:
                    finished, _ = await workflow.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
                except asyncio.CancelledError:
                    # Waiting does not cancel what is awaited: pass the cancellation on to the running steps, and
                    # wait until their operations have stopped, so the execution ends with a consistent store.
                    for fut in running:
                        fut.cancel()
                    await asyncio.gather(*running, return_exceptions=True)
                    raise
                for fut in finished:
                    name = running.pop(fut)
                    try:
                        result = fut.result()
                    except WorkflowFailure as e:
                        failures[name] = e.message
                        continue
                    done.add(name)
                    failures.update(result.failed)
                self.progress_state.show()
        finally:
            # Plans of steps that will not run (a failure stopped the walk, or it was cancelled).
            unused = [plan for _, batch_plans in planned.values() for plan in batch_plans]
            for plan in unused:
                plan.cancel()
            await asyncio.gather(*unused, return_exceptions=True)
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

    async def relink(
        self, peers: Mapping[str, Sequence[str]], phases: Sequence[str], *, continue_on_error: bool = False
    ) -> None:
        """Runs relationship phases (``preconfigure``, ``postconfigure``, ``establish``, ``unlink``) of peer
        instances, only for their relationships to the given targets (``{peer: targets}``): how heal and scale
        wire peers to new or reinstalled instances, or unwire them from removed ones."""
        targets = sorted({t for ts in peers.values() for t in ts})
        if peers:
            await self.lifecycle(
                sorted(peers), phases, order="install", only_targets=targets, continue_on_error=continue_on_error
            )

    async def set_state(self, instance_ids: Sequence[str], state: str) -> None:
        """Sets the instances' state (recorded as a ``state_changed`` event of the execution)."""
        await store_activity(
            "set_states",
            StatesInput(
                deployment_id=self.deployment_id,
                instance_ids=tuple(instance_ids),
                state=state,
                execution_id=self.execution_id,
            ),
            f"{len(instance_ids)} instance(s) -> {state}",
        )

    async def check_health(self, instance_id: str) -> bool:
        """Runs the instance's ``Health.check`` once: False if it fails or answers ``healthy: false``.
        An instance whose node has no health check is healthy unless its state is ``error``."""
        info = await self.instance(instance_id)
        if "Health.check" not in info.operations:
            return info.state != "error"
        result = await self.run_operation(
            [instance_id], "Health.check", max_attempts=1, continue_on_error=True, rerun=True
        )
        return instance_id in result.succeeded and instance_id not in result.unhealthy

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
        """Runs another workflow (built-in, the blueprint's imperative one, or custom) inline, as part of this
        execution: its operations appear in this execution's history and events."""
        fn = await resolve_workflow(self.deployment_id, name)
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
        """A note on what the execution does now (shown, with the operations in flight, as the workflow's current
        details in the Temporal UI and in ``tempano executions show``)."""
        self.progress_state.note = details
        self.progress_state.show()

    # ---------------------------------------------------------------- internals

    async def _batches(
        self,
        inputs: Sequence[BatchInput],
        *,
        children: bool = False,
        plans: Sequence[Awaitable[BatchPlan]] | None = None,
    ) -> BatchResult:
        """Runs the batches of one call (see :meth:`_batch_inputs`) together; ``plans``: theirs, if made ahead."""
        await self._started()
        if children:
            results = await asyncio.gather(*(self._child_batch(b) for b in inputs))
        else:
            results = await asyncio.gather(
                *(
                    run_batch(b, self.progress_state, plan=plans[i] if plans is not None else None)
                    for i, b in enumerate(inputs)
                )
            )
        merged = BatchResult(
            succeeded=tuple(i for r in results for i in r.succeeded),
            failed={k: v for r in results for k, v in r.failed.items()},
            operations=sum(r.operations for r in results),
            unhealthy=tuple(i for r in results for i in r.unhealthy),
        )
        if any(b.phases for b in inputs):  # lifecycle phases count instances done (one operation does not)
            self.progress_state.done += len(merged.succeeded)
        if merged.failed and not inputs[0].continue_on_error:  # the batches of one call share it
            raise WorkflowFailure("; ".join(merged.failed[k] for k in sorted(merged.failed)))
        return merged

    def _batch_inputs(
        self,
        instance_ids: Sequence[str],
        *,
        node: str,
        phases: tuple[str, ...],
        final_state: str | None,
        operation: str | None = None,
        operation_inputs: dict[str, Any] | None = None,
        max_attempts: int | None = None,
        continue_on_error: bool = False,
        only_targets: Sequence[str] | None = None,
        repeat: int = 1,
        rerun: bool = False,
    ) -> list[BatchInput]:
        """The batches (BATCH_SIZE instances each) of one call of :meth:`_batches`."""
        chunks = [tuple(instance_ids[i : i + BATCH_SIZE]) for i in range(0, len(instance_ids), BATCH_SIZE)]
        return [
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
                repeat=repeat,
                rerun=rerun,
            )
            for chunk in chunks
        ]

    async def _child_batch(self, batch: BatchInput) -> BatchResult:
        self._batch_seq += 1
        what = batch.operation or "+".join(batch.phases)
        child_id = f"{workflow.info().workflow_id}:batch:{self._batch_seq}:{batch.node}"
        self.progress_state.started(child_id, f"batch {self._batch_seq} ({len(batch.instance_ids)} x {batch.node})")
        try:
            result: BatchResult = await workflow.execute_child_workflow(
                "NodeBatch",
                batch,
                id=child_id,
                result_type=BatchResult,
                static_summary=f"{batch.node}: {what} on {len(batch.instance_ids)} instances",
            )
        except ChildWorkflowError as e:
            raise WorkflowFailure(failure_message(e)) from None
        finally:
            self.progress_state.ended(child_id)
        return result


def _plan(batch: BatchInput, *, local: bool = True) -> Awaitable[BatchPlan]:
    return store_activity(
        "plan_batch",
        batch,
        f"plan {batch.operation or '+'.join(batch.phases)} for {len(batch.instance_ids)} x {batch.node}",
        BatchPlan,
        local=local,
    )


async def run_batch(
    batch: BatchInput,
    progress: Progress | None = None,
    *,
    local: bool = True,
    plan: Awaitable[BatchPlan] | None = None,
) -> BatchResult:
    """Runs a batch's tasks: instances in parallel (bounded), each instance's tasks in phase order; ``local``:
    its store activities are local ones (see :func:`store_activity`); ``plan``: the batch's plan, if made ahead."""
    progress = progress if progress is not None else Progress()
    planned: BatchPlan = await (plan if plan is not None else _plan(batch, local=local))
    semaphore = asyncio.Semaphore(MAX_CONCURRENCY)
    operations = 0
    unhealthy: list[str] = []

    # An instance's operations of this step (create, configure, start and the relationship operations between
    # them) run in one activity when there are several: one server round trip per instance and step.
    chains = workflow.patched(OPERATION_CHAINS)

    async def one(instance_id: str) -> None:
        nonlocal operations
        async with semaphore:
            tasks = [task for phase_tasks in planned.tasks.get(instance_id, ()) for task in phase_tasks]
            if chains and len(tasks) > 1:
                await _run_chain(batch, tasks, progress, local=local)
                operations += len(tasks)
                return
            for task in tasks:
                result = await _run_task(batch, task, progress, local=local)
                operations += 1
                if result.healthy is False:
                    unhealthy.append(instance_id)

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
            StatesInput(
                deployment_id=batch.deployment_id,
                instance_ids=tuple(succeeded),
                state=batch.final_state,
                execution_id=batch.execution_id,
            ),
            f"{len(succeeded)} x {batch.node} -> {batch.final_state}",
            local=local,
        )
    if failed and batch.operation != "Health.check":
        await store_activity(
            "set_states",
            StatesInput(
                deployment_id=batch.deployment_id,
                instance_ids=tuple(sorted(failed)),
                state="error",
                execution_id=batch.execution_id,
            ),
            f"{len(failed)} x {batch.node} -> error",
            local=local,
        )
    return BatchResult(
        succeeded=tuple(succeeded), failed=failed, operations=operations, unhealthy=tuple(sorted(set(unhealthy)))
    )


async def _run_task(batch: BatchInput, task: Task, progress: Progress, *, local: bool) -> OperationResult:
    target = f" -> {task.target_id}" if task.target_id else ""
    what = f"{task.instance_id} {task.operation}{target}"
    return await _operations_activity(
        batch,
        [task],
        "run_operation",
        OperationInput(
            deployment_id=batch.deployment_id,
            execution_id=batch.execution_id,
            workflow=batch.workflow,
            task=task,
            inputs=batch.operation_inputs,
        ),
        OperationResult,
        activity_id=f"{task.instance_id}:{task.key}",
        what=what,
        where=f"{what} ({task.implementation})",
        exhausted=f"after {task.max_attempts} attempt(s)",
        progress=progress,
        local=local,
    )


async def _run_chain(batch: BatchInput, tasks: Sequence[Task], progress: Progress, *, local: bool) -> ChainResult:
    """Runs an instance's operations of a step in order, in one ``run_operations`` activity. Each operation keeps
    its own attempts, retry interval and timeout (the activity applies them); Temporal's timeouts cover the
    chain: the sum of the operations' timeouts, and the shortest heartbeat timeout."""
    first, last = tasks[0], tasks[-1]
    what = f"{first.instance_id} {', '.join(_short(t) for t in tasks)}"
    return await _operations_activity(
        batch,
        tasks,
        "run_operations",
        ChainInput(
            deployment_id=batch.deployment_id,
            execution_id=batch.execution_id,
            workflow=batch.workflow,
            tasks=tuple(tasks),
            inputs=batch.operation_inputs,
        ),
        ChainResult,
        activity_id=f"{first.instance_id}:{first.key}..{last.key}",
        what=what,
        where=what,
        exhausted="after its attempts",
        progress=progress,
        local=local,
    )


async def _operations_activity(
    batch: BatchInput,
    tasks: Sequence[Task],
    name: str,
    arg: OperationInput | ChainInput,
    result_type: type[T],
    *,
    activity_id: str,
    what: str,
    where: str,
    exhausted: str,
    progress: Progress,
    local: bool,
) -> T:
    """Runs the activity that runs ``tasks`` (one, or a chain), with options that cover them all: the sum of
    their timeouts, the shortest heartbeat timeout, and a retry policy bounding the total (for one operation,
    exactly its own). A Temporal timeout becomes a failure that says which timeout hit."""
    implementations = ", ".join(dict.fromkeys(t.implementation for t in tasks))
    progress.started(activity_id, f"{what} ({implementations})")
    timeout_s = sum(t.timeout_s for t in tasks)
    heartbeat_s = min(t.heartbeat_timeout_s for t in tasks)
    try:
        result: T = await workflow.execute_activity(
            name,
            arg,
            result_type=result_type,
            activity_id=activity_id,
            start_to_close_timeout=timedelta(seconds=timeout_s),
            heartbeat_timeout=timedelta(seconds=heartbeat_s),
            retry_policy=RetryPolicy(
                # in a chain each operation's own limit is applied by the activity; this only bounds the total
                maximum_attempts=sum(t.max_attempts for t in tasks),
                initial_interval=timedelta(seconds=min(t.initial_interval_s for t in tasks)),
                backoff_coefficient=min(t.backoff for t in tasks),
                maximum_interval=timedelta(seconds=max(t.max_interval_s for t in tasks)),
                non_retryable_error_types=NON_RETRYABLE,
            ),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"{what}: {implementations}"[:200],
        )
    except ActivityError as e:
        if not isinstance(e.cause, TimeoutError):
            raise
        attempts = exhausted if e.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED else "(not retried)"
        message = _timeout_message(where, attempts, timeout_s, heartbeat_s, e.cause)
        await _timed_out(batch, tasks[0], activity_id, message, local=local)
        raise ApplicationError(message, type="OperationTimedOut", non_retryable=True) from None
    finally:
        progress.ended(activity_id)
    return result


NON_RETRYABLE = ["UnknownOperation", "FunctionError"]


def _short(task: Task) -> str:
    name = task.operation.rsplit(".", 1)[-1]
    return f"{name} -> {task.target_id}" if task.target_id else name


async def _timed_out(batch: BatchInput, task: Task, activity_id: str, message: str, *, local: bool) -> None:
    await store_activity(
        "log_event",
        LogInput(
            deployment_id=batch.deployment_id,
            execution_id=batch.execution_id,
            key=f"timeout:{activity_id}",
            message=message,
            level="error",
            node_instance_id=task.instance_id,
            type="operation_timed_out",
            operation=task.operation,
        ),
        f"{task.instance_id} {task.operation} timed out",
        local=local,
    )


def _timeout_message(where: str, attempts: str, timeout_s: float, heartbeat_s: float, timeout: TimeoutError) -> str:
    if timeout.type == TimeoutType.HEARTBEAT:
        return (
            f"{where} timed out {attempts}: no heartbeat for {heartbeat_s:g}s, so the worker running "
            "it died or hung; check the workers (`tempano up` restarts them), then resume the execution"
        )
    return (
        f"{where} timed out {attempts}: no result within {timeout_s:g}s (its start-to-close timeout); "
        "the plugin or the system it drives is stuck or slower than that: fix it, or raise the operation's "
        "tempano_timeout in the blueprint, then resume the execution"
    )
