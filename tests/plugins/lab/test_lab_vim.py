"""The lab VIM against the real kernel: namespaces, bridges, veths and sshd, driven through LocalContext."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tempano.plugins.contract import ConfigurationError, InstanceView
from tempano.plugins.lab import _naming, _system, _veth, leftovers
from tempano.plugins.lab._system import pid_alive
from tempano.plugins.lab.testing import LabDeployment


def sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)


def ns_exec(namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", namespace, *args)


def host_links(tag: str) -> list[str]:
    return [
        line.split()[0].split("@")[0] for line in sh("ip", "-br", "link").stdout.splitlines() if line.startswith(tag)
    ]


def test_two_servers_on_one_network_ping_each_other(lab: LabDeployment) -> None:
    net = lab.network("net", "10.71.0.0/24")
    a, b = lab.server("a"), lab.server("b")
    lab.port("a_port", a, net)
    pb = lab.port("b_port", b, net, ip_address="10.71.0.50")

    assert pb.attributes["ip_address"] == "10.71.0.50"
    done = ns_exec(a.attributes["namespace"], "ping", "-c", "1", "-w", "10", "10.71.0.50")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(pb.attributes["host_interface"]) <= 15


def test_network_mtu_reaches_the_bridge_and_both_ends_of_each_port(lab: LabDeployment) -> None:
    net = lab.network("underlay", "10.76.0.0/24", mtu=1550)
    a, b = lab.server("a"), lab.server("b")
    pa = lab.port("a_port", a, net)
    lab.port("b_port", b, net, ip_address="10.76.0.50")

    assert net.attributes["mtu"] == 1550
    assert _system_mtu(net.attributes["bridge"]) == 1550
    assert _system_mtu(pa.attributes["host_interface"]) == 1550
    assert _system_mtu(pa.attributes["interface"], pa.attributes["namespace"]) == 1550
    # 1522 bytes of payload + 28 of headers = a 1550-byte packet, unfragmented
    done = ns_exec(a.attributes["namespace"], "ping", "-c", "1", "-w", "10", "-M", "do", "-s", "1522", "10.76.0.50")
    assert done.returncode == 0, done.stdout + done.stderr


def test_network_mtu_out_of_range_is_refused_with_a_sentence(lab: LabDeployment) -> None:
    with pytest.raises(ConfigurationError, match=r"mtu 40 is not an MTU; give an integer from 576 to 9000"):
        lab.network("tiny", "10.76.1.0/24", mtu=40)


def _system_mtu(name: str, namespace: str | None = None) -> int:
    rec = _system.link(name, namespace=namespace)
    assert rec is not None, f"no interface {name}"
    return int(rec["mtu"])


def test_host_reaches_sshd_on_the_management_address_with_the_generated_key(lab: LabDeployment) -> None:
    server = lab.server("vnf")
    attrs = server.attributes
    done = sh(
        "ssh",
        "-i",
        attrs["ssh_key_file"],
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=5",
        f"{attrs['ssh_user']}@{attrs['ip']}",
        "ip -br addr show mgmt0",
    )
    assert done.returncode == 0, done.stderr
    assert attrs["ip"] in done.stdout  # the shell ran inside the server's namespace, not on the host
    assert "mgmt0" in done.stdout


def test_rerunning_create_adopts_instead_of_duplicating(lab: LabDeployment) -> None:
    net = lab.network("net", "10.72.0.0/24")
    server = lab.server("a")
    port = lab.port("a_port", server, net)
    tag = _naming.deployment_tag(lab.deployment_id)
    before = sorted(host_links(tag))
    inside = ns_exec(server.attributes["namespace"], "ip", "-br", "link").stdout.splitlines()
    ledger = len(lab.ledger)

    lab.call("network.create", net, "create")
    lab.call("server.create", server, "create")
    lab.call("server.start", server, "start")
    _, _, rels = lab.created[-1]
    first_address = port.attributes["ip_address"]
    lab.call("port.create", port, "create", relationships=rels)

    assert sorted(host_links(tag)) == before
    assert ns_exec(server.attributes["namespace"], "ip", "-br", "link").stdout.splitlines() == inside
    assert port.attributes["ip_address"] == first_address
    assert len(lab.ledger) == ledger


def test_uninstall_leaves_no_namespace_bridge_veth_process_or_file(lab: LabDeployment, lab_dir: Path) -> None:
    net = lab.network("net", "10.73.0.0/24")
    for name in ("a", "b"):
        lab.port(f"{name}_port", lab.server(name), net)
    tag = _naming.deployment_tag(lab.deployment_id)
    assert len([n for n in sh("ip", "netns", "list").stdout.split() if n.startswith(tag)]) == 2

    lab.uninstall()

    assert lab.ledger == []
    assert [n for n in sh("ip", "netns", "list").stdout.split() if n.startswith(tag)] == []
    assert host_links(tag) == []
    assert str(lab_dir) not in sh("ps", "-eo", "args").stdout
    # only the host-wide management table remains, without this deployment
    assert {p.name for p in lab_dir.iterdir()} <= {"mgmt.json", "mgmt.lock"}
    assert lab.deployment_id not in (lab_dir / "mgmt.json").read_text()
    assert leftovers(lab.deployment_id) == []
    lab.uninstall()  # idempotent: a second uninstall finds nothing and does not fail


def test_delete_after_a_crash_between_record_and_create(lab: LabDeployment, monkeypatch: pytest.MonkeyPatch) -> None:
    """create dies after recording the namespace and veth but before the veth exists: delete still cleans."""

    def crash(*args: object, **kwargs: object) -> str:
        raise RuntimeError("worker killed")

    monkeypatch.setattr(_veth, "ensure", crash)
    with pytest.raises(RuntimeError):
        lab.server("a")
    monkeypatch.undo()
    kinds = {r.kind for r in lab.ledger}
    assert {"namespace", "veth", "address"} <= kinds
    assert leftovers(lab.deployment_id)  # the namespace and the management bridge exist

    lab.uninstall()

    assert leftovers(lab.deployment_id) == []
    assert lab.ledger == []


def test_objects_the_ledger_lost_are_adopted_and_deleted(lab: LabDeployment) -> None:
    """The namespace exists but its ledger entry was lost: create adopts it, delete finds it by name."""
    server = lab.server("a")
    namespace = server.attributes["namespace"]
    pid = server.attributes["sshd_pid"]
    lab.ledger.clear()

    lab.call("server.create", server, "create")
    lab.call("server.start", server, "start")
    assert server.attributes["namespace"] == namespace
    assert server.attributes["sshd_pid"] == pid  # the running sshd was adopted, not doubled

    lab.ledger.clear()
    lab.uninstall()
    assert leftovers(lab.deployment_id) == []


def test_server_check_answers_unhealthy_when_sshd_or_namespace_is_gone(lab: LabDeployment) -> None:
    server = lab.server("fw")
    assert lab.call("server.check", server, "check") == {
        "healthy": True,
        "namespace": server.attributes["namespace"],
        "sshd_pid": server.attributes["sshd_pid"],
    }
    os.kill(server.attributes["sshd_pid"], 9)
    deadline = time.monotonic() + 5
    while pid_alive(server.attributes["sshd_pid"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    no_sshd = lab.call("server.check", server, "check")
    assert no_sshd is not None and no_sshd["healthy"] is False
    assert re.search(r"server fw_1 is unhealthy: no sshd runs in namespace tl", no_sshd["reason"])

    sh("ip", "netns", "del", server.attributes["namespace"])
    no_namespace = lab.call("server.check", server, "check")
    assert no_namespace is not None and no_namespace["healthy"] is False
    assert re.search(r"server fw_1 is unhealthy: its namespace tl\w+-fw_1 is gone", no_namespace["reason"])

    # heal by reinstall: delete what is left, create again
    lab.call("server.delete", server, "delete")
    lab.call("server.create", server, "create")
    lab.call("server.start", server, "start")
    assert lab.call("server.check", server, "check")["healthy"] is True  # type: ignore[index]


def test_default_route_and_static_routes_of_a_port(lab: LabDeployment) -> None:
    net = lab.network("net", "10.74.0.0/24", gateway_ip="10.74.0.1")
    gw, client = lab.server("gw"), lab.server("client")
    gw_port = lab.port("gw_port", gw, net, ip_address="10.74.0.1")
    lab.port(
        "client_port",
        client,
        net,
        is_default=True,
        routes=[{"destination": "10.99.0.0/16", "via": "10.74.0.1"}],
    )

    routes = ns_exec(client.attributes["namespace"], "ip", "route").stdout
    assert "default via 10.74.0.1" in routes
    assert "10.99.0.0/16 via 10.74.0.1" in routes
    assert gw_port.attributes["ip_address"] == "10.74.0.1"


def test_without_privileges_create_fails_at_once_with_a_sentence(lab_dir: Path) -> None:
    script = textwrap.dedent(
        """
        from tempano.plugins.contract import NonRetryableError
        from tempano.plugins.lab.testing import LabDeployment
        try:
            LabDeployment("unprivileged").network("net", "10.75.0.0/24")
        except NonRetryableError as exc:
            print(exc)
        """
    )
    done = sh(
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        # Only the right to read files is kept: the checkout may sit under a 0700 directory (mktemp -d), and the
        # capabilities the lab needs (NET_ADMIN, SYS_ADMIN) stay dropped.
        "--inh-caps=-all,+dac_read_search",
        "--ambient-caps=+dac_read_search",
        sys.executable,
        "-c",
        script,
    )
    assert "needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN)" in done.stdout, done.stderr
    assert "uid 65534" in done.stdout


def test_parallel_creates_share_the_management_network_safely(lab: LabDeployment) -> None:
    """The engine creates servers at the same time: one bridge, distinct addresses, all reachable."""
    from concurrent.futures import ThreadPoolExecutor

    from tempano.plugins.lab.testing import HIERARCHY, SERVER
    from tempano.plugins.testing import instance

    servers = [instance(f"s{i}", type=SERVER, type_hierarchy=HIERARCHY[SERVER]) for i in range(4)]
    for server in servers:
        lab.created.append(("server", server, ()))

    def install(server: InstanceView) -> None:
        lab.call("server.create", server, "create")
        lab.call("server.start", server, "start")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(install, servers))

    addresses = {s.attributes["ip"] for s in servers}
    assert len(addresses) == 4
    assert len({s.attributes["mgmt_bridge"] for s in servers}) == 1
    for address in addresses:
        assert sh("ping", "-c", "1", "-w", "10", address).returncode == 0
