"""Which instances an operation may read: named nodes in its inputs count, not only its relationships."""

from __future__ import annotations

from pathlib import Path

from tempano.blueprints import compile_path
from tempano.store import NewInstance, Store
from tempano.store.resolver import operation_instances, related_nodes, sibling_nodes

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


HOSTED = """
tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    db:
      type: tempano.nodes.Logger
    vm:
      type: tosca.nodes.Compute
    app:
      type: tempano.nodes.Logger
      requirements:
        - host: vm
        - dependency: db
"""


def test_operation_instances_are_the_owner_its_host_chain_and_related_nodes_only(tmp_path: Path) -> None:
    path = tmp_path / "bp.yaml"
    path.write_text(HOSTED)
    plan = compile_path(path)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.create_schema()
    store.create_deployment(
        "d1",
        "bp",
        plan.model_dump(mode="json"),
        {},
        [
            NewInstance(id="db_1", node="db", index=1),
            NewInstance(id="db_2", node="db", index=2),
            *(NewInstance(id=f"vm_{i}", node="vm", index=i) for i in (1, 2, 3)),
            *(NewInstance(id=f"app_{i}", node="app", index=i, host_id=f"vm_{i}") for i in (1, 2, 3)),
        ],
    )

    owner = store.node_instance("d1", "app_2")
    loaded = operation_instances(store, plan, "d1", [owner])

    # Not app_1/app_3 (its siblings) nor vm_1/vm_3 (other instances' hosts): an install stays linear.
    assert sorted(loaded) == ["app_2", "db_1", "db_2", "vm_2"]
