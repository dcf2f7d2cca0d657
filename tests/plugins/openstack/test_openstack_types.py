"""The type library parses with tosca-parser and names real operations; the multi-network example deploys."""

from __future__ import annotations

import graphlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from toscaparser.tosca_template import ToscaTemplate

from tempano.plugins.contract import InstanceView, Relationship
from tempano.plugins.openstack import plugin
from tempano.plugins.openstack.testing import OpenStackEmulator
from tempano.plugins.openstack.testing.harness import FAST_POLLING, OperationRunner
from tempano.plugins.testing import instance

ROOT = Path(__file__).resolve().parents[3] / "blueprints"
TYPES = yaml.safe_load((ROOT / "types" / "openstack.yaml").read_text())
EXAMPLE = ROOT / "examples" / "openstack" / "multi_network.yaml"


def implementations(definitions: dict[str, Any]) -> list[str]:
    found = []
    for section in ("node_types", "relationship_types"):
        for definition in definitions.get(section, {}).values():
            for interface in definition.get("interfaces", {}).values():
                found += [op["implementation"] for op in interface.get("operations", {}).values()]
    return found


def test_every_implementation_is_an_operation_of_the_plugin() -> None:
    names = implementations(TYPES)
    assert len(names) >= 25
    assert [n for n in names if n.partition(".")[2] not in plugin.operations or not n.startswith("openstack.")] == []


def test_the_types_and_the_example_parse_with_tosca_parser(tmp_path: Path) -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    document["imports"] = [str(ROOT / "types" / "core.yaml"), str(ROOT / "types" / "openstack.yaml")]
    path = tmp_path / "blueprint.yaml"
    path.write_text(yaml.safe_dump(document))
    template = ToscaTemplate(str(path))
    types = {node.name: node.type for node in template.nodetemplates}
    assert types["fw_a"] == "tempano.nodes.openstack.Server"
    assert types["fw_log"] == "tempano.nodes.openstack.Volume"


def test_the_vnfd_example_uses_the_documented_etsi_types() -> None:
    vnfd = yaml.safe_load((ROOT / "examples" / "openstack" / "vnfd_firewall.yaml").read_text())
    used = {node["type"] for node in vnfd["topology_template"]["node_templates"].values()}
    mapping = (
        Path(plugin.__module__.replace(".", "/")).name,
        (ROOT.parent / "plugins/openstack/NFV_MAPPING.md"),
    )
    text = mapping[1].read_text()
    assert used - {"tosca.nodes.nfv.VNF"} <= {
        "tosca.nodes.nfv.Vdu.Compute",
        "tosca.nodes.nfv.VduCp",
        "tosca.nodes.nfv.VnfVirtualLink",
        "tosca.nodes.nfv.Vdu.VirtualBlockStorage",
    }
    assert all(name in text for name in used)


class MiniEngine:
    """Just enough of an install/uninstall walk (dependency order, relationship ops) to run the example."""

    def __init__(self, document: dict[str, Any]) -> None:
        topology = document["topology_template"]
        self.inputs = {name: spec.get("default") for name, spec in topology.get("inputs", {}).items()}
        self.templates: dict[str, Any] = topology["node_templates"]
        self.types = yaml.safe_load((ROOT / "types" / "openstack.yaml").read_text())["node_types"]
        self.instances = {name: self._instance(name, t) for name, t in self.templates.items()}
        graph = {name: [self._target(r) for r in t.get("requirements", [])] for name, t in self.templates.items()}
        self.order = list(graphlib.TopologicalSorter(graph).static_order())
        self.runner = OperationRunner()

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"get_input"}:
            return self.inputs[value["get_input"]]
        if isinstance(value, dict):
            return {k: self._resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve(v) for v in value]
        return value

    def _instance(self, name: str, template: dict[str, Any]) -> InstanceView:
        kind = template["type"]
        hierarchy = [kind]
        while self.types.get(hierarchy[-1], {}).get("derived_from"):
            hierarchy.append(self.types[hierarchy[-1]]["derived_from"])
        properties = {**FAST_POLLING, **self._resolve(template.get("properties", {}))}
        return instance(name, type=kind, type_hierarchy=tuple(hierarchy), properties=properties)

    @staticmethod
    def _target(requirement: dict[str, Any]) -> str:
        [(_, target)] = requirement.items()
        return str(target)

    def _relationships(self, name: str) -> tuple[Relationship, ...]:
        return tuple(
            Relationship(req, "tosca.relationships.DependsOn", (), self.instances[target])
            for requirement in self.templates[name].get("requirements", [])
            for req, target in requirement.items()
        )

    def _operation(self, name: str, lifecycle: str) -> str | None:
        interfaces = self.types[self.templates[name]["type"]]["interfaces"]
        op = interfaces["Standard"]["operations"].get(lifecycle)
        return op["implementation"].partition(".")[2] if op else None

    def _attachments(self, name: str) -> list[str]:
        return [t for r in self.templates[name].get("requirements", []) for k, t in r.items() if k == "volume"]

    def install(self) -> None:
        for name in self.order:
            for lifecycle in ("create", "start"):
                operation = self._operation(name, lifecycle)
                if operation:
                    self.runner.retrying(operation, self.instances[name], relationships=self._relationships(name))
            for volume in self._attachments(name):
                server, disk = self.instances[name], self.instances[volume]
                self.runner.retrying("volume.attach", server, source=server, target=disk)

    def uninstall(self) -> None:
        for name in reversed(self.order):
            for volume in self._attachments(name):
                server, disk = self.instances[name], self.instances[volume]
                self.runner.retrying("volume.detach", server, source=server, target=disk)
            for lifecycle in ("stop", "delete"):
                operation = self._operation(name, lifecycle)
                if operation:
                    self.runner.retrying(operation, self.instances[name])


@pytest.mark.parametrize("error_rate", [0.0, 0.1])
def test_the_multi_network_example_installs_and_uninstalls_without_trace(
    cloud: OpenStackEmulator, error_rate: float
) -> None:
    cloud.faults.error_rate = error_rate
    engine = MiniEngine(yaml.safe_load(EXAMPLE.read_text()))
    engine.install()
    fw_a, fw_b = engine.instances["fw_a"].attributes, engine.instances["fw_b"].attributes
    assert fw_a["status"] == fw_b["status"] == "ACTIVE"
    assert fw_a["host_id"] != fw_b["host_id"]  # anti-affinity
    assert engine.instances["fw_a_public"].attributes["floating_ip_address"].startswith("203.0.113.")
    [log] = cloud.snapshot()["volume"]
    assert log["status"] == "in-use" and log["size"] == 2
    assert {s["name"]: s["OS-EXT-STS:vm_state"] for s in cloud.snapshot()["server"]} == {
        "dep-fw_a_1": "active",
        "dep-fw_b_1": "active",
    }
    counts = {kind: len(items) for kind, items in cloud.leftovers().items()}
    assert counts["server"] == 2 and counts["network"] == 2 and counts["port"] == 4 + 1  # + router interface
    engine.uninstall()
    assert cloud.leftovers() == {}
    assert engine.runner.ledger == []
