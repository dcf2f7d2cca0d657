"""Engine-flow fixtures: the recording test plugin ``rec`` and a tempano whose worker runs it.

``rec`` keeps a fake VIM in memory: ``rec.create`` makes one resource per idempotency key (adopting it on a retry),
``rec.delete`` removes what the ledger says the instance holds. Every call is recorded, so tests can check that an
operation ran exactly once and that nothing is left. Faults are set per instance and operation: fail (a number of
times or always), block until released or cancelled, report unhealthy.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client

from tempano.api.service import Tempano
from tempano.api.settings import Settings
from tempano.api.worker import build_worker
from tempano.plugins import PluginRegistry
from tempano.plugins.builtin import plugin as builtin_plugin
from tempano.plugins.contract import NonRetryableError, OperationContext, Plugin, RetryableError
from tempano.store import Store
from tempano.workflows.models import ExecutionResult

FLOWS = Path(__file__).resolve().parent / "blueprints" / "flows.yaml"


@dataclass(frozen=True)
class Call:
    execution: str
    instance: str
    operation: str
    attempt: int
    target: str | None
    inputs: Mapping[str, Any]


@dataclass
class Fault:
    times: int | None = None
    """Fail the first N attempts (None: every attempt)."""
    retryable: bool = False
    message: str = "injected failure"
    give_up_at: int | None = None
    """From this attempt on, the failure is not retryable."""


@dataclass
class Recorder:
    """The test plugin's memory: calls, the fake VIM's live resources, and the faults to inject."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: list[Call] = field(default_factory=list)
    vim: dict[str, str] = field(default_factory=dict)
    """Live resource id -> the idempotency key it was created with."""
    created: Counter[str] = field(default_factory=Counter)
    """Idempotency key -> how many resources were really made with it."""
    faults: dict[tuple[str, str], Fault] = field(default_factory=dict)
    """(instance id, operation) -> fault; operation is the short name (create, add_target, upgrade...)."""
    blocks: dict[tuple[str, str], threading.Event] = field(default_factory=dict)
    """(instance id, operation) -> runs until the event is set (or the operation is cancelled)."""
    hangs: set[tuple[str, str]] = field(default_factory=set)
    """(instance id, operation) -> never returns, ignoring cancellation (a stuck plugin)."""
    unhealthy: set[str] = field(default_factory=set)
    bad_upgrades: set[str] = field(default_factory=set)
    """Instances that become unhealthy when upgraded."""
    heal_fixes: bool = True
    entered: dict[tuple[str, str], threading.Event] = field(default_factory=dict)
    cancelled: list[tuple[str, str]] = field(default_factory=list)
    closing: threading.Event = field(default_factory=threading.Event)
    _seq: int = 0

    def ran(self, operation: str | None = None, *, instance: str | None = None) -> list[Call]:
        with self.lock:
            return [
                c
                for c in self.calls
                if (operation is None or c.operation == operation) and (instance is None or c.instance == instance)
            ]

    def ops(self, execution: str) -> list[tuple[str, str, str | None]]:
        """(instance, operation, target) of every call an execution made, sorted."""
        with self.lock:
            return sorted((c.instance, c.operation, c.target) for c in self.calls if c.execution == execution)

    def fail(self, instance: str, operation: str, **fault: Any) -> None:
        """Makes ``operation`` fail on ``instance`` (see :class:`Fault` for the keywords)."""
        self.faults[(instance, operation)] = Fault(**fault)

    def block(self, instance: str, operation: str) -> threading.Event:
        release = threading.Event()
        self.blocks[(instance, operation)] = release
        self.entered[(instance, operation)] = threading.Event()
        return release

    def wait_entered(self, instance: str, operation: str, timeout: float = 60) -> None:
        if not self.entered[(instance, operation)].wait(timeout):
            raise AssertionError(f"{instance} {operation} never started within {timeout}s")

    def _new_id(self) -> str:
        self._seq += 1
        return f"res-{self._seq}"


