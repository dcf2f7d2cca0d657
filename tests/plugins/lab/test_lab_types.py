"""The lab/ansible type files and the vFW example parse with tosca-parser and name real operations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from toscaparser.tosca_template import ToscaTemplate

from tempano.plugins.ansible import plugin as ansible_plugin
from tempano.plugins.lab import plugin as lab_plugin
from tempano.plugins.registry import PluginRegistry

BLUEPRINTS = Path(__file__).parents[3] / "blueprints"
TYPES = [BLUEPRINTS / "types" / name for name in ("core.yaml", "lab.yaml", "ansible.yaml", "scaling.yaml")]
VFW = BLUEPRINTS / "examples" / "vfw" / "vfw.yaml"


def implementations(node: Any) -> Iterator[str]:
    """Every ``implementation:`` value anywhere in a YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "implementation" and isinstance(value, str):
                yield value
            else:
                yield from implementations(value)
    elif isinstance(node, list):
        for item in node:
            yield from implementations(item)


@pytest.mark.parametrize("path", [TYPES[1], TYPES[2], VFW], ids=lambda p: p.name)
def test_every_implementation_names_a_registered_operation(path: Path) -> None:
    registry = PluginRegistry([lab_plugin, ansible_plugin])
    found = list(implementations(yaml.safe_load(path.read_text())))
    assert found
    for reference in found:
        registry.resolve(reference)  # raises UnknownOperation naming the bad reference


def test_vfw_example_parses_with_the_type_library(tmp_path: Path) -> None:
    text = VFW.read_text()
    imports = "imports:\n" + "".join(f"  - {path}\n" for path in TYPES)
    copy = tmp_path / "vfw.yaml"
    copy.write_text(text.replace("\nmetadata:", f"\n{imports}\nmetadata:", 1))

    template = ToscaTemplate(str(copy))

    nodes = {node.name: node.type for node in template.nodetemplates}
    assert nodes["firewall"] == "tempano.nodes.lab.Server"
    assert nodes["client_port"] == "tempano.nodes.lab.Port"
    assert nodes["firewall_app"] == "tempano.nodes.vfw.Firewall"
    assert {output.name for output in template.outputs} >= {"server_address", "check_command"}
    firewall_app = next(n for n in template.nodetemplates if n.name == "firewall_app")
    assert {(i.type, i.name) for i in firewall_app.interfaces} == {
        ("Standard", "configure"),
        ("Firewall", "update_rules"),
    }
