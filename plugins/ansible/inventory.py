"""The inventory of one run: the node's host, plus one group per related node so playbooks can use its data.

The run is limited to the node's host (``limit``), so related hosts are never contacted; they are there for
``hostvars[groups['router'][0]].ansible_host`` and for their runtime attributes under ``tempano_attributes``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tempano.plugins.contract import ConfigurationError, InstanceView, OperationContext

ADDRESS_ATTRIBUTES = ("ip", "private_address", "public_address", "ip_address")


def _address(view: InstanceView) -> str | None:
    for name in ADDRESS_ATTRIBUTES:
        value = view.attributes.get(name)
        if value:
            return str(value)
    return None


def _group_name(text: str) -> str:
    """Ansible group names must be valid identifiers."""
    name = re.sub(r"\W", "_", text)
    return name if not name[:1].isdigit() else f"_{name}"


def host_vars(view: InstanceView) -> dict[str, Any]:
    """Connection variables from a lab/cloud server's attributes, and all attributes for playbooks."""
    attrs = view.attributes
    found: dict[str, Any] = {
        "tempano_instance": view.id,
        "tempano_node": view.node,
        "tempano_attributes": dict(attrs),
    }
    address = _address(view)
    if address:
        found["ansible_host"] = address
    if attrs.get("ssh_user"):
        found["ansible_user"] = str(attrs["ssh_user"])
    if attrs.get("ssh_key_file"):
        found["ansible_ssh_private_key_file"] = str(attrs["ssh_key_file"])
    if attrs.get("python_interpreter"):
        found["ansible_python_interpreter"] = str(attrs["python_interpreter"])
    if attrs.get("ssh_port"):
        found["ansible_port"] = int(attrs["ssh_port"])
    return found


def target_host(ctx: OperationContext) -> InstanceView:
    """Where the playbook runs: the instance's host (a software component on a server), else the instance."""
    return ctx.host if ctx.host is not None else ctx.instance


def build(ctx: OperationContext) -> tuple[str, dict[str, Any]]:
    """The inventory hostname of the run and the inventory (YAML/JSON structure) ansible-runner takes."""
    host = target_host(ctx)
    main = host_vars(host)
    if "ansible_host" not in main:
        raise ConfigurationError(
            f"{ctx.instance.id}: cannot run a playbook on {host.id}: it has no address attribute "
            f"({', '.join(ADDRESS_ATTRIBUTES)}); host the node on a server (e.g. tempano.nodes.lab.Server)"
        )
    if host is not ctx.instance:
        main["tempano_component"] = ctx.instance.id
        main["tempano_component_attributes"] = dict(ctx.instance.attributes)
    hosts: dict[str, dict[str, Any]] = {host.id: main}
    children: dict[str, dict[str, Any]] = {}
    for rel in ctx.relationships:
        target = rel.target
        if target.id == host.id:
            continue
        hosts.setdefault(target.id, host_vars(target))
        for group in (_group_name(target.node), _group_name(rel.name)):
            members: dict[str, Any] = children.setdefault(group, {"hosts": {}})["hosts"]
            members[target.id] = {}
    inventory: dict[str, Any] = {"all": {"hosts": hosts, "children": children}}
    return host.id, inventory


def extra_vars(ctx: OperationContext, reserved: Mapping[str, Any]) -> dict[str, Any]:
    """The node's ``playbook_vars`` property, overridden by every operation input not the plugin's own."""
    defaults = ctx.properties.get("playbook_vars") or {}
    if not isinstance(defaults, Mapping):
        raise ConfigurationError(f"{ctx.instance.id}: the playbook_vars property must be a map, not {defaults!r}")
    found = {**defaults, **{name: value for name, value in ctx.inputs.items() if name not in reserved}}
    found.setdefault("tempano_deployment", ctx.deployment_id)
    return found
