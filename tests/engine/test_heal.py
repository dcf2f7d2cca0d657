"""heal on the real server: health check first; the node's heal operation if it has one, else a reinstall of the
instance's subgraph with its peers' relationship operations re-run; a healthy instance is left alone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tempano.api.service import Tempano

pytestmark = pytest.mark.asyncio(loop_scope="session")

Deploy = Callable[[str], Awaitable[None]]
ResultOf = Callable[[str], Awaitable[dict[str, Any]]]


def leftovers(engine: Tempano, rec: Any, deployment: str) -> None:
    """The fake VIM holds exactly one resource per live instance, and the ledger says the same."""
    live = {i.id for i in engine.store.node_instances(deployment)}
    ledger = {(r.node_instance_id, r.resource_id) for r in engine.store.resources(deployment)}
    assert {r for _, r in ledger} == set(rec.vim)
    assert {i for i, _ in ledger} == live
    assert len(ledger) == len(live)


async def test_healthy_instance_is_left_alone(engine: Tempano, deploy: Deploy, rec: Any, result_of: ResultOf) -> None:
    await deploy("heal-ok")
    execution = await engine.run("heal-ok", "heal", {"node_instance_id": "app_1"}, timeout=60)
    assert execution.status == "succeeded", execution.error
    assert await result_of(execution.id) == {"healed": False, "healthy": True}
    assert rec.ops(execution.id) == [("app_1", "check", None)]


async def test_heal_operation_repairs_in_place(engine: Tempano, deploy: Deploy, rec: Any, result_of: ResultOf) -> None:
    await deploy("heal-op")
    rec.unhealthy.add("app_2")
    execution = await engine.run("heal-op", "heal", {"node_instance_id": "app_2"}, timeout=60)
    assert execution.status == "succeeded", execution.error
    assert (await result_of(execution.id))["method"] == "heal_operation"
    assert rec.ops(execution.id) == [("app_2", "check", None), ("app_2", "check", None), ("app_2", "heal", None)]
    checks = [
        e.message
        for e in engine.store.events("heal-op", execution_id=execution.id)
        if e.type == "operation_succeeded" and e.operation == "Health.check"
    ]
    # the engine writes a health check's answer, with the plugin's reason, into the history
    assert checks and "unhealthy (app_2 was made unhealthy by the test)" in checks[0], checks
    assert engine.store.node_instance("heal-op", "app_2").state == "started"
    leftovers(engine, rec, "heal-op")


async def test_reinstall_of_subgraph_rewires_peers(
    engine: Tempano, deploy: Deploy, rec: Any, result_of: ResultOf
) -> None:
    await deploy("heal-re")
    before = {i.id: i.attributes["resource_id"] for i in engine.store.node_instances("heal-re")}
    # what the old server's operations wrote and the new one's do not: it must not outlive the old server
    engine.store.merge_attributes("heal-re", "vm_1", {"console_url": "http://old-console"})
    engine.store.merge_attributes("heal-re", "lb_1", {"console_url": "http://lb-console"})
    rec.unhealthy.add("vm_1")
    execution = await engine.run("heal-re", "heal", {"node_instance_id": "vm_1"}, timeout=120)
    assert execution.status == "succeeded", execution.error
    result = await result_of(execution.id)
    assert result["method"] == "reinstall"
    assert sorted(result["reinstalled"]) == ["app_1", "vm_1"]
    ran = rec.ops(execution.id)
    # vm_1 and what it hosts are deleted and created again, vm_1 re-linked to net; nothing else is recreated.
    for instance in ("vm_1", "app_1"):
        for op in ("stop", "delete", "create", "configure", "start"):
            assert (instance, op, None) in ran
    assert ("vm_1", "remove_target", "net_1") in ran
    assert ("vm_1", "pre_configure_source", "net_1") in ran
    assert ("vm_1", "add_target", "net_1") in ran
    # The peer lb_1 unlinks from vm_1 and links again, to vm_1 only.
    assert [c for c in ran if c[0] == "lb_1"] == [
        ("lb_1", "add_target", "vm_1"),
        ("lb_1", "pre_configure_source", "vm_1"),
        ("lb_1", "remove_target", "vm_1"),
    ]
    assert {c[0] for c in ran} == {"vm_1", "app_1", "lb_1"}
    after = {i.id: i.attributes["resource_id"] for i in engine.store.node_instances("heal-re")}
    assert after["vm_1"] != before["vm_1"] and after["app_1"] != before["app_1"]
    assert {k: v for k, v in after.items() if k not in {"vm_1", "app_1"}} == {
        k: v for k, v in before.items() if k not in {"vm_1", "app_1"}
    }
    assert {i.state for i in engine.store.node_instances("heal-re")} == {"started"}
    assert "console_url" not in engine.store.node_instance("heal-re", "vm_1").attributes
    assert engine.store.node_instance("heal-re", "lb_1").attributes["console_url"] == "http://lb-console"
    leftovers(engine, rec, "heal-re")


async def test_heal_operation_that_does_not_help_falls_back_to_reinstall(
    engine: Tempano, deploy: Deploy, rec: Any, result_of: ResultOf
) -> None:
    await deploy("heal-fb")
    rec.heal_fixes = False
    rec.unhealthy.add("app_1")
    execution = await engine.run("heal-fb", "heal", {"node_instance_id": "app_1"}, timeout=120)
    assert execution.status == "succeeded", execution.error
    assert (await result_of(execution.id))["reinstalled"] == ["app_1"]
    ran = rec.ops(execution.id)
    assert [c[1] for c in ran if c[1] in {"check", "heal"}] == ["check", "check", "heal"]
    assert ("app_1", "delete", None) in ran and ("app_1", "create", None) in ran
    assert {c[0] for c in ran} == {"app_1"}
    leftovers(engine, rec, "heal-fb")
