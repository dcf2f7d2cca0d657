"""Create then delete every resource kind through the real openstacksdk: the emulated cloud ends empty."""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import pytest
from openstack.warnings import RemovedInSDK60Warning

from tempano.plugins.contract import ResourceNotFound
from tempano.plugins.openstack import _types as types
from tempano.plugins.openstack._connection import connect
from tempano.plugins.openstack.testing import OpenStackEmulator
from tempano.plugins.openstack.testing.harness import OperationRunner as Runner
from tempano.plugins.openstack.testing.harness import depends_on as rel
from tempano.plugins.openstack.testing.harness import openstack_node

node = partial(openstack_node, cloud="east")

PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvTesttempanokey tempano@test"


def network_stack(runner: Runner) -> dict[str, Any]:
    """network, subnet, security group, port, router (gateway + interface) — in install order."""
    net = node("net", types.NETWORK, "tosca.nodes.network.Network", mtu=1400)
    runner.run("network.create", net)
    subnet = node("subnet", types.SUBNET, cidr="10.10.0.0/24", dns_nameservers=["9.9.9.9"])
    runner.run("subnet.create", subnet, relationships=(rel(net),))
    group = node(
        "sg",
        types.SECURITY_GROUP,
        rules=[
            {"protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"},
            {"protocol": "icmp"},
            {"remote_group": "self"},
        ],
    )
    runner.run("security_group.create", group)
    port = node(
        "port",
        types.PORT,
        "tosca.nodes.network.Port",
        fixed_ips=[{"ip_address": "10.10.0.50"}],
        allowed_address_pairs=[{"ip_address": "10.10.0.0/24"}],
        vnic_type="direct",
    )
    runner.run("port.create", port, relationships=(rel(net), rel(group)))
    router = node("router", types.ROUTER, external_network="public")
    runner.run("router.create", router, relationships=(rel(subnet),))
    return {"net": net, "subnet": subnet, "sg": group, "port": port, "router": router}


def test_network_kinds_are_created_as_asked_and_deleted_without_trace(cloud: OpenStackEmulator, runner: Runner) -> None:
    stack = network_stack(runner)
    [port] = cloud.find("port", id=stack["port"].attributes["id"])
    assert port["fixed_ips"][0]["ip_address"] == "10.10.0.50"
    assert port["security_groups"] == [stack["sg"].attributes["id"]]
    assert port["allowed_address_pairs"] == [{"ip_address": "10.10.0.0/24"}]
    assert port["binding:vnic_type"] == "direct"
    assert port["tags"] == ["tempano:dep.port_1.create"]
    [group] = cloud.find("security_group", id=stack["sg"].attributes["id"])
    assert len(group["security_group_rules"]) == 2 + 3  # two default egress rules + ours
    [router] = cloud.find("router", id=stack["router"].attributes["id"])
    assert router["external_gateway_info"]["network_id"] == cloud.find("network", name="public")[0]["id"]
    assert cloud.find("port", device_id=router["id"], device_owner="network:router_interface")
    assert cloud.find("network", id=stack["net"].attributes["id"])[0]["mtu"] == 1400

    for name, kind in (("router", "router"), ("port", "port"), ("sg", "security_group"), ("subnet", "subnet"),
                       ("net", "network")):  # fmt: skip
        runner.run(f"{kind}.delete", stack[name])
    assert cloud.leftovers() == {}
    assert runner.ledger == []


