"""ETSI SOL001 VNFDs: URL imports answered by the bundled profile, unfilled requirements, NFV type mapping."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tempano.blueprints import BlueprintError, Plan, _loader, compile, load

VNFD = """\
tosca_definitions_version: tosca_simple_yaml_1_3
description: A one-VDU firewall VNF, as a vendor writes it.
imports:
  - https://forge.etsi.org/rep/nfv/SOL001/raw/v2.6.1/etsi_nfv_sol001_common_types.yaml
  - https://forge.etsi.org/rep/nfv/SOL001/raw/v2.6.1/etsi_nfv_sol001_vnfd_types.yaml
node_types:
  # Stands in for the OpenStack plugin's type (plugins ship it in blueprints/types/openstack.yaml).
  tempano.nodes.openstack.Server:
    derived_from: tosca.nodes.Root
    interfaces:
      Standard:
        type: tosca.interfaces.node.lifecycle.Standard
        operations:
          create: openstack.server.create
          delete: openstack.server.delete
topology_template:
  node_templates:
    vnf:
      type: tosca.nodes.nfv.VNF
      properties:
        descriptor_id: 6f2c1d0e-0000-4000-8000-000000000001
        descriptor_version: "1.0"
        provider: Acme
        product_name: vFW
        software_version: "2.1"
        vnfm_info: [ tempano ]
        flavour_id: simple
        flavour_description: one VDU
    fw:
      type: tosca.nodes.nfv.Vdu.Compute
      properties:
        name: fw
        vdu_profile: { min_number_of_instances: 1, max_number_of_instances: 3 }
        sw_image_data: { name: fw-2.1, disk_format: qcow2 }
      capabilities:
        virtual_compute:
          properties:
            virtual_memory: { virtual_mem_size: 2 GB }
            virtual_cpu: { num_virtual_cpu: 2 }
      requirements:
        - virtual_storage: fw_disk
    fw_disk:
      type: tosca.nodes.nfv.Vdu.VirtualBlockStorage
      properties:
        virtual_block_storage_data: { size_of_storage: 10 GB }
    fw_inside:
      type: tosca.nodes.nfv.VduCp
      properties:
        layer_protocols: [ ipv4 ]
        order: 0
      requirements:
        - virtual_binding: fw
        - virtual_link: inside
    fw_outside:
      type: tosca.nodes.nfv.VduCp
      properties:
        layer_protocols: [ ipv4 ]
      requirements:
        - virtual_binding: fw
        # virtual_link left unfilled: an external connection point, connected at instantiation
    inside:
      type: tosca.nodes.nfv.VnfVirtualLink
      properties:
        connectivity_type: { layer_protocols: [ ipv4 ] }
        vl_profile:
          max_bitrate_requirements: { root: 1000000 }
          min_bitrate_requirements: { root: 100000 }
  policies:
    - fw_initial:
        type: tosca.policies.nfv.VduInitialDelta
        properties:
          initial_delta: { number_of_instances: 2 }
        targets: [ fw ]
"""


@pytest.fixture(scope="module", autouse=True)
def library_without_openstack_types(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Here the VNFD keeps its NFV types (the OpenStack rewrite is tested in test_compiler_nfv_mapping)."""
    types = tmp_path_factory.mktemp("types")
    for source in _loader.TYPES_DIR.glob("*.yaml"):
        if source.name != "openstack.yaml":
            shutil.copy(source, types / source.name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_loader, "TYPES_DIR", types)
        yield


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    path = tmp_path_factory.mktemp("vnfd") / "vnfd.yaml"
    path.write_text(VNFD)
    return compile(load(path), has_operation=None)


def test_url_imports_resolve_to_bundled_profile(tmp_path: Path) -> None:
    path = tmp_path / "vnfd.yaml"
    path.write_text(VNFD)
    blueprint = load(path)  # no network: the URLs are answered locally
    assert "<tempano profiles>/etsi_nfv_sol001_vnfd_types.yaml" in blueprint.sources.documents
    assert "tosca.nodes.nfv.VduCp" in blueprint.sources.types


