"""The engine's activities: scheduling reads, operation dispatch to plugins, and every store write.

Activities are synchronous (they run on the worker's thread pool: plugins use blocking libraries) and
idempotent: a retried activity cannot double-apply (event keys, ledger uniqueness, attribute merges).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from tempano.activities.context import TASK_TAG, ActivityContext, heartbeating
from tempano.blueprints.functions import FunctionError, evaluate
from tempano.blueprints.plan import (
    NODE_PHASE_OPERATIONS,
    RELATIONSHIP_PHASE_OPERATIONS,
    ImperativeWorkflow,
    NodeSpec,
    OperationSpec,
    Plan,
    RelationshipSpec,
)
from tempano.plugins.contract import InstanceView, PluginError, Relationship, RetryableError
from tempano.plugins.registry import PluginRegistry, UnknownOperation
from tempano.store import NewEvent, NodeInstanceRecord, NotFound, Store, Writes
from tempano.store import topology as topo
from tempano.store.resolver import StoreResolver, operation_instances
from tempano.workflows.models import (
    BatchInput,
    BatchPlan,
    ChainInput,
    ChainResult,
    ExecutionStatusInput,
    ImperativeQuery,
    InstanceInfo,
    InstancesQuery,
    LogInput,
    OperationInput,
    OperationResult,
    RecordExecutionInput,
    RollbackInput,
    RollbackPlan,
    ScaleInput,
    ScaleResult,
    Schedule,
    ScheduleInput,
    ScheduleStep,
    StatesInput,
    SubgraphInput,
    SubgraphResult,
    Task,
)

log = logging.getLogger("tempano.activities")

DEFAULT_TIMEOUT_S = 1800.0
DEFAULT_HEARTBEAT_S = 30.0
DEFAULT_MAX_ATTEMPTS = 5

PHASE_STATES: dict[str, tuple[str, str]] = {
    "create": ("creating", "created"),
    "configure": ("configuring", "configured"),
    "start": ("starting", "started"),
    "stop": ("stopping", "stopped"),
    "delete": ("deleting", "deleted"),
}


F = TypeVar("F", bound=Callable[..., Any])


def _heartbeating(fn: F) -> F:
    """Store activities heartbeat while they run, so the workflow's short heartbeat timeout notices a dead worker
    in seconds (their start-to-close timeout is a minute, for a slow database)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if activity.info().is_local:  # a local activity cannot heartbeat (the workflow task's timeout covers it)
            return fn(*args, **kwargs)
        with heartbeating(activity.heartbeat, "store-heartbeat"):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclass
class _Chain:
    """A chain of operations in progress: the instances it read at its start (kept current with its own writes),
    the instances its operations wrote to besides their own (read again before the next operation), and the end
    of its last operation, not yet written: it is committed with the next operation's start, or alone when the
    chain stops."""

    instances: dict[str, NodeInstanceRecord]
    written: set[str] = field(default_factory=set)
    operation: ActivityContext | None = None
    """The operation the chain beats for: the one running, else the last one (between two operations, a bare
    heartbeat would erase the details its retry adopts from, while its end is not written yet)."""
    unwritten: Callable[[Writes], None] | None = None
    unwritten_id: str | None = None
    first: bool = True

    @contextmanager
    def running(self, ctx: ActivityContext) -> Iterator[None]:
        self.operation = ctx
        yield

    def beat(self) -> None:
        """The chain's heartbeat: its operation's (with its details and cancellation), else a bare one."""
        if self.operation is not None:
            self.operation.heartbeat()
        else:
            activity.heartbeat()

    def defer(self, instance_id: str, finish: Callable[[Writes], None]) -> None:
        self.unwritten, self.unwritten_id = finish, instance_id

    def flush(self, writes: Writes) -> None:
        """Adds the last operation's unwritten end to a transaction."""
        if self.unwritten is not None:
            self.unwritten(writes)
        self.unwritten = self.unwritten_id = None

    def flush_alone(self, store: Store) -> None:
        if self.unwritten is not None:
            with store.together() as writes:
                self.flush(writes)


class OperationTimeout(RetryableError):
    """An operation of a chain ran past its own timeout (retried like Temporal retries a start-to-close timeout)."""


