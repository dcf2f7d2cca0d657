"""The linux driver with real namespaces, bridges and VXLAN: packets cross sites only while the link exists.

Topology built by the fixture (all names start with ``tpsdn`` and a random tag)::

    host ns:   underlay bridge U ── veth ── edge ns A (10.77.0.1)    site bridge A ── veth ── server ns A
                                └── veth ── edge ns B (10.77.0.2)    site bridge B ── veth ── server ns B

The SDN plugin stitches site bridge A to site bridge B through the edge namespaces.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tempano.plugins.contract import ConfigurationError
from tempano.plugins.sdn import LinkBroken, plugin
from tempano.plugins.sdn.driver import short_hash

pytestmark = pytest.mark.skipif(
    shutil.which("ip") is None or shutil.which("ping") is None, reason="needs iproute2 and ping (root)"
)

SERVER_A, SERVER_B = "192.168.77.1", "192.168.77.2"


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
        sh("ip", "link", "set", lab.underlay, "up")
        for side, edge, addr in (("a", lab.edge_a, "10.77.0.1/24"), ("b", lab.edge_b, "10.77.0.2/24")):
            sh("ip", "netns", "add", edge)
            sh("ip", "link", "add", f"{p}u{side}", "type", "veth", "peer", "name", "uplink", "netns", edge)
            sh("ip", "link", "set", f"{p}u{side}", "master", lab.underlay, "up")
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
    with pytest.raises(LinkBroken, match="absent"):
        run(world.link_ctx("check"), "link.check")


def test_check_detects_a_tunnel_deleted_behind_its_back_and_create_restores_it(lab: Lab, world: Any) -> None:
    install(world)
    assert lab.pings_eventually()
    vxlan = world.link_resources()[0].data["vxlan"]

    sh("ip", "-n", lab.edge_b, "link", "del", "dev", vxlan)

    assert not lab.pings(count=2)
    with pytest.raises(LinkBroken) as broken:
        run(world.link_ctx("check"), "link.check")
    assert not broken.value.retryable
    assert f"edge namespace {lab.edge_b!r}, interface {vxlan} is missing" in broken.value.message

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

    with pytest.raises(LinkBroken, match=f"host-side veth {host_veth} is not in site bridge {lab.bridge_a}"):
        run(world.link_ctx("check"), "link.check")


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


def test_link_delete_after_edge_namespace_vanished_is_clean(lab: Lab, world: Any) -> None:
    install(world)
    sh("ip", "netns", "del", lab.edge_b)

    run(world.link_ctx("delete"), "link.delete")

    assert world.link_resources() == []
    assert tunnel_devices(lab, world, skip_ns=lab.edge_b) == []
