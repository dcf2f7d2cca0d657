"""What the API (and tests) do to tempano: blueprints in, deployments created, executions started and followed.

One class over the store and a Temporal client; the REST routers are thin layers over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from tempano import blueprints  # its compiler (tosca-parser) loads on first use, not with the worker
from tempano.api.settings import Settings
from tempano.blueprints.functions import FunctionError, evaluate
from tempano.blueprints.plan import Plan
from tempano.plugins.registry import PluginRegistry, load_plugins
from tempano.store import (
    BlueprintRecord,
    Conflict,
    DeploymentRecord,
    EventRecord,
    ExecutionRecord,
    NodeInstanceRecord,
    NotFound,
    Store,
)
from tempano.store.resolver import StoreResolver, load_instances
from tempano.store.topology import TopologyError, expand
from tempano.workflows.api import progress_text
from tempano.workflows.engine import (
    SA_BLUEPRINT,
    SA_DEPLOYMENT,
    SA_STATUS,
    SA_WORKFLOW,
    DeploymentWorkflow,
    deployment_workflow_id,
    execution_workflow_id,
)
from tempano.workflows.models import (
    CancelRequest,
    DeploymentInput,
    DeploymentStatusView,
    ExecutionRef,
    QueuePolicy,
    StartExecutionRequest,
    TerminateNotice,
)

if TYPE_CHECKING:
    from tempano.blueprints import Blueprint

T = TypeVar("T")

log = logging.getLogger(__name__)
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
TERMINAL = {"succeeded", "failed", "cancelled", "terminated"}
QUERY_TIMEOUT = 5.0
"""Seconds a read waits for a workflow's answer to a query or a describe (a worker must be there to answer a query)."""
REMOVED_FROM_QUEUE = "removed from the queue"
"""What a deployment's workflow answers when a cancel takes an execution off its queue."""
CANCELLED_WHILE_QUEUED = "cancelled while queued, before it started: nothing ran"


class ServiceError(Exception):
    """A request tempano refuses: ``status`` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class TemporalUnavailable(ServiceError):
    status = 503


@dataclass(frozen=True)
class UnrecordedExecution:
    """An execution as its deployment's workflow holds it, before (or without) a record in the store."""

    execution_id: str
    seq: int
    workflow: str
    workflow_id: str
    status: str
    """``queued``, ``pending`` (starting), or how it ended (``cancelled`` while queued)."""
    error: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


async def connect(settings: Settings) -> Client:
    """A Temporal client with tempano's data converter; a clear error when the server is not there."""
    try:
        return await Client.connect(
            settings.temporal_address, namespace=settings.temporal_namespace, data_converter=pydantic_data_converter
        )
    except RuntimeError as e:
        raise TemporalUnavailable(
            f"cannot reach the Temporal server at {settings.temporal_address} ({_connect_reason(e)}): start it "
            "with `tempano up`, or set TEMPANO_TEMPORAL_ADDRESS to the address of a running one"
        ) from None


def _connect_reason(error: RuntimeError) -> str:
    """The operating system's words in the SDK's error ("Connection refused"), or the whole text."""
    found = re.findall(r'(?:message|error): "([^"]+)"', str(error))
    return found[-1] if found else str(error)


@functools.lru_cache(maxsize=1)
def _plugin_registry() -> PluginRegistry:
    return load_plugins()


def _installed_operation(reference: str) -> bool:
    """Whether an installed plugin provides ``reference``: an unknown one is a compile error with its location."""
    return _plugin_registry().has(reference)


def _tree_files(root: Path, data_dir: Path) -> list[Path]:
    """Every file under ``root`` (following links, each directory once), leaving out tempano's own data directory
    (a blueprint saved next to it must not copy the store, nor its own earlier copies)."""
    data = data_dir.resolve()
    seen: set[Path] = set()
    files: list[Path] = []
    for directory, dirs, names in os.walk(root, followlinks=True):
        here = Path(directory)
        real = here.resolve()
        if real == data or real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        files.extend(here / name for name in sorted(names) if (here / name).is_file())
    return files


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def deployment_of(execution_id: str) -> str:
    """The deployment an execution id (``<deployment>:<seq>``) belongs to."""
    return execution_id.rsplit(":", 1)[0]


