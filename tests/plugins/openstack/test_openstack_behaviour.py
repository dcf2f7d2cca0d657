"""Idempotency, fault tolerance, quota, ERROR servers, heartbeat resume, adoption and multi-cloud."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from tempano.plugins.contract import (
    AuthenticationFailed,
    ConfigurationError,
    InstanceView,
    NonRetryableError,
    QuotaExceeded,
    ResourceNotFound,
    RetryableError,
)
from tempano.plugins.openstack import _types as types
from tempano.plugins.openstack import forget_connections
from tempano.plugins.openstack.testing import OpenStackEmulator
from tempano.plugins.openstack.testing.harness import OperationRunner, openstack_node
from tempano.plugins.openstack.testing.harness import depends_on as rel

node = partial(openstack_node, cloud="east")


def server_node(name: str = "vdu", **properties: Any) -> InstanceView:
    """A server node booting cirros on m1.tiny unless told otherwise."""
    return node(name, types.SERVER, "tosca.nodes.Compute", **{"flavor": "m1.tiny", "image": "cirros", **properties})


def test_second_create_with_the_same_key_adopts(cloud: OpenStackEmulator, runner: OperationRunner) -> None:
    net = node("net", types.NETWORK)
    server = server_node()
    volume = node("disk", types.VOLUME, size=1)
    for _ in range(2):
        runner.run("network.create", net)
        runner.run("server.create", server, relationships=(rel(net),))
        runner.run("volume.create", volume)
    assert (cloud.created["network"], cloud.created["server"], cloud.created["volume"]) == (1, 1, 1)
    # even with an empty ledger (a lost activity result), the idempotency tag finds the same objects
    fresh = OperationRunner()
    fresh.run("network.create", net)
    fresh.run("server.create", server, relationships=(rel(net),))
    fresh.run("volume.create", volume)
    assert (cloud.created["network"], cloud.created["server"], cloud.created["volume"]) == (1, 1, 1)
    assert [r.resource_id for r in fresh.ledger] == [r.resource_id for r in runner.ledger]


def test_faults_and_latency_retried_like_the_engine_end_with_one_of_each(
    cloud: OpenStackEmulator, runner: OperationRunner
) -> None:
    cloud.faults.error_rate = 0.1
    cloud.faults.latency = 0.003
    net = node("net", types.NETWORK)
    subnet = node("subnet", types.SUBNET, cidr="10.1.0.0/24")
    group = node("sg", types.SECURITY_GROUP, rules=[{"protocol": "tcp", "port_range_min": 80, "port_range_max": 80}])
    port = node("port", types.PORT)
    router = node("router", types.ROUTER, external_network="public")
    servers = [server_node(f"vdu{i}") for i in range(4)]
    volume = node("disk", types.VOLUME, size=1)
    fip = node("fip", types.FLOATING_IP, floating_network="public")
    runner.retrying("network.create", net)
    runner.retrying("subnet.create", subnet, relationships=(rel(net),))
    runner.retrying("security_group.create", group)
    runner.retrying("port.create", port, relationships=(rel(net), rel(group)))
    runner.retrying("router.create", router, relationships=(rel(subnet),))
    for server in servers:
        runner.retrying("server.create", server, relationships=(rel(net),))
    runner.retrying("server.create", server_node("vdu-port"), relationships=(rel(port),))
    runner.retrying("volume.create", volume)
    runner.retrying("floating_ip.create", fip, relationships=(rel(port),))

    assert cloud.injected_errors > 0, "the fault plan never fired: the test proves nothing"
    mine = cloud.leftovers()
    assert {kind: len(items) for kind, items in mine.items()} == {
        "network": 1,
        "subnet": 1,
        "security_group": 1,
        "security_group_rule": 3,  # two default egress rules and ours
        "port": 1 + 1 + 4,  # ours, the router interface, one per server booted on the network
        "router": 1,
        "server": 5,
        "volume": 1,
        "floatingip": 1,
    }
    assert cloud.created["server"] == 5 and cloud.created["network"] == 1 and cloud.created["volume"] == 1

    uninstall = [("floating_ip", fip), ("volume", volume), *(("server", s) for s in servers)]
    uninstall += [("router", router), ("port", port), ("security_group", group), ("subnet", subnet)]
    uninstall += [("network", net)]
    for kind, inst in uninstall:
        runner.retrying(f"{kind}.delete", inst)
    vdu_port = next(r for r in runner.ledger if r.kind == "server")
    ctx_node = server_node("vdu-port")
    assert vdu_port.node_instance_id == ctx_node.id
    runner.retrying("server.delete", ctx_node)
    # the router interface and Nova's ports went with their owners
    cloud.faults.error_rate = 0
    runner.run("port.delete", port)
    runner.run("network.delete", net)
    assert cloud.leftovers() == {}
    assert runner.ledger == []


@pytest.mark.parametrize(
    ("kind", "operation", "props"),
    [
        ("server", "server.create", {"flavor": "m1.tiny", "image": "cirros"}),
        ("network", "network.create", {}),
        ("volume", "volume.create", {"size": 1}),
    ],
)
def test_quota_exhaustion_is_a_clear_non_retryable_error(
    cloud: OpenStackEmulator, runner: OperationRunner, kind: str, operation: str, props: dict[str, object]
) -> None:
    cloud.faults.quotas[kind] = cloud.count(kind)
    type_name = {"server": types.SERVER, "network": types.NETWORK, "volume": types.VOLUME}[kind]
    with pytest.raises(QuotaExceeded) as failure:
        runner.run(operation, node("x", type_name, **props))
    message = str(failure.value)
    assert failure.value.retryable is False
    assert "cloud 'east'" in message and "node instance x_1" in message and "quota" in message.lower()
    assert runner.ledger == [] and cloud.leftovers() == {}


def test_server_in_error_fails_the_attempt_and_the_retry_replaces_it(
    cloud: OpenStackEmulator, runner: OperationRunner
) -> None:
    cloud.faults.servers_to_error = 1
    server = server_node()
    with pytest.raises(RetryableError) as failure:
        runner.run("server.create", server)
    assert "went to ERROR" in str(failure.value) and "cloud 'east'" in str(failure.value)
    [failed] = cloud.find("server", status="ERROR")
    assert [r.resource_id for r in runner.ledger] == [failed["id"]]

    runner.run("server.create", server)
    [active] = cloud.snapshot()["server"]
    assert active["status"] == "ACTIVE" and active["id"] != failed["id"]
    assert [r.resource_id for r in runner.ledger] == [active["id"]]


def test_retry_on_error_false_stops_and_uninstall_removes_the_error_server(
    cloud: OpenStackEmulator, runner: OperationRunner
) -> None:
    cloud.faults.servers_to_error = 1
    server = server_node(retry_on_error=False)
    with pytest.raises(NonRetryableError, match="went to ERROR"):
        runner.run("server.create", server)
    runner.run("server.delete", server)
    assert cloud.leftovers() == {}


def test_a_retry_after_a_crash_during_build_adopts_the_server_from_the_heartbeat(
    cloud: OpenStackEmulator, runner: OperationRunner
) -> None:
    cloud.faults.server_build_seconds = 3  # still BUILD when the first attempt gives up, however slow the machine
    server = server_node(wait_timeout=0.1)
    with pytest.raises(RetryableError, match="still BUILD"):
        runner.run("server.create", server)
    beat = runner.last.heartbeats[-1] if runner.last else {}
    [building] = cloud.snapshot()["server"]
    assert beat["server_id"] == building["id"]

    # a new worker: nothing in its ledger, only the heartbeat of the crashed attempt
    retry = OperationRunner()
    out = retry.run("server.create", server_node(), heartbeat_details=beat)
    assert out is not None and out["id"] == building["id"] and out["status"] == "ACTIVE"
    assert cloud.created["server"] == 1
    # the same with the ledger of the crashed attempt and no heartbeat
    again = OperationRunner()
    again.ledger = list(runner.ledger)
    assert again.run("server.create", server_node())["id"] == building["id"]  # type: ignore[index]
    assert cloud.created["server"] == 1


def test_use_external_resource_adopts_and_never_deletes(cloud: OpenStackEmulator, runner: OperationRunner) -> None:
    public = cloud.find("network", name="public")[0]
    external_net = node("ext", types.NETWORK, use_external_resource=True, resource_id="public")
    runner.run("network.create", external_net)
    assert external_net.attributes["id"] == public["id"]
    owner = OperationRunner()
    owner.run("server.create", server_node("pre"))
    existing = cloud.snapshot()["server"][0]
    adopted = server_node("adopted", use_external_resource=True, resource_id=existing["name"])
    runner.run("server.create", adopted)
    assert adopted.attributes["id"] == existing["id"]
    assert all(r.external for r in runner.ledger)
    runner.run("server.stop", adopted)  # never changes an adopted server's power state
    runner.run("server.delete", adopted)
    runner.run("network.delete", external_net)
    assert runner.ledger == []
    assert cloud.find("server", id=existing["id"])[0]["status"] == "ACTIVE"
    assert cloud.find("network", id=public["id"])
    with pytest.raises(ResourceNotFound, match="does not exist on cloud 'east'"):
        runner.run("network.create", node("gone", types.NETWORK, use_external_resource=True, resource_id="nope"))


def test_two_clouds_in_one_clouds_yaml_serve_two_nodes(
    clouds: dict[str, OpenStackEmulator], runner: OperationRunner
) -> None:
    east = openstack_node("a", types.SERVER, cloud="east", flavor="m1.tiny", image="cirros")
    west = openstack_node("b", types.SERVER, cloud="west", flavor="m1.small", image="cirros")
    runner.run("server.create", east)
    runner.run("server.create", west)
    assert [s["name"] for s in clouds["east"].snapshot()["server"]] == ["dep-a_1"]
    assert [s["name"] for s in clouds["west"].snapshot()["server"]] == ["dep-b_1"]
    assert {r.data["cloud"] for r in runner.ledger} == {"east", "west"}
    runner.run("server.delete", east)
    runner.run("server.delete", west)
    assert clouds["east"].leftovers() == {} and clouds["west"].leftovers() == {}


def test_private_address_is_the_first_requested_nics_whatever_order_nova_lists_networks_in(
    cloud: OpenStackEmulator, runner: OperationRunner
) -> None:
    nets = {}
    for name, cidr in (("data", "10.2.0.0/24"), ("mgmt", "10.3.0.0/24")):
        nets[name] = node(f"{name}_net", types.NETWORK)
        runner.run("network.create", nets[name])
        runner.run("subnet.create", node(f"{name}_subnet", types.SUBNET, cidr=cidr), relationships=(rel(nets[name]),))
    # the data port exists first, so the emulated Nova lists the data network first, as a real one may
    data_port, mgmt_port = node("data_port", types.PORT), node("mgmt_port", types.PORT)
    runner.run("port.create", data_port, relationships=(rel(nets["data"]),))
    runner.run("port.create", mgmt_port, relationships=(rel(nets["mgmt"]),))
    by_ports = server_node("by_ports")
    runner.run("server.create", by_ports, relationships=(rel(mgmt_port), rel(data_port)))
    assert by_ports.attributes["private_address"] == mgmt_port.attributes["ip_address"]
    assert by_ports.attributes["addresses"]["dep-data_net_1"] == [data_port.attributes["ip_address"]]
    # a floating IP related to the server goes on that first NIC too
    fip = node("fip", types.FLOATING_IP, floating_network="public")
    runner.run("floating_ip.create", fip, relationships=(rel(by_ports),))
    assert fip.attributes["port_id"] == mgmt_port.attributes["id"]
    # the port Nova makes on the mgmt network comes after the data port: it is still the first NIC
    data_port2 = node("data_port2", types.PORT)
    runner.run("port.create", data_port2, relationships=(rel(nets["data"]),))
    by_network = server_node("by_network")
    runner.run("server.create", by_network, relationships=(rel(nets["mgmt"]), rel(data_port2)))
    assert str(by_network.attributes["private_address"]).startswith("10.3.0.")


def test_anti_affinity_places_group_members_on_different_hosts(
    cloud: OpenStackEmulator, runner: OperationRunner
) -> None:
    group = node("group", types.SERVER_GROUP, policy="anti-affinity")
    runner.run("server_group.create", group)
    hosts = []
    for i in range(3):
        server = server_node(f"vdu{i}")
        runner.run("server.create", server, relationships=(rel(group),))
        hosts.append(server.attributes["host_id"])
    assert len(set(hosts)) == 3
    # a fourth cannot be placed on the emulator's three hosts: Nova's "No valid host", as an ERROR server
    with pytest.raises(RetryableError, match="No valid host"):
        runner.run("server.create", server_node("vdu3"), relationships=(rel(group),))


def test_errors_name_the_cloud_the_resource_and_what_to_do(
    cloud: OpenStackEmulator, runner: OperationRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ResourceNotFound) as missing:
        runner.run("server.create", server_node(flavor="m9.huge"))
    assert "flavor 'm9.huge' does not exist on cloud 'east'" in str(missing.value)
    with pytest.raises(ResourceNotFound, match="image 'windows'"):
        runner.run("server.create", server_node(image="windows"))
    with pytest.raises(ConfigurationError, match="`cloud` property"):
        runner.run("network.create", openstack_node("n", types.NETWORK, cloud=""))
    with pytest.raises(ConfigurationError, match=r"'nowhere' is not usable from clouds\.yaml"):
        runner.run("network.create", openstack_node("n", types.NETWORK, cloud="nowhere"))
    config = cloud.cloud_config()
    config["auth"]["password"] = "wrong"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"clouds": {"east": config}}))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    forget_connections()
    with pytest.raises(AuthenticationFailed, match="refused the credentials"):
        runner.run("network.create", node("n", types.NETWORK))
    assert cloud.leftovers() == {}


def test_a_floating_ip_in_use_is_never_taken(cloud: OpenStackEmulator, runner: OperationRunner) -> None:
    net = node("net", types.NETWORK)
    runner.run("network.create", net)
    runner.run("subnet.create", node("subnet", types.SUBNET, cidr="10.2.0.0/24"), relationships=(rel(net),))
    first, second = node("p1", types.PORT), node("p2", types.PORT)
    runner.run("port.create", first, relationships=(rel(net),))
    runner.run("port.create", second, relationships=(rel(net),))
    owner = node("fip1", types.FLOATING_IP, floating_network="public")
    runner.run("floating_ip.create", owner, relationships=(rel(first),))
    address = owner.attributes["floating_ip_address"]
    thief = node("fip2", types.FLOATING_IP, floating_network="public", floating_ip_address=address)
    with pytest.raises(ConfigurationError, match=f"{address} on cloud 'east' is in use by port"):
        runner.run("floating_ip.create", thief, relationships=(rel(second),))
    assert cloud.find("floatingip", floating_ip_address=address)[0]["port_id"] == first.attributes["id"]
    # a free, pre-allocated address is used and, on delete, only released from the port, not deallocated
    runner.run("floating_ip.delete", owner)
    assert cloud.find("floatingip", floating_ip_address=address) == []
    keeper = OperationRunner()
    keeper.run("floating_ip.create", node("pre", types.FLOATING_IP, floating_network="public"))
    [pre] = cloud.snapshot()["floatingip"]
    taker = node("fip3", types.FLOATING_IP, floating_network="public", floating_ip_address=pre["floating_ip_address"])
    runner.run("floating_ip.create", taker, relationships=(rel(second),))
    runner.run("floating_ip.delete", taker)
    [still] = cloud.snapshot()["floatingip"]
    assert still["id"] == pre["id"] and still["port_id"] is None


def test_a_retried_security_group_create_skips_existing_rules_and_adds_the_rest(
    cloud: OpenStackEmulator, runner: OperationRunner
) -> None:
    ssh = {"protocol": "tcp", "port_range_min": 22, "port_range_max": 22}
    web = {"protocol": "tcp", "port_range_min": 443, "port_range_max": 443}
    runner.run("security_group.create", node("sg", types.SECURITY_GROUP, rules=[ssh]))
    # the retry of an attempt that died after the first rule: the first exists, the second is still missing
    runner.run("security_group.create", node("sg", types.SECURITY_GROUP, rules=[ssh, web, {"protocol": "icmp"}]))
    [group] = cloud.snapshot()["security_group"][1:]
    ingress = sorted(str(r["port_range_min"]) for r in group["security_group_rules"] if r["direction"] == "ingress")
    assert ingress == ["22", "443", "None"]
    assert cloud.created["security_group"] == 1


def attached_volume(runner: OperationRunner, **server_properties: Any) -> dict[str, Any]:
    """A server with a 1 GB volume attached: the keyword arguments of volume.attach/volume.detach."""
    server, volume = server_node(**server_properties), node("disk", types.VOLUME, size=1)
    runner.run("server.create", server)
    runner.run("volume.create", volume)
    runner.run("volume.attach", server, source=server, target=volume)
    return {"source": server, "target": volume}


def test_a_volume_going_to_error_while_detaching_fails_naming_both_ends_and_stays_in_the_ledger(
    cloud: OpenStackEmulator, runner: OperationRunner
) -> None:
    ends = attached_volume(runner)
    server_id, volume_id = ends["source"].attributes["id"], ends["target"].attributes["id"]
    cloud.faults.volumes_to_error_on_detach = 1
    with pytest.raises(NonRetryableError) as failure:
        runner.run("volume.detach", ends["source"], **ends)
    message = str(failure.value)
    assert f"volume {volume_id} went to error while detaching from server {server_id}" in message
    assert "cloud 'east'" in message and "openstack volume set --state available" in message
    assert [r.resource_id for r in runner.ledger if r.kind == "volume_attachment"] == [f"{server_id}/{volume_id}"]


def test_a_detach_that_never_completes_times_out_naming_both_ends_and_stays_in_the_ledger(
    cloud: OpenStackEmulator, runner: OperationRunner
) -> None:
    ends = attached_volume(runner, wait_timeout=0.5)
    server_id, volume_id = ends["source"].attributes["id"], ends["target"].attributes["id"]
    cloud.faults.volumes_stay_detaching = True
    with pytest.raises(RetryableError) as failure:
        runner.run("volume.detach", ends["source"], **ends)
    message = str(failure.value)
    assert f"volume {volume_id} to server {server_id}" in message and "cloud 'east'" in message
    assert "still detaching" in message and "raise wait_timeout" in message
    assert [r.resource_id for r in runner.ledger if r.kind == "volume_attachment"] == [f"{server_id}/{volume_id}"]

    cloud.faults.volumes_stay_detaching = False  # the retry asks again and waits
    runner.run("volume.detach", ends["source"], **ends)
    assert cloud.find("volume", id=volume_id)[0]["status"] == "available"
    assert [r for r in runner.ledger if r.kind == "volume_attachment"] == []


@pytest.mark.parametrize("nova_rolls_back", [False, True], ids=["nova-keeps-the-attachment", "nova-rolls-it-back"])
def test_a_volume_going_to_error_while_attaching_fails_and_the_ledger_holds_what_nova_still_attaches(
    cloud: OpenStackEmulator, runner: OperationRunner, nova_rolls_back: bool
) -> None:
    server, volume = server_node(), node("disk", types.VOLUME, size=1)
    runner.run("server.create", server)
    runner.run("volume.create", volume)
    server_id, volume_id = server.attributes["id"], volume.attributes["id"]
    cloud.faults.volumes_to_error_on_attach = 1
    cloud.faults.attach_errors_roll_back = nova_rolls_back
    with pytest.raises(NonRetryableError) as failure:
        runner.run("volume.attach", server, source=server, target=volume)
    message = str(failure.value)
    assert f"volume {volume_id} went to error while attaching to server {server_id}" in message
    assert f"node instance {server.id} on cloud 'east'" in message
    assert f"openstack volume show {volume_id}" in message and "resume" in message
    assert "device" not in server.attributes
    attachments = [r.resource_id for r in runner.ledger if r.kind == "volume_attachment"]
    assert attachments == ([] if nova_rolls_back else [f"{server_id}/{volume_id}"])

    # uninstall removes exactly what exists: the attachment Nova kept, then the volume (Cinder deletes one in error)
    runner.run("volume.detach", server, source=server, target=volume)
    runner.run("volume.delete", volume)
    assert cloud.find("volume", id=volume_id) == []
    assert [r for r in runner.ledger if r.kind in ("volume_attachment", "volume")] == []
