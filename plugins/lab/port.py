"""Ports: a veth pair from a server's namespace to a network's bridge, with a fixed or allocated address.

Operations: ``lab.port.create``, ``lab.port.delete``. A port finds its server through its
``tosca.relationships.network.BindsTo`` relationship and its network through ``...LinksTo``.
Properties: ``ip_address`` (fixed, else allocated), ``interface`` (name inside the namespace, else ``ethN``),
``is_default`` (true: default route via the network's ``gateway_ip``), ``routes`` (list of
``{destination, via}``). Both ends of the veth take the network's MTU (its ``mtu`` attribute).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from tempano.plugins.contract import ConfigurationError, InstanceView, NonRetryableError, OperationContext
from tempano.plugins.lab import _deployment, _naming, _state, _system, _veth
from tempano.plugins.lab._plugin import plugin

BINDS_TO = "tosca.relationships.network.BindsTo"
LINKS_TO = "tosca.relationships.network.LinksTo"


def _one(ctx: OperationContext, relationship: str, what: str, attribute: str) -> InstanceView:
    found = ctx.targets(relationship)
    if len(found) != 1:
        raise ConfigurationError(
            f"port {ctx.instance.id} needs exactly one {what} through a {relationship} requirement, "
            f"it has {len(found)}: fix the blueprint's requirements"
        )
    target = found[0]
    if not target.attributes.get(attribute):
        raise NonRetryableError(
            f"port {ctx.instance.id}: its {what} {target.id} has no {attribute!r} attribute yet; it must be "
            f"created by the lab plugin before the port"
        )
    return target


@plugin.operation("port.create")
def create_port(ctx: OperationContext) -> dict[str, Any]:
    """Create (or adopt) the veth pair, give it its address and routes."""
    _system.require_privileges()
    server = _one(ctx, BINDS_TO, "server", "namespace")
    network = _one(ctx, LINKS_TO, "network", "bridge")
    dep = ctx.deployment_id
    namespace = str(server.attributes["namespace"])
    host_name = _naming.interface_name(dep, ctx.instance.id, _naming.PORT_VETH)
    props = ctx.properties
    with _state.locked(_state.deployment_lock(dep)):
        ipam = _state.Ipam(dep, network.id)
        pool = ipam.read()
        if pool is None:
            raise NonRetryableError(
                f"port {ctx.instance.id}: network {network.id} has no address pool in {ipam.path}; recreate the network"
            )
        fixed = props.get("ip_address")
        address = ipam.allocate(ctx.idempotency_key, str(fixed) if fixed else None)
        ctx.record_resource("address", address, {"network": network.id, "key": ctx.idempotency_key})
        ctx.record_resource("veth", host_name, {"namespace": namespace})
        inner = _veth.ensure(
            host_name,
            namespace,
            _opt(props.get("interface")),
            tag=ctx.idempotency_key,
            bridge=str(network.attributes["bridge"]),
            mtu=_opt_int(network.attributes.get("mtu")),
        )
    prefix = pool.network.prefixlen
    _veth.set_address(namespace, inner, f"{address}/{prefix}")
    gateway = pool.gateway
    if props.get("is_default"):
        if not gateway or gateway == address:
            raise ConfigurationError(
                f"port {ctx.instance.id} asks for the default route (is_default) but network {network.id} "
                f"has {'no gateway_ip' if not gateway else 'this port as its gateway'}: set gateway_ip"
            )
        _system.run(
            ["ip", "-n", namespace, "route", "replace", "default", "via", gateway, "dev", inner],
            what=f"setting the default route via {gateway} in namespace {namespace}",
        )
    for route in props.get("routes") or []:
        _add_route(ctx, namespace, inner, route)
    rec = _system.link(inner, namespace=namespace) or {}
    attributes: dict[str, Any] = {
        "ip_address": address,
        "cidr": pool.cidr,
        "prefix_len": prefix,
        "gateway_ip": gateway,
        "interface": inner,
        "host_interface": host_name,
        "namespace": namespace,
        "mac_address": rec.get("address"),
        "network": network.id,
        "server": server.id,
    }
    for name, value in attributes.items():
        ctx.set_attribute(name, value)
    ctx.log("%s: %s:%s %s/%d on %s", ctx.instance.id, namespace, inner, address, prefix, network.id)
    return attributes


def _opt(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _opt_int(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None


def _add_route(ctx: OperationContext, namespace: str, interface: str, route: Any) -> None:
    try:
        destination = str(ipaddress.IPv4Network(str(route["destination"]), strict=False))
        via = str(ipaddress.IPv4Address(str(route["via"])))
    except (KeyError, TypeError, ValueError):
        raise ConfigurationError(
            f"port {ctx.instance.id}: route {route!r} must be {{destination: 10.0.2.0/24, via: 10.0.1.1}}"
        ) from None
    _system.run(
        ["ip", "-n", namespace, "route", "replace", destination, "via", via, "dev", interface],
        what=f"adding route {destination} via {via} in namespace {namespace}",
    )


@plugin.operation("port.delete")
def delete_port(ctx: OperationContext) -> None:
    """Delete the veth pair and release the address (idempotent)."""
    _system.require_privileges()
    dep = ctx.deployment_id
    removed: list[str] = []
    with _state.locked(_state.deployment_lock(dep)):
        for res in reversed(ctx.resources()):
            if not res.external:
                if res.kind == "veth" and _system.delete_link(res.resource_id):
                    removed.append(f"veth {res.resource_id}")
                elif res.kind == "address":
                    _state.Ipam(dep, str(res.data.get("network"))).release(str(res.data.get("key")))
            ctx.forget_resource(res.kind, res.resource_id)
        host_name = _naming.interface_name(dep, ctx.instance.id, _naming.PORT_VETH)
        if _system.delete_link(host_name):
            removed.append(f"veth {host_name}")
        removed += _deployment.prune(dep)
    ctx.log("%s: removed %s", ctx.instance.id, ", ".join(removed) or "nothing (already gone)")
