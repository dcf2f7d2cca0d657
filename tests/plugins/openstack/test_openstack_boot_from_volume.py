"""Boot from volume through the real openstacksdk: a Volume made from an image, a Server booting from it."""

from __future__ import annotations

from functools import partial

import pytest

from tempano.plugins.contract import ConfigurationError, InstanceView, NonRetryableError, Relationship
from tempano.plugins.openstack import _types as types
from tempano.plugins.openstack.testing import OpenStackEmulator
from tempano.plugins.openstack.testing.harness import OperationRunner as Runner
from tempano.plugins.openstack.testing.harness import openstack_node

node = partial(openstack_node, cloud="east")


def boots_from(volume: InstanceView) -> Relationship:
    return Relationship("boot_volume", types.BOOTS_FROM, (types.BOOTS_FROM, "tosca.relationships.DependsOn"), volume)


def test_server_boots_from_a_volume_made_from_an_image_and_uninstall_leaves_nothing(
    cloud: OpenStackEmulator, runner: Runner
) -> None:
    image = cloud.seed_image("vnf-image", min_disk=2)
    volume = node("root", types.VOLUME, "tosca.nodes.BlockStorage", size="4 GiB", image="vnf-image")
    runner.run("volume.create", volume)
    [cinder] = cloud.find("volume", id=volume.attributes["id"])
    assert cinder["bootable"] == "true" and cinder["size"] == 4
    assert cinder["volume_image_metadata"]["image_id"] == image["id"]

    server = node("vdu", types.SERVER, "tosca.nodes.Compute", virtual_compute={"vcpus": 1, "ram": 512, "disk": 0})
    runner.run("server.create", server, relationships=(boots_from(volume),))
    [nova] = cloud.find("server", id=server.attributes["id"])
    assert nova["status"] == "ACTIVE"
    assert nova["image"] == ""  # booted from the volume, not from an image
    [cinder] = cloud.find("volume", id=volume.attributes["id"])
    assert cinder["status"] == "in-use"
    assert cinder["attachments"][0]["server_id"] == nova["id"] and cinder["attachments"][0]["device"] == "/dev/vda"

    # a retried create adopts the server instead of booting a second one on the same volume
    runner.run("server.create", server, relationships=(boots_from(volume),))
    assert cloud.count("server") == 1

    runner.run("server.delete", server)
    assert cloud.find("volume", id=volume.attributes["id"])[0]["status"] == "available"  # kept for its node
    runner.run("volume.delete", volume)
    assert cloud.leftovers() == {}
    assert runner.ledger == []


def test_a_volume_from_a_missing_image_is_refused_with_its_name(cloud: OpenStackEmulator, runner: Runner) -> None:
    volume = node("root", types.VOLUME, "tosca.nodes.BlockStorage", size=1, image="no-such-image")
    with pytest.raises(NonRetryableError, match="no-such-image"):
        runner.run("volume.create", volume)
    assert cloud.leftovers() == {}


def test_a_server_needs_an_image_or_a_boot_volume(cloud: OpenStackEmulator, runner: Runner) -> None:
    server = node("vdu", types.SERVER, "tosca.nodes.Compute", flavor="m1.tiny")
    with pytest.raises(ConfigurationError, match=r"needs an `image` .* or a `boot_volume`"):
        runner.run("server.create", server)
    data_volume = node("data", types.VOLUME, "tosca.nodes.BlockStorage", size=1)
    runner.run("volume.create", data_volume)
    with pytest.raises(NonRetryableError, match="is not bootable"):
        runner.run("server.create", server, relationships=(boots_from(data_volume),))
