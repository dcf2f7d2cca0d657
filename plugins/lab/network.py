"""Networks: a Linux bridge on the host with a subnet and an address pool (IPAM).

Operations: ``lab.network.create``, ``lab.network.delete``, ``lab.network.check``. Properties are the TOSCA
``tosca.nodes.network.Network`` ones: ``cidr`` (required), ``gateway_ip``, ``start_ip``, ``end_ip``, plus ``mtu``
(the bridge's and its ports' MTU, default the kernel's 1500). The gateway address is reserved: only a port that asks
for it by ``ip_address`` gets it (the router's port).

An underlay that carries tunnels (the sdn plugin's VXLAN adds 50 bytes to each frame) needs an ``mtu`` at least 50
above the networks it carries, e.g. 1550 for sites at 1500.
"""

from __future__ import annotations

from typing import Any

from tempano.plugins.contract import ConfigurationError, OperationContext, unhealthy
from tempano.plugins.lab import _deployment, _naming, _state, _system
from tempano.plugins.lab._plugin import plugin

DEFAULT_MTU = 1500
MIN_MTU, MAX_MTU = 576, 9000


def bridge_name(deployment_id: str, instance_id: str) -> str:
    return _naming.interface_name(deployment_id, instance_id, _naming.BRIDGE)


@plugin.operation("network.create")
def create_network(ctx: OperationContext) -> dict[str, Any]:
    """Create (or adopt) the bridge and its address pool."""
    _system.require_privileges()
    props = ctx.properties
    cidr = props.get("cidr")
    if not cidr:
        raise ConfigurationError(
            f"network {ctx.instance.id} has no cidr property: give it a subnet such as 10.10.1.0/24"
        )
    mtu = _mtu(ctx)
    dep = ctx.deployment_id
    bridge = bridge_name(dep, ctx.instance.id)
    with _state.locked(_state.deployment_lock(dep)):
        ipam = _state.Ipam(dep, ctx.instance.id)
        ctx.record_resource("ipam", str(ipam.path))
        pool = ipam.define(
            str(cidr),
            gateway=_opt(props.get("gateway_ip")),
            start=_opt(props.get("start_ip")),
            end=_opt(props.get("end_ip")),
        )
        ctx.record_resource("bridge", bridge)
        if _system.link(bridge) is None:
            _system.run(
                ["ip", "link", "add", "name", bridge, "type", "bridge"],
                what=f"creating bridge {bridge} for network {ctx.instance.id}",
            )
            _system.run(
                ["ip", "link", "set", "dev", bridge, "alias", ctx.idempotency_key],
                what=f"tagging bridge {bridge}",
            )
        if mtu is not None:
            # Set explicitly, the bridge keeps this MTU instead of following its smallest port.
            _system.run(["ip", "link", "set", "dev", bridge, "mtu", str(mtu)], what=f"setting the MTU of {bridge}")
        _system.run(["ip", "link", "set", "dev", bridge, "up"], what=f"bringing bridge {bridge} up")
    rec = _system.link(bridge) or {}
    attributes: dict[str, Any] = {
        "bridge": bridge,
        "network_name": str(props.get("network_name") or ctx.instance.id),
        "network_id": bridge,
        "cidr": pool.cidr,
        "gateway_ip": pool.gateway,
        "mtu": int(rec.get("mtu", mtu or DEFAULT_MTU)),
    }
    for name, value in attributes.items():
        ctx.set_attribute(name, value)
    ctx.log("%s: bridge %s for %s, MTU %d", ctx.instance.id, bridge, pool.cidr, attributes["mtu"])
    return attributes


def _mtu(ctx: OperationContext) -> int | None:
    value = ctx.properties.get("mtu")
    if value in (None, ""):
        return None
    try:
        mtu = int(value)
    except (TypeError, ValueError):
        mtu = 0
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise ConfigurationError(
            f"network {ctx.instance.id}: mtu {value!r} is not an MTU; give an integer from {MIN_MTU} to {MAX_MTU} "
            "(1500 for Ethernet, 1550 or more for an underlay carrying VXLAN)"
        )
    return mtu


def _opt(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


@plugin.operation("network.delete")
def delete_network(ctx: OperationContext) -> None:
    """Delete the bridge and its address pool (idempotent)."""
    _system.require_privileges()
    dep = ctx.deployment_id
    removed: list[str] = []
    with _state.locked(_state.deployment_lock(dep)):
        for res in reversed(ctx.resources()):
            if not res.external:
                if res.kind == "bridge" and _system.delete_link(res.resource_id):
                    removed.append(f"bridge {res.resource_id}")
                elif res.kind == "ipam":
                    _state.Ipam(dep, ctx.instance.id).remove()
            ctx.forget_resource(res.kind, res.resource_id)
        if _system.delete_link(bridge_name(dep, ctx.instance.id)):  # made, but the ledger missed it
            removed.append(f"bridge {bridge_name(dep, ctx.instance.id)}")
        _state.Ipam(dep, ctx.instance.id).remove()
        removed += _deployment.prune(dep)
    ctx.log("%s: removed %s", ctx.instance.id, ", ".join(removed) or "nothing (already gone)")


@plugin.operation("network.check")
def check_network(ctx: OperationContext) -> dict[str, Any]:
    """Health check: ``healthy: false`` when the bridge is gone or down."""
    bridge = bridge_name(ctx.deployment_id, ctx.instance.id)
    rec = _system.link(bridge)
    if rec is None:
        return unhealthy(f"network {ctx.instance.id} is unhealthy: its bridge {bridge} is gone")
    if "UP" not in rec.get("flags", []):
        return unhealthy(f"network {ctx.instance.id} is unhealthy: its bridge {bridge} is down")
    return {"healthy": True, "bridge": bridge}