def test_unfilled_requirements_are_accepted(plan: Plan) -> None:
    outside = plan.nodes["fw_outside"]
    assert [(r.name, r.target) for r in outside.relationships] == [("virtual_binding", "fw")]
    assert plan.nodes["vnf"].relationships == ()


def test_nfv_nodes_map_onto_tempano_types(plan: Plan) -> None:
    fw = plan.nodes["fw"]
    assert fw.implemented_by == "tempano.nodes.openstack.Server"
    assert fw.operations["Standard.create"].implementation == "openstack.server.create"
    assert plan.nodes["fw_inside"].implemented_by == "tempano.nodes.openstack.Port"
    assert plan.nodes["inside"].implemented_by == "tempano.nodes.openstack.Network"
    assert plan.nodes["fw_disk"].implemented_by == "tempano.nodes.openstack.Volume"
    assert plan.nodes["vnf"].implemented_by is None


def test_vdu_instances_from_profile_and_initial_delta(plan: Plan) -> None:
    counts = plan.nodes["fw"].instances
    assert (counts.default, counts.min, counts.max) == (2, 1, 3)


def test_install_order_follows_nfv_relationships(plan: Plan) -> None:
    install = plan.workflows["install"].steps
    assert install["fw"].after == ("fw_disk",)
    assert install["fw_inside"].after == ("fw", "inside")


def test_other_urls_are_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "vnfd.yaml"
    path.write_text(VNFD.replace("etsi_nfv_sol001_common_types.yaml", "acme_types.yaml", 1))
    with pytest.raises(BlueprintError) as caught:
        load(path)
    assert "remote import 'https://forge.etsi.org/rep/nfv/SOL001/raw/v2.6.1/acme_types.yaml' refused" in str(
        caught.value
    )


def test_bare_profile_imports_without_the_files_use_the_bundled_profile(tmp_path: Path) -> None:
    path = tmp_path / "vnfd.yaml"
    path.write_text(
        VNFD.replace("https://forge.etsi.org/rep/nfv/SOL001/raw/v2.6.1/etsi_nfv_sol001_", "etsi_nfv_sol001_")
    )
    plan = compile(load(path), has_operation=None)
    assert plan.nodes["fw"].implemented_by == "tempano.nodes.openstack.Server"


UNIMPORTED = """\
tosca_definitions_version: tosca_simple_yaml_1_2
topology_template:
  node_templates:
    db:
      type: tosca.nodes.nfv.Vdu.Compute
      properties:
        name: db
        vdu_profile: { min_number_of_instances: 1, max_number_of_instances: 1 }
        sw_image_data: { name: db-1.0, disk_format: qcow2 }
"""
TRUNK = """\
    trunk:
      type: tosca.nodes.nfv.VduSubportCp
"""


def test_sol001_types_used_without_importing_them_are_refused_with_what_to_import(tmp_path: Path) -> None:
    path = tmp_path / "vnfd.yaml"
    path.write_text(UNIMPORTED + TRUNK)
    with pytest.raises(BlueprintError) as caught:
        load(path)
    db, trunk = caught.value.errors
    assert (db.line, db.entity) == (5, "db")
    assert db.message == (
        "type 'tosca.nodes.nfv.Vdu.Compute' is an ETSI SOL001 (NFV) type, which the blueprint does not import: "
        "import its definitions, e.g. `imports: [etsi_nfv_sol001_vnfd_types.yaml]` (tempano answers that import "
        "with its own copy)"
    )
    assert (trunk.line, trunk.entity) == (11, "trunk")
    assert trunk.message.endswith("import a file that defines it (tempano's own SOL001 subset does not)")
    # Following the advice is enough.
    path.write_text(
        UNIMPORTED.replace("topology_template:", "imports: [etsi_nfv_sol001_vnfd_types.yaml]\ntopology_template:")
    )
    db_node = compile(load(path), has_operation=None).nodes["db"]
    assert "tosca.nodes.nfv.Vdu.Compute" in (db_node.nfv_type, db_node.type)