class EngineActivities:
    """Holds the worker's store and plugin registry; each method is one activity."""

    def __init__(self, store: Store, plugins: PluginRegistry, *, blueprints_dir: Path | None = None) -> None:
        self.store = store
        self.plugins = plugins
        self.blueprints_dir = blueprints_dir
        self._plans: dict[str, Plan] = {}
        self._blueprint_dirs: dict[str, Path | None] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- helpers

    def plan(self, deployment_id: str) -> Plan:
        """The deployment's plan (immutable once the deployment exists, so cached)."""
        with self._lock:
            cached = self._plans.get(deployment_id)
        if cached is not None:
            return cached
        plan = Plan.model_validate(self.store.get_deployment(deployment_id).plan)
        with self._lock:
            self._plans[deployment_id] = plan
        return plan

    def blueprint_dir(self, deployment_id: str) -> Path | None:
        """Where the deployment's blueprint files (playbooks, scripts) are (fixed once stored, so cached)."""
        with self._lock:
            if deployment_id in self._blueprint_dirs:
                return self._blueprint_dirs[deployment_id]
        blueprint = self.store.get_deployment(deployment_id).blueprint_id
        try:
            source_dir = self.store.get_blueprint(blueprint).source_dir
        except NotFound:
            source_dir = None
        found = Path(source_dir) if source_dir else None
        with self._lock:
            self._blueprint_dirs[deployment_id] = found
        return found

    def activities(self) -> list[Any]:
        """Every activity method, for the worker."""
        return [
            self.schedule,
            self.plan_batch,
            self.run_operation,
            self.run_operations,
            self.set_states,
            self.record_execution,
            self.execution_status,
            self.list_instances,
            self.scale,
            self.remove_instances,
            self.subgraph,
            self.log_event,
            self.rollback_plan,
            self.imperative_workflow,
        ]

    # ---------------------------------------------------------------- scheduling

    @activity.defn(name="schedule")
    @_heartbeating
    def schedule(self, input: ScheduleInput) -> Schedule:
        """The template-level DAG of a set of instances, in install or uninstall order."""
        plan = self.plan(input.deployment_id)
        instances = self.store.node_instances(input.deployment_id)
        wanted = set(input.instance_ids) if input.instance_ids is not None else {i.id for i in instances}
        if input.only_touched:
            touched = {r.node_instance_id for r in self.store.resources(input.deployment_id)}
            wanted = {i.id for i in instances if i.id in wanted and (i.state != "uninitialized" or i.id in touched)}
        by_node: dict[str, list[str]] = {}
        for inst in instances:
            if inst.id in wanted:
                by_node.setdefault(inst.node, []).append(inst.id)
        # The compiler's install/uninstall graphs: every node, with what it waits on.
        graph = plan.workflows[input.order]
        steps = [
            ScheduleStep(
                node=name,
                after=tuple(a for a in graph.steps[name].after if a in by_node),
                instance_ids=tuple(by_node[name]),
            )
            for name in sorted(by_node)
        ]
        return Schedule(steps=tuple(steps))

    @activity.defn(name="plan_batch")
    @_heartbeating
    def plan_batch(self, input: BatchInput) -> BatchPlan:
        """The operations each instance of a batch runs, phase by phase (or the one operation asked)."""
        plan = self.plan(input.deployment_id)
        own = self.store.node_instances(input.deployment_id, ids=input.instance_ids)
        instances = operation_instances(self.store, plan, input.deployment_id, own)
        done: set[tuple[str, str]] = set()
        for execution_id in () if input.rerun else input.skip:
            done |= self.store.succeeded_operations(execution_id, input.instance_ids)
        tasks: dict[str, tuple[tuple[Task, ...], ...]] = {}
        skipped = 0
        for instance_id in input.instance_ids:
            if instance_id not in instances:
                raise ApplicationError(
                    f"deployment {input.deployment_id} has no live node instance {instance_id}",
                    type="NotFound",
                    non_retryable=True,
                )
            source = instances[instance_id]
            node = plan.node(source.node)
            if input.operation is not None:
                spec = _node_operation(node, input.operation, instance_id)
                candidates = [[_task(input.operation, instance_id, input.operation, spec)]]
            else:
                candidates = [_phase_tasks(plan, node, source, phase, instances) for phase in input.phases]
            per_phase: list[tuple[Task, ...]] = []
            for phase_tasks in candidates:
                if input.repeat > 1:
                    phase_tasks = [t.model_copy(update={"key": f"{t.key}@{input.repeat}"}) for t in phase_tasks]
                kept = [
                    t.model_copy(update={"max_attempts": input.max_attempts}) if input.max_attempts else t
                    for t in phase_tasks
                    if (instance_id, t.key) not in done
                    and (input.only_targets is None or t.target_id in input.only_targets)
                ]
                skipped += len(phase_tasks) - len(kept)
                if kept:
                    per_phase.append(tuple(kept))
            tasks[instance_id] = tuple(per_phase)
        return BatchPlan(tasks=tasks, skipped=skipped)

    # ---------------------------------------------------------------- operations

    # Cancellation is delivered to the plugin through ctx.cancelled (checked on each heartbeat), never as an
    # exception thrown into its thread at an arbitrary point: a plugin stops where it is safe to.
    @activity.defn(name="run_operation", no_thread_cancel_exception=True)
    def run_operation(self, input: OperationInput) -> OperationResult:
        """Runs one plugin operation on one node instance, and persists what it changed."""
        info = activity.info()
        return self._operation(input, info.attempt, _heartbeat_details(info))

    @activity.defn(name="run_operations", no_thread_cancel_exception=True)
    def run_operations(self, input: ChainInput) -> ChainResult:
        """Runs an instance's consecutive operations of one step (create, configure, start and the relationship
        operations between them) in order, in one activity: one server round trip and one workflow task per
        instance and step instead of one per operation. Each operation keeps its own attempts, retry interval,
        timeout and events: an attempt of the chain starts at the first operation that has not succeeded in
        this execution, with that operation's next attempt number (counted from its ``operation_started``
        events, so an attempt cut short by a dead worker counts too); a failure is retried after that
        operation's own interval, and is final once that operation has used its attempts."""
        info = activity.info()
        first = input.tasks[0]
        done, started = (
            self.store.operation_history(input.execution_id, first.instance_id) if info.attempt > 1 else (set(), {})
        )
        ran, unhealthy = 0, False
        previous = _heartbeat_details(info)
        # Read once for the chain: the instance, its host chain and related nodes (the instances an operation may
        # write are read again before each one).
        plan = self.plan(input.deployment_id)
        owner = self.store.node_instance(input.deployment_id, first.instance_id)
        chain = _Chain(operation_instances(self.store, plan, input.deployment_id, [owner]))
        # One heartbeat thread for the chain, beating for the operation running (a thread per operation cost
        # more than the operation itself when dozens start together).
        with heartbeating(chain.beat, f"heartbeat-{first.instance_id}"), self._ending(chain):
            for task in input.tasks:
                if task.key in done:
                    continue
                attempt = started.get(task.key, 0) + 1
                one = OperationInput(
                    deployment_id=input.deployment_id,
                    execution_id=input.execution_id,
                    workflow=input.workflow,
                    task=task,
                    inputs=input.inputs,
                )
                if attempt > task.max_attempts:
                    # Its last attempt never reported back: the worker running it died, or the chain's own
                    # start-to-close timeout cut it short.
                    message = (
                        f"{task.instance_id} {task.operation} ({task.implementation}) failed after {task.max_attempts} "
                        "attempt(s): its last attempt never reported back (the worker running it died or hung); check "
                        "the workers (`tempano up` restarts them), then resume the execution"
                    )
                    with self._writes(chain) as writes:
                        writes.add_events(
                            [
                                self._new_event(
                                    f"{input.execution_id}:{task.instance_id}:{task.key}:lost",
                                    one,
                                    "operation_failed",
                                    message,
                                    level="error",
                                    data={"task": task.key, "final": True},
                                )
                            ]
                        )
                    raise ApplicationError(message, type="OperationLost", non_retryable=True)
                mine = previous.get(TASK_TAG) == task.key
                try:
                    result = self._operation(
                        one, attempt, {k: v for k, v in previous.items() if k != TASK_TAG} if mine else {}, chain
                    )
                except ApplicationError as e:
                    if e.non_retryable or attempt >= task.max_attempts:
                        raise ApplicationError(e.message, type=e.type, non_retryable=True) from None
                    delay = min(task.initial_interval_s * task.backoff ** (attempt - 1), task.max_interval_s)
                    raise ApplicationError(e.message, type=e.type, next_retry_delay=timedelta(seconds=delay)) from None
                ran += 1
                unhealthy = unhealthy or result.healthy is False
        return ChainResult(operations=ran, unhealthy=unhealthy)

    @contextmanager
    def _writes(self, chain: _Chain | None) -> Iterator[Writes]:
        """One transaction of hot writes; in a chain, it starts with the last operation's unwritten end."""
        with self.store.together() as writes:
            if chain is not None:
                chain.flush(writes)
            yield writes

    @contextmanager
    def _ending(self, chain: _Chain) -> Iterator[None]:
        """Writes the chain's last unwritten operation end, however the chain stops (it succeeded)."""
        try:
            yield
        finally:
            chain.flush_alone(self.store)

    def _operation(
        self,
        input: OperationInput,
        attempt: int,
        previous: Mapping[str, Any],
        chain: _Chain | None = None,
    ) -> OperationResult:
        """One attempt of one operation. In a chain, the operation's own timeout is applied here (Temporal's
        start-to-close timeout covers the whole chain), its heartbeat details name it, so a retried chain gives
        them back only to it, and its end is written with the next operation's start."""
        task = input.task
        plan = self.plan(input.deployment_id)
        deployment_id = input.deployment_id
        if chain is None:
            owner = self.store.node_instance(deployment_id, task.instance_id)
            instances = operation_instances(self.store, plan, deployment_id, [owner])
        else:
            # In a chain: what the chain read at its start, kept current with its own writes (an instance's
            # operations of a step are the only ones writing to it meanwhile); read again: a relationship's target
            # (other instances' chains may write to it) and what the chain's operations wrote to other instances.
            stale = {*filter(None, [task.target_id]), *chain.written} if not chain.first else set()
            if chain.unwritten_id in stale:  # a target other chains may write to: the last end first, then read it
                chain.flush_alone(self.store)
            if stale:
                fresh = self.store.node_instances(deployment_id, ids=sorted(stale), include_removed=True)
                chain.instances.update((i.id, i) for i in fresh)
            chain.written.clear()
            chain.first = False
            if task.instance_id not in chain.instances:
                raise NotFound(f"deployment {deployment_id!r} has no node instance {task.instance_id!r}")
            owner = chain.instances[task.instance_id]
            instances = dict(chain.instances)
        if task.target_id is not None and task.target_id not in instances:
            instances[task.target_id] = self.store.node_instance(deployment_id, task.target_id)
        run_on = task.target_id if task.side == "target" and task.target_id else task.instance_id
        if run_on not in instances:
            instances[run_on] = self.store.node_instance(deployment_id, run_on)
        spec, rel = _operation_spec(plan, owner, task)
        where = f"{run_on} (node {instances[run_on].node}) {task.operation}" + (
            f" ({task.key})" if task.relationship is not None else ""
        )
        prefix = f"{input.execution_id}:{task.instance_id}:{task.key}:{attempt}"
        started = time.monotonic()
        try:
            resolver = StoreResolver(
                self.store,
                plan,
                deployment_id,
                instances,
                self_id=run_on,
                source_id=task.instance_id if rel is not None else None,
                target_id=task.target_id if rel is not None else None,
            )
            inputs = dict(evaluate(spec.inputs, resolver))
            if input.inputs:  # day-2 parameters may use functions too (get_attribute...)
                inputs.update(dict(evaluate(input.inputs, resolver)))
            fn = self.plugins.resolve(spec.implementation)
        except (FunctionError, UnknownOperation, NotFound) as e:
            with self._writes(chain) as writes:
                writes.add_events(
                    [
                        self._new_event(
                            prefix,
                            input,
                            "operation_failed",
                            f"{where} cannot start: {e}",
                            level="error",
                            attempt=attempt,
                        )
                    ]
                )
            raise ApplicationError(f"{where}: {e}", type=type(e).__name__, non_retryable=True) from None

        views = {
            iid: _view(plan, instances[iid]) for iid in {task.instance_id, run_on, *(filter(None, [task.target_id]))}
        }
        me = views[run_on]
        host = _view(plan, instances[me.host_id]) if me.host_id and me.host_id in instances else None
        # Built when the plugin first reads them (see ActivityContext.relationships).
        relationships = (
            functools.partial(_relationship_views, plan, instances[run_on], instances, views) if rel is None else ()
        )
        plugin_name = spec.implementation.split(".", 1)[0]
        ctx = _make_context(
            self,
            plugin_name=plugin_name,
            input=input,
            task=task,
            inputs=inputs,
            attempt=attempt,
            me=me,
            host=host,
            relationships=relationships,
            source=views[task.instance_id] if rel is not None else None,
            target=views.get(task.target_id) if rel is not None and task.target_id else None,
            heartbeat_details=previous,
            tag=task.key if chain is not None else None,
        )
        state_before = instances[run_on].state
        # The state change and the started event in one transaction (one store round trip).
        started_event = self._new_event(
            prefix,
            input,
            "operation_started",
            f"{where}: {spec.implementation} (attempt {attempt}/{task.max_attempts})",
            data={"task": task.key, "implementation": spec.implementation, "state": task.state_before},
            attempt=attempt,
        )
        with self._writes(chain) as writes:
            if task.state_before:
                writes.set_states(deployment_id, [run_on], task.state_before, events=[started_event])
            else:
                writes.add_events([started_event])
        timed_out = threading.Event()
        try:
            with ctx.auto_heartbeat() if chain is None else chain.running(ctx):
                outputs = (fn(ctx) if chain is None else _within(task.timeout_s, fn, ctx, timed_out)) or {}
        except Exception as e:
            if timed_out.is_set() and not activity.is_cancelled():
                timeout = OperationTimeout(
                    f"no result within {task.timeout_s:g}s (its start-to-close timeout): the plugin or the system "
                    "it drives is stuck or slower than that; if it is slow, raise the operation's tempano_timeout "
                    "in the blueprint"
                )
                self._failed(input, task, attempt, prefix, where, plugin_name, ctx, started, timeout)
            if activity.is_cancelled() or ctx.cancelled.is_set():
                # Graceful cancellation: the plugin stopped; the instance goes back to the state it had.
                if task.state_before:
                    self.store.set_states(deployment_id, [run_on], state_before)
                self._event(
                    prefix,
                    input,
                    "operation_cancelled",
                    f"{where} cancelled on request (attempt {attempt}); {run_on} is back to {state_before!r}",
                    level="warning",
                    duration=time.monotonic() - started,
                    data={"task": task.key, "state": state_before, "plugin_message": str(e)},
                    attempt=attempt,
                )
                for i, line in enumerate(ctx.lines):
                    self._event(f"{prefix}:log{i}", input, "log", line, instance=run_on, attempt=attempt)
                raise CancelledError(f"{where} cancelled") from None
            self._failed(input, task, attempt, prefix, where, plugin_name, ctx, started, e)
        elapsed = time.monotonic() - started
        others = [view for view in views.values() if view.attribute_writes and view.id != run_on]
        for view in others:
            self.store.merge_attributes(deployment_id, view.id, view.attribute_writes)
        # What the operation changed, its log lines and the succeeded event in one transaction, last: resume
        # skips what succeeded, so nothing of it may be missing once the event is there.
        healthy = outputs.get("healthy") if isinstance(outputs, Mapping) else None
        verdict = f": unhealthy ({outputs.get('reason') or 'no reason given'})" if healthy is False else ""
        writes_here = views[run_on].attribute_writes
        events = [
            *(
                self._new_event(f"{prefix}:log{i}", input, "log", line, instance=run_on, attempt=attempt)
                for i, line in enumerate(ctx.lines)
            ),
            self._new_event(
                prefix,
                input,
                "operation_succeeded",
                f"{where} succeeded in {elapsed:.2f}s{verdict}",
                duration=elapsed,
                data={"task": task.key, "state": task.state_after},
                attempt=attempt,
            ),
        ]

        def finish(writes: Writes) -> None:
            writes.merge_attributes(
                deployment_id,
                run_on,
                writes_here,
                outputs=(task.operation, dict(outputs)),
                state=task.state_after,
                events=events,
            )

        if chain is None:
            with self._writes(None) as writes:
                finish(writes)
        else:
            # Written with the next operation's start (or when the chain stops); meanwhile the chain sees it.
            chain.defer(run_on, finish)
            mine = instances[run_on]
            chain.instances[run_on] = mine.model_copy(
                update={
                    "attributes": {**mine.attributes, **writes_here},
                    "outputs": {**mine.outputs, task.operation: dict(outputs)},
                    "state": task.state_after or task.state_before or mine.state,
                }
            )
            chain.written.update(view.id for view in others)
        return OperationResult(outputs=_jsonable(outputs), healthy=healthy if isinstance(healthy, bool) else None)

    def _failed(
        self,
        input: OperationInput,
        task: Task,
        attempt: int,
        prefix: str,
        where: str,
        plugin_name: str,
        ctx: ActivityContext,
        started: float,
        error: Exception,
    ) -> NoReturn:
        """Records a failed attempt (event, plugin log lines) and raises what Temporal retries or not."""
        for i, line in enumerate(ctx.lines):
            self._event(f"{prefix}:log{i}", input, "log", line, instance=ctx.instance.id, attempt=attempt)
        elapsed = time.monotonic() - started
        e = error
        if isinstance(e, PluginError):
            final = (not e.retryable) or attempt >= task.max_attempts
            message = f"{where} failed on attempt {attempt}/{task.max_attempts}: {e.message}"
            self._event(
                prefix,
                input,
                "operation_failed",
                message + ("" if final else " (will retry)"),
                level="error",
                duration=elapsed,
                data={"task": task.key, "retryable": e.retryable, "final": final, **e.details},
                attempt=attempt,
            )
            raise ApplicationError(message, type=type(e).__name__, non_retryable=not e.retryable) from None
        final = attempt >= task.max_attempts
        message = (
            f"{where} raised {type(e).__name__} on attempt {attempt}/{task.max_attempts}: {e} "
            f"(an unexpected error in plugin {plugin_name!r}; it is retried)"
        )
        self._event(
            prefix,
            input,
            "operation_failed",
            message,
            level="error",
            duration=elapsed,
            data={"task": task.key, "retryable": True, "final": final},
            attempt=attempt,
        )
        raise ApplicationError(message, type=type(e).__name__) from None

    def _event(self, key: str, input: OperationInput, type: str, message: str, **fields: Any) -> None:
        """Adds one event at once (see :meth:`_new_event` for the fields)."""
        self.store.add_events([self._new_event(key, input, type, message, **fields)])

    def _new_event(
        self,
        key: str,
        input: OperationInput,
        type: str,
        message: str,
        *,
        level: str = "info",
        duration: float | None = None,
        data: Mapping[str, Any] | None = None,
        instance: str | None = None,
        attempt: int | None = None,
    ) -> NewEvent:
        return NewEvent(
            key=f"{key}:{type}",
            deployment_id=input.deployment_id,
            message=message,
            type=type,
            level=level,
            execution_id=input.execution_id,
            node_instance_id=instance or input.task.instance_id,
            operation=input.task.operation,
            attempt=attempt if attempt is not None else activity.info().attempt,
            duration_s=duration,
            data=dict(data or {}),
        )

    # ---------------------------------------------------------------- store writes

    @activity.defn(name="set_states")
    @_heartbeating
    def set_states(self, input: StatesInput) -> None:
        events = []
        if input.execution_id is not None:
            info = activity.info()
            shown = ", ".join(input.instance_ids[:10]) + ("..." if len(input.instance_ids) > 10 else "")
            events.append(
                NewEvent(
                    key=f"{input.execution_id}:{info.workflow_id}:{info.activity_id}:state",
                    deployment_id=input.deployment_id,
                    message=f"{shown} -> {input.state}",
                    type="state_changed",
                    execution_id=input.execution_id,
                    node_instance_id=input.instance_ids[0] if len(input.instance_ids) == 1 else None,
                    data={"state": input.state, "instances": list(input.instance_ids)},
                )
            )
        # the states and their event in one transaction
        self.store.set_states(input.deployment_id, list(input.instance_ids), input.state, events=events)

    @activity.defn(name="record_execution")
    @_heartbeating
    def record_execution(self, input: RecordExecutionInput) -> None:
        self.store.create_execution(
            input.execution_id, input.deployment_id, input.seq, input.workflow, input.parameters, input.workflow_id
        )

    @activity.defn(name="execution_status")
    @_heartbeating
    def execution_status(self, input: ExecutionStatusInput) -> None:
        # The execution's own status is written last: whoever waits for it to end (the API, the CLI) then reads
        # instances, deployment status and the event already settled. Written first, a terminated execution read
        # as ended while its instances were still 'configuring' and its deployment still 'installing'.
        if input.settle:
            busy = [
                i.id
                for i in self.store.node_instances(input.deployment_id)
                if i.state in {before for before, _ in PHASE_STATES.values()}
            ]
            if busy:
                self.store.set_states(input.deployment_id, busy, "error")
        if input.deployment_status:
            self.store.set_deployment_status(input.deployment_id, input.deployment_status)
        elif input.workflow == "rollback" and input.status == "succeeded":
            self.store.created_again_if_nothing_installed(input.deployment_id)
        message = input.message or f"execution {input.execution_id} ({input.workflow}) {input.status}" + (
            f": {input.error}" if input.error else ""
        )
        self.store.add_event(
            f"{input.execution_id}:status:{input.status}",
            input.deployment_id,
            message,
            type=f"execution_{input.status}",
            level="error" if input.status == "failed" else "info",
            execution_id=input.execution_id,
        )
        self.store.set_execution_status(input.execution_id, input.status, error=input.error)

    @activity.defn(name="log_event")
    @_heartbeating
    def log_event(self, input: LogInput) -> None:
        self.store.add_event(
            f"{input.execution_id}:{input.key}",
            input.deployment_id,
            input.message,
            type=input.type,
            level=input.level,
            execution_id=input.execution_id,
            node_instance_id=input.node_instance_id,
            operation=input.operation,
        )

    @activity.defn(name="list_instances")
    @_heartbeating
    def list_instances(self, input: InstancesQuery) -> list[InstanceInfo]:
        """Live instances: all, those of a node (or of a scaling group's members), or those named."""
        plan = self.plan(input.deployment_id)
        if input.node is not None and input.node in plan.groups:
            records = [
                r
                for member in plan.groups[input.node].members
                for r in self.store.node_instances(input.deployment_id, node=member, ids=input.instance_ids)
            ]
        else:
            records = self.store.node_instances(input.deployment_id, node=input.node, ids=input.instance_ids)
        return [
            InstanceInfo(
                id=r.id,
                node=r.node,
                index=r.index,
                host_id=r.host_id,
                state=r.state,
                group_instance=r.group_instance,
                attributes=_jsonable(r.attributes),
                operations=tuple(sorted(plan.node(r.node).operations)),
            )
            for r in records
        ]

    @activity.defn(name="scale")
    @_heartbeating
    def scale(self, input: ScaleInput) -> ScaleResult:
        """Adds the instances of a scale-out (idempotently), or chooses those a scale-in removes."""
        plan = self.plan(input.deployment_id)
        existing = self.store.node_instances(input.deployment_id, include_removed=True)
        markers = [f"scale:{e}" for e in (*input.resume_chain, input.execution_id)]
        try:
            if input.delta > 0:
                # A retried activity, or the resumption of a scale-out, completes the instances already added.
                already = [i.id for i in existing if not i.removed and any(_made_by(i, m) for m in markers)]
                if not already:
                    new = topo.scale_out(plan, input.target, input.delta, existing)
                    self.store.add_node_instances(input.deployment_id, new)
                    for inst in new:
                        self.store.merge_attributes(input.deployment_id, inst.id, {}, outputs=(markers[-1], {}))
                    already = [n.id for n in new]
                live = {i.id: i for i in self.store.node_instances(input.deployment_id)}
                return ScaleResult(added=tuple(already), peers=_peers(plan, live, set(already)))
            chosen = topo.scale_in_choice(plan, input.target, input.delta, existing, input.instance_ids)
            return ScaleResult(removing=tuple(chosen))
        except topo.TopologyError as e:
            raise ApplicationError(
                f"scale {input.target} {input.delta:+d}: {e}", type="ScaleError", non_retryable=True
            ) from None

    @activity.defn(name="remove_instances")
    @_heartbeating
    def remove_instances(self, input: StatesInput) -> None:
        self.store.mark_removed(input.deployment_id, list(input.instance_ids))

    @activity.defn(name="subgraph")
    @_heartbeating
    def subgraph(self, input: SubgraphInput) -> SubgraphResult:
        """The instances and what they contain, plus the peers with relationships into them."""
        plan = self.plan(input.deployment_id)
        existing = self.store.node_instances(input.deployment_id)
        unknown = set(input.instance_ids) - {i.id for i in existing}
        if unknown:
            raise ApplicationError(
                f"deployment {input.deployment_id} has no live node instance(s) {', '.join(sorted(unknown))}",
                type="NotFound",
                non_retryable=True,
            )
        ids = topo.subgraph(input.instance_ids, existing, plan)
        live = {i.id: i for i in existing}
        return SubgraphResult(instance_ids=tuple(ids), peers=tuple(sorted(_peers(plan, live, set(ids)))))

    @activity.defn(name="rollback_plan")
    @_heartbeating
    def rollback_plan(self, input: RollbackInput) -> RollbackPlan:
        """What an execution created: instances holding resources it recorded, or whose create it started (a day-2
        operation it ran on an instance is not a creation), and the instances its scale-out added."""
        created = {
            r.node_instance_id for r in self.store.resources(input.deployment_id, execution_id=input.of_execution)
        }
        started_create = {
            e.node_instance_id
            for e in self.store.events(
                input.deployment_id, execution_id=input.of_execution, limit=1_000_000, types=["operation_started"]
            )
            if e.node_instance_id and e.operation == NODE_PHASE_OPERATIONS["create"]
        }
        marker = f"scale:{input.of_execution}"
        added = [i.id for i in self.store.node_instances(input.deployment_id) if _made_by(i, marker)]
        return RollbackPlan(instance_ids=tuple(sorted(created | started_create | set(added))), added=tuple(added))

    @activity.defn(name="imperative_workflow")
    @_heartbeating
    def imperative_workflow(self, input: ImperativeQuery) -> ImperativeWorkflow | None:
        """The deployment plan's TOSCA imperative workflow of that name, if it has one."""
        return self.plan(input.deployment_id).imperative_workflows.get(input.name)


