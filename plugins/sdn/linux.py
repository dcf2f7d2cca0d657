"""The ``linux`` driver: stitches two lab sites' bridges with a VXLAN tunnel between their edge namespaces.

Each site has an "edge router" network namespace with an address on an underlay network. For a link,
each edge namespace gets a bridge holding a VXLAN device (local = this site's underlay address,
remote = the other site's) and one end of a veth pair whose other end joins the site's network bridge
in the host namespace. Frames from one site's bridge thus cross the underlay to the other site's bridge.

Names are derived from a hash of the link's idempotency key (Linux allows 15 characters), the same in
both edge namespaces; only the host-side veth ends carry the side (``a``/``b``), since they share the
host namespace.

An L3 link keeps the two networks apart and routes between them instead: no bridge in the edge
namespaces; the edge veth takes the link's gateway address on the site network, the VXLAN device
becomes a point-to-point transit (a /31 of 169.254.0.0/16 derived from the link key), the edge routes
the other site's subnet over it and forwards. Hosts route the remote subnet via the gateway address.

MTU: VXLAN adds 50 bytes (70 over IPv6) to every frame, and the underlay MTU is that of the edge
namespace's interface towards the other site (the first hop: the driver cannot see further). An L2 link
is one Ethernet segment, which cannot fragment and sends no "too big" errors, so a frame larger than the
tunnel is dropped without a trace; the driver therefore gives the tunnel and its veths the site
networks' MTU, and refuses the link with a sentence when the underlay cannot carry that plus the
overhead (or the two site networks' MTUs differ). An L3 link is routed, so the edges can tell hosts to
send smaller packets (ICMP fragmentation-needed, path MTU discovery): there the transit takes what the
underlay can carry, and the driver logs a line when that is less than the site networks' MTU.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tempano.plugins.contract import ConfigurationError, Resource, RetryableError
from tempano.plugins.sdn.driver import (
    Credentials,
    LinkEnd,
    LinkSpec,
    LinkState,
    LinkStatus,
    Recorder,
    SdnDriver,
    SiteSpec,
    register_driver,
)

TUNNEL_KIND = "sdn.linux.tunnel"
VXLAN_PORT = 4789
VXLAN_OVERHEAD = {4: 50, 6: 70}
"""Bytes VXLAN adds to an Ethernet frame: outer IP + UDP + VXLAN headers + the inner Ethernet header."""
IP_TIMEOUT_S = 15.0
NAME_PREFIX = "tw"
"""Every interface the driver makes starts with this (tempano WAN), which is how :meth:`list` finds them."""


class IpCommandFailed(RetryableError):
    """An ``ip`` command failed for a reason other than a missing object."""


def ip(args: Sequence[str], *, namespace: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip [-n namespace] args``; a failure becomes an error naming the command and namespace."""
    cmd = ["ip", *(["-n", namespace] if namespace else []), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise ConfigurationError(
            "the linux SDN driver needs the `ip` command (iproute2) on the worker; install iproute2"
        ) from None
    except subprocess.TimeoutExpired:
        raise IpCommandFailed(f"`{' '.join(cmd)}` did not finish within {IP_TIMEOUT_S:.0f}s") from None
    if check and proc.returncode != 0:
        where = f" in namespace {namespace!r}" if namespace else " in the host namespace"
        raise IpCommandFailed(f"`{' '.join(cmd)}` failed{where}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def namespace_exists(namespace: str) -> bool:
    out = ip(["-j", "netns", "list"]).stdout.strip()
    return any(entry.get("name") == namespace for entry in json.loads(out or "[]"))


def link_info(name: str, namespace: str | None = None) -> dict[str, Any] | None:
    """``ip -d -j link show dev name`` as a dict, or None when there is no such device (or namespace)."""
    proc = ip(["-d", "-j", "link", "show", "dev", name], namespace=namespace, check=False)
    if proc.returncode != 0:
        return None
    entries: list[dict[str, Any]] = json.loads(proc.stdout or "[]")
    return entries[0] if entries else None


@dataclass(frozen=True)
class TunnelEnd:
    """The interfaces of one side of a link (all named from the link key)."""

    namespace: str
    bridge: str
    vxlan: str
    edge_veth: str
    host_veth: str
    site_bridge: str
    vni: int
    local: str
    remote: str
    service_type: str = "L2"
    address: str = ""
    """L3: the gateway address with prefix the edge veth takes on the site network."""
    transit: str = ""
    """L3: this end's address with prefix on the VXLAN transit."""
    peer: str = ""
    """L3: the other end's transit address (the next hop to the remote subnet)."""
    remote_cidr: str = ""
    """L3: the other site's subnet, routed over the transit."""

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> TunnelEnd:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    @property
    def routed(self) -> bool:
        return self.service_type == "L3"

    def as_data(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class MtuPlan:
    """The MTUs a link's devices take, from what the site bridges and the underlay allow."""

    tunnel: int
    """The VXLAN device at both ends."""
    veth: tuple[int, int]
    """The veth pair of side a and of side b (the site network's MTU)."""
    clamped: str = ""
    """L3: a sentence when the transit carries less than the site networks do."""


class LinuxVxlanDriver(SdnDriver):
    """VXLAN between edge namespaces on this host (the lab VIM's WAN)."""

    name = "linux"

    def prepare_site(self, site: SiteSpec, record: Recorder) -> dict[str, Any]:
        namespace, address = self._edge(site)
        status = self.check_site(site)
        if not status.ok:
            raise ConfigurationError(" ".join(status.problems))
        return {"edge_namespace": namespace, "underlay_address": address}

    def check_site(self, site: SiteSpec) -> LinkStatus:
        namespace, address = self._edge(site)
        if not namespace_exists(namespace):
            return LinkStatus(
                LinkState.BROKEN,
                (
                    f"site {site.name!r}: edge namespace {namespace!r} does not exist on this host; "
                    "create it and attach it to the underlay network before installing the site",
                ),
            )
        addrs = json.loads(ip(["-j", "addr", "show"], namespace=namespace).stdout or "[]")
        local = {a.get("local") for iface in addrs for a in iface.get("addr_info", [])}
        if address not in local:
            return LinkStatus(
                LinkState.BROKEN,
                (
                    f"site {site.name!r}: underlay address {address} is not configured in edge namespace "
                    f"{namespace!r} (it has {', '.join(sorted(str(a) for a in local)) or 'none'}); "
                    "fix the site's underlay_address property or the namespace's addressing",
                ),
            )
        return LinkStatus(LinkState.UP)

    def connect(self, link: LinkSpec, record: Recorder) -> dict[str, Any]:
        ends = self._tunnel_ends(link)
        for side, end in zip("ab", ends, strict=True):
            self._require_end(link, side, end)
        mtu = self._plan_mtu(link, ends)  # refuses before anything is made
        if mtu.clamped:
            self.logger.warning("%s", mtu.clamped)
        for end, veth_mtu in zip(ends, mtu.veth, strict=True):
            self._ensure_end(end, mtu.tunnel, veth_mtu, record)
        return {
            "vni": ends[0].vni,
            "mtu": mtu.tunnel,
            "tunnel_interfaces": {side: f"{e.namespace}/{e.vxlan}" for side, e in zip("ab", ends, strict=True)},
        }

    def disconnect(self, resource: Resource) -> None:
        end = TunnelEnd.from_data(resource.data)
        if namespace_exists(end.namespace):
            # Deleting the edge veth removes its host-side peer too; the bridge goes last.
            for dev in (end.vxlan, end.edge_veth, end.bridge):
                _delete_device(dev, end.namespace)
        _delete_device(end.host_veth)

    def status(self, link: LinkSpec) -> LinkStatus:
        problems: list[str] = []
        present = 0
        ends = self._tunnel_ends(link)
        for end in ends:
            found, end_problems = self._inspect_end(link, end)
            present += found
            problems.extend(end_problems)
        mtu: MtuPlan | None = None
        if not problems:
            try:
                mtu = self._plan_mtu(link, ends)
            except ConfigurationError as exc:  # the underlay or a site network changed since create
                problems.append(exc.message)
        if mtu is not None:
            problems.extend(self._mtu_problems(link, ends, mtu))
        if not problems:
            assert mtu is not None
            return LinkStatus(LinkState.UP, details={"vni": ends[0].vni, "mtu": mtu.tunnel})
        return LinkStatus(LinkState.ABSENT if present == 0 else LinkState.BROKEN, tuple(problems))

    def list_links(self) -> list[str]:
        """Host-side veth ends made by this driver (one per link end), e.g. ``tw1a2b3c4da``."""
        out = json.loads(ip(["-j", "link", "show", "type", "veth"]).stdout or "[]")
        return sorted(e["ifname"] for e in out if str(e.get("ifname", "")).startswith(NAME_PREFIX))

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _edge(site: SiteSpec) -> tuple[str, str]:
        if not site.edge_namespace or not site.underlay_address:
            raise ConfigurationError(
                f"site {site.name!r} uses the linux SDN driver but lacks "
                f"{'edge_namespace' if not site.edge_namespace else 'underlay_address'}; "
                "set both properties on the site"
            )
        return site.edge_namespace, site.underlay_address

    def _tunnel_ends(self, link: LinkSpec) -> tuple[TunnelEnd, TunnelEnd]:
        h = link.short_hash
        vni = link.vni if link.vni is not None else int(h[:6], 16) or 1
        routing = self._routing(link) if link.service_type == "L3" else None

        def end(this: LinkEnd, other: LinkEnd, side: str) -> TunnelEnd:
            namespace, local = self._edge(this.site)
            _, remote = self._edge(other.site)
            l3: dict[str, str] = {}
            if routing is not None:
                l3 = {"service_type": "L3", **routing[side]}
            return TunnelEnd(
                namespace=namespace,
                bridge=f"{NAME_PREFIX}br{h}",
                vxlan=f"{NAME_PREFIX}vx{h}",
                edge_veth=f"{NAME_PREFIX}ve{h}",
                host_veth=f"{NAME_PREFIX}{h}{side}",
                site_bridge=this.network,
                vni=vni,
                local=local,
                remote=remote,
                **l3,
            )

        if link.a.site.edge_namespace == link.b.site.edge_namespace:
            raise ConfigurationError(
                f"link {link.name!r} joins two ends in the same edge namespace "
                f"{link.a.site.edge_namespace!r}; each site needs its own edge namespace"
            )
        return end(link.a, link.b, "a"), end(link.b, link.a, "b")

    @staticmethod
    def _routing(link: LinkSpec) -> dict[str, dict[str, str]]:
        """Per side: the gateway address, the transit address and peer, the remote subnet (L3 links)."""
        nets: dict[str, ipaddress.IPv4Network] = {}
        gateways: dict[str, ipaddress.IPv4Address] = {}
        for side, end in zip("ab", link.ends, strict=True):
            if not end.cidr or not end.gateway:
                raise ConfigurationError(
                    f"link {link.name!r} is L3 but endpoint_{side} has "
                    f"{'no cidr (the network exposes none)' if not end.cidr else 'no gateway'}; an L3 link needs "
                    f"each endpoint network's cidr and the link's gateway_{side} property (an address of that "
                    "network for the edge router)"
                )
            try:
                nets[side] = ipaddress.IPv4Network(end.cidr, strict=False)
                gateways[side] = ipaddress.IPv4Address(end.gateway)
            except ValueError as exc:
                raise ConfigurationError(f"link {link.name!r}: endpoint_{side}: {exc}") from None
            if gateways[side] not in nets[side]:
                raise ConfigurationError(
                    f"link {link.name!r}: gateway_{side} {gateways[side]} is not in endpoint_{side}'s subnet "
                    f"{nets[side]}; pick an address of that network"
                )
        if nets["a"].overlaps(nets["b"]):
            raise ConfigurationError(
                f"link {link.name!r} is L3 but its endpoints' subnets {nets['a']} and {nets['b']} overlap; "
                "route between distinct subnets, or use service_type L2 to join them into one segment"
            )
        base = int(link.short_hash[:4], 16) & 0xFFFE
        transit = {"a": ipaddress.IPv4Address("169.254.0.0") + base}
        transit["b"] = transit["a"] + 1
        return {
            side: {
                "address": f"{gateways[side]}/{nets[side].prefixlen}",
                "transit": f"{transit[side]}/31",
                "peer": str(transit[other]),
                "remote_cidr": str(nets[other]),
            }
            for side, other in (("a", "b"), ("b", "a"))
        }

    @staticmethod
    def _require_end(link: LinkSpec, side: str, end: TunnelEnd) -> None:
        ns = end.namespace
        if not namespace_exists(ns):
            raise ConfigurationError(
                f"link {link.name!r}: edge namespace {ns!r} of site {getattr(link, side).site.name!r} "
                "does not exist; install the site first (or recreate its edge namespace)"
            )
        if link_info(end.site_bridge) is None:
            raise ConfigurationError(
                f"link {link.name!r}: network bridge {end.site_bridge!r} of site "
                f"{getattr(link, side).site.name!r} does not exist in the host namespace; "
                "the link's endpoint network must be created first"
            )

    def _plan_mtu(self, link: LinkSpec, ends: tuple[TunnelEnd, TunnelEnd]) -> MtuPlan:
        """The tunnel and veth MTUs; raises :class:`ConfigurationError` when an L2 link would drop frames."""
        site = tuple(_mtu(link_info(end.site_bridge)) for end in ends)
        carries = tuple(_underlay_mtu(link, end) - _overhead(end.local) for end in ends)
        tunnel = min(carries)
        narrow = ends[carries.index(tunnel)]
        underlay = f"the underlay from edge namespace {narrow.namespace!r} to {narrow.remote}"
        overhead = _overhead(narrow.local)
        if link.service_type == "L3":
            clamped = ""
            if tunnel < max(site):
                clamped = (
                    f"link {link.name!r}: {underlay} has MTU {tunnel + overhead}, which leaves {tunnel} bytes after "
                    f"VXLAN's {overhead}, less than the site networks' {max(site)}; the routed transit uses MTU "
                    f"{tunnel} and the edge routers ask senders of larger packets to shrink them (ICMP "
                    f"fragmentation-needed). Raise the underlay MTU to {max(site) + overhead} to avoid this"
                )
            return MtuPlan(tunnel, (site[0], site[1]), clamped)
        if site[0] != site[1]:
            raise ConfigurationError(
                f"link {link.name!r} would join network bridges {ends[0].site_bridge!r} (MTU {site[0]}) and "
                f"{ends[1].site_bridge!r} (MTU {site[1]}) into one L2 segment; frames larger than {min(site)} "
                "bytes would be dropped on the way to the smaller one. Give both networks the same MTU"
            )
        if tunnel < site[0]:
            raise ConfigurationError(
                f"link {link.name!r}: {underlay} has MTU {tunnel + overhead}, which leaves {tunnel} bytes after "
                f"VXLAN's {overhead}, but the site networks use {site[0]}; an L2 link cannot fragment, so "
                f"full-size frames would be dropped without a trace. Raise the underlay MTU to at least "
                f"{site[0] + overhead} (the lab Network's mtu property), lower both site networks' MTU to "
                f"{tunnel}, or use service_type L3"
            )
        return MtuPlan(site[0], (site[0], site[1]))

    def _ensure_end(self, end: TunnelEnd, tunnel_mtu: int, veth_mtu: int, record: Recorder) -> None:
        ns = end.namespace
        if not end.routed and link_info(end.bridge, ns) is None:
            ip(["link", "add", end.bridge, "type", "bridge"], namespace=ns)
        record(TUNNEL_KIND, f"{ns}/{end.vxlan}", {"driver": "linux", **end.as_data()})

        vx = link_info(end.vxlan, ns)
        if vx is not None and not self._vxlan_matches(vx, end):
            # A device with our name but another VNI/peer: ours from an older spec; rebuild it.
            ip(["link", "del", "dev", end.vxlan], namespace=ns)
            vx = None
        if vx is None:
            ip(
                [
                    "link",
                    "add",
                    end.vxlan,
                    "type",
                    "vxlan",
                    "id",
                    str(end.vni),
                    "local",
                    end.local,
                    "remote",
                    end.remote,
                    "dstport",
                    str(VXLAN_PORT),
                ],
                namespace=ns,
            )
        if link_info(end.edge_veth, ns) is None:
            if link_info(end.host_veth) is not None:
                ip(["link", "del", "dev", end.host_veth])  # orphan host end of a half-made pair
            ip(["link", "add", end.host_veth, "type", "veth", "peer", "name", end.edge_veth, "netns", ns])
        # Set on every run: an adopted device may carry the kernel's default (1450 for VXLAN).
        ip(["link", "set", "dev", end.vxlan, "mtu", str(tunnel_mtu)], namespace=ns)
        ip(["link", "set", "dev", end.edge_veth, "mtu", str(veth_mtu)], namespace=ns)
        ip(["link", "set", "dev", end.host_veth, "mtu", str(veth_mtu)])
        if end.routed:
            self._ensure_routing(end)
        else:
            for dev in (end.vxlan, end.edge_veth):
                ip(["link", "set", "dev", dev, "master", end.bridge, "up"], namespace=ns)
            ip(["link", "set", "dev", end.bridge, "up"], namespace=ns)
        ip(["link", "set", "dev", end.host_veth, "master", end.site_bridge, "up"])

    @staticmethod
    def _ensure_routing(end: TunnelEnd) -> None:
        ns = end.namespace
        # A device that was bridged (the link was L2 before) must leave the bridge to carry addresses.
        if link_info(end.bridge, ns) is not None:
            ip(["link", "del", "dev", end.bridge], namespace=ns)
        ip(["addr", "replace", end.address, "dev", end.edge_veth], namespace=ns)
        ip(["addr", "replace", end.transit, "dev", end.vxlan], namespace=ns)
        for dev in (end.vxlan, end.edge_veth):
            ip(["link", "set", "dev", dev, "up"], namespace=ns)
        ip(["route", "replace", end.remote_cidr, "via", end.peer, "dev", end.vxlan], namespace=ns)
        ip(["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])

    @staticmethod
    def _routing_problems(end: TunnelEnd, where: str) -> list[str]:
        ns = end.namespace
        problems: list[str] = []
        addrs = json.loads(ip(["-j", "addr", "show"], namespace=ns).stdout or "[]")
        have = {
            (i.get("ifname"), f"{a.get('local')}/{a.get('prefixlen')}") for i in addrs for a in i.get("addr_info", [])
        }
        for dev, address in ((end.edge_veth, end.address), (end.vxlan, end.transit)):
            if (dev, address) not in have:
                problems.append(f"{where}, interface {dev} lacks address {address}")
        routes = json.loads(ip(["-j", "route", "show", end.remote_cidr], namespace=ns).stdout or "[]")
        if not any(r.get("gateway") == end.peer and r.get("dev") == end.vxlan for r in routes):
            problems.append(f"{where}, no route to {end.remote_cidr} via {end.peer} on {end.vxlan}")
        forwarding = ip(["netns", "exec", ns, "sysctl", "-n", "net.ipv4.ip_forward"], check=False).stdout.strip()
        if forwarding != "1":
            problems.append(f"{where}, IPv4 forwarding is off")
        return problems

    @staticmethod
    def _mtu_problems(link: LinkSpec, ends: tuple[TunnelEnd, TunnelEnd], mtu: MtuPlan) -> list[str]:
        problems: list[str] = []
        for end, veth_mtu in zip(ends, mtu.veth, strict=True):
            for dev, ns, want in (
                (end.vxlan, end.namespace, mtu.tunnel),
                (end.edge_veth, end.namespace, veth_mtu),
                (end.host_veth, None, veth_mtu),
            ):
                have = _mtu(link_info(dev, ns))
                if have != want:
                    where = f"in edge namespace {ns!r}" if ns else "in the host namespace"
                    problems.append(f"link {link.name!r}: {where}, interface {dev} has MTU {have}, not {want}")
        return problems

    @staticmethod
    def _vxlan_matches(info: Mapping[str, Any], end: TunnelEnd) -> bool:
        data = info.get("linkinfo", {}).get("info_data", {})
        return bool(data.get("id") == end.vni and data.get("local") == end.local and data.get("remote") == end.remote)

    def _inspect_end(self, link: LinkSpec, end: TunnelEnd) -> tuple[int, list[str]]:
        """How many of the end's devices exist, and a sentence per problem."""
        ns = end.namespace
        where = f"link {link.name!r}: in edge namespace {ns!r}"
        if not namespace_exists(ns):
            return 0, [f"link {link.name!r}: edge namespace {ns!r} is gone"]
        problems: list[str] = []
        found = 0
        names = (end.vxlan, end.edge_veth) if end.routed else (end.bridge, end.vxlan, end.edge_veth)
        devices = {name: link_info(name, ns) for name in names}
        for name, info in devices.items():
            if info is None:
                problems.append(f"{where}, interface {name} is missing")
                continue
            found += 1
            if "UP" not in info.get("flags", []):
                problems.append(f"{where}, interface {name} is down")
            if not end.routed and name != end.bridge and info.get("master") != end.bridge:
                problems.append(f"{where}, interface {name} is not in bridge {end.bridge}")
        if end.routed and found == len(names):
            problems.extend(self._routing_problems(end, where))
        vx = devices[end.vxlan]
        if vx is not None and not self._vxlan_matches(vx, end):
            problems.append(f"{where}, vxlan {end.vxlan} does not carry VNI {end.vni} from {end.local} to {end.remote}")
        host = link_info(end.host_veth)
        if host is None:
            problems.append(f"link {link.name!r}: host-side veth {end.host_veth} is missing")
        else:
            found += 1
            if host.get("master") != end.site_bridge:
                problems.append(
                    f"link {link.name!r}: host-side veth {end.host_veth} is not in site bridge {end.site_bridge}"
                )
        return found, problems


def _delete_device(name: str, namespace: str | None = None) -> None:
    """Delete a device if it exists; one that vanishes meanwhile (a veth whose peer's namespace is being
    torn down by the kernel) counts as deleted."""
    if link_info(name, namespace) is None:
        return
    proc = ip(["link", "del", "dev", name], namespace=namespace, check=False)
    if proc.returncode != 0 and link_info(name, namespace) is not None:
        where = f"namespace {namespace!r}" if namespace else "the host namespace"
        raise IpCommandFailed(f"`ip link del dev {name}` failed in {where}: {proc.stderr.strip()}")


def _mtu(info: Mapping[str, Any] | None) -> int:
    return int((info or {}).get("mtu", 0))


def _overhead(address: str) -> int:
    return VXLAN_OVERHEAD[ipaddress.ip_address(address).version]


def _underlay_mtu(link: LinkSpec, end: TunnelEnd) -> int:
    """The MTU towards the other site: the edge's outgoing interface, or the route's own mtu when lower."""
    proc = ip(["-j", "route", "get", end.remote], namespace=end.namespace, check=False)
    routes: list[dict[str, Any]] = json.loads(proc.stdout or "[]") if proc.returncode == 0 else []
    if not routes or not routes[0].get("dev"):
        raise ConfigurationError(
            f"link {link.name!r}: edge namespace {end.namespace!r} has no route to the other site's underlay "
            f"address {end.remote}; connect both edge namespaces to the underlay network"
        )
    mtu = _mtu(link_info(str(routes[0]["dev"]), end.namespace))
    for metric in routes[0].get("metrics", []):
        if isinstance(metric, dict) and "mtu" in metric:
            mtu = min(mtu, int(metric["mtu"]))
    return mtu


def _factory(site: SiteSpec, credentials: Credentials | None) -> SdnDriver:
    return LinuxVxlanDriver()


register_driver("linux", _factory)