def make_plugin(rec: Recorder) -> Plugin:
    plugin = Plugin("rec", "records what it does (engine tests)")

    def enter(ctx: OperationContext) -> None:
        key = (ctx.instance.id, ctx.operation)
        with rec.lock:
            rec.calls.append(
                Call(
                    ctx.execution_id,
                    ctx.instance.id,
                    ctx.operation,
                    ctx.attempt,
                    ctx.target.id if ctx.target is not None else None,
                    dict(ctx.inputs),
                )
            )
        if key in rec.entered:
            rec.entered[key].set()
        if key in rec.hangs:
            while not rec.closing.wait(0.2):
                pass
            raise NonRetryableError("the test is over")
        release = rec.blocks.get(key)
        if release is not None:
            while not release.wait(0.1):
                if ctx.cancelled.is_set():
                    with rec.lock:
                        rec.cancelled.append(key)
                    raise NonRetryableError(f"{ctx.instance.id} {ctx.operation} cancelled")
        fault = rec.faults.get(key)
        if fault is not None and (fault.times is None or ctx.attempt <= fault.times):
            if fault.retryable and (fault.give_up_at is None or ctx.attempt < fault.give_up_at):
                raise RetryableError(fault.message)
            raise NonRetryableError(fault.message)

    @plugin.operation("create")
    def create(ctx: OperationContext) -> Mapping[str, Any]:
        enter(ctx)
        with rec.lock:
            existing = [rid for rid, key in rec.vim.items() if key == ctx.idempotency_key]
            rid = existing[0] if existing else rec._new_id()
            if not existing:
                rec.vim[rid] = ctx.idempotency_key
                rec.created[ctx.idempotency_key] += 1
                rec.unhealthy.discard(ctx.instance.id)  # a new resource is a healthy one
        ctx.record_resource("thing", rid)
        ctx.set_attribute("resource_id", rid)
        return {"resource_id": rid}

    @plugin.operation("delete")
    def delete(ctx: OperationContext) -> None:
        enter(ctx)
        for resource in ctx.resources():
            with rec.lock:
                rec.vim.pop(resource.resource_id, None)
            ctx.forget_resource(resource.kind, resource.resource_id)

    @plugin.operation("op")
    def op(ctx: OperationContext) -> None:
        enter(ctx)

    @plugin.operation("check")
    def check(ctx: OperationContext) -> Mapping[str, Any]:
        enter(ctx)
        if ctx.instance.id in rec.unhealthy:
            return {"healthy": False, "reason": f"{ctx.instance.id} was made unhealthy by the test"}
        return {"healthy": True}

    @plugin.operation("heal")
    def heal(ctx: OperationContext) -> None:
        enter(ctx)
        if rec.heal_fixes:
            rec.unhealthy.discard(ctx.instance.id)

    @plugin.operation("frozen")
    def frozen(ctx: OperationContext) -> None:
        """Stands for a worker that froze: no heartbeat reaches Temporal any more."""
        enter(ctx)
        ctx.heartbeat = lambda details=None: None  # type: ignore[method-assign]
        while not rec.closing.wait(0.2):
            pass

    @plugin.operation("upgrade")
    def upgrade(ctx: OperationContext) -> Mapping[str, Any]:
        enter(ctx)
        version = str(ctx.inputs.get("version", "2"))
        ctx.set_attribute("version", version)
        if ctx.instance.id in rec.bad_upgrades:
            rec.unhealthy.add(ctx.instance.id)
        return {"version": version}

    return plugin


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest_asyncio.fixture(loop_scope="session")
async def engine(settings: Settings, client: Client, store: Store, rec: Recorder) -> AsyncIterator[Tempano]:
    """tempano with a real worker whose plugins are ``builtin`` and the recording ``rec``."""
    plugins = PluginRegistry([builtin_plugin, make_plugin(rec)])
    worker, pool = build_worker(client, store, task_queue=settings.task_queue, plugins=plugins, threads=16)
    async with worker:
        yield Tempano(settings, client, store, plugins=plugins)
        rec.closing.set()
        for release in rec.blocks.values():
            release.set()
    pool.shutdown(wait=False, cancel_futures=True)


@pytest.fixture
def create(engine: Tempano) -> Callable[[str], Awaitable[None]]:
    """Uploads the flows blueprint (once) and creates a deployment of it."""

    async def create(deployment: str) -> None:
        try:
            engine.store.get_blueprint("flows")
        except LookupError:
            engine.upload_blueprint("flows", FLOWS)
        await engine.create_deployment(deployment, "flows")

    return create


@pytest.fixture
def deploy(engine: Tempano, create: Callable[[str], Awaitable[None]]) -> Callable[[str], Awaitable[None]]:
    """Creates and installs a deployment of the flows blueprint."""

    async def install(deployment: str) -> None:
        await create(deployment)
        execution = await engine.run(deployment, "install", timeout=120)
        assert execution.status == "succeeded", execution.error

    return install


@pytest.fixture
def result_of(engine: Tempano) -> Callable[[str], Awaitable[dict[str, Any]]]:
    """What an execution's workflow returned (waits for the workflow itself to end)."""

    async def result_of(execution_id: str) -> dict[str, Any]:
        record = engine.store.get_execution(execution_id)
        handle = engine.client.get_workflow_handle(record.workflow_id, result_type=ExecutionResult)
        return dict((await handle.result()).result)

    return result_of
