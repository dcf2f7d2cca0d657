"""The sdn type library parses with tosca-parser and wires WanLink's requirements to sites and networks."""

from __future__ import annotations

from pathlib import Path

import pytest
from toscaparser.common.exception import ValidationError
from toscaparser.tosca_template import ToscaTemplate

import tempano.blueprints
from tempano.plugins import load_plugins

TYPES = Path(tempano.blueprints.__file__).parent / "types"

BLUEPRINT = """
tosca_definitions_version: tosca_simple_yaml_1_3
imports:
  - {types}/core.yaml
  - {types}/sdn.yaml
topology_template:
  node_templates:
    central:
      type: tempano.nodes.sdn.Site
      properties: {{driver: {driver}, underlay_address: 10.0.0.1, edge_namespace: edge-a}}
    regional:
      type: tempano.nodes.sdn.Site
      properties:
        driver: onos
        controller_url: http://onos:8181
        credentials_secret: onos
        attachment_point: of:0000000000000001/1
    net_a:
      type: tosca.nodes.network.Network
    net_b:
      type: tosca.nodes.network.Network
    wan:
      type: tempano.nodes.sdn.WanLink
      properties: {{service_type: L2, vni: 42, bandwidth_mbps: 100}}
      requirements:
        - site_a: central
        - site_b: regional
        - endpoint_a: net_a
        - endpoint_b: net_b
"""


def parse(tmp_path: Path, driver: str = "linux") -> ToscaTemplate:
    path = tmp_path / "bp.yaml"
    path.write_text(BLUEPRINT.format(types=TYPES, driver=driver))
    return ToscaTemplate(str(path))


def test_wan_link_depends_on_both_sites_and_both_networks(tmp_path: Path) -> None:
    template = parse(tmp_path)

    [wan] = [n for n in template.nodetemplates if n.name == "wan"]
    assert {next(iter(r.values())) for r in wan.requirements} == {"central", "regional", "net_a", "net_b"}
    assert {t.name for t in wan.relationships.values()} == {"central", "regional", "net_a", "net_b"}


def test_every_operation_the_types_name_exists_in_the_installed_plugin(tmp_path: Path) -> None:
    template = parse(tmp_path)
    registry = load_plugins()

    references = {
        op["implementation"]
        for node in template.nodetemplates
        if node.type.startswith("tempano.nodes.sdn.")
        for interface in node.type_definition.interfaces.values()
        for op in interface["operations"].values()
    }

    assert references == {f"sdn.{o}" for o in ("site.create", "site.delete", "site.check")} | {
        f"sdn.{o}" for o in ("link.create", "link.delete", "link.check")
    }
    assert all(registry.has(ref) for ref in references)


def test_an_unknown_driver_is_rejected_by_the_parser(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r'The value "vxlan" of property "driver" is not valid'):
        parse(tmp_path, driver="vxlan")
