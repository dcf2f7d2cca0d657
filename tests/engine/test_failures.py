"""Failures on the real server: a failed install says where and why, rollback removes exactly what the ledger
holds; execute_operation on chosen nodes and instances; a stuck operation times out with a clear error; the
lifecycle events of an execution, streamed live."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tempano.api.service import Tempano
from tempano.store import EventRecord, ExecutionRecord

pytestmark = pytest.mark.asyncio(loop_scope="session")

Create = Callable[[str], Awaitable[None]]


async def test_failed_install_names_the_failure_and_rollback_leaves_nothing(
    engine: Tempano, create: Create, rec: Any
) -> None:
    await create("rb")
    rec.fail("app_2", "configure", retryable=True, give_up_at=2, message="disk full on the app host")
    failed = await engine.run("rb", "install", timeout=120)
    assert failed.status == "failed"
    assert "app_2 (node app) Standard.configure failed on attempt 2/5: disk full on the app host" in (
        failed.error or ""
    )
    assert engine.store.get_deployment("rb").status == "failed"
    assert engine.store.node_instance("rb", "app_2").state == "error"
    held = {(r.node_instance_id, r.resource_id) for r in engine.store.resources("rb")}
    assert held and {r for _, r in held} == set(rec.vim)
    events = engine.store.events("rb", execution_id=failed.id)
    attempts = [(e.attempt, e.level) for e in events if e.type == "operation_failed" and e.node_instance_id == "app_2"]
    assert attempts == [(1, "error"), (2, "error")]

    ref = await engine.start_execution("rb", "rollback", rollback_of=failed.id)
    rollback = await engine.wait_execution(ref.execution_id, timeout=120)
    assert rollback.status == "succeeded", rollback.error
    assert engine.store.resources("rb") == []
    assert rec.vim == {}
    deleted = sorted(c.instance for c in rec.calls if c.execution == ref.execution_id and c.operation == "delete")
    assert deleted == sorted(i for i, _ in held)
    assert {i.state for i in engine.store.node_instances("rb")} == {"uninitialized"}
    assert engine.store.get_deployment("rb").status == "created"  # nothing installed: no longer "failed"

    # Rolled back to a clean slate, the deployment installs again.
    rec.faults.clear()
    again = await engine.run("rb", "install", timeout=120)
    assert again.status == "succeeded", again.error
    assert len(rec.vim) == len(engine.store.node_instances("rb"))


async def test_execute_operation_on_chosen_nodes_and_instances(engine: Tempano, deploy: Any, rec: Any) -> None:
    await deploy("xo")
    by_node = await engine.run(
        "xo",
        "execute_operation",
        {"operation": "Maintenance.upgrade", "node_ids": ["vm"], "operation_inputs": {"version": "3"}},
    )
    assert by_node.status == "succeeded", by_node.error
    ran = sorted((c.instance, c.inputs.get("version")) for c in rec.calls if c.execution == by_node.id)
    assert ran == [("vm_1", "3"), ("vm_2", "3")]
    assert engine.store.node_instance("xo", "vm_1").attributes["version"] == "3"

    mixed = await engine.run(
        "xo",
        "execute_operation",
        {"operation": "Maintenance.upgrade", "node_ids": ["fw"], "node_instance_ids": ["app_2"]},
    )
    assert mixed.status == "succeeded", mixed.error
    assert sorted(c.instance for c in rec.calls if c.execution == mixed.id) == ["app_2", "fw_1"]

    unknown = await engine.run("xo", "execute_operation", {"operation": "Day2.frobnicate", "node_ids": ["vm"]})
    assert unknown.status == "failed"
    assert "node 'vm' has no operation 'Day2.frobnicate'" in (unknown.error or "")


async def test_stuck_operation_times_out_with_a_clear_error(engine: Tempano, deploy: Any, rec: Any) -> None:
    await deploy("to")
    rec.hangs.add(("vm_1", "slow"))
    execution = await engine.run(
        "to", "execute_operation", {"operation": "Maintenance.slow", "node_instance_ids": ["vm_1"]}, timeout=120
    )
    assert execution.status == "failed"
    assert (
        "vm_1 Maintenance.slow (rec.op) timed out after 2 attempt(s): no result within 3s (its start-to-close timeout)"
        in (execution.error or "")
    )
    events = engine.store.events("to", execution_id=execution.id)
    timed_out = [e for e in events if e.type == "operation_timed_out"]
    assert len(timed_out) == 1 and timed_out[0].node_instance_id == "vm_1"
    assert [e.attempt for e in events if e.type == "operation_started"] == [1, 2]


async def test_operation_without_heartbeat_times_out_with_a_clear_error(engine: Tempano, deploy: Any) -> None:
    await deploy("hb")
    execution = await engine.run(
        "hb", "execute_operation", {"operation": "Maintenance.frozen", "node_instance_ids": ["vm_2"]}, timeout=120
    )
    assert execution.status == "failed"
    assert "vm_2 Maintenance.frozen (rec.frozen) timed out after 1 attempt(s): no heartbeat for 2s" in (
        execution.error or ""
    )
    assert "the worker running it died or hung" in (execution.error or "")


async def test_events_stream_live_until_the_end(engine: Tempano, create: Create, rec: Any) -> None:
    await create("ev")
    release = rec.block("vm_1", "start")
    ref = await engine.start_execution("ev", "install")
    seen: list[EventRecord] = []

    async def follow() -> None:
        async for event in engine.follow_events(ref.execution_id, poll=0.2):
            seen.append(event)

    follower = asyncio.create_task(follow())
    await asyncio.to_thread(rec.wait_entered, "vm_1", "start")
    # Streamed while the execution runs: what happened so far, and not its end.
    deadline = asyncio.get_running_loop().time() + 30
    while not any(e.type == "operation_started" and e.node_instance_id == "vm_1" for e in seen):
        assert asyncio.get_running_loop().time() < deadline, f"vm_1's start never streamed: {seen}"
        await asyncio.sleep(0.1)
    assert not follower.done()
    release.set()
    await asyncio.wait_for(follower, 120)
    assert seen[-1].type == "execution_succeeded"
    assert [e.id for e in seen] == sorted({e.id for e in seen})
    succeeded = [e for e in seen if e.type == "operation_succeeded"]
    assert all(e.node_instance_id and e.operation and e.attempt == 1 and e.duration_s is not None for e in succeeded)
    assert any(e.type == "state_changed" and e.data["state"] == "started" for e in seen)
    assert {e.operation for e in succeeded} >= {"Standard.create", "Standard.configure", "Standard.start"}


async def install_text(engine: Tempano, tmp_path: Path, name: str, text: str) -> ExecutionRecord:
    """Uploads ``text`` as blueprint ``name``, creates deployment ``<name>-1`` of it and runs its install."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    engine.upload_blueprint(name, path)
    await engine.create_deployment(f"{name}-1", name)
    return await engine.run(f"{name}-1", "install", timeout=120)


