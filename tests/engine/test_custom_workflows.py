"""Workflows by name on the real server: the shipped custom example (rolling upgrade, registered through the
``tempano.workflows`` entry points) and a TOSCA imperative workflow compiled from the blueprint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tempano.api.service import Tempano
from tempano.workflows import registry

pytestmark = pytest.mark.asyncio(loop_scope="session")

Deploy = Callable[[str], Awaitable[None]]
ResultOf = Callable[[str], Awaitable[dict[str, Any]]]
UPGRADE = {"node": "vm", "operation": "Maintenance.upgrade", "operation_inputs": {"version": "2"}}


def calls(rec: Any, execution: str) -> list[tuple[str, str]]:
    return [(c.instance, c.operation) for c in rec.calls if c.execution == execution]


async def test_rolling_upgrade_one_at_a_time_with_health_checks(
    engine: Tempano, deploy: Deploy, rec: Any, result_of: ResultOf
) -> None:
    assert "rolling_upgrade" in registry.names() and not registry.is_builtin("rolling_upgrade")
    await deploy("ru-ok")
    execution = await engine.run("ru-ok", "rolling_upgrade", UPGRADE, timeout=120)
    assert execution.status == "succeeded", execution.error
    assert calls(rec, execution.id) == [
        ("vm_1", "upgrade"),
        ("vm_1", "check"),
        ("vm_2", "upgrade"),
        ("vm_2", "check"),
    ]
    assert await result_of(execution.id) == {"upgraded": ["vm_1", "vm_2"]}
    assert {i.attributes["version"] for i in engine.store.node_instances("ru-ok", node="vm")} == {"2"}


async def test_rolling_upgrade_stops_on_the_first_unhealthy_instance(engine: Tempano, deploy: Deploy, rec: Any) -> None:
    await deploy("ru-bad")
    grown = await engine.run("ru-bad", "scale", {"node": "vm", "delta": 1}, timeout=120)
    assert grown.status == "succeeded", grown.error
    rec.bad_upgrades.add("vm_2")
    execution = await engine.run("ru-bad", "rolling_upgrade", UPGRADE, timeout=120)
    assert execution.status == "failed"
    assert calls(rec, execution.id) == [("vm_1", "upgrade"), ("vm_1", "check"), ("vm_2", "upgrade"), ("vm_2", "check")]
    assert "rolling upgrade of vm stopped at vm_2 (2/3): unhealthy after Maintenance.upgrade" in (execution.error or "")
    assert "Upgraded and healthy: vm_1; not touched: vm_3" in (execution.error or "")
    states = {i.id: i.state for i in engine.store.node_instances("ru-bad", node="vm")}
    assert states == {"vm_1": "started", "vm_2": "error", "vm_3": "started"}
    assert "version" not in engine.store.node_instance("ru-bad", "vm_3").attributes

    # Heal vm_2 (its heal-less node is reinstalled), then resume: vm_1 and vm_2 are not upgraded again, the health
    # check of vm_2 runs again, vm_3 is upgraded.
    healed = await engine.run("ru-bad", "heal", {"node_instance_id": "vm_2"}, timeout=120)
    assert healed.status == "succeeded", healed.error
    ref = await engine.start_execution("ru-bad", "rolling_upgrade", resume_of=execution.id)
    resumed = await engine.wait_execution(ref.execution_id, timeout=120)
    assert resumed.status == "succeeded", resumed.error
    assert calls(rec, ref.execution_id) == [
        ("vm_1", "check"),
        ("vm_2", "check"),
        ("vm_3", "upgrade"),
        ("vm_3", "check"),
    ]


async def test_unknown_workflow_is_refused_with_the_known_names(engine: Tempano, deploy: Deploy) -> None:
    await deploy("wf-unknown")
    with pytest.raises(Exception, match=r"no workflow named 'upgrade_all'; known: .*rolling_upgrade"):
        await engine.start_execution("wf-unknown", "upgrade_all")


async def test_a_bug_in_workflow_code_fails_the_execution_instead_of_hanging(engine: Tempano, deploy: Deploy) -> None:
    async def broken(ctx: Any, params: Any) -> None:
        await ctx.instances(node="vm")
        params["no such parameter"]  # the bug

    registry.register("broken_example", broken)
    await deploy("wf-bug")
    execution = await engine.run("wf-bug", "broken_example", timeout=60)
    assert execution.status == "failed"
    assert "workflow 'broken_example' raised KeyError: 'no such parameter' (a bug in its code" in (
        execution.error or ""
    )

    missing = await engine.run("wf-bug", "heal", {"node_instance_id": "vm_9"}, timeout=60)
    assert missing.status == "failed"
    assert "deployment wf-bug has no live node instance 'vm_9'" in (missing.error or "")


async def test_tosca_imperative_workflow_runs_by_name(
    engine: Tempano, deploy: Deploy, rec: Any, result_of: ResultOf
) -> None:
    await deploy("imp")
    execution = await engine.run("imp", "maintain", timeout=120)
    assert execution.status == "succeeded", execution.error
    assert sorted(calls(rec, execution.id)) == [
        ("vm_1", "start"),
        ("vm_1", "upgrade"),
        ("vm_2", "start"),
        ("vm_2", "upgrade"),
    ]
    assert [c.inputs["version"] for c in rec.calls if c.execution == execution.id and c.operation == "upgrade"] == [
        "9",
        "9",
    ]
    assert await result_of(execution.id) == {
        "steps": {"drain": "succeeded", "mark_failed": "skipped", "restart": "succeeded"}
    }
    states = [
        e.data["state"] for e in engine.store.events("imp", execution_id=execution.id) if e.type == "state_changed"
    ]
    assert states == ["maintenance", "started"]

    # on_failure: the upgrade fails, mark_failed runs instead of restart, and the failure counts as handled.
    rec.fail("vm_1", "upgrade", message="image not found")
    handled = await engine.run("imp", "maintain", timeout=120)
    assert handled.status == "succeeded", handled.error
    assert await result_of(handled.id) == {
        "steps": {"drain": "failed", "mark_failed": "succeeded", "restart": "skipped"}
    }
    assert {i.state for i in engine.store.node_instances("imp", node="vm")} == {"error"}
    assert not [c for c in rec.calls if c.execution == handled.id and c.operation == "start"]


async def test_imperative_workflow_calls_other_workflows_by_name(
    engine: Tempano, deploy: Deploy, rec: Any, result_of: ResultOf
) -> None:
    await deploy("imp-call")
    execution = await engine.run("imp-call", "refresh", timeout=120)
    assert execution.status == "succeeded", execution.error
    # The built-in restart (delegate), then the blueprint's own maintain (inline), in this execution.
    for vm in ("vm_1", "vm_2"):
        assert [c for c in calls(rec, execution.id) if c[0] == vm] == [
            (vm, "stop"),
            (vm, "start"),
            (vm, "upgrade"),
            (vm, "start"),
        ]
    assert await result_of(execution.id) == {"steps": {"cycle": "succeeded"}}

    missing = await engine.run("imp-call", "call_missing", timeout=60)
    assert missing.status == "failed"
    assert "no workflow named 'no_such_workflow': neither built in, nor in the blueprint's workflows" in (
        missing.error or ""
    )
