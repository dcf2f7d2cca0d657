"""A SOL001 VNFD rewritten onto tempano's OpenStack types (plugins/openstack/NFV_MAPPING.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tempano.blueprints import InputError, Plan, _loader, bind_inputs, compile, load

# A stand-in for blueprints/types/openstack.yaml (the OpenStack plugin's file): only what the mapping touches.
OPENSTACK_TYPES = """\
tosca_definitions_version: tosca_simple_yaml_1_3
node_types:
  tempano.nodes.openstack.Server:
    derived_from: tosca.nodes.Root
    properties:
      cloud: { type: string, required: false }
      name: { type: string, required: false }
      image: { type: string, required: false }
      user_data: { type: string, required: false }
      virtual_compute: { type: map, required: false }
      cpu_policy: { type: string, required: false }
      numa_nodes: { type: integer, required: false }
      flavor_extra_specs: { type: map, required: false }
    interfaces:
      Standard:
        type: tosca.interfaces.node.lifecycle.Standard
        operations:
          create: openstack.server.create
  tempano.nodes.openstack.Port:
    derived_from: tosca.nodes.Root
    properties:
      cloud: { type: string, required: false }
      network: { type: string, required: false }
      fixed_ips: { type: list, required: false }
      vnic_type: { type: string, required: false }
  tempano.nodes.openstack.Network:
    derived_from: tosca.nodes.Root
    properties:
      cloud: { type: string, required: false }
      mtu: { type: integer, required: false }
  tempano.nodes.openstack.Subnet:
    derived_from: tosca.nodes.Root
    properties:
      cloud: { type: string, required: false }
      cidr: { type: string, required: false }
      ip_version: { type: integer, default: 4 }
      gateway_ip: { type: string, required: false }
  tempano.nodes.openstack.Volume:
    derived_from: tosca.nodes.Root
    properties:
      cloud: { type: string, required: false }
      size: { type: string, required: false }
  tempano.nodes.openstack.FloatingIP:
    derived_from: tosca.nodes.Root
    properties:
      cloud: { type: string, required: false }
      floating_network: { type: string, required: false }
  tempano.nodes.openstack.ServerGroup:
    derived_from: tosca.nodes.Root
    properties:
      cloud: { type: string, required: false }
      policy: { type: string, default: anti-affinity }
"""

VNFD = """\
tosca_definitions_version: tosca_simple_yaml_1_3
imports:
  - etsi_nfv_sol001_common_types.yaml
  - etsi_nfv_sol001_vnfd_types.yaml
topology_template:
  inputs:
    cloud: { type: string, default: east }
    mgmt_network: { type: string, default: public }
  node_templates:
    fw:
      type: tosca.nodes.nfv.Vdu.Compute
      properties:
        name: fw
        vdu_profile: { min_number_of_instances: 1, max_number_of_instances: 4 }
        sw_image_data: { name: fw-image }
        boot_data: "#cloud-config"
      capabilities:
        virtual_compute:
          properties:
            virtual_memory: { virtual_mem_size: 2 GiB, numa_enabled: true }
            virtual_cpu: { num_virtual_cpu: 2, virtual_cpu_pinning: { virtual_cpu_pinning_policy: static } }
      requirements:
        - virtual_storage: logs
    logs:
      type: tosca.nodes.nfv.Vdu.VirtualBlockStorage
      properties:
        virtual_block_storage_data: { size_of_storage: 2 GB }
    data_cp:
      type: tosca.nodes.nfv.VduCp
      properties:
        layer_protocols: [ ipv4 ]
        order: 1
        protocol:
          - associated_layer_protocol: ipv4
            address_data:
              - address_type: ip_address
                l3_address_data: { ip_address_assignment: false, fixed_ip_address: [ 10.1.0.5 ] }
      requirements:
        - virtual_binding: fw
        - virtual_link: data
    mgmt_cp:
      type: tosca.nodes.nfv.VduCp
      properties:
        layer_protocols: [ ipv4 ]
        order: 0
        protocol:
          - associated_layer_protocol: ipv4
            address_data:
              - address_type: ip_address
                l3_address_data: { ip_address_assignment: true, floating_ip_activated: true }
      requirements:
        - virtual_binding: fw
    data:
      type: tosca.nodes.nfv.VnfVirtualLink
      properties:
        connectivity_type: { layer_protocols: [ ipv4 ] }
        vl_profile:
          virtual_link_protocol_data:
            - associated_layer_protocol: ipv4
              l2_protocol_data: { mtu: 1450 }
              l3_protocol_data: { ip_version: ipv4, cidr: 10.1.0.0/24, gateway_ip: 10.1.0.1 }
  policies:
    - spread:
        type: tosca.policies.nfv.AntiAffinityRule
        targets: [ fw ]
        properties: { scope: nfvi_node }
    - start_two:
        type: tosca.policies.nfv.VduInitialDelta
        properties: { initial_delta: { number_of_instances: 2 } }
        targets: [ fw ]