def starts(engine: Tempano, execution: ExecutionRecord) -> list[tuple[str | None, int | None]]:
    """(operation, attempt) of each operation an execution started, in order."""
    events = engine.store.events(execution.deployment_id, execution_id=execution.id)
    return [(e.operation, e.attempt) for e in events if e.type == "operation_started"]


CHAIN = """tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    box:
      type: tempano.nodes.Root
      interfaces:
        Standard:
          create: builtin.noop
          configure:
            implementation: builtin.sleep
            inputs: { seconds: 60, tempano_timeout: 1, tempano_retry: { max_attempts: 2, initial_interval: 0.5 } }
          start: builtin.noop
"""


async def test_an_operation_inside_an_instance_chain_keeps_its_own_timeout_and_attempts(
    engine: Tempano, tmp_path: Any
) -> None:
    """An instance's create, configure and start run in one activity; configure still times out after its own
    1 s (not the chain's), is retried once as its policy says, and start never runs."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    execution = await install_text(engine, tmp_path, "chain-timeout", CHAIN)
    assert execution.status == "failed"
    assert loop.time() - began < 60
    assert "box_1 (node box) Standard.configure failed on attempt 2/2: no result within 1s" in (execution.error or "")
    assert starts(engine, execution) == [("Standard.create", 1), ("Standard.configure", 1), ("Standard.configure", 2)]
    events = engine.store.events("chain-timeout-1", execution_id=execution.id)
    failed = [e.message for e in events if e.type == "operation_failed"]
    assert len(failed) == 2 and failed[0].endswith("(will retry)")
    assert engine.store.node_instance("chain-timeout-1", "box_1").state == "error"


SHORT_STEPS = """tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    box:
      type: tempano.nodes.Root
      interfaces:
        Standard:
          create: &short
            implementation: builtin.sleep
            inputs: { seconds: 1.9, tempano_heartbeat_timeout: 4.5, tempano_retry: { max_attempts: 1 } }
          configure: *short
          start: *short
