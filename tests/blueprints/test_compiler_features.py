"""Compile-time semantics: functions, operations, relationships, scaling, workflows, directories and CSARs."""

from __future__ import annotations

import tempfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from tempano.blueprints import BlueprintError, InputError, Plan, bind_inputs, compile, compile_path, load

BLUEPRINT = """\
tosca_definitions_version: tosca_simple_yaml_1_3
imports:
  - types/app.yaml
topology_template:
  inputs:
    port:
      type: integer
      default: 8080
      constraints:
        - in_range: [1024, 65535]
    zone:
      type: string
      required: true
  node_templates:
    vm:
      type: tosca.nodes.Compute
      capabilities:
        host:
          properties: { num_cpus: 2, mem_size: 2 GB }
        scalable:
          properties: { min_instances: 1, max_instances: 4, default_instances: 2 }
    app:
      type: acme.nodes.App
      properties:
        listen: { get_input: port }
        url: { concat: [ "http://", { get_attribute: [ HOST, public_address ] }, ":", { get_input: port } ] }
        cpus: { get_property: [ HOST, host, num_cpus ] }
        label: { token: [ "a-b-c", "-", 1 ] }
        nested: { get_property: [ SELF, settings, tags, 0 ] }
        settings: { tags: [ blue, green ] }
        place: { join: [ [ { get_input: zone }, "rack1" ], "/" ] }
      requirements:
        - host: vm
        - backend:
            node: db
            relationship:
              type: acme.relationships.Wires
              properties: { weight: 3 }
      interfaces:
        Standard:
          configure:
            implementation: playbooks/configure.yml
            inputs:
              peer: { get_property: [ db, endpoint ] }
              tempano_timeout: 120
              tempano_retry: { max_attempts: 3, initial_interval: 2 }
          start: scripts/start.sh
        Day2:
          update_rules:
            implementation: builtin.noop
            inputs:
              secret: { get_secret: fw_token }
    db:
      type: acme.nodes.Db
      properties:
        endpoint: { concat: [ "db.", { get_input: zone } ] }
  groups:
    workers:
      type: tosca.groups.Root
      members: [ app, db ]
  policies:
    - scale_workers:
        type: tempano.policies.Scaling
        targets: [ workers ]
        properties: { min_instances: 1, max_instances: 10, default_instances: 3 }
  workflows:
    rotate:
      description: Rotate the rules.
      inputs:
        reason: { type: string, required: false }
      steps:
        drain:
          target: app
          activities:
            - set_state: draining
            - call_operation: Day2.update_rules
          on_success: [ restart ]
        restart:
          target: app
          activities:
            - call_operation: Standard.start
  outputs:
    endpoint:
      value: { get_property: [ app, url ] }
"""

TYPES = """\
tosca_definitions_version: tosca_simple_yaml_1_3
node_types:
  acme.nodes.App:
    derived_from: tosca.nodes.SoftwareComponent
    properties:
      listen: { type: integer }
      url: { type: string }
      cpus: { type: integer }
      label: { type: string }
      nested: { type: string }
      settings: { type: map }
      place: { type: string }
    requirements:
      - backend:
          capability: tosca.capabilities.Node
          relationship: acme.relationships.Wires
    interfaces:
      Standard:
        type: tosca.interfaces.node.lifecycle.Standard
        operations:
          create: builtin.log
          delete:
            implementation: builtin.log
            inputs:
              message: { type: string, default: bye }
      Day2:
        type: acme.interfaces.Day2
  acme.nodes.Db:
    derived_from: tosca.nodes.Root
    properties:
      endpoint: { type: string }
interface_types:
  acme.interfaces.Day2:
    derived_from: tosca.interfaces.Root
    operations:
      update_rules: {}
relationship_types:
  acme.relationships.Wires:
    derived_from: tosca.relationships.ConnectsTo
    properties:
      weight: { type: integer, default: 1 }
    interfaces:
      Configure:
        type: tosca.interfaces.relationship.Configure
        operations:
          pre_configure_source:
            implementation: builtin.set_attributes
            inputs:
              peer: { get_property: [ TARGET, endpoint ] }
              weight: { get_property: [ SELF, weight ] }
"""


def make_tree(root: Path) -> Path:
    (root / "types").mkdir(parents=True)
    (root / "playbooks").mkdir()
    (root / "scripts").mkdir()
    (root / "blueprint.yaml").write_text(BLUEPRINT)
    (root / "types" / "app.yaml").write_text(TYPES)
    (root / "playbooks" / "configure.yml").write_text("- hosts: all\n  tasks: []\n")
    (root / "scripts" / "start.sh").write_text("#!/bin/sh\nexit 0\n")
    return root


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    root = make_tree(tmp_path_factory.mktemp("tree"))
    return compile(load(root), has_operation=None)  # the directory: blueprint.yaml by convention


def test_get_property_host_capability_nested_and_folding(plan: Plan) -> None:
    app = plan.nodes["app"].properties
    assert app["cpus"] == 2
    assert app["label"] == "b"
    assert app["nested"] == "blue"
    assert app["listen"] == {"get_input": "port"}
    assert app["url"] == {
        "concat": ["http://", {"get_attribute": ["HOST", "public_address"]}, ":", {"get_input": "port"}]
    }