# -------------------------------------------------------------------- pure helpers


def _task(
    key: str,
    instance_id: str,
    operation: str,
    spec: OperationSpec,
    *,
    relationship: int | None = None,
    target_id: str | None = None,
    side: str | None = None,
    states: tuple[str, str] | None = None,
) -> Task:
    retry = spec.retry
    return Task(
        key=key,
        instance_id=instance_id,
        operation=operation,
        implementation=spec.implementation,
        relationship=relationship,
        target_id=target_id,
        side=side,  # type: ignore[arg-type, unused-ignore]
        state_before=states[0] if states else None,
        state_after=states[1] if states else None,
        timeout_s=spec.timeout_s or DEFAULT_TIMEOUT_S,
        heartbeat_timeout_s=spec.heartbeat_timeout_s or DEFAULT_HEARTBEAT_S,
        max_attempts=retry.max_attempts if retry else DEFAULT_MAX_ATTEMPTS,
        initial_interval_s=retry.initial_interval_s if retry else 1.0,
        backoff=retry.backoff if retry else 2.0,
        max_interval_s=retry.max_interval_s if retry else 30.0,
    )


def _phase_tasks(
    plan: Plan, node: NodeSpec, source: NodeInstanceRecord, phase: str, instances: Mapping[str, NodeInstanceRecord]
) -> list[Task]:
    if phase in NODE_PHASE_OPERATIONS:
        op = NODE_PHASE_OPERATIONS[phase]
        spec = node.operations.get(op)
        if spec is None:
            return []
        return [_task(op, source.id, op, spec, states=PHASE_STATES.get(phase))]
    if phase in RELATIONSHIP_PHASE_OPERATIONS:
        source_op, target_op = RELATIONSHIP_PHASE_OPERATIONS[phase]
        out: list[Task] = []
        for index, rel in enumerate(node.relationships):
            if source_op not in rel.operations and target_op not in rel.operations:
                continue
            for target_id in topo.relationship_targets(plan, source, rel, instances):
                for op, side in ((source_op, "source"), (target_op, "target")):
                    spec = rel.operations.get(op)
                    if spec is not None:
                        key = f"{phase}:{rel.name}#{index}:{target_id}:{side}"
                        out.append(_task(key, source.id, op, spec, relationship=index, target_id=target_id, side=side))
        return out
    raise ApplicationError(f"unknown phase {phase!r}", non_retryable=True)


