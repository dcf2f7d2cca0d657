"""The lab router: forwarding between networks and NAT to the outside through the host."""

from __future__ import annotations

import re
import subprocess

from tempano.plugins.lab import leftovers
from tempano.plugins.lab.testing import LabDeployment


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)


def host_address() -> str:
    """An address of the host outside every lab network (its default route's source)."""
    route = run("ip", "-4", "route", "get", "1.1.1.1").stdout.split()
    return route[route.index("src") + 1]


def test_a_network_behind_the_router_reaches_the_outside_through_nat(lab: LabDeployment) -> None:
    net = lab.network("inside", "10.76.0.0/24", gateway_ip="10.76.0.1")
    router = lab.router("edge")
    lab.port("edge_port", router, net, ip_address="10.76.0.1")
    vm = lab.server("vm")
    lab.port("vm_port", vm, net, is_default=True)
    outside = host_address()

    # the host has no route to 10.76.0.0/24: an answer proves the router translated the source
    assert "10.76.0.0" not in run("ip", "route").stdout
    done = run("ip", "netns", "exec", vm.attributes["namespace"], "ping", "-c", "1", "-w", "10", outside)
    assert done.returncode == 0, done.stdout + done.stderr
    tag = f"tempano-lab {lab.deployment_id} edge_1"
    assert tag in run("iptables", "-t", "nat", "-S", "POSTROUTING").stdout
    assert lab.call("router.check", router, "check")["namespace"] == router.attributes["namespace"]  # type: ignore[index]

    rule = next(r for r in lab.ledger if r.kind == "host_rule" and "nat" in r.data["rule"])
    run("iptables", "-t", "nat", "-D", *rule.data["rule"][1:])
    broken = lab.call("router.check", router, "check")
    assert broken is not None and broken["healthy"] is False
    assert re.search(r"router edge_1 is unhealthy: its host rule .* is gone", broken["reason"])

    lab.uninstall()
    assert tag not in run("iptables", "-t", "nat", "-S").stdout + run("iptables", "-S").stdout
    assert leftovers(lab.deployment_id) == []
