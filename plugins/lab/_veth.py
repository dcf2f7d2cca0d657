"""veth pairs between a namespace and a host bridge, tagged with the creating operation's idempotency key.

The tag (the interface alias) makes a half-built pair findable after a crash, so a retried create adopts
what it already made instead of adding a second interface.
"""

from __future__ import annotations

import hashlib

from tempano.plugins.contract import ConfigurationError
from tempano.plugins.lab import _system


def mac_address(tag: str, side: str) -> str:
    """A locally administered unicast MAC derived from the tag: a recreated port (heal) keeps its MAC, so the
    neighbours' ARP caches stay right and traffic resumes at once instead of after the stale entries expire."""
    digest = hashlib.sha256(f"{tag}/{side}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def tagged(namespace: str, tag: str) -> str | None:
    """The interface inside ``namespace`` whose alias is ``tag``."""
    for rec in _system.links(namespace=namespace):
        if rec.get("ifalias") == tag:
            return str(rec["ifname"])
    return None


def free_name(namespace: str, stem: str = "eth") -> str:
    """The first ``<stem>N`` not yet used in the namespace."""
    used = {str(rec.get("ifname")) for rec in _system.links(namespace=namespace)}
    return next(f"{stem}{n}" for n in range(len(used) + 1) if f"{stem}{n}" not in used)


def ensure(
    host_name: str, namespace: str, inner_name: str | None, *, tag: str, bridge: str | None, mtu: int | None = None
) -> str:
    """Create or adopt the pair; returns the interface name inside the namespace.

    ``inner_name`` None picks the first free ``ethN``. Both ends take ``mtu`` (if given), the host side joins
    ``bridge`` (if given) and both ends are brought up.
    """
    inner = tagged(namespace, tag)
    if inner is None or _system.link(host_name) is None:
        # nothing, or half a pair left by a crash: start over from a clean slate
        _system.delete_link(host_name)
        if inner is not None:
            _system.delete_link(inner, namespace=namespace)
        inner = inner_name or free_name(namespace)
        if _system.link(inner, namespace=namespace) is not None:
            raise ConfigurationError(
                f"interface {inner} already exists in namespace {namespace} and was not made by {tag}: "
                "give this port another interface name"
            )
        peer = ["peer", "name", inner, "address", mac_address(tag, "inner"), "netns", namespace]
        _system.run(
            ["ip", "link", "add", host_name, "address", mac_address(tag, "host"), "type", "veth", *peer],
            what=f"creating veth {host_name} <-> {namespace}:{inner}",
        )
        # the inner end is tagged at once: it is what a retry after a crash looks for
        _system.run(
            ["ip", "-n", namespace, "link", "set", "dev", inner, "alias", tag],
            what=f"tagging {namespace}:{inner}",
        )
    # one `ip link set` per end for the rest (alias, MTU, bridge, up), which an adopted pair gets again too
    sized = ["mtu", str(mtu)] if mtu is not None else []
    attached = ["master", bridge] if bridge is not None else []
    _system.run(
        ["ip", "link", "set", "dev", host_name, "alias", tag, *sized, *attached, "up"],
        what=f"setting up {host_name}" + (f" in bridge {bridge}" if bridge is not None else ""),
    )
    _system.run(
        ["ip", "-n", namespace, "link", "set", "dev", inner, *sized, "up"], what=f"setting up {namespace}:{inner}"
    )
    return inner


def set_address(namespace: str, interface: str, cidr_address: str) -> None:
    """Give the interface exactly this IPv4 address (others are removed: a rerun may have changed it)."""
    current = _system.addresses(interface, namespace=namespace)
    for other in current:
        if other != cidr_address:
            _system.run(
                ["ip", "-n", namespace, "addr", "del", other, "dev", interface],
                what=f"removing stale address {other} from {namespace}:{interface}",
            )
    if cidr_address not in current:
        _system.run(
            ["ip", "-n", namespace, "addr", "add", cidr_address, "dev", interface],
            what=f"adding address {cidr_address} to {namespace}:{interface}",
        )