"""


@pytest.fixture
def openstack_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    types = tmp_path / "types"
    types.mkdir()
    for path in _loader.TYPES_DIR.glob("*.yaml"):
        if path.name != "openstack.yaml":
            shutil.copy(path, types / path.name)
    (types / "openstack.yaml").write_text(OPENSTACK_TYPES)
    monkeypatch.setattr(_loader, "TYPES_DIR", types)
    return types


def compile_vnfd(tmp_path: Path, text: str = VNFD) -> Plan:
    path = tmp_path / "vnfd.yaml"
    path.write_text(text)
    return compile(load(path), has_operation=None)


def test_vdu_becomes_a_server_booting_with_its_ports(openstack_library: Path, tmp_path: Path) -> None:
    plan = compile_vnfd(tmp_path)
    fw = plan.nodes["fw"]
    assert (fw.type, fw.nfv_type) == ("tempano.nodes.openstack.Server", "tosca.nodes.nfv.Vdu.Compute")
    assert [(r.name, r.target) for r in fw.relationships] == [
        ("port", "mgmt_cp"),
        ("port", "data_cp"),
        ("volume", "logs"),
        ("server_group", "spread"),
    ]
    assert fw.properties["image"] == "fw-image"
    assert fw.properties["user_data"] == "#cloud-config"
    assert fw.properties["virtual_compute"] == {"vcpus": 2, "ram": "2 GiB"}
    assert fw.properties["cpu_policy"] == "dedicated"
    assert fw.properties["numa_nodes"] == 1
    assert fw.properties["cloud"] == {"get_input": "cloud"}
    assert fw.operations["Standard.create"].implementation == "openstack.server.create"


def test_cps_links_and_storage(openstack_library: Path, tmp_path: Path) -> None:
    plan = compile_vnfd(tmp_path)
    data_cp = plan.nodes["data_cp"]
    assert [(r.name, r.target) for r in data_cp.relationships] == [
        ("network", "data"),
        ("subnet", "data_subnet"),
    ]
    assert data_cp.properties["fixed_ips"] == [{"ip_address": "10.1.0.5"}]
    assert plan.nodes["mgmt_cp"].properties["network"] == {"get_input": "mgmt_network"}
    fip = plan.nodes["mgmt_cp_floating_ip"]
    assert fip.type == "tempano.nodes.openstack.FloatingIP"
    assert [(r.name, r.target) for r in fip.relationships] == [("port", "mgmt_cp")]
    assert plan.nodes["data"].properties["mtu"] == 1450
    subnet = plan.nodes["data_subnet"].properties
    assert (subnet["cidr"], subnet["gateway_ip"], subnet["ip_version"]) == ("10.1.0.0/24", "10.1.0.1", 4)
    assert plan.nodes["logs"].properties["size"] == "2 GB"
    assert plan.nodes["spread"].properties["policy"] == "anti-affinity"


def test_ports_install_before_the_server_and_the_vdu_scales_as_a_group(openstack_library: Path, tmp_path: Path) -> None:
    plan = compile_vnfd(tmp_path)
    install = plan.workflows["install"].steps
    assert install["fw"].after == ("data_cp", "logs", "mgmt_cp", "spread")
    assert install["data_cp"].after == ("data", "data_subnet")
    group = plan.groups["fw_scaling"]
    assert group.members == ("data_cp", "fw", "logs", "mgmt_cp", "mgmt_cp_floating_ip")
    assert (group.instances.default, group.instances.min, group.instances.max) == (2, 1, 4)


def test_external_cp_without_network_input_gets_a_required_input(openstack_library: Path, tmp_path: Path) -> None:
    text = VNFD.replace("    mgmt_network: { type: string, default: public }\n", "")
    plan = compile_vnfd(tmp_path, text)
    assert plan.nodes["mgmt_cp"].properties["network"] == {"get_input": "mgmt_cp_network"}
    spec = plan.inputs["mgmt_cp_network"]
    assert spec.required and spec.type == "string" and spec.default is None
    assert "external connection point mgmt_cp (of fw)" in spec.description
    with pytest.raises(InputError) as caught:
        bind_inputs(plan, {})
    (error,) = caught.value.errors
    assert error.entity == "mgmt_cp_network"
    assert error.message.startswith("required input missing (type string): Name or id of the existing network")
    assert error.message.endswith("; give it a value")
    bound = bind_inputs(plan, {"mgmt_cp_network": "provider-net"})
    assert bound.nodes["mgmt_cp"].properties["network"] == "provider-net"


def test_external_cps_reuse_a_declared_external_network_input(openstack_library: Path, tmp_path: Path) -> None:
    text = VNFD.replace("mgmt_network: { type: string, default: public }", "external_network: { type: string }")
    plan = compile_vnfd(tmp_path, text)
    assert plan.nodes["mgmt_cp"].properties["network"] == {"get_input": "external_network"}
    assert "mgmt_cp_network" not in plan.inputs


BOOT_FROM_VOLUME = """\
tosca_definitions_version: tosca_simple_yaml_1_3
imports:
  - etsi_nfv_sol001_common_types.yaml
  - etsi_nfv_sol001_vnfd_types.yaml