def test_server_with_nfv_flavor_ports_keypair_group_volume_and_floating_ip(
    cloud: OpenStackEmulator, runner: Runner
) -> None:
    stack = network_stack(runner)
    keypair = node("key", types.KEYPAIR, public_key=PUBKEY)
    runner.run("keypair.create", keypair)
    group = node("group", types.SERVER_GROUP, policy="anti-affinity")
    runner.run("server_group.create", group)
    volume = node("disk", types.VOLUME, "tosca.nodes.Storage.BlockStorage", size="2 GB")
    runner.run("volume.create", volume)
    server = node(
        "vdu",
        types.SERVER,
        "tosca.nodes.Compute",
        image="cirros",
        virtual_compute={"num_virtual_cpu": 2, "virtual_mem_size": "1 GiB", "size_of_storage": "4 GB"},
        cpu_policy="dedicated",
        numa_nodes=1,
        mem_page_size="large",
        user_data="#cloud-config\nhostname: vdu\n",
        config_drive=True,
        availability_zone="nova",
        metadata={"role": "firewall"},
        scheduler_hints={"build_near_host_ip": "10.0.0.1"},
    )
    runner.run(
        "server.create",
        server,
        relationships=(rel(stack["port"]), rel(stack["net"]), rel(keypair), rel(group)),
    )
    attrs = server.attributes
    [nova] = cloud.find("server", id=attrs["id"])
    assert nova["status"] == "ACTIVE" and attrs["status"] == "ACTIVE"
    assert nova["key_name"] == keypair.attributes["name"]
    assert nova["metadata"] == {"role": "firewall", "tempano_idempotency_key": "dep.vdu_1.create"}
    assert nova["config_drive"] == "True" and nova["user_data"]
    assert nova["flavor"]["vcpus"] == 2 and nova["flavor"]["ram"] == 1024 and nova["flavor"]["disk"] == 4
    assert nova["flavor"]["extra_specs"] == {
        "hw:cpu_policy": "dedicated",
        "hw:numa_nodes": "1",
        "hw:mem_page_size": "large",
    }
    assert cloud.state.hidden[attrs["id"]]["scheduler_hints"]["group"] == group.attributes["id"]
    # the NIC order follows the relationships: the port first, then a port Nova makes on the network
    assert attrs["private_address"] == "10.10.0.50"
    assert len(cloud.find("port", device_id=attrs["id"])) == 2

    fip = node("fip", types.FLOATING_IP, floating_network="public")
    runner.run("floating_ip.create", fip, relationships=(rel(stack["port"]),))
    assert cloud.find("floatingip", id=fip.attributes["id"])[0]["port_id"] == stack["port"].attributes["id"]
    attach_ctx = {"source": server, "target": volume}
    out = runner.run("volume.attach", server, **attach_ctx)
    assert out == {"device": "/dev/vdb"}
    assert cloud.find("volume", id=volume.attributes["id"])[0]["status"] == "in-use"
    assert runner.run("server.check", server) == {"healthy": True, "status": "ACTIVE"}
    runner.run("server.stop", server)
    assert cloud.find("server", id=attrs["id"])[0]["status"] == "SHUTOFF"
    assert runner.run("server.check", server)["healthy"] is False  # type: ignore[index]
    runner.run("server.start", server)
    assert cloud.find("server", id=attrs["id"])[0]["status"] == "ACTIVE"

    # uninstall, reverse order
    runner.run("volume.detach", server, **attach_ctx)
    assert cloud.find("volume", id=volume.attributes["id"])[0]["status"] == "available"
    runner.run("floating_ip.delete", fip)
    runner.run("server.delete", server)
    for kind, inst in (("volume", volume), ("server_group", group), ("keypair", keypair)):
        runner.run(f"{kind}.delete", inst)
    for name, kind in (("router", "router"), ("port", "port"), ("sg", "security_group"), ("subnet", "subnet"),
                       ("net", "network")):  # fmt: skip
        runner.run(f"{kind}.delete", stack[name])
    assert cloud.leftovers() == {}
    assert runner.ledger == []


def test_name_lookups_pass_ignore_missing_so_sdk_6_changes_nothing(cloud: OpenStackEmulator, runner: Runner) -> None:
    """openstacksdk warns (RemovedInSDK60Warning) on find_* calls that rely on ignore_missing=True, whose
    default flips in SDK 6: every lookup by name here, hit or miss, must pass it and catch the miss."""
    # openstacksdk 4.22 warns about InfluxDB on every new connection whatever clouds.yaml says: not ours
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RemovedInSDK60Warning)
        connect("east")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RemovedInSDK60Warning)
        net = node("net", types.NETWORK, "tosca.nodes.network.Network")
        runner.run("network.create", net)
        subnet = node("subnet", types.SUBNET, cidr="10.20.0.0/24")
        runner.run("subnet.create", subnet, relationships=(rel(net),))
        group = node("sg", types.SECURITY_GROUP, rules=[{"protocol": "icmp"}])
        runner.run("security_group.create", group)
        port = node(
            "port",
            types.PORT,
            "tosca.nodes.network.Port",
            fixed_ips=[{"subnet": subnet.attributes["name"]}],
            security_groups=[group.attributes["name"]],
        )
        runner.run("port.create", port, relationships=(rel(net),))
        router = node("router", types.ROUTER, external_network="public")
        runner.run("router.create", router, relationships=(rel(subnet),))
        fip = node("fip", types.FLOATING_IP, floating_network="public")
        runner.run("floating_ip.create", fip, relationships=(rel(port),))
        keypair = node("key", types.KEYPAIR, public_key=PUBKEY)
        runner.run("keypair.create", keypair)
        runner.run("keypair.create", keypair)  # the second create finds it by name
        volume = node("disk", types.VOLUME, size=1)
        runner.run("volume.create", volume)
        with pytest.raises(ResourceNotFound, match="network 'nowhere' does not exist"):
            runner.run("router.create", node("lost", types.ROUTER, external_network="nowhere"))
        for kind, inst in (("volume", volume), ("keypair", keypair), ("floating_ip", fip), ("router", router),
                           ("port", port), ("security_group", group), ("subnet", subnet), ("network", net)):  # fmt: skip
            runner.run(f"{kind}.delete", inst)
    assert cloud.leftovers() == {}
