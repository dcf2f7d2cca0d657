"""The linux driver with real namespaces, bridges and VXLAN: packets cross sites only while the link exists.

Topology built by the fixture (all names start with ``tpsdn`` and a random tag)::

    host ns:   underlay bridge U ── veth ── edge ns A (10.77.0.1)    site bridge A ── veth ── server ns A
                                └── veth ── edge ns B (10.77.0.2)    site bridge B ── veth ── server ns B

The SDN plugin stitches site bridge A to site bridge B through the edge namespaces. The underlay runs at
MTU 1550 (room for VXLAN's 50 bytes around a 1500-byte frame) unless a test narrows it.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tempano.plugins.contract import ConfigurationError
from tempano.plugins.sdn import plugin
from tempano.plugins.sdn.driver import short_hash

pytestmark = pytest.mark.skipif(
    shutil.which("ip") is None or shutil.which("ping") is None, reason="needs iproute2 and ping (root)"
)

SERVER_A, SERVER_B = "192.168.77.1", "192.168.77.2"
UNDERLAY_MTU = 1550


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=30)


@dataclass
class Lab:
    tag: str
    edge_a: str
    edge_b: str
    server_a: str
    server_b: str
    bridge_a: str
    bridge_b: str
    underlay: str

    def pings(self, count: int = 1) -> bool:
        proc = sh("ip", "netns", "exec", self.server_a, "ping", "-c", str(count), "-W", "1", SERVER_B, check=False)
        return proc.returncode == 0

    def pings_eventually(self, tries: int = 5) -> bool:
        for _ in range(tries):
            if self.pings():
                return True
            time.sleep(0.3)
        return False


def _teardown(tag: str) -> None:
    """Remove every namespace and host interface whose name carries the tag (works on a half-built lab)."""
    for ns in json.loads(sh("ip", "-j", "netns", "list").stdout or "[]"):
        if ns["name"].startswith(f"tpsdn{tag}"):
            sh("ip", "netns", "del", ns["name"], check=False)
    for link in json.loads(sh("ip", "-j", "link", "show").stdout or "[]"):
        if link["ifname"].startswith(f"tpsdn{tag}"):
            sh("ip", "link", "del", "dev", link["ifname"], check=False)


@pytest.fixture
def lab() -> Iterator[Lab]:
    tag = secrets.token_hex(3)
    p = f"tpsdn{tag}"
    lab = Lab(tag, f"{p}-ea", f"{p}-eb", f"{p}-sa", f"{p}-sb", f"{p}a", f"{p}b", f"{p}u")
    try:
        sh("ip", "link", "add", lab.underlay, "type", "bridge")
        sh("ip", "link", "set", lab.underlay, "mtu", str(UNDERLAY_MTU), "up")
        for side, edge, addr in (("a", lab.edge_a, "10.77.0.1/24"), ("b", lab.edge_b, "10.77.0.2/24")):
            sh("ip", "netns", "add", edge)
            sh("ip", "link", "add", f"{p}u{side}", "type", "veth", "peer", "name", "uplink", "netns", edge)
            sh("ip", "link", "set", f"{p}u{side}", "mtu", str(UNDERLAY_MTU), "master", lab.underlay, "up")
            sh("ip", "-n", edge, "link", "set", "uplink", "mtu", str(UNDERLAY_MTU))
            sh("ip", "-n", edge, "addr", "add", addr, "dev", "uplink")
            sh("ip", "-n", edge, "link", "set", "uplink", "up")
            sh("ip", "-n", edge, "link", "set", "lo", "up")
        for side, server, bridge, addr in (
            ("a", lab.server_a, lab.bridge_a, f"{SERVER_A}/24"),
            ("b", lab.server_b, lab.bridge_b, f"{SERVER_B}/24"),
        ):
            sh("ip", "link", "add", bridge, "type", "bridge")
            sh("ip", "link", "set", bridge, "up")
            sh("ip", "netns", "add", server)
            sh("ip", "link", "add", f"{p}s{side}", "type", "veth", "peer", "name", "eth0", "netns", server)
            sh("ip", "link", "set", f"{p}s{side}", "master", bridge, "up")
            sh("ip", "-n", server, "addr", "add", addr, "dev", "eth0")
            sh("ip", "-n", server, "link", "set", "eth0", "up")
        yield lab
    finally:
        _teardown(tag)


@pytest.fixture
def world(lab: Lab, world_factory: Any) -> Any:
    w = world_factory(f"tpsdn{lab.tag}")
    w.site("central", driver="linux", underlay_address="10.77.0.1", edge_namespace=lab.edge_a)
    w.site("regional", driver="linux", underlay_address="10.77.0.2", edge_namespace=lab.edge_b)
    w.network("net_a", lab.bridge_a)
    w.network("net_b", lab.bridge_b)
    w.make_link("central", "net_a", "regional", "net_b", service_type="L2", vni=4242)
    return w


def run(ctx: Any, op: str) -> Any:
    return plugin.operations[op](ctx)


def tunnel_devices(lab: Lab, world: Any, skip_ns: str | None = None) -> list[str]:
    """Every interface of this link the driver could have left, in the edge namespaces and the host."""
    mark = short_hash(f"{world.deployment}.wan_1.create")
    names = []
    for ns in (lab.edge_a, lab.edge_b):
        if ns != skip_ns:
            out = sh("ip", "-n", ns, "-j", "link", "show").stdout
            names += [f"{ns}/{d['ifname']}" for d in json.loads(out or "[]") if mark in d["ifname"]]
    out = sh("ip", "-j", "link", "show").stdout
    return names + [d["ifname"] for d in json.loads(out or "[]") if mark in d["ifname"]]


def install(world: Any) -> dict[str, Any]:
    for site in ("central", "regional"):
        run(world.site_ctx(site, "create"), "site.create")
    result: dict[str, Any] = run(world.link_ctx("create"), "link.create")
    return result


def test_traffic_crosses_sites_only_while_the_link_exists(lab: Lab, world: Any) -> None:
    assert not lab.pings(), "the two site bridges must not be connected before the link"

    outputs = install(world)

    assert outputs["vni"] == 4242
    assert lab.pings_eventually(), "ping from site A's server to site B's server failed across the tunnel"
    assert run(world.link_ctx("check"), "link.check")["healthy"] is True
    vxlan = f"twvx{short_hash(f'{world.deployment}.wan_1.create')}"
    assert sorted(r.resource_id for r in world.link_resources()) == [
        f"{lab.edge_a}/{vxlan}",
        f"{lab.edge_b}/{vxlan}",
    ]

    removed = run(world.link_ctx("delete"), "link.delete")

    assert len(removed["removed"]) == 2
    assert not lab.pings(count=2), "traffic still crosses after the link was deleted"
    assert tunnel_devices(lab, world) == []
    assert world.link_resources() == []
    assert run(world.link_ctx("delete"), "link.delete") == {"removed": []}
    gone = run(world.link_ctx("check"), "link.check")
    assert gone["healthy"] is False and gone["state"] == "absent"
    assert gone["reason"].startswith("link 'wan_1' is absent: ")
    assert gone["reason"].endswith("; heal re-creates the link")


def test_check_detects_a_tunnel_deleted_behind_its_back_and_create_restores_it(lab: Lab, world: Any) -> None:
    install(world)
    assert lab.pings_eventually()
    vxlan = world.link_resources()[0].data["vxlan"]

    sh("ip", "-n", lab.edge_b, "link", "del", "dev", vxlan)

    assert not lab.pings(count=2)
    broken = run(world.link_ctx("check"), "link.check")
    assert broken["healthy"] is False and broken["state"] == "broken"
    missing = f"edge namespace {lab.edge_b!r}, interface {vxlan} is missing"
    assert missing in broken["reason"]
    assert any(missing in problem for problem in broken["problems"])

    run(world.link_ctx("create"), "link.create")  # what heal does: the same create, same key

    assert lab.pings_eventually()
    assert run(world.link_ctx("check"), "link.check")["healthy"] is True
    assert len(world.link_resources()) == 2, "a repaired link must not grow the ledger"


def test_create_twice_adopts_instead_of_duplicating(lab: Lab, world: Any) -> None:
    install(world)
    before = tunnel_devices(lab, world)

    run(world.link_ctx("create", attempt=2), "link.create")

    assert tunnel_devices(lab, world) == before
    assert len(before) == 8  # per side: bridge, vxlan, edge veth in the edge ns + the host veth end
    assert len(world.link_resources()) == 2
    run(world.link_ctx("delete"), "link.delete")
    assert tunnel_devices(lab, world) == []


def test_check_reports_a_detached_host_veth(lab: Lab, world: Any) -> None:
    install(world)
    host_veth = world.link_resources()[0].data["host_veth"]
    sh("ip", "link", "set", "dev", host_veth, "nomaster")

    detached = run(world.link_ctx("check"), "link.check")
    assert detached["healthy"] is False
    assert f"host-side veth {host_veth} is not in site bridge {lab.bridge_a}" in detached["reason"]


def test_edge_settings_given_as_site_create_inputs_serve_the_link_and_checks(lab: Lab, world_factory: Any) -> None:
    # What a blueprint does when it makes the edge routers itself: get_attribute in site.create's inputs.
    w = world_factory(f"tpsdn{lab.tag}")
    w.site("central", driver="linux")
    w.site("regional", driver="linux")
    w.network("net_a", lab.bridge_a)
    w.network("net_b", lab.bridge_b)
    w.make_link("central", "net_a", "regional", "net_b")
    edges = {"central": (lab.edge_a, "10.77.0.1"), "regional": (lab.edge_b, "10.77.0.2")}

    for site, (namespace, address) in edges.items():
        inputs = {"edge_namespace": namespace, "underlay_address": address}
        assert run(w.site_ctx(site, "create", inputs), "site.create") == {"driver": "linux", **inputs}
        assert run(w.site_ctx(site, "check"), "site.check") == {"healthy": True}
    run(w.link_ctx("create"), "link.create")

    assert lab.pings_eventually()
    run(w.link_ctx("delete"), "link.delete")
    assert not lab.pings(count=2)


def test_site_create_names_a_missing_edge_namespace(lab: Lab, world_factory: Any) -> None:
    w = world_factory(f"tpsdn{lab.tag}")
    w.site("lost", driver="linux", underlay_address="10.77.0.9", edge_namespace=f"tpsdn{lab.tag}-nope")

    with pytest.raises(ConfigurationError, match=f"edge namespace 'tpsdn{lab.tag}-nope' does not exist"):
        run(w.site_ctx("lost", "create"), "site.create")


def test_site_create_names_a_wrong_underlay_address(lab: Lab, world_factory: Any) -> None:
    w = world_factory(f"tpsdn{lab.tag}")
    w.site("typo", driver="linux", underlay_address="10.77.0.99", edge_namespace=lab.edge_a)

    with pytest.raises(ConfigurationError, match=r"underlay address 10\.77\.0\.99 is not configured"):
        run(w.site_ctx("typo", "create"), "site.create")


def test_site_check_answers_unhealthy_when_the_underlay_address_is_removed(lab: Lab, world: Any) -> None:
    run(world.site_ctx("central", "create"), "site.create")
    sh("ip", "-n", lab.edge_a, "addr", "del", "10.77.0.1/24", "dev", "uplink")

    answer = run(world.site_ctx("central", "check"), "site.check")

    assert answer["healthy"] is False and answer["state"] == "broken"
    assert answer["reason"].startswith("site 'central_1' is broken: ")
    assert f"underlay address 10.77.0.1 is not configured in edge namespace {lab.edge_a!r}" in answer["reason"]
    assert answer["reason"].endswith("; heal re-creates the site")


def test_link_delete_after_edge_namespace_vanished_is_clean(lab: Lab, world: Any) -> None:
    install(world)
    sh("ip", "netns", "del", lab.edge_b)

    run(world.link_ctx("delete"), "link.delete")

    assert world.link_resources() == []
    assert tunnel_devices(lab, world, skip_ns=lab.edge_b) == []


# -- L3: routed between two subnets ------------------------------------------------------------------

NET_A, NET_B = "192.168.71.0/24", "192.168.72.0/24"
GW_A, GW_B = "192.168.71.1", "192.168.72.1"
HOST_A, HOST_B = "192.168.71.10", "192.168.72.10"


@pytest.fixture
def routed(lab: Lab, world_factory: Any) -> Any:
    """The lab re-addressed into two subnets, each server routing the other's through its site's gateway."""
    for server, address, remote, gateway in (
        (lab.server_a, HOST_A, NET_B, GW_A),
        (lab.server_b, HOST_B, NET_A, GW_B),
    ):
        sh("ip", "-n", server, "addr", "flush", "dev", "eth0")
        sh("ip", "-n", server, "addr", "add", f"{address}/24", "dev", "eth0")
        sh("ip", "-n", server, "route", "add", remote, "via", gateway)
    w = world_factory(f"tpsdn{lab.tag}")
    w.site("central", driver="linux", underlay_address="10.77.0.1", edge_namespace=lab.edge_a)
    w.site("regional", driver="linux", underlay_address="10.77.0.2", edge_namespace=lab.edge_b)
    w.network("net_a", lab.bridge_a, NET_A)
    w.network("net_b", lab.bridge_b, NET_B)
    w.make_link("central", "net_a", "regional", "net_b", service_type="L3", gateway_a=GW_A, gateway_b=GW_B)
    return w


def routed_ping(lab: Lab, count: int = 1) -> bool:
    proc = sh("ip", "netns", "exec", lab.server_a, "ping", "-c", str(count), "-W", "1", HOST_B, check=False)
    return proc.returncode == 0


def routed_ping_eventually(lab: Lab, tries: int = 5) -> bool:
    for _ in range(tries):
        if routed_ping(lab):
            return True
        time.sleep(0.3)
    return False


def test_l3_link_routes_between_two_subnets_only_while_it_exists(lab: Lab, routed: Any) -> None:
    assert not routed_ping(lab)

    install(routed)

    assert routed_ping_eventually(lab), "no route across the L3 link"
    assert run(routed.link_ctx("check"), "link.check")["healthy"] is True
    h = short_hash(f"{routed.deployment}.wan_1.create")
    assert sh("ip", "-n", lab.edge_a, "link", "show", f"twbr{h}", check=False).returncode != 0, "L3 has no bridge"
    route = json.loads(sh("ip", "-n", lab.edge_a, "-j", "route", "show", NET_B).stdout)
    assert [(r["gateway"], r["dev"]) for r in route] == [(route[0]["gateway"], f"twvx{h}")]

    run(routed.link_ctx("delete"), "link.delete")

    assert not routed_ping(lab, count=2)
    assert tunnel_devices(lab, routed) == []


def test_l3_check_names_a_missing_route_and_create_repairs_it(lab: Lab, routed: Any) -> None:
    install(routed)
    sh("ip", "-n", lab.edge_b, "route", "del", NET_A)

    unrouted = run(routed.link_ctx("check"), "link.check")
    assert unrouted["healthy"] is False
    assert re.search(f"no route to {NET_A.replace('.', '[.]')} via 169[.]254[.]", unrouted["reason"])
    run(routed.link_ctx("create"), "link.create")

    assert run(routed.link_ctx("check"), "link.check")["healthy"] is True
    assert routed_ping_eventually(lab)
    run(routed.link_ctx("delete"), "link.delete")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gateway_b": None}, "is L3 but endpoint_b has no gateway"),
        ({"gateway_a": "10.9.9.9"}, "gateway_a 10.9.9.9 is not in endpoint_a's subnet 192.168.71.0/24"),
    ],
)
def test_l3_link_without_usable_gateways_is_refused_with_a_sentence(
    lab: Lab, routed: Any, change: dict[str, Any], message: str
) -> None:
    assert routed.link is not None
    props = {"service_type": "L3", "gateway_a": GW_A, "gateway_b": GW_B, **change}
    routed.make_link("central", "net_a", "regional", "net_b", **{k: v for k, v in props.items() if v})

    with pytest.raises(ConfigurationError, match=re.escape(message)):
        run(routed.link_ctx("create"), "link.create")
    assert tunnel_devices(lab, routed) == []


def test_l3_over_overlapping_subnets_is_refused(lab: Lab, world: Any) -> None:
    world.networks["net_a"].attributes["cidr"] = world.networks["net_b"].attributes["cidr"] = NET_A
    world.make_link(
        "central", "net_a", "regional", "net_b", service_type="L3", gateway_a=GW_A, gateway_b="192.168.71.2"
    )
    with pytest.raises(ConfigurationError, match=re.escape(f"subnets {NET_A} and {NET_A} overlap")):
        run(world.link_ctx("create"), "link.create")


# -- MTU: full-size frames cross, or the driver says why not -----------------------------------------

RECEIVER = """
import socket, sys
with socket.create_server((sys.argv[1], int(sys.argv[2]))) as server:
    print("ready", flush=True)
    server.settimeout(20)
    conn, _ = server.accept()
    conn.settimeout(10)
    total = 0
    try:
        while chunk := conn.recv(65536):
            total += len(chunk)
    except TimeoutError:
        pass
    print(total, flush=True)