def _node_operation(node: NodeSpec, operation: str, instance_id: str) -> OperationSpec:
    spec = node.operations.get(operation)
    if spec is None:
        raise ApplicationError(
            f"{instance_id}: node {node.name!r} has no operation {operation!r} "
            f"(it has: {', '.join(sorted(node.operations)) or 'none'})",
            type="UnknownOperation",
            non_retryable=True,
        )
    return spec


def _operation_spec(plan: Plan, owner: NodeInstanceRecord, task: Task) -> tuple[OperationSpec, RelationshipSpec | None]:
    node = plan.node(owner.node)
    if task.relationship is None:
        return _node_operation(node, task.operation, owner.id), None
    rel = node.relationships[task.relationship]
    return rel.operations[task.operation], rel


def _view(plan: Plan, record: NodeInstanceRecord) -> InstanceView:
    node = plan.node(record.node)
    return InstanceView(
        id=record.id,
        node=record.node,
        type=node.type,
        type_hierarchy=node.type_hierarchy,
        properties=node.properties,
        attributes=dict(record.attributes),
        host_id=record.host_id,
    )


def _relationship_views(
    plan: Plan,
    me: NodeInstanceRecord,
    instances: Mapping[str, NodeInstanceRecord],
    views: dict[str, InstanceView],
) -> tuple[Relationship, ...]:
    out: list[Relationship] = []
    for rel in plan.node(me.node).relationships:
        for target_id in topo.relationship_targets(plan, me, rel, instances):
            if target_id not in views:
                views[target_id] = _view(plan, instances[target_id])
            out.append(Relationship(rel.name, rel.type, rel.type_hierarchy, views[target_id], rel.properties))
    return tuple(out)