def test_operations_merge_type_and_template(plan: Plan) -> None:
    ops = plan.nodes["app"].operations
    assert ops["Standard.create"].implementation == "builtin.log"
    assert ops["Standard.delete"].inputs == {"message": "bye"}
    configure = ops["Standard.configure"]
    assert configure.implementation == "ansible.playbook.run"
    assert configure.inputs["playbook"] == "playbooks/configure.yml"
    assert configure.inputs["peer"] == {"concat": ["db.", {"get_input": "zone"}]}
    assert "tempano_timeout" not in configure.inputs
    assert configure.timeout_s == 120.0
    assert configure.retry is not None and configure.retry.max_attempts == 3
    assert configure.retry.initial_interval_s == 2.0
    assert ops["Standard.start"].implementation == "builtin.script"
    assert ops["Standard.start"].inputs == {"script": "scripts/start.sh"}
    assert ops["Day2.update_rules"].inputs == {"secret": {"get_secret": "fw_token"}}
    assert "Standard.stop" not in ops  # no implementation anywhere: omitted


def test_relationships_host_and_relationship_operations(plan: Plan) -> None:
    app = plan.nodes["app"]
    assert app.host == "vm"
    backend = next(r for r in app.relationships if r.name == "backend")
    assert backend.target == "db"
    assert backend.type == "acme.relationships.Wires"
    assert "tosca.relationships.ConnectsTo" in backend.type_hierarchy
    assert backend.properties == {"weight": 3}
    pre = backend.operations["Configure.pre_configure_source"]
    assert pre.inputs == {"peer": {"concat": ["db.", {"get_input": "zone"}]}, "weight": 3}
    assert plan.workflows["install"].steps["app"].after == ("db", "vm")
    assert plan.workflows["uninstall"].steps["vm"].after == ("app",)


def test_instances_from_scalable_capability_and_scaling_policy(plan: Plan) -> None:
    vm = plan.nodes["vm"].instances
    assert (vm.default, vm.min, vm.max) == (2, 1, 4)
    group = plan.groups["workers"]
    assert group.members == ("app", "db")
    assert (group.instances.default, group.instances.max) == (3, 10)


def test_imperative_workflow(plan: Plan) -> None:
    rotate = plan.imperative_workflows["rotate"]
    assert rotate.description == "Rotate the rules."
    drain = rotate.steps["drain"]
    assert [(a.kind, a.value) for a in drain.activities] == [
        ("set_state", "draining"),
        ("call_operation", "Day2.update_rules"),
    ]
    assert drain.on_success == ("restart",)
    assert rotate.inputs["reason"].required is False


def test_bind_inputs_folds_over_inputs_and_checks_constraints(plan: Plan) -> None:
    bound = bind_inputs(plan, {"zone": "eu1"})
    app = bound.nodes["app"]
    assert app.properties["place"] == "eu1/rack1"
    assert app.properties["listen"] == 8080
    assert app.operations["Standard.configure"].inputs["peer"] == "db.eu1"
    assert app.relationships[1].operations["Configure.pre_configure_source"].inputs["peer"] == "db.eu1"
    assert bound.outputs["endpoint"].value == {
        "concat": ["http://", {"get_attribute": ["HOST", "public_address"]}, ":", 8080]
    }
    assert app.operations["Day2.update_rules"].inputs == {"secret": {"get_secret": "fw_token"}}
    with pytest.raises(InputError) as caught:
        bind_inputs(plan, {"port": 80})
    text = str(caught.value)
    assert "port: must be in the range 1024..65535" in text
    assert "zone: required input missing" in text


def test_csar_with_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = make_tree(tmp_path / "src")
    archive = tmp_path / "app.csar"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("TOSCA-Metadata/TOSCA.meta", "TOSCA-Meta-File-Version: 1.0\nEntry-Definitions: blueprint.yaml\n")
        for path in tree.rglob("*"):
            if path.is_file():
                zf.write(path, path.relative_to(tree).as_posix())
    blueprint = load(archive)
    assert blueprint.archive == archive
    assert (blueprint.base_dir / "scripts" / "start.sh").is_file()
    assert blueprint.file.endswith("app.csar/blueprint.yaml")
    plan = compile(blueprint, has_operation=None)
    assert plan.nodes["app"].operations["Standard.start"].inputs["script"] == "scripts/start.sh"
    blueprint.cleanup()
    assert not blueprint.base_dir.exists()
    # compile_path removes the extraction itself.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert compile_path(archive, has_operation=None) == plan
    assert not any(scratch.iterdir())


def test_errors_in_imported_type_files_name_that_file(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    (tree / "types" / "app.yaml").write_text(
        TYPES.replace(
            "      weight: { type: integer, default: 1 }",
            "      weight: { type: integer, default: 1 }\n      weight: { type: string }",
        )
    )
    with pytest.raises(BlueprintError) as caught:
        load(tree)
    (error,) = caught.value.errors
    assert error.file.endswith("app.yaml") and error.line == 42 and "duplicate key 'weight'" in error.message


def test_sol001_style_unfilled_requirements_and_short_notations(tmp_path: Path) -> None:
    path = tmp_path / "vnfd.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            tosca_definitions_version: tosca_simple_yaml_1_3
            node_types:
              acme.nodes.Vdu:
                derived_from: tosca.nodes.Root
                capabilities:
                  virtual_binding: tosca.capabilities.Node
                requirements:
                  - virtual_storage: tosca.capabilities.Attachment
                  - monitor:
                      capability: tosca.capabilities.Node
            topology_template:
              node_templates:
                vdu:
                  type: acme.nodes.Vdu
                  capabilities:
                    virtual_binding:
                server:
                  type: tosca.nodes.Compute
                  requirements:
                    - local_storage:
                        node: vdu
                        relationship: tosca.relationships.DependsOn
            """
        )
    )
    plan = compile(load(path), has_operation=None)
    assert plan.nodes["vdu"].relationships == ()
    assert plan.workflows["install"].steps["server"].after == ("vdu",)