def check_id(kind: str, value: str) -> str:
    if not ID_PATTERN.match(value):
        raise ServiceError(
            f"{kind} id {value!r} is not valid: use 1-100 letters, digits, '_', '.', '-', starting with a letter or digit",
            status=422,
        )
    return value


class Tempano:
    """tempano's operations over a store and a Temporal client."""

    def __init__(
        self, settings: Settings, client: Client, store: Store | None = None, *, plugins: PluginRegistry | None = None
    ) -> None:
        self.settings = settings
        self.client = client
        self.store: Store = store if store is not None else settings.store
        self.plugins = plugins
        """The plugins blueprints are checked against (default: the installed ones)."""

    def _has_operation(self, reference: str) -> bool:
        return _installed_operation(reference) if self.plugins is None else self.plugins.has(reference)

    # ---------------------------------------------------------------- blueprints

    def upload_blueprint(self, blueprint_id: str, path: Path, *, confine: bool = False) -> BlueprintRecord:
        """Compiles the blueprint at ``path`` (file, directory or CSAR) and keeps a copy of its files.
        ``confine``: its imports may not leave its directory (what a remote user sent)."""
        check_id("blueprint", blueprint_id)
        try:
            self.store.get_blueprint(blueprint_id)
            raise ServiceError(f"a blueprint named {blueprint_id!r} exists already", status=409)
        except NotFound:
            pass
        blueprint, plan = _compile(path, self._has_operation, confine=confine)
        try:
            root = Path(blueprint.base_dir)
            main_file = Path(blueprint.root_file).relative_to(root).as_posix()
            if blueprint.archive is None and Path(path).is_file():
                # Its directory may hold anything (a home directory): only the files the blueprint names are kept.
                files = [root / name for name in blueprints.blueprint_files(blueprint, plan)]
            else:
                files = _tree_files(root, self.settings.data_dir)
            size = sum(file.stat().st_size for file in files)
            limit = self.settings.max_blueprint_bytes
            if size > limit:
                raise ServiceError(
                    f"blueprint {blueprint_id}: its files take {_mib(size)}, more than the {_mib(limit)} a blueprint "
                    "may keep (setting TEMPANO_MAX_BLUEPRINT_BYTES); leave out what it does not need or raise the "
                    "limit",
                    status=413,
                )
            target = self.settings.blueprints_dir / blueprint_id
            if target.exists():
                shutil.rmtree(target)
            for file in files:
                copy = target / file.relative_to(root)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, copy)
            target.mkdir(parents=True, exist_ok=True)
        finally:
            blueprint.cleanup()  # an extracted CSAR's temporary directory
        try:
            return self.store.put_blueprint(
                blueprint_id,
                plan.model_dump(mode="json"),
                plan.content_hash,
                description=plan.description,
                source_dir=str(target),
                main_file=main_file,
            )
        except Conflict as e:
            raise ServiceError(str(e), status=409) from None

    def upload_blueprint_bytes(self, blueprint_id: str, filename: str, content: bytes) -> BlueprintRecord:
        """A blueprint sent as one YAML document or a CSAR zip (recognised by its content)."""
        check_id("blueprint", blueprint_id)
        with tempfile.TemporaryDirectory(prefix="tempano-upload-") as tmp:
            return self.upload_blueprint(blueprint_id, _spool(Path(tmp), filename, content), confine=True)

    def validate_blueprint_bytes(self, filename: str, content: bytes) -> Plan:
        """Compiles a YAML document or CSAR zip without storing anything."""
        with tempfile.TemporaryDirectory(prefix="tempano-validate-") as tmp:
            return blueprints.compile_path(
                _spool(Path(tmp), filename, content), has_operation=self._has_operation, confine=True
            )

    def delete_blueprint(self, blueprint_id: str) -> None:
        """Deletes a blueprint no deployment uses (409 otherwise), with its stored files."""
        try:
            self.store.delete_blueprint(blueprint_id)
        except Conflict as e:
            raise ServiceError(str(e), status=409) from None
        target = self.settings.blueprints_dir / blueprint_id
        if ID_PATTERN.match(blueprint_id) and target.is_dir():
            shutil.rmtree(target, ignore_errors=True)

    # ---------------------------------------------------------------- deployments

    async def create_deployment(
        self,
        deployment_id: str,
        blueprint_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        policy: QueuePolicy = "queue",
    ) -> DeploymentRecord:
        from tempano.blueprints import bind_inputs

        check_id("deployment", deployment_id)
        blueprint = self.store.get_blueprint(blueprint_id)
        try:
            self.store.get_deployment(deployment_id)
            raise ServiceError(f"a deployment named {deployment_id!r} exists already", status=409)
        except NotFound:
            pass
        plan = bind_inputs(Plan.model_validate(blueprint.plan), dict(inputs or {}))
        try:
            instances = expand(plan)
        except TopologyError as e:
            raise ServiceError(f"blueprint {blueprint_id}: {e}", status=422) from None
        try:
            record = self.store.create_deployment(
                deployment_id,
                blueprint_id,
                plan.model_dump(mode="json"),
                dict(inputs or {}),
                instances,
                labels=labels,
            )
        except Conflict as e:
            raise ServiceError(str(e), status=409) from None
        try:
            await self._start_deployment_workflow(deployment_id, blueprint_id, policy, len(instances))
        except (RPCError, WorkflowAlreadyStartedError) as e:
            self.store.delete_deployment(deployment_id)
            if isinstance(e, WorkflowAlreadyStartedError):
                raise ServiceError(
                    f"deployment {deployment_id}'s workflow from an earlier deployment of that name is still "
                    "running; try again in a moment",
                    status=409,
                ) from None
            raise TemporalUnavailable(f"cannot start deployment {deployment_id}'s workflow: {e.message}") from None
        return record

    async def _start_deployment_workflow(
        self, deployment_id: str, blueprint_id: str, policy: QueuePolicy, instance_count: int
    ) -> None:
        await self.client.start_workflow(
            DeploymentWorkflow.run,
            DeploymentInput(deployment_id=deployment_id, blueprint_id=blueprint_id, policy=policy),
            id=deployment_workflow_id(deployment_id),
            task_queue=self.settings.task_queue,
            static_summary=f"deployment {deployment_id} of {blueprint_id} ({instance_count} instances)",
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SA_DEPLOYMENT, deployment_id),
                    SearchAttributePair(SA_BLUEPRINT, blueprint_id),
                    SearchAttributePair(SA_WORKFLOW, "deployment"),
                    SearchAttributePair(SA_STATUS, "active"),
                ]
            ),
        )

    def deployment_handle(self, deployment_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(deployment_workflow_id(deployment_id))

    async def start_execution(
        self,
        deployment_id: str,
        workflow: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        resume_of: str | None = None,
        rollback_of: str | None = None,
    ) -> ExecutionRef:
        deployment = self.store.get_deployment(deployment_id)
        plan = Plan.model_validate(deployment.plan)
        request = StartExecutionRequest(
            workflow=workflow,
            parameters=dict(parameters or {}),
            resume_of=resume_of,
            rollback_of=rollback_of,
            declared=workflow in plan.imperative_workflows,
        )
        try:
            ref = await self._update(
                deployment_id, "start_execution", request, ExecutionRef, "the request", "It may still start"
            )
        except WorkflowUpdateFailedError as e:
            cause = e.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or e)
            status = 409 if isinstance(cause, ApplicationError) and cause.type in {"Busy", "Closing"} else 422
            raise ServiceError(message, status=status) from None
        except RPCError as e:
            raise ServiceError(
                f"deployment {deployment_id}'s workflow is not running ({e.message})", status=409
            ) from None
        return ref

    async def _update(self, deployment_id: str, name: str, arg: Any, result_type: type[T], what: str, later: str) -> T:
        """A Workflow Update of the deployment's workflow, refused with a sentence when no worker takes it within
        the update timeout (``later``: what may still happen when one comes)."""
        try:
            return await asyncio.wait_for(
                self.deployment_handle(deployment_id).execute_update(name, arg, result_type=result_type),
                self.settings.update_timeout,
            )
        # (the SDK turns the cancellation by wait_for into its own error)
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            raise TemporalUnavailable(
                f"no worker took {what} within {self.settings.update_timeout:.0f}s (task queue "
                f"{self.settings.task_queue!r}): is a worker running? {later} when one comes"
            ) from None

    async def unrecorded_execution(self, execution_id: str) -> UnrecordedExecution | None:
        """An execution its deployment's workflow holds but the store may not: the workflow records one only as it
        starts it, so until then it is ``queued`` behind another execution (or ``pending``, starting), and one
        cancelled while queued is never recorded. None when the workflow does not know it."""
        deployment_id = deployment_of(execution_id)
        try:
            view: DeploymentStatusView = await self.deployment_handle(deployment_id).query(
                DeploymentWorkflow.status, rpc_timeout=timedelta(seconds=QUERY_TIMEOUT)
            )
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                return None
            raise TemporalUnavailable(
                f"execution {execution_id} is not recorded, and deployment {deployment_id}'s workflow could not say "
                f"whether it holds it ({e.message}): is a worker running? Try again in a moment"
            ) from None
        except WorkflowQueryFailedError as e:
            raise TemporalUnavailable(
                f"execution {execution_id} is not recorded, and deployment {deployment_id}'s workflow failed to say "
                f"whether it holds it ({e.message})"
            ) from None
        held = [(view.current, "pending")] if view.current is not None else []
        held += [(ref, "queued") for ref in view.queued]
        for ref, status in held:
            if ref.execution_id == execution_id:
                return UnrecordedExecution(ref.execution_id, ref.seq, ref.workflow, ref.workflow_id, status)
        for summary in view.recent:
            if summary.execution_id == execution_id:
                seq = int(execution_id.rsplit(":", 1)[1])
                workflow_id = execution_workflow_id(deployment_id, seq, summary.workflow)
                return UnrecordedExecution(
                    execution_id,
                    seq,
                    summary.workflow,
                    workflow_id,
                    summary.status,
                    summary.error,
                    dict(summary.parameters),
                )
        return None

    async def cancel_execution(self, execution_id: str) -> str:
        """Cancels a running execution gracefully, or takes a queued one off its deployment's queue (and records
        it as cancelled: its deployment's workflow never will, and keeps it in view for 10 executions only)."""
        try:
            result = await self._update(
                deployment_of(execution_id),
                "cancel_execution",
                CancelRequest(execution_id=execution_id),
                str,
                f"the cancel of {execution_id}",
                "The cancel may still happen",
            )
        except WorkflowUpdateFailedError as e:
            cause = e.cause
            raise ServiceError(cause.message if isinstance(cause, ApplicationError) else str(e), status=409) from None
        if result == REMOVED_FROM_QUEUE:
            await self._record_cancelled_while_queued(execution_id)
        return result

    async def _record_cancelled_while_queued(self, execution_id: str) -> None:
        """Records an execution taken off the queue, with the name and workflow id its deployment's workflow
        gave it (asked again: the cancel answers only with a sentence)."""
        deployment_id = deployment_of(execution_id)
        try:
            held = await self.unrecorded_execution(execution_id)
        except TemporalUnavailable as e:
            log.warning("execution %s was cancelled while queued but could not be recorded: %s", execution_id, e)
            return
        if held is None:
            return
        self.store.create_execution(
            execution_id,
            deployment_id,
            held.seq,
            held.workflow,
            held.parameters,
            held.workflow_id,
            ended=("cancelled", CANCELLED_WHILE_QUEUED),
        )

    async def terminate_execution(self, execution_id: str, reason: str = "") -> None:
        """The admin escape: ends the execution's workflow at once, without cancelling its operations
        gracefully. The deployment workflow records it as ``terminated`` and marks the instances it left in a
        transitional state (creating, configuring...) as ``error``; resume, heal or uninstall from there."""
        execution = self.store.get_execution(execution_id)
        if execution.status in TERMINAL:
            raise ServiceError(f"execution {execution_id} has ended already ({execution.status})", status=409)
        reason = reason or "no reason given"
        try:
            await self.deployment_handle(execution.deployment_id).signal(
                "terminating", TerminateNotice(execution_id=execution_id, reason=reason)
            )
            await self.client.get_workflow_handle(execution.workflow_id).terminate(reason=reason)
        except RPCError as e:
            raise ServiceError(f"execution {execution_id} cannot be terminated: {e.message}", status=409) from None

    async def execution_progress(self, execution_id: str) -> dict[str, Any]:
        """What a running execution waits on: its current details, the operations in flight and, from Temporal,
        each pending activity's attempt, last heartbeat and last failure."""
        from tempano.workflows.models import ProgressView

        execution = self.store.get_execution(execution_id)
        out: dict[str, Any] = {"execution_id": execution_id, "status": execution.status, "error": execution.error}
        handle = self.client.get_workflow_handle(execution.workflow_id)
        try:
            desc = await handle.describe(rpc_timeout=timedelta(seconds=QUERY_TIMEOUT))
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                out["details"] = f"no workflow {execution.workflow_id} on the Temporal server ({e.message})"
            else:
                out["details"] = (
                    f"the Temporal server at {self.settings.temporal_address} did not describe workflow "
                    f"{execution.workflow_id} ({e.message}): is it running (`tempano up`)? Try again in a moment"
                )
            return out
        # The operations running now, from their events: an activity may run several of an instance in a row
        # (create, configure, start), and the workflow only knows the activity.
        running: dict[str | None, EventRecord] = {}
        if execution.status not in TERMINAL:
            running = {e.node_instance_id: e for e in self.store.running_operations(execution_id)}
            waiting = sorted(
                f"{e.node_instance_id} {e.operation} ({e.data.get('implementation')})" for e in running.values()
            )
            if waiting:
                out["waiting_on"] = waiting
            try:
                view: ProgressView = await handle.query(
                    "progress", result_type=ProgressView, rpc_timeout=timedelta(seconds=QUERY_TIMEOUT)
                )
            except RPCError as e:
                # Only a worker answers a query: without one the server holds it until its own long timeout.
                if e.status in {RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}:
                    queue = desc.raw_description.execution_config.task_queue.name
                    out["details"] = (
                        f"no worker answered execution {execution_id}'s progress query within {QUERY_TIMEOUT:.0f} s "
                        f"(task queue {queue!r}): is `tempano worker` (or `tempano up`) running?"
                    )
                else:
                    out["details"] = (
                        f"execution {execution_id}'s workflow did not answer the progress query ({e.message}); "
                        "try again in a moment"
                    )
            except WorkflowQueryFailedError:
                pass  # it ended between the describe and the query: what the store says is all there is
            else:
                out["details"] = view.details
                if waiting:  # the store's operations are finer than the workflow's activities
                    out["details"] = progress_text(view.done, view.total, waiting)
                else:
                    out["waiting_on"] = list(view.waiting_on)
        out["pending"] = [
            {
                "activity_id": p.activity_id,
                "activity": p.activity_type.name,
                "operation": getattr(running.get(p.activity_id.split(":", 1)[0]), "operation", None),
                "state": PendingActivityState.Name(p.state).removeprefix("PENDING_ACTIVITY_STATE_").lower(),
                "attempt": p.attempt,
                "last_heartbeat": p.last_heartbeat_time.ToDatetime().isoformat()
                if p.HasField("last_heartbeat_time")
                else None,
                "last_failure": p.last_failure.message or None,
            }
            for p in desc.raw_description.pending_activities
        ]
        return out

    async def follow_events(
        self, execution_id: str, *, poll: float = 0.5, timeout: float = 3600.0
    ) -> AsyncIterator[EventRecord]:
        """The execution's lifecycle events, those recorded so far and then live, until it ends."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        after = 0
        while True:
            try:
                ended = self.store.get_execution(execution_id).status in TERMINAL
            except NotFound:
                ended = False  # queued behind another execution: not recorded yet
            for event in self.store.events(execution_id=execution_id, after_id=after, limit=1000):
                after = event.id
                yield event
            if ended:
                # The events of the end were written before the status: one last read catches stragglers.
                for event in self.store.events(execution_id=execution_id, after_id=after, limit=100_000):
                    after = event.id
                    yield event
                return
            if loop.time() > deadline:
                raise TimeoutError(f"execution {execution_id} still running after {timeout:.0f}s")
            await asyncio.sleep(poll)

    async def wait_execution(self, execution_id: str, *, timeout: float = 600.0, poll: float = 0.2) -> ExecutionRecord:
        """Waits until the execution ends (it may still be queued behind another). Once it runs, this waits on its
        workflow's result (a long poll on the server) rather than reading the store every ``poll`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        awaited = False
        while True:
            try:
                record = self.store.get_execution(execution_id)
                if record.status in TERMINAL:
                    return record
            except NotFound:
                record = None
            left = deadline - loop.time()
            if left < 0:
                raise TimeoutError(f"execution {execution_id} did not finish within {timeout:.0f}s")
            if record is not None and record.status == "running" and not awaited:
                # The execution records its end before its workflow returns; a terminated one is recorded by its
                # deployment a moment after: the store is read again either way.
                awaited = True
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.client.get_workflow_handle(record.workflow_id).result(), left)
                continue
            await asyncio.sleep(poll)

    async def run(
        self, deployment_id: str, workflow: str, parameters: Mapping[str, Any] | None = None, *, timeout: float = 600.0
    ) -> ExecutionRecord:
        """Starts an execution and waits for its end."""
        ref = await self.start_execution(deployment_id, workflow, parameters)
        return await self.wait_execution(ref.execution_id, timeout=timeout)

    def outputs(
        self,
        deployment_id: str,
        *,
        deployment: DeploymentRecord | None = None,
        instances: Sequence[NodeInstanceRecord] | None = None,
    ) -> dict[str, Any]:
        """The deployment's outputs as they stand; secrets are never evaluated here (they stay in activities).
        Callers holding the deployment and its instances pass them to save reads."""
        deployment = deployment or self.store.get_deployment(deployment_id)
        if not deployment.plan.get("outputs"):
            return {}
        plan = Plan.model_validate(deployment.plan)
        by_id = (
            {i.id: i for i in instances} if instances is not None else load_instances(self.store, plan, deployment_id)
        )
        resolver = _NoSecrets(self.store, plan, deployment_id, by_id)
        out: dict[str, Any] = {}
        for name, spec in plan.outputs.items():
            try:
                out[name] = evaluate(spec.value, resolver)
            except FunctionError as e:
                out[name] = None
                out.setdefault("_errors", {})[name] = str(e)
        return out

    async def delete_deployment(self, deployment_id: str, *, force: bool = False) -> None:
        """Deletes an uninstalled (or never installed) deployment; ``force`` deletes it whatever its state,
        ending its workflow (and the execution it runs) and forgetting what it created."""
        deployment = self.store.get_deployment(deployment_id)
        if not force:
            current = self.store.current_execution(deployment_id)
            if current is not None:
                raise ServiceError(
                    f"deployment {deployment_id} is running {current.workflow} ({current.id}); "
                    "wait for it or cancel it, then uninstall",
                    status=409,
                )
            live = [i for i in self.store.node_instances(deployment_id) if i.state not in {"uninitialized", "deleted"}]
            if live:
                raise ServiceError(
                    f"deployment {deployment_id} is {deployment.status} with {len(live)} live node instance(s) "
                    f"({', '.join(i.id for i in live[:5])}{'...' if len(live) > 5 else ''}); "
                    "uninstall it first, or delete with force",
                    status=409,
                )
            with contextlib.suppress(RPCError):  # the workflow may be gone already
                await self.deployment_handle(deployment.id).signal(DeploymentWorkflow.close)
        else:
            with contextlib.suppress(RPCError):
                await self.deployment_handle(deployment.id).terminate(reason="deployment deleted with force")
        self.store.delete_deployment(deployment_id)


