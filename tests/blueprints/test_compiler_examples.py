"""Every example under blueprints/examples compiles with the installed plugins and binds its default inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tempano.blueprints import bind_inputs, compile, load

EXAMPLES = Path(__file__).parents[2] / "blueprints" / "examples"


def blueprints() -> list[Path]:
    """YAML files with a topology_template (playbooks and other helpers are not blueprints)."""
    found = []
    for path in sorted(EXAMPLES.rglob("*.y*ml")):
        document = yaml.safe_load(path.read_text())
        if isinstance(document, dict) and "topology_template" in document:
            found.append(path)
    return found


def test_the_examples_are_found() -> None:
    names = {str(p.relative_to(EXAMPLES)) for p in blueprints()}
    assert {
        "hello/hello.yaml",
        "vfw/vfw.yaml",
        "openstack/multi_network.yaml",
        "openstack/vnfd_firewall.yaml",
        "scripts/scripts.yaml",
    } <= names


@pytest.mark.parametrize("path", blueprints(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_compiles(path: Path) -> None:
    blueprint = load(path)
    plan = compile(blueprint)  # plugin operations checked against the installed plugins
    assert plan.nodes and set(plan.workflows["install"].steps) == set(plan.nodes)
    placeholders: dict[str, Any] = {
        name: "placeholder" for name, spec in plan.inputs.items() if spec.required and spec.default is None
    }
    bound = bind_inputs(plan, placeholders)
    assert "get_input" not in bound.model_dump_json()
