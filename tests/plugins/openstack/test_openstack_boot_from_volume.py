"""Boot from volume through the real openstacksdk: a Volume made from an image, a Server booting from it."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from tempano.api.service import Tempano
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


VNFD = """\
tosca_definitions_version: tosca_simple_yaml_1_3
imports:
  - etsi_nfv_sol001_common_types.yaml
  - etsi_nfv_sol001_vnfd_types.yaml
topology_template:
  inputs:
    cloud: { type: string, default: east }
  node_templates:
    vdu:
      type: tosca.nodes.nfv.Vdu.Compute
      properties:
        name: vdu
        vdu_profile: { min_number_of_instances: 1, max_number_of_instances: 1 }
      capabilities:
        virtual_compute:
          properties:
            virtual_memory: { virtual_mem_size: 512 MiB }
            virtual_cpu: { num_virtual_cpu: 1 }
      requirements:
        - virtual_storage: root
    root:
      type: tosca.nodes.nfv.Vdu.VirtualBlockStorage
      properties:
        virtual_block_storage_data: { size_of_storage: 1 GiB }
        sw_image_data:
          name: cirros
          version: "0.6"
          checksum: { algorithm: sha-256, hash: 0123 }
          container_format: bare
          disk_format: qcow2
          min_disk: 1 GiB
          size: 1 GiB
    cp:
      type: tosca.nodes.nfv.VduCp
      properties:
        layer_protocols: [ ipv4 ]
      requirements:
        - virtual_binding: vdu
"""


@pytest.mark.asyncio(loop_scope="session")
async def test_a_vnfd_booting_from_volume_installs_and_uninstalls_through_the_engine(
    cloud: OpenStackEmulator, tempano: Tempano, tmp_path: Path
) -> None:
    path = tmp_path / "bp" / "vnfd.yaml"
    path.parent.mkdir()
    path.write_text(VNFD)
    tempano.upload_blueprint("bfv", path)
    await tempano.create_deployment("bfv-1", "bfv", {"cp_network": "public"})  # the input the compiler added
    install = await tempano.run("bfv-1", "install", timeout=300)
    assert install.status == "succeeded", install.error
    instances = {i.node: i for i in tempano.store.node_instances("bfv-1")}
    [server] = cloud.find("server", id=instances["vdu"].attributes["id"])
    [volume] = cloud.find("volume", id=instances["root"].attributes["id"])
    assert server["image"] == "" and volume["bootable"] == "true"
    assert volume["attachments"][0]["server_id"] == server["id"] and volume["attachments"][0]["device"] == "/dev/vda"
    uninstall = await tempano.run("bfv-1", "uninstall", timeout=300)
    assert uninstall.status == "succeeded", uninstall.error
    assert cloud.leftovers() == {}