def _peers(plan: Plan, live: Mapping[str, NodeInstanceRecord], inside: set[str]) -> dict[str, tuple[str, ...]]:
    """Instances outside ``inside`` whose relationships reach into it, with the targets they reach."""
    out: dict[str, tuple[str, ...]] = {}
    for inst in live.values():
        if inst.id in inside:
            continue
        reached: list[str] = []
        for rel in plan.node(inst.node).relationships:
            reached.extend(t for t in topo.relationship_targets(plan, inst, rel, live) if t in inside)
        if reached:
            out[inst.id] = tuple(sorted(set(reached)))
    return out


def _made_by(instance: NodeInstanceRecord, marker: str) -> bool:
    return marker in instance.outputs


class _OperationThreads:
    """Where the operations of chains run: daemon threads, reused (starting a thread per operation was costly when
    dozens start at once). An operation past its timeout that ignores cancellation keeps its thread, as Temporal
    leaves it, and a daemon thread never holds up the worker's exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Callable[[], None]]] = []

    def start(self, job: Callable[[], None]) -> threading.Event:
        done = threading.Event()

        def task() -> None:
            try:
                job()
            finally:
                done.set()

        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(inbox,), name="tempano-operation", daemon=True).start()
        inbox.put(task)
        return done

    def _serve(self, inbox: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            inbox.get()()
            with self._lock:
                self._idle.append(inbox)


_OPERATION_THREADS = _OperationThreads()

TIMEOUT_GRACE_S = 5.0
"""How long an operation past its timeout has, once cancelled, to stop before its attempt is failed anyway."""


def _within(
    timeout_s: float, fn: Callable[[ActivityContext], Any], ctx: ActivityContext, timed_out: threading.Event
) -> Any:
    """Runs a plugin operation with its own timeout inside a chain (Temporal's start-to-close covers the chain):
    past it, the operation is cancelled (``ctx.cancelled``) and, if it has not stopped after a grace period,
    left behind in its thread while the attempt fails, as Temporal leaves an activity that timed out."""
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome["value"] = context.run(fn, ctx)
        except BaseException as e:  # handed to the activity's thread
            outcome["error"] = e

    done = _OPERATION_THREADS.start(run)
    if not done.wait(timeout_s):
        timed_out.set()
        ctx.cancelled.set()
        if not done.wait(TIMEOUT_GRACE_S):
            raise OperationTimeout(f"still running {TIMEOUT_GRACE_S:g}s after it was cancelled")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _heartbeat_details(info: activity.Info) -> dict[str, Any]:
    details = info.heartbeat_details
    if details and isinstance(details[0], Mapping):
        return dict(details[0])
    return {}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _make_context(
    acts: EngineActivities,
    *,
    plugin_name: str,
    input: OperationInput,
    task: Task,
    inputs: Mapping[str, Any],
    attempt: int,
    me: InstanceView,
    host: InstanceView | None,
    relationships: tuple[Relationship, ...] | Callable[[], tuple[Relationship, ...]],
    source: InstanceView | None,
    target: InstanceView | None,
    heartbeat_details: Mapping[str, Any],
    tag: str | None = None,
) -> ActivityContext:
    return ActivityContext(
        store=acts.store,
        plugin=plugin_name,
        deployment_id=input.deployment_id,
        execution_id=input.execution_id,
        operation=task.operation.split(".", 1)[-1],
        inputs=inputs,
        # The same for every attempt, every resumption, and a repeat of the operation in one execution (``@n``).
        idempotency_key=f"{input.deployment_id}.{task.instance_id}.{task.key.split('@', 1)[0]}",
        attempt=attempt,
        instance=me,
        host=host,
        relationships=relationships,
        source=source,
        target=target,
        blueprint_dir=acts.blueprint_dir(input.deployment_id),
        heartbeat_details=heartbeat_details,
        tag=tag,
        logger=logging.getLogger(f"tempano.plugins.{plugin_name}"),
    )
