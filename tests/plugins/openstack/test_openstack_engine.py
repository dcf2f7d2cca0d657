"""The OpenStack plugin through the whole engine: the real Temporal server, tempano's worker, the real openstacksdk
and emulated clouds reached through a clouds.yaml the test writes (``clouds`` fixture: ``east`` and ``west``)."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tempano.api.service import Tempano
from tempano.plugins.openstack.testing import OpenStackEmulator

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[2] / "blueprints" / "examples" / "openstack"
MULTI_NETWORK = EXAMPLES / "multi_network.yaml"
VNFD = EXAMPLES / "vnfd_firewall.yaml"
ONE_SERVER = HERE / "blueprints" / "one_server.yaml"
TWO_CLOUDS = HERE / "blueprints" / "two_clouds.yaml"

pytestmark = pytest.mark.asyncio(loop_scope="session")


def duplicates(cloud: OpenStackEmulator) -> dict[str, list[str]]:
    """Names or idempotency tags held by more than one resource of a kind (what a careless retry leaves)."""
    found: dict[str, list[str]] = {}
    for kind, items in cloud.leftovers().items():
        marks: Counter[str] = Counter()
        for item in items:
            if item.get("name"):
                marks[f"name={item['name']}"] += 1
            for tag in item.get("tags") or []:
                marks[f"tag={tag}"] += 1
        extra = [mark for mark, n in marks.items() if n > 1]
        if extra:
            found[kind] = extra
    return found


def ports_of(cloud: OpenStackEmulator, server_id: str) -> list[dict[str, Any]]:
    return cloud.find("port", device_id=server_id)


async def install(tempano: Tempano, deployment: str, timeout: float = 300) -> float:
    started = time.monotonic()
    execution = await tempano.run(deployment, "install", timeout=timeout)
    assert execution.status == "succeeded", execution.error
    return time.monotonic() - started


async def uninstall(tempano: Tempano, deployment: str, timeout: float = 300) -> None:
    execution = await tempano.run(deployment, "uninstall", timeout=timeout)
    assert execution.status == "succeeded", execution.error
    assert tempano.store.resources(deployment) == []


async def test_multi_network_install_then_uninstall_leaves_nothing(
    tempano: Tempano, clouds: dict[str, OpenStackEmulator]
) -> None:
    east = clouds["east"]
    tempano.upload_blueprint("mn", MULTI_NETWORK)
    await tempano.create_deployment("mn-1", "mn", {"cloud": "east"})
    seconds = await install(tempano, "mn-1")
    print(f"\nmulti-network install without faults: {seconds:.1f} s")

    made = east.leftovers()
    assert {kind: len(items) for kind, items in made.items()} == {
        "server": 2,
        "keypair": 1,
        "server_group": 1,
        "network": 2,
        "subnet": 2,
        "port": 5,  # 4 ports of the blueprint + the router's interface
        "router": 1,
        "floatingip": 1,
        "security_group": 1,
        "security_group_rule": 5,  # 2 default egress rules + 3 of the blueprint
        "volume": 1,
    }
    attrs = {i.node: i.attributes for i in tempano.store.node_instances("mn-1")}
    for vm in ("fw_a", "fw_b"):
        [server] = east.find("server", id=attrs[vm]["id"])
        assert server["status"] == "ACTIVE"
        assert {p["id"] for p in ports_of(east, server["id"])} == {
            attrs[f"{vm}_mgmt"]["id"],
            attrs[f"{vm}_data"]["id"],
        }
    [group] = east.find("server_group", id=attrs["fw_group"]["id"])
    assert sorted(group["members"]) == sorted([attrs["fw_a"]["id"], attrs["fw_b"]["id"]])
    [volume] = east.find("volume", id=attrs["fw_log"]["id"])
    assert volume["status"] == "in-use"
    [fip] = east.find("floatingip", id=attrs["fw_a_public"]["id"])
    assert fip["port_id"] == attrs["fw_a_mgmt"]["id"]
    outputs = tempano.outputs("mn-1")
    assert outputs["fw_a_public_address"] == fip["floating_ip_address"]
    fw_b_ips = [ip["ip_address"] for port in ports_of(east, attrs["fw_b"]["id"]) for ip in port["fixed_ips"]]
    assert outputs["fw_b_address"] in fw_b_ips
    [data_a] = east.find("port", id=attrs["fw_a_data"]["id"])
    assert [ip["ip_address"] for ip in data_a["fixed_ips"]] == ["10.20.0.11"]
    assert clouds["west"].leftovers() == {}

    await uninstall(tempano, "mn-1")
    assert east.leftovers() == {}


async def test_vnfd_install_then_uninstall_leaves_nothing(
    tempano: Tempano, clouds: dict[str, OpenStackEmulator]
) -> None:
    east = clouds["east"]
    tempano.upload_blueprint("vnfd", VNFD)
    await tempano.create_deployment("vnfd-1", "vnfd", {"cloud": "east"})
    seconds = await install(tempano, "vnfd-1")
    print(f"\nVNFD install without faults: {seconds:.1f} s")

    attrs = {i.node: i.attributes for i in tempano.store.node_instances("vnfd-1")}
    [server] = east.find("server", id=attrs["fw_vdu"]["id"])
    assert server["status"] == "ACTIVE"
    assert server["flavor"]["vcpus"] == 2
    assert server["flavor"]["extra_specs"]["hw:cpu_policy"] == "dedicated"
    assert server["server_groups"] == [attrs["fw_anti_affinity"]["id"]]
    cps = {attrs[cp]["id"] for cp in ("fw_mgmt_cp", "fw_inside_cp", "fw_outside_cp")}
    assert {p["id"] for p in ports_of(east, server["id"])} == cps
    [inside] = east.find("port", id=attrs["fw_inside_cp"]["id"])
    assert inside["binding:vnic_type"] == "direct"
    [volume] = east.find("volume", id=attrs["fw_log"]["id"])
    assert volume["status"] == "in-use"
    assert len(east.leftovers()["floatingip"]) == 1

    await uninstall(tempano, "vnfd-1")
    assert east.leftovers() == {}


async def test_install_completes_despite_5xx_and_latency_without_duplicates(
    tempano: Tempano, clouds: dict[str, OpenStackEmulator]
) -> None:
    east = clouds["east"]
    east.faults.error_rate = 0.1
    east.faults.latency = 0.02
    tempano.upload_blueprint("mn", MULTI_NETWORK)
    await tempano.create_deployment("mn-faults", "mn", {"cloud": "east"})
    seconds = await install(tempano, "mn-faults", timeout=600)
    print(
        f"\nmulti-network install with 10% 5xx + 20 ms latency: {seconds:.1f} s, {east.injected_errors} errors injected"
    )
    assert east.injected_errors > 0
    assert duplicates(east) == {}
    made = {kind: len(items) for kind, items in east.leftovers().items()}
    assert made["server"] == 2 and made["port"] == 5 and made["network"] == 2 and made["volume"] == 1
    # the ledger holds each resource once, and exactly what exists
    ledger = tempano.store.resources("mn-faults")
    ids = [r.resource_id for r in ledger if r.kind not in {"volume_attachment", "router_interface"}]
    assert len(ids) == len(set(ids))

    await uninstall(tempano, "mn-faults", timeout=600)
    assert east.leftovers() == {}


async def test_quota_exhaustion_fails_clearly_and_rollback_leaves_nothing(
    tempano: Tempano, clouds: dict[str, OpenStackEmulator]
) -> None:
    east = clouds["east"]
    east.faults.quotas = {"server": 1}  # the blueprint has two
    tempano.upload_blueprint("mn", MULTI_NETWORK)
    await tempano.create_deployment("mn-quota", "mn", {"cloud": "east"})
    execution = await tempano.run("mn-quota", "install", timeout=300)
    assert execution.status == "failed"
    error = execution.error or ""
    print(f"\nquota failure: {error}")
    assert "on cloud 'east'" in error
    assert re.search(r"server 'mn-quota-fw_[ab]_1'", error)
    assert "Quota exceeded for instances" in error
    assert "ask the cloud administrator for a higher quota" in error
    assert east.created["server"] == 1  # a quota refusal is not retried

    rollback = await tempano.run("mn-quota", "rollback", {"execution_id": execution.id}, timeout=300)
    assert rollback.status == "succeeded", rollback.error
    assert east.leftovers() == {}
    assert tempano.store.resources("mn-quota") == []