topology_template:
  node_templates:
    vdu:
      type: tosca.nodes.nfv.Vdu.Compute
      properties:
        name: vdu
        vdu_profile: { min_number_of_instances: 1, max_number_of_instances: 1 }
        sw_image_data: { name: ignored-when-booting-from-volume }
      requirements:
        - virtual_storage: data
        - virtual_storage: root
    root:
      type: tosca.nodes.nfv.Vdu.VirtualBlockStorage
      properties:
        virtual_block_storage_data: { size_of_storage: 10 GiB }
        sw_image_data:
          name: vnf-image
          version: "1.0"
          checksum: { algorithm: sha-256, hash: 0123 }
          container_format: bare
          disk_format: qcow2
          min_disk: 2 GiB
          size: 1 GiB
    data:
      type: tosca.nodes.nfv.Vdu.VirtualBlockStorage
      properties:
        virtual_block_storage_data: { size_of_storage: 1 GiB }
"""


def test_storage_with_an_image_becomes_the_boot_volume(tmp_path: Path) -> None:
    plan = compile_vnfd(tmp_path, BOOT_FROM_VOLUME)  # with the real OpenStack types
    root, vdu = plan.nodes["root"], plan.nodes["vdu"]
    assert root.type == "tempano.nodes.openstack.Volume"
    assert (root.properties["image"], root.properties["size"]) == ("vnf-image", "10 GiB")
    assert "image" not in vdu.properties
    assert [(r.name, r.type, r.target) for r in vdu.relationships] == [
        ("volume", "tempano.relationships.openstack.AttachesTo", "data"),
        ("boot_volume", "tempano.relationships.openstack.BootsFrom", "root"),
    ]
    (boot,) = (r for r in vdu.relationships if r.name == "boot_volume")
    assert boot.operations == {}  # booted with it, never hot-plugged nor detached
    assert plan.workflows["install"].steps["vdu"].after == ("data", "root")
    assert plan.workflows["uninstall"].steps["root"].after == ("vdu",)


def test_without_openstack_types_nodes_keep_their_nfv_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    types = tmp_path / "types"
    types.mkdir()
    for path in _loader.TYPES_DIR.glob("*.yaml"):
        if path.name != "openstack.yaml":
            shutil.copy(path, types / path.name)
    monkeypatch.setattr(_loader, "TYPES_DIR", types)
    plan = compile_vnfd(tmp_path)
    assert plan.nodes["fw"].type == "tosca.nodes.nfv.Vdu.Compute"
    assert plan.nodes["fw"].implemented_by == "tempano.nodes.openstack.Server"