"""


async def test_a_chain_of_short_operations_longer_than_its_heartbeat_timeout_keeps_beating(
    engine: Tempano, tmp_path: Any
) -> None:
    """Each operation is shorter than the heartbeat interval, their chain is longer than the heartbeat timeout: the
    activity still beats (it used to restart its interval at each operation and send none), so Temporal does not
    take the worker for dead and the install succeeds on first attempts."""
    execution = await install_text(engine, tmp_path, "short-steps", SHORT_STEPS)
    assert execution.status == "succeeded", execution.error
    assert starts(engine, execution) == [("Standard.create", 1), ("Standard.configure", 1), ("Standard.start", 1)]


WRITES = """tosca_definitions_version: tosca_simple_yaml_1_3
node_types:
  test.nodes.Port:
    derived_from: tempano.nodes.Root
    attributes:
      port: { type: string }
      seen: { type: string }
topology_template:
  node_templates:
    box:
      type: test.nodes.Port
      interfaces:
        Standard:
          create:
            implementation: builtin.set_attributes
            inputs: { port: "8080" }
          configure:
            implementation: builtin.set_attributes
            inputs: { seen: { get_attribute: [ SELF, port ] } }
          start:
            implementation: builtin.noop
            inputs: { fifth: { token: [ { get_attribute: [ SELF, port ] }, ":", 5 ] } }
"""


async def test_a_chain_s_operations_see_each_other_s_writes_and_a_failure_keeps_what_succeeded(
    engine: Tempano, tmp_path: Any
) -> None:
    """In a chain, an operation's end is written together with the next one's start: configure still reads the
    attribute create wrote; when start cannot begin, create's and configure's ends are in the store before its
    failure, and a resumption does not run them again."""
    execution = await install_text(engine, tmp_path, "chain-writes", WRITES)
    assert execution.status == "failed"
    assert "box_1 (node box) Standard.start: token: '8080' split on ':' has no token 5" in (execution.error or "")
    box = engine.store.node_instance("chain-writes-1", "box_1")
    assert box.attributes == {"port": "8080", "seen": "8080"}
    assert set(box.outputs) == {"Standard.create", "Standard.configure"}
    events = engine.store.events("chain-writes-1", execution_id=execution.id)
    order = [(e.operation, e.type) for e in events if e.type.startswith("operation_")]
    assert order == [
        ("Standard.create", "operation_started"),
        ("Standard.create", "operation_succeeded"),
        ("Standard.configure", "operation_started"),
        ("Standard.configure", "operation_succeeded"),
        ("Standard.start", "operation_failed"),
    ]

    ref = await engine.start_execution("chain-writes-1", "install", resume_of=execution.id)
    again = await engine.wait_execution(ref.execution_id, timeout=120)
    assert again.status == "failed"
    rerun = [e.operation for e in engine.store.events("chain-writes-1", execution_id=again.id) if "operation" in e.type]
    assert rerun == ["Standard.start"]
