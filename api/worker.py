"""The tempano worker: runs the workflows and the activities (plugins) against one Temporal task queue."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from tempano.activities.engine import EngineActivities
from tempano.api.settings import Settings
from tempano.plugins import PluginRegistry, load_plugins
from tempano.store import Store
from tempano.workflows import registry
from tempano.workflows.engine import WORKFLOWS

log = logging.getLogger("tempano.worker")

EAGER_ACTIVITIES = 50
"""Activities a workflow task may take for this worker at once when the server hands them over eagerly."""


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox tempano's workflows run in, on the worker and in the replay tests. Our modules pass through it:
    they are deterministic, and the workflow registry must be the one the worker filled."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("tempano", "pydantic", "pydantic_core")
    )


def build_worker(
    client: Client,
    store: Store,
    *,
    task_queue: str,
    plugins: PluginRegistry | None = None,
    threads: int = 64,
) -> tuple[Worker, ThreadPoolExecutor]:
    """A worker for tempano's workflows and activities."""
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
        # Cancellation reaches an operation with the answer to its heartbeat, and heartbeats are sent at most
        # every 0.8 x heartbeat timeout by default (24 s at our default 30 s): 5 s keeps a cancel prompt.
        max_heartbeat_throttle_interval=timedelta(seconds=5),
        workflow_runner=workflow_runner(),
    )
    return worker, pool


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
