"""Which instances an operation may read: named nodes in its inputs count, not only its relationships."""

from __future__ import annotations

from pathlib import Path

from tempano.blueprints import compile_path
from tempano.store.resolver import related_nodes, sibling_nodes

BLUEPRINT = """
tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    far:
      type: tempano.nodes.Logger
    near:
      type: tempano.nodes.Logger
    reader:
      type: tempano.nodes.Logger
      requirements:
        - dependency: near
      interfaces:
        Standard:
          configure:
            implementation: builtin.set_attributes
            inputs:
              seen: { concat: [ { get_attribute: [far, message] }, "!" ] }
"""


def test_a_node_named_in_an_operation_input_is_readable_without_a_relationship(tmp_path: Path) -> None:
    path = tmp_path / "bp.yaml"
    path.write_text(BLUEPRINT)

    plan = compile_path(path)

    assert related_nodes(plan, "reader") == {"reader", "near", "far"}
    assert related_nodes(plan, "far") == {"far"}


def test_an_operation_reads_every_instance_of_related_nodes_but_not_its_own_siblings(tmp_path: Path) -> None:
    path = tmp_path / "bp.yaml"
    path.write_text(BLUEPRINT)

    plan = compile_path(path)

    assert sibling_nodes(plan, "reader") == {"near", "far"}
    assert sibling_nodes(plan, "far") == set()
