"""ETSI SOL001 node templates rewritten into tempano's OpenStack ones (plugins/openstack/NFV_MAPPING.md).

Applied after tosca-parser validated the VNFD as written, and only when the type library has the OpenStack
types. The rewrite works on raw templates, so everything after it (type operations, functions, workflows) is
the ordinary compile. Rules (from the OpenStack plugin's mapping):

- Vdu.Compute -> Server: image from sw_image_data.name, user_data from boot_data, availability_zone from
  nfvi_constraints[0], virtual_compute {vcpus, ram, disk}, cpu_policy/numa_nodes/flavor_extra_specs from the
  virtual_compute capability; a ``port`` requirement per VduCp bound to it (reversed virtual_binding, in
  ``order``) and a ``volume`` requirement per virtual_storage;
- VduCp -> Port: network/subnet requirements from its virtual_link; an external CP (no virtual_link) takes its
  network from an input ``<cp>_network``, else ``<word>_network`` for a word of the CP's name, else
  ``external_network``; when the VNFD declares none of them, a required input ``<cp>_network`` is added to the
  plan (the VNF's external connectivity is the operator's to give); fixed IPs, vnic_type; floating_ip_activated
  adds a FloatingIP ``<cp>_floating_ip``;
- VnfVirtualLink -> Network (+ Subnet ``<vl>_subnet`` when l3_protocol_data is given);
- Vdu.VirtualBlockStorage -> Volume (size from size_of_storage, else the image's min_disk); one with
  sw_image_data is made from that image, and the first such storage of a VDU becomes its boot volume (a
  ``boot_volume`` requirement: the server boots from it instead of from an image);
- AffinityRule / AntiAffinityRule -> ServerGroup ``<policy>``; SecurityGroupRule -> SecurityGroup
  ``<policy>``;
- each VDU scales with its CPs, volumes and floating IPs: a scaling group ``<vdu>_scaling``.

A ``cloud`` input, when declared, is passed to every generated node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tempano.blueprints._nfv import INITIAL_DELTA, vdu_instances
from tempano.blueprints._types import TypeIndex
from tempano.blueprints.plan import Instances

OS = "tempano.nodes.openstack."
_VDU = ("tosca.nodes.nfv.Vdu.Compute", "tosca.nodes.nfv.VDU")
_CP = ("tosca.nodes.nfv.VduCp", "tosca.nodes.nfv.CP")
_VL = ("tosca.nodes.nfv.VnfVirtualLink", "tosca.nodes.nfv.VL")
_STORAGE = ("tosca.nodes.nfv.Vdu.VirtualBlockStorage",)
_AFFINITY = {
    "tosca.policies.nfv.AffinityRule": "affinity",
    "tosca.policies.nfv.AntiAffinityRule": "anti-affinity",
}
_SECURITY_RULE = "tosca.policies.nfv.SecurityGroupRule"
_REQUIRED_TYPES = ("Server", "Port", "Network", "Subnet", "Volume")
"""The rewrite runs when the type library has these (the OpenStack plugin's types/openstack.yaml)."""


@dataclass
class Lowered:
    """The rewritten node templates and what the compiler needs to know about them."""

    nodes: dict[str, Any]
    origin: dict[str, str] = field(default_factory=dict)
    """Generated node -> the VNFD node it came from (for error locations)."""
    nfv_type: dict[str, str] = field(default_factory=dict)
    """Rewritten node -> its NFV profile type as written."""
    groups: dict[str, tuple[tuple[str, ...], Instances]] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    """(node, message) of what cannot be rewritten."""
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Deployment inputs the rewrite adds (TOSCA input definitions), e.g. the networks of external CPs."""


def _kind(types: TypeIndex, type_name: str) -> str | None:
    chain = types.chain(type_name)
    for kind, names in (("vdu", _VDU), ("cp", _CP), ("vl", _VL), ("storage", _STORAGE)):
        if any(n in chain for n in names):
            return kind
    return None


def _target(assignment: Any) -> str | None:
    if isinstance(assignment, Mapping):
        assignment = assignment.get("node")
    return str(assignment) if assignment is not None else None


def _requirements(template: Mapping[str, Any]) -> list[tuple[str, str]]:
    found = []
    for entry in template.get("requirements") or []:
        if isinstance(entry, Mapping):
            for name, assignment in entry.items():
                target = _target(assignment)
                if target is not None:
                    found.append((str(name), target))
    return found


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _props(template: Mapping[str, Any]) -> Mapping[str, Any]:
    props = template.get("properties")
    return props if isinstance(props, Mapping) else {}


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else None


def lower_nfv(nodes: Mapping[str, Any], topology: Mapping[str, Any], types: TypeIndex) -> Lowered | None:
    """The VNFD's node templates rewritten onto OpenStack types, or None when there is nothing to rewrite."""
    if not all(types.known(OS + t) for t in _REQUIRED_TYPES):
        return None
    kinds = {name: _kind(types, str(t.get("type", ""))) for name, t in nodes.items() if isinstance(t, Mapping)}
    if not any(kinds.values()):
        return None
    inputs = _map(topology.get("inputs"))
    common: dict[str, Any] = {"cloud": {"get_input": "cloud"}} if "cloud" in inputs else {}
    policies = [
        (str(name), policy)
        for entry in topology.get("policies") or []
        if isinstance(entry, Mapping)
        for name, policy in entry.items()
        if isinstance(policy, Mapping)
    ]
    out = Lowered(nodes={name: t for name, t in nodes.items() if not kinds.get(name)})
    subnets: set[str] = set()
    for name, kind in sorted(kinds.items(), key=lambda item: item[0]):
        if kind == "vl":
            _network(name, nodes[name], common, out, subnets)
        elif kind == "storage":
            _volume(name, nodes[name], common, out)
    ports: dict[str, list[tuple[int, str]]] = {}
    for name, kind in sorted(kinds.items()):
        if kind == "cp":
            _port(name, nodes[name], kinds, common, inputs, subnets, policies, out, ports)
    deltas = {
        str(target): policy["properties"]["initial_delta"].get("number_of_instances")
        for _, policy in policies
        if policy.get("type") == INITIAL_DELTA
        and isinstance(policy.get("properties"), Mapping)
        and isinstance(policy["properties"].get("initial_delta"), Mapping)
        for target in policy.get("targets") or []
    }
    for name, kind in sorted(kinds.items()):
        if kind == "vdu":
            _server(name, nodes[name], kinds, common, policies, out, ports, deltas)
    for policy_name, policy in policies:
        affinity = _AFFINITY.get(str(policy.get("type")))
        if affinity is not None and policy_name not in out.nodes:
            out.nodes[policy_name] = {
                "type": OS + "ServerGroup",
                "properties": {**common, "policy": affinity},
            }
            out.origin[policy_name] = str(_first(policy.get("targets")) or "")
    return out


def _network(name: str, template: Mapping[str, Any], common: dict[str, Any], out: Lowered, subnets: set[str]) -> None:
    profile = _props(template).get("vl_profile")
    data = _first(profile.get("virtual_link_protocol_data")) if isinstance(profile, Mapping) else None
    data = data if isinstance(data, Mapping) else {}
    l2 = _map(data.get("l2_protocol_data"))
    l3 = _map(data.get("l3_protocol_data"))
    props: dict[str, Any] = dict(common)
    if "name" in l2:
        props["name"] = l2["name"]
    if "mtu" in l2:
        props["mtu"] = l2["mtu"]
    provider = {k: l2[k] for k in ("network_type", "physical_network", "segmentation_id") if k in l2}
    if provider:
        props["provider"] = provider
    out.nodes[name] = {"type": OS + "Network", "properties": props}
    out.nfv_type[name] = str(template.get("type"))
    if l3:
        subnet: dict[str, Any] = dict(common)
        if "cidr" in l3:
            subnet["cidr"] = l3["cidr"]
        if "ip_version" in l3:
            subnet["ip_version"] = 6 if str(l3["ip_version"]).lower() in {"ipv6", "6"} else 4
        if "gateway_ip" in l3:
            subnet["gateway_ip"] = l3["gateway_ip"]
        if "dhcp_enabled" in l3:
            subnet["enable_dhcp"] = l3["dhcp_enabled"]
        pools = l3.get("ip_allocation_pools")
        if isinstance(pools, list):
            subnet["allocation_pools"] = [
                {"start": p.get("start_ip_address"), "end": p.get("end_ip_address")}
                for p in pools
                if isinstance(p, Mapping)
            ]
        out.nodes[f"{name}_subnet"] = {
            "type": OS + "Subnet",
            "properties": subnet,
            "requirements": [{"network": name}],
        }
        out.origin[f"{name}_subnet"] = name
        subnets.add(name)


def _volume(name: str, template: Mapping[str, Any], common: dict[str, Any], out: Lowered) -> None:
    props = _props(template)
    data = _map(props.get("virtual_block_storage_data"))
    image = _map(props.get("sw_image_data"))
    volume: dict[str, Any] = dict(common)
    if "name" in image:
        volume["image"] = image["name"]
    size = data.get("size_of_storage", image.get("min_disk"))
    if size is not None:
        volume["size"] = size
    out.nodes[name] = {"type": OS + "Volume", "properties": volume}
    out.nfv_type[name] = str(template.get("type"))


def _port(
    name: str,
    template: Mapping[str, Any],
    kinds: Mapping[str, str | None],
    common: dict[str, Any],
    inputs: Mapping[str, Any],
    subnets: set[str],
    policies: list[tuple[str, Mapping[str, Any]]],
    out: Lowered,
    ports: dict[str, list[tuple[int, str]]],
) -> None:
    props = _props(template)
    port: dict[str, Any] = dict(common)
    requirements: list[dict[str, str]] = []
    link = binding = None
    for req_name, target in _requirements(template):
        if req_name == "virtual_link" and kinds.get(target) == "vl":
            link = target
        elif req_name == "virtual_binding" and kinds.get(target) == "vdu":
            binding = target
        elif req_name not in {"virtual_link", "virtual_binding"}:
            requirements.append({req_name: target})
    if link is not None:
        requirements.append({"network": link})
        if link in subnets:
            requirements.append({"subnet": f"{link}_subnet"})
    else:
        network_input = _external_network_input(name, inputs)
        if network_input is None:
            network_input = f"{name}_network"
            out.inputs[network_input] = {
                "type": "string",
                "required": True,
                "description": (
                    f"Name or id of the existing network that external connection point {name}"
                    + (f" (of {binding})" if binding else "")
                    + " plugs into: the VNF's external connectivity, which the VNFD leaves to the deployment"
                ),
            }
        port["network"] = {"get_input": network_input}
    for key in ("vnic_type", "port_security_enabled"):
        if key in props:
            port[key] = props[key]
    fixed_ips, floating = _addresses(props.get("protocol"))
    if fixed_ips:
        port["fixed_ips"] = fixed_ips
    for policy_name, policy in policies:
        if policy.get("type") == _SECURITY_RULE and name in (policy.get("targets") or []):
            requirements.append({"security_group": policy_name})
            if policy_name not in out.nodes:
                rule = _props(policy)
                out.nodes[policy_name] = {
                    "type": OS + "SecurityGroup",
                    "properties": {
                        **common,
                        "rules": [
                            {
                                ("ethertype" if k == "ether_type" else k): v
                                for k, v in rule.items()
                                if k in {"direction", "ether_type", "protocol", "port_range_min", "port_range_max"}
                            }
                        ],
                    },
                }
                out.origin[policy_name] = name
    out.nodes[name] = {"type": OS + "Port", "properties": port, "requirements": requirements}
    out.nfv_type[name] = str(template.get("type"))
    if floating:
        fip = f"{name}_floating_ip"
        network = {"get_input": "floating_network"} if "floating_network" in inputs else "public"
        out.nodes[fip] = {
            "type": OS + "FloatingIP",
            "properties": {**common, "floating_network": network},
            "requirements": [{"port": name}],
        }
        out.origin[fip] = name
    if binding is not None:
        order = props.get("order")
        ports.setdefault(binding, []).append((order if isinstance(order, int) else 1 << 30, name))


def _external_network_input(cp: str, inputs: Mapping[str, Any]) -> str | None:
    if f"{cp}_network" in inputs:
        return f"{cp}_network"
    for word in cp.split("_"):
        if f"{word}_network" in inputs:
            return f"{word}_network"
    return "external_network" if "external_network" in inputs else None


def _addresses(protocols: Any) -> tuple[list[dict[str, Any]], bool]:
    fixed: list[dict[str, Any]] = []
    floating = False
    for protocol in protocols if isinstance(protocols, list) else []:
        for address in (protocol.get("address_data") or []) if isinstance(protocol, Mapping) else []:
            l3 = address.get("l3_address_data") if isinstance(address, Mapping) else None
            if not isinstance(l3, Mapping):
                continue
            if l3.get("fixed_ip_address"):
                ips = l3["fixed_ip_address"]
                fixed += [{"ip_address": ip} for ip in (ips if isinstance(ips, list) else [ips])]
            floating = floating or bool(l3.get("floating_ip_activated"))
    return fixed, floating


def _server(
    name: str,
    template: Mapping[str, Any],
    kinds: Mapping[str, str | None],
    common: dict[str, Any],
    policies: list[tuple[str, Mapping[str, Any]]],
    out: Lowered,
    ports: dict[str, list[tuple[int, str]]],
    deltas: Mapping[str, Any],
) -> None:
    props = _props(template)
    server: dict[str, Any] = dict(common)
    for key in ("name", "description"):
        if key in props:
            server[key] = props[key]
    image = props.get("sw_image_data")
    if isinstance(image, Mapping) and "name" in image:
        server["image"] = image["name"]
    if isinstance(props.get("boot_data"), str):
        server["user_data"] = props["boot_data"]
    zone = _first(props.get("nfvi_constraints"))
    if zone is not None:
        server["availability_zone"] = zone
    server.update(_compute(template))
    requirements: list[dict[str, str]] = [{"port": cp} for _, cp in sorted(ports.get(name, []))]
    volumes = []
    boot_volume = None
    for req_name, target in _requirements(template):
        if req_name == "virtual_storage" and kinds.get(target) == "storage":
            made_from_image = "image" in _map(out.nodes.get(target)).get("properties", {})
            if boot_volume is None and made_from_image:
                boot_volume = target
                requirements.append({"boot_volume": target})
            else:
                requirements.append({"volume": target})
            volumes.append(target)
        elif req_name != "virtual_storage":
            requirements.append({req_name: target})
    if boot_volume is not None:
        server.pop("image", None)  # the boot volume holds the image
    for policy_name, policy in policies:
        if str(policy.get("type")) in _AFFINITY and name in (policy.get("targets") or []):
            requirements.append({"server_group": policy_name})
    out.nodes[name] = {"type": OS + "Server", "properties": server, "requirements": requirements}
    out.nfv_type[name] = str(template.get("type"))
    delta = deltas.get(name)
    counts = vdu_instances(props, delta if isinstance(delta, int) and not isinstance(delta, bool) else None)
    members = [name, *(cp for _, cp in ports.get(name, [])), *volumes]
    members += [f"{cp}_floating_ip" for cp in list(members) if f"{cp}_floating_ip" in out.nodes]
    out.groups[f"{name}_scaling"] = (tuple(sorted(members)), counts or Instances(default=1, min=1, max=None))


def _compute(template: Mapping[str, Any]) -> dict[str, Any]:
    caps = template.get("capabilities")
    cap = caps.get("virtual_compute") if isinstance(caps, Mapping) else None
    props = cap.get("properties") if isinstance(cap, Mapping) else None
    if not isinstance(props, Mapping):
        return {}
    result: dict[str, Any] = {}
    sizing: dict[str, Any] = {}
    cpu = _map(props.get("virtual_cpu"))
    memory = _map(props.get("virtual_memory"))
    if "num_virtual_cpu" in cpu:
        sizing["vcpus"] = cpu["num_virtual_cpu"]
    if "virtual_mem_size" in memory:
        sizing["ram"] = memory["virtual_mem_size"]
    disk = _first(props.get("virtual_local_storage"))
    if isinstance(disk, Mapping) and "size_of_storage" in disk:
        sizing["disk"] = disk["size_of_storage"]
    if sizing:
        result["virtual_compute"] = sizing
    if cpu.get("virtual_cpu_pinning") is not None:
        result["cpu_policy"] = "dedicated"
    extra: dict[str, Any] = {}
    for source in (cpu.get("vdu_cpu_requirements"), memory.get("vdu_mem_requirements")):
        if isinstance(source, Mapping):
            extra.update({str(k): str(v) for k, v in source.items()})
    additional = props.get("requested_additional_capabilities")
    if isinstance(additional, Mapping):
        for capability in additional.values():
            params = capability.get("target_performance_parameters") if isinstance(capability, Mapping) else None
            if isinstance(params, Mapping):
                extra.update({str(k): str(v) for k, v in params.items()})
    if memory.get("numa_enabled") and "hw:numa_nodes" not in extra:
        result["numa_nodes"] = 1
    if extra:
        result["flavor_extra_specs"] = extra
    return result