"""

SENDER = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as conn:
    conn.sendall(b"x" * int(sys.argv[3]))
    conn.shutdown(socket.SHUT_WR)
"""

MEGABYTE = 1 << 20


def tcp_transfer(sender_ns: str, receiver_ns: str, address: str, size: int = MEGABYTE) -> int:
    """Bytes that arrive when ``sender_ns`` sends ``size`` bytes over TCP to ``address`` in ``receiver_ns``."""
    receiver = subprocess.Popen(
        ["ip", "netns", "exec", receiver_ns, sys.executable, "-c", RECEIVER, address, "5201"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        sh("ip", "netns", "exec", sender_ns, sys.executable, "-c", SENDER, address, "5201", str(size), check=False)
        out, _ = receiver.communicate(timeout=30)
        return int(out.strip() or 0)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()


def ping_unfragmented(namespace: str, address: str, payload: int) -> subprocess.CompletedProcess[str]:
    """One ping whose packet is ``payload`` + 28 bytes, with Don't Fragment set (``-M do``)."""
    return sh(
        "ip",
        "netns",
        "exec",
        namespace,
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "-M",
        "do",
        "-s",
        str(payload),
        address,
        check=False,
    )


def mtu_of(device: str, namespace: str | None = None) -> int:
    out = sh("ip", *(["-n", namespace] if namespace else []), "-j", "link", "show", "dev", device).stdout
    return int(json.loads(out)[0]["mtu"])


def narrow_underlay(lab: Lab, mtu: int = 1500) -> None:
    """What an underlay tempano does not control may look like: no room for VXLAN's overhead."""
    for edge in (lab.edge_a, lab.edge_b):
        sh("ip", "-n", edge, "link", "set", "uplink", "mtu", str(mtu))


def test_full_size_frames_and_a_megabyte_of_tcp_cross_an_l2_link(lab: Lab, world: Any) -> None:
    outputs = install(world)
    assert lab.pings_eventually()

    assert outputs["mtu"] == 1500
    vxlan = world.link_resources()[0].data["vxlan"]
    assert mtu_of(vxlan, lab.edge_a) == mtu_of(vxlan, lab.edge_b) == 1500
    full = ping_unfragmented(lab.server_a, SERVER_B, 1472)  # 1500-byte IP packet in a 1514-byte frame
    assert full.returncode == 0, full.stdout + full.stderr
    assert tcp_transfer(lab.server_a, lab.server_b, SERVER_B) == MEGABYTE
    assert run(world.link_ctx("check"), "link.check") == {"healthy": True, "vni": 4242, "mtu": 1500}
    run(world.link_ctx("delete"), "link.delete")


def test_l2_link_over_an_underlay_without_room_for_vxlan_is_refused_with_a_sentence(lab: Lab, world: Any) -> None:
    narrow_underlay(lab)
    for site in ("central", "regional"):
        run(world.site_ctx(site, "create"), "site.create")

    with pytest.raises(ConfigurationError) as refused:
        run(world.link_ctx("create"), "link.create")

    assert not refused.value.retryable
    assert (
        f"the underlay from edge namespace {lab.edge_a!r} to 10.77.0.2 has MTU 1500, which leaves 1450 bytes after "
        "VXLAN's 50, but the site networks use 1500" in refused.value.message
    )
    assert "Raise the underlay MTU to at least 1550" in refused.value.message
    assert tunnel_devices(lab, world) == []
    assert world.link_resources() == []


def test_l2_check_names_a_tunnel_mtu_changed_behind_its_back_and_create_restores_it(lab: Lab, world: Any) -> None:
    install(world)
    vxlan = world.link_resources()[0].data["vxlan"]
    sh("ip", "-n", lab.edge_b, "link", "set", "dev", vxlan, "mtu", "1450")  # the kernel's default for VXLAN

    shrunk = run(world.link_ctx("check"), "link.check")
    assert shrunk["healthy"] is False
    assert f"interface {vxlan} has MTU 1450, not 1500" in shrunk["reason"]
    run(world.link_ctx("create"), "link.create")

    assert run(world.link_ctx("check"), "link.check")["healthy"] is True
    run(world.link_ctx("delete"), "link.delete")


def test_l2_check_names_an_underlay_narrowed_after_create(lab: Lab, world: Any) -> None:
    install(world)
    narrow_underlay(lab)

    narrowed = run(world.link_ctx("check"), "link.check")
    assert narrowed["healthy"] is False
    assert "leaves 1450 bytes after VXLAN's 50" in narrowed["reason"]
    run(world.link_ctx("delete"), "link.delete")


def test_full_size_packets_and_a_megabyte_of_tcp_cross_an_l3_link(lab: Lab, routed: Any) -> None:
    outputs = install(routed)
    assert routed_ping_eventually(lab)

    assert outputs["mtu"] == 1500
    full = ping_unfragmented(lab.server_a, HOST_B, 1472)
    assert full.returncode == 0, full.stdout + full.stderr
    assert tcp_transfer(lab.server_a, lab.server_b, HOST_B) == MEGABYTE
    run(routed.link_ctx("delete"), "link.delete")


def test_l3_link_over_a_narrow_underlay_clamps_the_transit_and_says_so(
    lab: Lab, routed: Any, caplog: pytest.LogCaptureFixture
) -> None:
    narrow_underlay(lab)

    with caplog.at_level(logging.WARNING):
        outputs = install(routed)
    assert routed_ping_eventually(lab)

    assert outputs["mtu"] == 1450
    vxlan = routed.link_resources()[0].data["vxlan"]
    assert mtu_of(vxlan, lab.edge_a) == mtu_of(vxlan, lab.edge_b) == 1450
    assert any(
        "the routed transit uses MTU 1450" in r.getMessage() and "Raise the underlay MTU to 1550" in r.getMessage()
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]
    # The edge router refuses what does not fit and tells the sender, so TCP shrinks its segments and gets through.
    too_big = ping_unfragmented(lab.server_a, HOST_B, 1472)
    assert too_big.returncode != 0
    assert "mtu = 1450" in too_big.stdout or "mtu=1450" in too_big.stderr + too_big.stdout
    fits = ping_unfragmented(lab.server_a, HOST_B, 1422)
    assert fits.returncode == 0, fits.stdout + fits.stderr
    assert tcp_transfer(lab.server_a, lab.server_b, HOST_B) == MEGABYTE
    assert run(routed.link_ctx("check"), "link.check")["mtu"] == 1450
    run(routed.link_ctx("delete"), "link.delete")
    assert tunnel_devices(lab, routed) == []
