"""scale on the real server: out and in, on a node and on a scaling group, within min/max; new instances are
wired to existing targets and existing sources to them; scale-in unwires peers and leaves nothing behind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tempano.api.service import Tempano

pytestmark = pytest.mark.asyncio(loop_scope="session")

Deploy = Callable[[str], Awaitable[None]]


def live(engine: Tempano, deployment: str) -> dict[str, str]:
    return {i.id: i.state for i in engine.store.node_instances(deployment)}


def nothing_left_but_live(engine: Tempano, rec: Any, deployment: str) -> None:
    instances = set(live(engine, deployment))
    ledger = engine.store.resources(deployment)
    assert {r.node_instance_id for r in ledger} == instances
    assert {r.resource_id for r in ledger} == set(rec.vim)
    assert len(ledger) == len(instances)


async def test_scale_out_node_wires_new_instances_both_ways(engine: Tempano, deploy: Deploy, rec: Any) -> None:
    await deploy("sc-out")
    execution = await engine.run("sc-out", "scale", {"node": "vm", "delta": 2}, timeout=120)
    assert execution.status == "succeeded", execution.error
    ran = rec.ops(execution.id)
    new = {"vm_3", "app_3", "vm_4", "app_4"}
    assert {c[0] for c in ran} == new | {"lb_1"}
    for vm in ("vm_3", "vm_4"):
        assert (vm, "pre_configure_source", "net_1") in ran and (vm, "add_target", "net_1") in ran
    # The existing source lb_1 is told about the new targets, and only about them.
    assert [c for c in ran if c[0] == "lb_1"] == [("lb_1", "add_target", "vm_3"), ("lb_1", "add_target", "vm_4")]
    assert all(rec.created[f"sc-out.{i}.Standard.create"] == 1 for i in new)
    assert {i: s for i, s in live(engine, "sc-out").items() if i in new} == dict.fromkeys(sorted(new), "started")
    assert len(live(engine, "sc-out")) == 12
    nothing_left_but_live(engine, rec, "sc-out")

    # Above max_instances (4): refused, with the reason, and nothing changes.
    refused = await engine.run("sc-out", "scale", {"node": "vm", "delta": 1}, timeout=60)
    assert refused.status == "failed"
    assert "'vm' cannot go above 4 instances (it has 4, asked +1)" in (refused.error or "")
    assert rec.ops(refused.id) == []
    assert len(live(engine, "sc-out")) == 12


async def test_scale_in_newest_and_chosen_unwires_peers(engine: Tempano, deploy: Deploy, rec: Any) -> None:
    await deploy("sc-in")
    execution = await engine.run("sc-in", "scale", {"node": "vm", "delta": 1}, timeout=120)
    assert execution.status == "succeeded", execution.error

    newest = await engine.run("sc-in", "scale", {"node": "vm", "delta": -1}, timeout=120)
    assert newest.status == "succeeded", newest.error
    ran = rec.ops(newest.id)
    assert ("lb_1", "remove_target", "vm_3") in ran
    assert ("vm_3", "remove_target", "net_1") in ran
    assert {c[0] for c in ran} == {"lb_1", "vm_3", "app_3"}
    assert [c for c in ran if c[0] == "lb_1"] == [("lb_1", "remove_target", "vm_3")]
    assert set(live(engine, "sc-in")) == {"net_1", "vm_1", "vm_2", "app_1", "app_2", "lb_1", "fw_1", "fw_agent_1"}

    chosen = await engine.run("sc-in", "scale", {"node": "vm", "delta": -1, "node_instance_ids": ["vm_1"]})
    assert chosen.status == "succeeded", chosen.error
    assert {c[0] for c in rec.ops(chosen.id)} == {"lb_1", "vm_1", "app_1"}
    assert "vm_1" not in live(engine, "sc-in") and "app_1" not in live(engine, "sc-in")
    nothing_left_but_live(engine, rec, "sc-in")

    # Below min_instances (1): refused.
    refused = await engine.run("sc-in", "scale", {"node": "vm", "delta": -1}, timeout=60)
    assert refused.status == "failed"
    assert "'vm' cannot go below 1 instances (it has 1, asked -1)" in (refused.error or "")
    assert "vm_2" in live(engine, "sc-in")

    # A scale-out after a scale-in never reuses an id (nor adopts a removed instance's resources).
    again = await engine.run("sc-in", "scale", {"node": "vm", "delta": 1}, timeout=120)
    assert again.status == "succeeded", again.error
    assert "vm_4" in live(engine, "sc-in") and "vm_3" not in live(engine, "sc-in")
    nothing_left_but_live(engine, rec, "sc-in")


async def test_scale_group_out_and_in(engine: Tempano, deploy: Deploy, rec: Any) -> None:
    await deploy("sc-grp")
    out = await engine.run("sc-grp", "scale", {"group": "unit", "delta": 1}, timeout=120)
    assert out.status == "succeeded", out.error
    ran = rec.ops(out.id)
    assert {c[0] for c in ran} == {"fw_2", "fw_agent_2"}
    assert ("fw_2", "add_target", "net_1") in ran
    states = live(engine, "sc-grp")
    assert states["fw_2"] == states["fw_agent_2"] == "started"
    groups = {i.id: i.group_instance for i in engine.store.node_instances("sc-grp")}
    assert groups["fw_2"] == groups["fw_agent_2"] == "unit_2"

    refused = await engine.run("sc-grp", "scale", {"group": "unit", "delta": 1}, timeout=60)
    assert refused.status == "failed"
    assert "'unit' cannot go above 2 instances" in (refused.error or "")

    scaled_in = await engine.run("sc-grp", "scale", {"group": "unit", "delta": -1}, timeout=120)
    assert scaled_in.status == "succeeded", scaled_in.error
    assert {c[0] for c in rec.ops(scaled_in.id)} == {"fw_2", "fw_agent_2"}
    assert "fw_2" not in live(engine, "sc-grp") and "fw_1" in live(engine, "sc-grp")
    nothing_left_but_live(engine, rec, "sc-grp")

    member = await engine.run("sc-grp", "scale", {"node": "fw", "delta": 1}, timeout=60)
    assert member.status == "failed"
    assert "node 'fw' is in scaling group 'unit': scale the group instead" in (member.error or "")


async def test_failed_scale_out_resumes_without_adding_again_or_rolls_back(
    engine: Tempano, deploy: Deploy, rec: Any
) -> None:
    await deploy("sc-fail")
    rec.fail("vm_3", "configure", message="no address left in the pool")
    failed = await engine.run("sc-fail", "scale", {"node": "vm", "delta": 1}, timeout=120)
    assert failed.status == "failed"
    assert "vm_3 (node vm) Standard.configure failed on attempt 1/5: no address left in the pool" in (
        failed.error or ""
    )
    rec.faults.clear()
    ref = await engine.start_execution("sc-fail", "scale", resume_of=failed.id)
    resumed = await engine.wait_execution(ref.execution_id, timeout=120)
    assert resumed.status == "succeeded", resumed.error
    # The resumed scale-out completes vm_3 (and app_3) instead of adding another vm.
    assert {i for i in live(engine, "sc-fail") if i.startswith("vm_")} == {"vm_1", "vm_2", "vm_3"}
    assert ("vm_3", "configure", None) in rec.ops(ref.execution_id)
    assert ("vm_3", "create", None) not in rec.ops(ref.execution_id)
    assert ("lb_1", "add_target", "vm_3") in rec.ops(ref.execution_id)
    nothing_left_but_live(engine, rec, "sc-fail")

    # A failed scale-out rolled back: what it added is uninstalled and removed.
    rec.fail("app_4", "start", message="no licence")
    again = await engine.run("sc-fail", "scale", {"node": "vm", "delta": 1}, timeout=120)
    assert again.status == "failed"
    rollback_ref = await engine.start_execution("sc-fail", "rollback", rollback_of=again.id)
    rollback = await engine.wait_execution(rollback_ref.execution_id, timeout=120)
    assert rollback.status == "succeeded", rollback.error
    assert "vm_4" not in live(engine, "sc-fail") and "app_4" not in live(engine, "sc-fail")
    nothing_left_but_live(engine, rec, "sc-fail")
