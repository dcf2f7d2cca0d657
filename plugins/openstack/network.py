"""Neutron operations: networks, subnets, ports, routers (interfaces, gateway), floating IPs, security groups.

Everything tempano creates carries the Neutron tag ``tempano:<idempotency key>``; a create first looks for
that tag
and adopts what it finds, so a retried create never makes a second object.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from openstack import exceptions as sdk

from tempano.plugins.contract import ConfigurationError, OperationContext, PluginError
from tempano.plugins.openstack import _types as types
from tempano.plugins.openstack._plugin import plugin
from tempano.plugins.openstack._support import (
    Op,
    find_or_fail,
    ignore_missing_get,
    maybe,
    nothing_recorded,
    op,
    target_id,
)


def _ensure(o: Op, sdk_name: str, plural: str, attrs: Callable[[], dict[str, Any]]) -> Any:
    """Adopt or create one Neutron object of this operation, tagged with its idempotency tag."""
    network = o.network
    obj, _ = o.adopt_or_create(
        get=ignore_missing_get(getattr(network, f"get_{sdk_name}")),
        find_mine=lambda: list(getattr(network, plural)(tags=o.tag)),
        find_external=lambda ref: maybe(getattr(network, f"find_{sdk_name}"), ref),
        create=lambda: getattr(network, f"create_{sdk_name}")(**attrs(), tags=[o.tag]),
    )
    if o.external_id() is None and o.tag not in (obj.tags or []):
        # Neutron without the tag-creation extension ignores tags in a create: tag it afterwards
        with o.call("tag"):
            network.set_tags(obj, [*(obj.tags or []), o.tag])
    return obj


def _delete(o: Op, sdk_name: str) -> None:
    delete = getattr(o.network, f"delete_{sdk_name}")
    o.delete_recorded(lambda i: delete(i, ignore_missing=True))


def _outputs(ctx: OperationContext, **values: Any) -> dict[str, Any]:
    for name, value in values.items():
        ctx.set_attribute(name, value)
    return values


def _one_target(ctx: OperationContext, node_type: str) -> str | None:
    ids = target_id(ctx, node_type)
    return ids[0] if ids else None


def _network_id(o: Op) -> str:
    ref = o.properties.get("network")
    if ref:
        return str(find_or_fail(o, "network", str(ref), o.network.find_network).id)
    related = _one_target(o.ctx, types.NETWORK)
    if related is None:
        raise ConfigurationError(f"{o.where} needs a network: a `network` property or a relationship to a Network")
    return related


# -- networks ------------------------------------------------------------------------------------------------


@plugin.operation("network.create")
def create_network(ctx: OperationContext) -> dict[str, Any]:
    """A Neutron network (optionally a provider network: ``provider`` map with network_type, physical_network,
    segmentation_id)."""
    o = op(ctx, "network")
    props = ctx.properties

    def attrs() -> dict[str, Any]:
        values: dict[str, Any] = {"name": o.where.name}
        for prop in ("admin_state_up", "shared", "mtu", "port_security_enabled", "description"):
            if props.get(prop) is not None:
                values[prop] = props[prop]
        if props.get("external") is not None:
            values["is_router_external"] = bool(props["external"])
        provider = props.get("provider") or {}
        for key in ("network_type", "physical_network", "segmentation_id"):
            if provider.get(key) is not None:
                values[f"provider_{key}"] = provider[key]
        return values

    network = _ensure(o, "network", "networks", attrs)
    return _outputs(ctx, id=network.id, name=network.name, cloud=o.where.cloud, mtu=network.mtu)


@plugin.operation("network.delete")
def delete_network(ctx: OperationContext) -> None:
    """Delete the network the ledger holds (a 409 while its ports go away is retried)."""
    if nothing_recorded(ctx):
        return
    _delete(op(ctx, "network"), "network")


# -- subnets
# -------------------------------------------------------------------------------------------------------


@plugin.operation("subnet.create")
def create_subnet(ctx: OperationContext) -> dict[str, Any]:
    """A subnet with ``cidr`` on the related (or named) network."""
    o = op(ctx, "subnet")
    props = ctx.properties

    def attrs() -> dict[str, Any]:
        if not props.get("cidr"):
            raise ConfigurationError(f"{o.where} needs a `cidr`")
        values: dict[str, Any] = {
            "name": o.where.name,
            "network_id": _network_id(o),
            "cidr": str(props["cidr"]),
            "ip_version": int(props.get("ip_version", 4)),
        }
        if props.get("no_gateway"):
            values["gateway_ip"] = None
        for prop in (
            "gateway_ip",
            "enable_dhcp",
            "dns_nameservers",
            "allocation_pools",
            "host_routes",
            "ipv6_address_mode",
            "ipv6_ra_mode",
            "description",
        ):
            if props.get(prop) is not None:
                values[prop] = props[prop]
        if "enable_dhcp" in values:
            values["is_dhcp_enabled"] = values.pop("enable_dhcp")
        return values

    subnet = _ensure(o, "subnet", "subnets", attrs)
    return _outputs(
        ctx,
        id=subnet.id,
        name=subnet.name,
        cidr=subnet.cidr,
        gateway_ip=subnet.gateway_ip,
        network_id=subnet.network_id,
    )


@plugin.operation("subnet.delete")
def delete_subnet(ctx: OperationContext) -> None:
    """Delete the subnet the ledger holds."""
    if nothing_recorded(ctx):
        return
    _delete(op(ctx, "subnet"), "subnet")


# -- security groups
# -------------------------------------------------------------------------------------------


def _add_rules(o: Op, group_id: str) -> None:
    network = o.network
    for rule in o.properties.get("rules") or []:
        attrs = {
            "security_group_id": group_id,
            "direction": rule.get("direction", "ingress"),
            "ethertype": rule.get("ethertype", "IPv4"),
        }
        for key in ("protocol", "port_range_min", "port_range_max", "remote_ip_prefix", "description"):
            if rule.get(key) is not None:
                attrs[key] = rule[key]
        if rule.get("remote_group"):
            remote = str(rule["remote_group"])
            attrs["remote_group_id"] = (
                group_id
                if remote == "self"
                else find_or_fail(o, "security group", remote, network.find_security_group).id
            )
        try:
            with o.call(f"add rule {attrs} to"):
                network.create_security_group_rule(**attrs)
        except PluginError as exc:
            # the rule exists already (a previous attempt made it): rules are a set, go on with the others
            if not isinstance(exc.__cause__, sdk.ConflictException):
                raise


@plugin.operation("security_group.create")
def create_security_group(ctx: OperationContext) -> dict[str, Any]:
    """A security group and its ``rules`` (direction, ethertype, protocol, port_range_min/max,
    remote_ip_prefix,
    remote_group: a name/id or ``self``)."""
    o = op(ctx, "security_group")
    group = _ensure(
        o,
        "security_group",
        "security_groups",
        lambda: {"name": o.where.name, "description": ctx.properties.get("description") or ""},
    )
    if o.external_id() is None:
        _add_rules(o, group.id)
    return _outputs(ctx, id=group.id, name=group.name)


@plugin.operation("security_group.delete")
def delete_security_group(ctx: OperationContext) -> None:
    """Delete the security group (and so its rules) the ledger holds."""
    if nothing_recorded(ctx):
        return
    _delete(op(ctx, "security_group"), "security_group")


# -- ports
# ------------------------------------------------------------------------------------------------------


def _related_subnets_without_ip(ctx: OperationContext, fixed_ips: list[dict[str, str]]) -> list[str]:
    """Related subnets that no ``fixed_ips`` entry already takes an address from (else the port gets two)."""
    target_id(ctx, types.SUBNET)  # fails clearly if one is not created yet
    wanted = []
    for subnet in ctx.targets(node_type=types.SUBNET):
        subnet_id, cidr = str(subnet.attributes["id"]), subnet.attributes.get("cidr")
        network = ipaddress.ip_network(str(cidr), strict=False) if cidr else None
        if not any(
            entry.get("subnet_id") == subnet_id
            or (
                network is not None and entry.get("ip_address") and ipaddress.ip_address(entry["ip_address"]) in network
            )
            for entry in fixed_ips
        ):
            wanted.append(subnet_id)
    return wanted


@plugin.operation("port.create")
def create_port(ctx: OperationContext) -> dict[str, Any]:
    """A port: fixed_ips, security groups, port security, allowed address pairs, vnic_type (SR-IOV:
    direct)."""
    o = op(ctx, "port")
    props = ctx.properties
    network = o.network

    def attrs() -> dict[str, Any]:
        values: dict[str, Any] = {"name": o.where.name, "network_id": _network_id(o)}
        fixed_ips = []
        for item in props.get("fixed_ips") or []:
            entry = {}
            if item.get("subnet"):
                entry["subnet_id"] = find_or_fail(o, "subnet", str(item["subnet"]), network.find_subnet).id
            if item.get("ip_address"):
                entry["ip_address"] = str(item["ip_address"])
            fixed_ips.append(entry)
        fixed_ips += [{"subnet_id": s} for s in _related_subnets_without_ip(ctx, fixed_ips)]
        if fixed_ips:
            values["fixed_ips"] = fixed_ips
        groups = [
            find_or_fail(o, "security group", str(g), network.find_security_group).id
            for g in props.get("security_groups") or []
        ]
        groups += target_id(ctx, types.SECURITY_GROUP)
        if groups:
            values["security_group_ids"] = groups
        if props.get("port_security_enabled") is not None:
            values["is_port_security_enabled"] = bool(props["port_security_enabled"])
            if not props["port_security_enabled"]:
                values["security_group_ids"] = []
        if props.get("allowed_address_pairs"):
            values["allowed_address_pairs"] = [dict(p) for p in props["allowed_address_pairs"]]
        if props.get("vnic_type"):
            values["binding_vnic_type"] = str(props["vnic_type"])
        if props.get("binding_profile"):
            values["binding_profile"] = dict(props["binding_profile"])
        for prop in ("mac_address", "admin_state_up", "description"):
            if props.get(prop) is not None:
                values[prop] = props[prop]
        return values

    port = _ensure(o, "port", "ports", attrs)
    fixed = [ip["ip_address"] for ip in port.fixed_ips or []]
    return _outputs(
        ctx,
        id=port.id,
        name=port.name,
        mac_address=port.mac_address,
        fixed_ips=fixed,
        ip_address=fixed[0] if fixed else None,
        network_id=port.network_id,
    )


@plugin.operation("port.delete")
def delete_port(ctx: OperationContext) -> None:
    """Delete the port the ledger holds."""
    if nothing_recorded(ctx):
        return
    _delete(op(ctx, "port"), "port")


# -- routers
# ----------------------------------------------------------------------------------------------------


@plugin.operation("router.create")
def create_router(ctx: OperationContext) -> dict[str, Any]:
    """A router with a gateway on ``external_network`` and an interface on each related or listed subnet."""
    o = op(ctx, "router")
    props = ctx.properties
    network = o.network

    def attrs() -> dict[str, Any]:
        values: dict[str, Any] = {"name": o.where.name}
        if props.get("external_network"):
            external = find_or_fail(o, "network", str(props["external_network"]), network.find_network)
            values["external_gateway_info"] = {"network_id": external.id}
        return values

    router = _ensure(o, "router", "routers", attrs)
    subnets = [find_or_fail(o, "subnet", str(s), network.find_subnet).id for s in props.get("subnets") or []]
    subnets += target_id(ctx, types.SUBNET)
    with o.call("list the interfaces of"):
        attached = {ip["subnet_id"] for p in network.ports(device_id=router.id) for ip in p.fixed_ips or []}
    for subnet_id in subnets:
        if subnet_id not in attached:
            with o.call(f"add an interface on subnet {subnet_id} to"):
                network.add_interface_to_router(router, subnet=subnet_id)
        ctx.record_resource("router_interface", f"{router.id}/{subnet_id}", {"cloud": o.where.cloud})
    gateway = router.external_gateway_info or {}
    return _outputs(
        ctx,
        id=router.id,
        name=router.name,
        subnets=subnets,
        gateway_ips=[ip["ip_address"] for ip in gateway.get("external_fixed_ips", [])],
    )


@plugin.operation("router.delete")
def delete_router(ctx: OperationContext) -> None:
    """Remove the interfaces tempano added, then delete the router the ledger holds."""
    if nothing_recorded(ctx):
        return
    o = op(ctx, "router")
    for entry in ctx.resources("router_interface"):
        router_id, _, subnet_id = entry.resource_id.partition("/")
        try:
            with o.call(f"remove the interface on subnet {subnet_id} from"):
                o.network.remove_interface_from_router(router_id, subnet=subnet_id)
        except Exception as exc:
            if not isinstance(exc.__cause__, sdk.NotFoundException):
                raise
        ctx.forget_resource("router_interface", entry.resource_id)
    _delete(o, "router")


# -- floating IPs
# ----------------------------------------------------------------------------------------------


def _wanted_port(o: Op) -> str | None:
    port = o.properties.get("port")
    if port:
        return str(find_or_fail(o, "port", str(port), o.network.find_port).id)
    related = _one_target(o.ctx, types.PORT)
    if related:
        return related
    server_id = _one_target(o.ctx, types.SERVER)
    if server_id:
        with o.call(f"list the ports of server {server_id} for"):
            ports = list(o.network.ports(device_id=server_id))
        if not ports:
            raise ConfigurationError(f"{o.where} is related to server {server_id}, which has no port to put it on")
        # Neutron lists ports in no NIC order: the server's first NIC is the one holding its private_address
        private = o.ctx.targets(node_type=types.SERVER)[0].attributes.get("private_address")
        first = [p for p in ports if any(ip["ip_address"] == private for ip in p.fixed_ips or [])]
        return str((first or ports)[0].id)
    return None


@plugin.operation("floating_ip.create")
def create_floating_ip(ctx: OperationContext) -> dict[str, Any]:
    """Allocate a floating IP on ``floating_network`` (or take ``floating_ip_address`` if it is free) and
    put it on
    the related port or server. An address already in use by another port is never taken."""
    o = op(ctx, "floating_ip")
    props = ctx.properties
    network = o.network
    port_id = _wanted_port(o)
    address = props.get("floating_ip_address")
    fip = None
    if address and o.external_id() is None and not o.recorded_id():
        with o.call(f"look up address {address} for"):
            found = list(network.ips(floating_ip_address=str(address)))
        if found and o.tag not in (found[0].tags or []):
            fip = found[0]  # allocated beforehand by someone: used, never deleted
            o.record(fip.id, external=True)
    if fip is None:

        def attrs() -> dict[str, Any]:
            ref = props.get("floating_network")
            if not ref:
                raise ConfigurationError(f"{o.where} needs `floating_network` (the external network's name or id)")
            values: dict[str, Any] = {
                "floating_network_id": find_or_fail(o, "network", str(ref), network.find_network).id
            }
            if address:
                values["floating_ip_address"] = str(address)
            return values

        fip = _ensure(o, "ip", "ips", attrs)
    if port_id and fip.port_id != port_id:
        if fip.port_id:
            raise ConfigurationError(
                f"floating IP {fip.floating_ip_address} on cloud {o.where.cloud!r} is in use by port "
                f"{fip.port_id}: "
                f"tempano never takes an address away; choose another one for {ctx.instance.id}"
            )
        with o.call(f"associate with port {port_id}"):
            fip = network.update_ip(fip, port_id=port_id)
        ctx.record_resource("floating_ip_association", f"{fip.id}/{port_id}", {"cloud": o.where.cloud})
    return _outputs(ctx, id=fip.id, floating_ip_address=fip.floating_ip_address, port_id=fip.port_id)


@plugin.operation("floating_ip.delete")
def delete_floating_ip(ctx: OperationContext) -> None:
    """Detach the addresses tempano associated, release those it allocated (adopted ones stay allocated)."""
    if nothing_recorded(ctx):
        return
    o = op(ctx, "floating_ip")
    network = o.network
    for entry in ctx.resources("floating_ip_association"):
        fip_id, _, port_id = entry.resource_id.partition("/")
        with o.call(f"disassociate {fip_id} from port {port_id} of"):
            fip = ignore_missing_get(network.get_ip)(fip_id)
            if fip is not None and fip.port_id == port_id:
                network.update_ip(fip, port_id=None)
        ctx.forget_resource("floating_ip_association", entry.resource_id)
    _delete(o, "ip")
