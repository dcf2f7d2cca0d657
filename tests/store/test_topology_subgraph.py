"""Subgraphs (what heal reinstalls, what scale-in removes) on the vFW example's plan."""

from __future__ import annotations

from pathlib import Path

from tempano.blueprints import Plan, bind_inputs, compile_path
from tempano.store.records import NewInstance, NodeInstanceRecord
from tempano.store.topology import expand, scale_out, subgraph

VFW = Path(__file__).resolve().parents[2] / "blueprints" / "examples" / "vfw" / "vfw.yaml"


def started(new: list[NewInstance]) -> list[NodeInstanceRecord]:
    return [NodeInstanceRecord(deployment_id="d", state="started", attributes={}, **n.model_dump()) for n in new]


def records() -> tuple[Plan, list[NodeInstanceRecord]]:
    plan = bind_inputs(compile_path(VFW), {})
    return plan, started(expand(plan))


def test_a_server_takes_its_hosted_software_and_bound_ports_along() -> None:
    plan, existing = records()
    assert subgraph(["firewall_1"], existing, plan) == [
        "firewall_1",
        "firewall_app_1",
        "firewall_client_port_1",
        "firewall_transit_port_1",
    ]
    # without the plan, only what is hosted (the old behaviour, kept for callers without a plan)
    assert subgraph(["firewall_1"], existing) == ["firewall_1", "firewall_app_1"]


def test_bound_ports_of_other_instances_stay() -> None:
    plan, existing = records()
    added = scale_out(plan, "firewall_group", 1, existing)
    existing += started(added)
    assert sorted(subgraph(["firewall_2"], existing, plan)) == [
        "firewall_2",
        "firewall_app_2",
        "firewall_client_port_2",
        "firewall_transit_port_2",
    ]