class _NoSecrets(StoreResolver):
    def get_secret(self, name: str) -> str:
        raise FunctionError(f"get_secret {name!r}: secret values are resolved only inside operations")


def _spool(tmp: Path, filename: str, content: bytes) -> Path:
    """Writes an upload where the compiler can read it; only the kind (zip or YAML) is taken from the caller."""
    is_zip = content[:4] == b"PK\x03\x04"
    suffix = Path(filename).suffix.lower()
    if is_zip:
        name = f"blueprint{suffix if suffix in {'.zip', '.csar'} else '.zip'}"
    else:
        name = f"blueprint{suffix if suffix in {'.yaml', '.yml'} else '.yaml'}"
    path = tmp / name
    path.write_bytes(content)
    return path


def _compile(path: Path, has_operation: Callable[[str], bool], *, confine: bool) -> tuple[Blueprint, Plan]:
    """Loads and compiles; a bad blueprint is a BlueprintError (the compiler guarantees it: a 422, never a 500).

    The caller removes a CSAR's extraction (``blueprint.cleanup()``) once it has copied the files.
    """
    blueprint = blueprints.load(path, confine=confine)
    try:
        return blueprint, blueprints.compile(blueprint, has_operation=has_operation)
    except BaseException:
        blueprint.cleanup()
        raise
