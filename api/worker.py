"""The tempano worker: runs the workflows and the activities (plugins) against one Temporal task queue."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.client import Client
from temporalio.converter import (
    DataConverter,
    SerializationContext,
    StorageDriverStoreContext,
    StorageDriverWorkflowInfo,
    WorkflowSerializationContext,
)
from temporalio.worker import Worker, WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.workflow import Info

from tempano.activities.engine import EngineActivities
from tempano.api.settings import Settings
from tempano.plugins import PluginRegistry, load_plugins
from tempano.store import Store
from tempano.workflows import registry
from tempano.workflows.engine import WORKFLOWS

log = logging.getLogger("tempano.worker")

EAGER_ACTIVITIES = 50
"""Activities a workflow task may take for this worker at once when the server hands them over eagerly."""


SWITCH_INTERVAL_S = 0.0002
"""How long a worker thread may hold the GIL while another waits for it (Python's default is 5 ms)."""


def workflow_runner(data_converter: DataConverter) -> WorkflowRunner:
    """The sandbox tempano's workflows run in, on the worker and in the replay tests. Our modules pass through it:
    they are deterministic, and the workflow registry must be the one the worker filled."""
    sandbox = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("tempano", "pydantic", "pydantic_core")
    )
    if data_converter.payload_codec is None and data_converter.external_storage is None:
        return _ConstantContextRunner(sandbox)
    return sandbox


class _ConstantContextRunner(WorkflowRunner):
    """The sandbox, without one detour. Before and after each workflow activation, the SDK asks the workflow, for
    each payload and up to four times, which serialization context its command has; the sandbox answers each
    question by entering itself (an ``exec`` with its import hooks applied), about 0.5 ms. Scheduling 25 operations
    cost 55 ms of the event loop that also dispatches the activities. The answer only matters to a payload codec
    or to external payload storage: with neither, every payload gets the workflow's own context, as the
    unsandboxed runner would give it outside a command."""

    def __init__(self, sandbox: SandboxedWorkflowRunner) -> None:
        self._sandbox = sandbox

    def prepare_workflow(self, defn: Any) -> None:
        self._sandbox.prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _ConstantContextInstance(self._sandbox.create_instance(det), det.info)

    def set_worker_level_failure_exception_types(self, types: Sequence[type[BaseException]]) -> None:
        self._sandbox.set_worker_level_failure_exception_types(types)


class _ConstantContextInstance(WorkflowInstance):
    def __init__(self, sandboxed: WorkflowInstance, info: Info) -> None:
        self._sandboxed = sandboxed
        self._context = WorkflowSerializationContext(namespace=info.namespace, workflow_id=info.workflow_id)
        self._store_context = StorageDriverStoreContext(
            target=StorageDriverWorkflowInfo(
                id=info.workflow_id, run_id=info.run_id, type=info.workflow_type, namespace=info.namespace
            )
        )

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        return self._sandboxed.activate(act)

    def get_serialization_context(self, command_info: Any) -> SerializationContext | None:
        return self._context

    def get_external_store_context(self, command_info: Any) -> StorageDriverStoreContext:
        return self._store_context

    def get_info(self) -> Info:
        return self._sandboxed.get_info()

    def get_thread_id(self) -> int | None:
        return self._sandboxed.get_thread_id()


def build_worker(
    client: Client,
    store: Store,
    *,
    task_queue: str,
    plugins: PluginRegistry | None = None,
    threads: int = 64,
    sticky_timeout: timedelta = timedelta(seconds=10),
) -> tuple[Worker, ThreadPoolExecutor]:
    """A worker for tempano's workflows and activities (it tunes the process for them: see below).
    ``sticky_timeout``: how long a workflow's next task waits for this worker, which has its history cached,
    before any worker takes it (and replays the history). After a crash each running workflow waits that long
    once: the crash test, which kills workers a dozen times, waits less."""
    # A step starts dozens of operations at once, and their threads (store reads and writes, which release the
    # GIL around every SQLite call) compete with the event loop that dispatches the next ones and with the
    # workflow thread. At Python's default of 5 ms, each thread coming back from SQLite waited up to 5 ms for
    # the GIL: the 25th operation of a step started about 120 ms after the first. At 0.2 ms the critical-path
    # benchmark went from a ratio of 1.12-1.13 to 1.09-1.10 (benchmarks/engine_scale.py), with less CPU.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    registry.load_custom_workflows()
    activities = EngineActivities(store, plugins if plugins is not None else load_plugins())
    # Store activities run as local activities inside workflow tasks, on the same thread pool as operations:
    # a share of the threads is kept for them, so a workflow task never waits behind dozens of operations (at
    # 10,000 instances it did, past the 10 s workflow task timeout).
    local = max(4, threads // 4)
    pool = ThreadPoolExecutor(max_workers=threads + local, thread_name_prefix="tempano-activity")
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities.activities(),
        activity_executor=pool,
        max_concurrent_activities=threads,
        max_concurrent_local_activities=local,
        max_eager_activity_reservations_per_workflow_task=EAGER_ACTIVITIES,
        # Heartbeats are sent at most every 0.8 x the heartbeat timeout by default: 24 s at our default 30 s, which
        # delays a cancel (it reaches an operation with the answer to a heartbeat), and 4 s at a 5 s timeout, which
        # leaves 1 s for a busy loop or network before Temporal declares the operation's worker dead. At most 2 s
        # apart, a cancel arrives within about 2 s and a 5 s timeout has 3 s to spare.
        max_heartbeat_throttle_interval=timedelta(seconds=2),
        sticky_queue_schedule_to_start_timeout=sticky_timeout,
        workflow_runner=workflow_runner(client.data_converter),
    )
    _start_threads(pool, threads + local)
    return worker, pool


def _start_threads(pool: ThreadPoolExecutor, count: int) -> None:
    """Starts the pool's threads now: started on demand, each costs the event loop a wait for the new thread
    to run (several ms when the other threads are busy), 25 of them in a row when the first step starts."""
    started = threading.Barrier(count + 1, timeout=30)
    for _ in range(count):
        pool.submit(started.wait)
    try:
        started.wait()
    except threading.BrokenBarrierError:  # a machine too slow to start them in 30 s: they start on demand
        log.warning("the worker's %d threads did not all start within 30 s; the rest start on demand", count)


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    from tempano.api.service import connect

    client = await connect(settings)
    worker, pool = build_worker(client, settings.store, task_queue=settings.task_queue, threads=settings.worker_threads)
    log.info("worker polling task queue %r on %s", settings.task_queue, settings.temporal_address)
    try:
        if stop is None:
            await worker.run()
        else:
            async with worker:
                await stop.wait()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
