"""Failure and control on the real server: cancel (graceful) then resume (only what did not succeed runs),
terminate (the admin escape) and what the store says after it, and what a running execution waits on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tempano.api.service import Tempano

pytestmark = pytest.mark.asyncio(loop_scope="session")

Create = Callable[[str], Awaitable[None]]
TRANSITIONAL = {"creating", "configuring", "starting", "stopping", "deleting"}


async def wait_status(engine: Tempano, execution_id: str, status: str, timeout: float = 90) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while engine.store.get_execution(execution_id).status != status:
        assert loop.time() < deadline, f"{execution_id} is {engine.store.get_execution(execution_id).status}"
        await asyncio.sleep(0.2)


async def test_cancel_is_graceful_and_resume_runs_only_the_rest(engine: Tempano, create: Create, rec: Any) -> None:
    await create("cr")
    rec.block("vm_2", "configure")
    ref = await engine.start_execution("cr", "install")
    await asyncio.to_thread(rec.wait_entered, "vm_2", "configure")
    # vm_1's operations run beside vm_2's: let them get past configure too before cancelling (asserted below).
    deadline = asyncio.get_running_loop().time() + 60
    while not rec.ran("configure", instance="vm_1"):
        assert asyncio.get_running_loop().time() < deadline, "vm_1 never reached configure"
        await asyncio.sleep(0.1)

    # While it waits, the execution says on what.
    progress = await engine.execution_progress(ref.execution_id)
    assert progress["status"] == "running"
    assert "vm_2 Standard.configure (rec.op)" in progress["waiting_on"]
    assert "waiting on" in progress["details"] and "vm_2 Standard.configure" in progress["details"]
    # vm_2's operations of the step (create to add_target) run in one activity: the one running now is named
    assert any(
        p["activity_id"].startswith("vm_2:") and p["operation"] == "Standard.configure" and p["attempt"] == 1
        for p in progress["pending"]
    )

    assert await engine.cancel_execution(ref.execution_id) == "cancellation requested"
    cancelled = await engine.wait_execution(ref.execution_id, timeout=90)
    assert cancelled.status == "cancelled"
    assert engine.store.get_deployment("cr").status == "cancelled"
    # The running operation got the cancellation (through its heartbeat) and stopped; its instance is back to
    # the state before the operation; nothing is left half-way.
    assert rec.cancelled == [("vm_2", "configure")]
    states = {i.id: i.state for i in engine.store.node_instances("cr")}
    assert states["vm_2"] == "created"
    assert not TRANSITIONAL & set(states.values())
    events = engine.store.events("cr", execution_id=ref.execution_id)
    assert any(e.type == "operation_cancelled" and e.node_instance_id == "vm_2" for e in events)
    assert events[-1].type == "execution_cancelled"
    first = {(c.instance, c.operation, c.target) for c in rec.calls if c.execution == ref.execution_id}
    assert ("vm_1", "start", None) in first or ("vm_1", "configure", None) in first

    rec.blocks.clear()
    resumed_ref = await engine.start_execution("cr", "install", resume_of=ref.execution_id)
    resumed = await engine.wait_execution(resumed_ref.execution_id, timeout=120)
    assert resumed.status == "succeeded", resumed.error
    again = [(c.instance, c.operation, c.target) for c in rec.calls if c.execution == resumed_ref.execution_id]
    # What succeeded before did not run again; the cancelled operation and what never ran did.
    succeeded_before = {
        (e.node_instance_id, e.data["task"])
        for e in engine.store.events("cr", execution_id=ref.execution_id)
        if e.type == "operation_succeeded"
    }
    assert ("vm_1", "Standard.create") in succeeded_before
    assert not [c for c in again if c[0] == "net_1"]
    assert ("vm_2", "configure", None) in again
    assert ("vm_2", "create", None) not in again
    assert ("lb_1", "create", None) in again
    every_call = [(c.instance, c.operation, c.target) for c in rec.calls if c.operation != "configure"]
    assert len(every_call) == len(set(every_call)), "an operation that succeeded ran twice"
    assert set(rec.created.values()) == {1}
    assert {i.state for i in engine.store.node_instances("cr")} == {"started"}
    assert engine.store.get_deployment("cr").status == "installed"


async def test_terminate_is_recorded_and_settles_instances(engine: Tempano, create: Create, rec: Any) -> None:
    await create("term")
    rec.block("vm_1", "configure")
    ref = await engine.start_execution("term", "install")
    await asyncio.to_thread(rec.wait_entered, "vm_1", "configure")
    await engine.terminate_execution(ref.execution_id, "operator test: stuck")
    await wait_status(engine, ref.execution_id, "terminated")
    record = engine.store.get_execution(ref.execution_id)
    assert "terminated by an operator (operator test: stuck)" in (record.error or "")
    assert engine.store.get_deployment("term").status == "failed"
    assert engine.store.node_instance("term", "vm_1").state in {"error", "created"}
    assert not TRANSITIONAL & {i.state for i in engine.store.node_instances("term")}
    with pytest.raises(Exception, match="has ended already"):
        await engine.terminate_execution(ref.execution_id)

    # The deployment workflow lives on: the terminated execution can be resumed.
    rec.blocks.clear()
    resumed_ref = await engine.start_execution("term", "install", resume_of=ref.execution_id)
    resumed = await engine.wait_execution(resumed_ref.execution_id, timeout=120)
    assert resumed.status == "succeeded", resumed.error
    assert set(rec.created.values()) == {1}
