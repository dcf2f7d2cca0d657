"""The vFW service chain example through the whole engine: real Temporal server and worker, real namespaces,
sshd and Ansible playbooks, real packets from the client namespace to the server through the firewall VNF."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tempano.api.service import Tempano
from tempano.plugins.lab import cleanup, leftovers
from tempano.plugins.lab.testing import tcp_probe
from tempano.store import NodeInstanceRecord

VFW = Path(__file__).resolve().parents[2] / "blueprints" / "examples" / "vfw" / "vfw.yaml"
GREETING = "tempano vfw service"
# Generous: two cores shared with other test runs; a reinstall with ssh and Ansible takes tens of seconds.
TIMEOUT = 480

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def deployment_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh deployment id whose lab objects are removed afterwards, even when the test fails."""
    if os.geteuid() != 0:
        pytest.skip("the vFW example runs on the lab VIM, which needs root")
    monkeypatch.setenv("TEMPANO_LAB_DIR", str(tmp_path / "lab"))
    deployment = f"vfw-{uuid.uuid4().hex[:8]}"
    try:
        yield deployment
    finally:
        cleanup(deployment)
    assert leftovers(deployment) == []


async def install(tempano: Tempano, deployment_id: str, inputs: dict[str, object] | None = None) -> dict[str, str]:
    tempano.upload_blueprint("vfw", VFW)
    await tempano.create_deployment(deployment_id, "vfw", inputs)
    execution = await tempano.run(deployment_id, "install", timeout=TIMEOUT)
    assert execution.status == "succeeded", execution.error
    return tempano.outputs(deployment_id)


async def probe(out: dict[str, str], port: int) -> str:
    return await asyncio.to_thread(tcp_probe, out["client_namespace"], out["server_address"], port)


async def until(out: dict[str, str], port: int, ok: Callable[[str], bool], within: float) -> bool:
    """True once the client's probe of ``port`` answers what ``ok`` accepts, within ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if ok(await probe(out, port)):
            return True
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.5)


async def passes(out: dict[str, str], port: int, *, within: float = 30.0) -> bool:
    """True once the port answers from the client (a recreated path may take a moment to learn its neighbours)."""
    return await until(out, port, lambda answer: answer == GREETING, within)


async def stops(out: dict[str, str], port: int, *, within: float = 60.0) -> bool:
    """True once the client's connection fails (a socket error from the probe, not a probe that could not run)."""
    return await until(out, port, lambda answer: answer.startswith(("error: timed out", "error: [Errno")), within)


async def dropped(out: dict[str, str], port: int) -> bool:
    return (await probe(out, port)).startswith("error: timed out")


def instances(tempano: Tempano, deployment_id: str) -> dict[str, NodeInstanceRecord]:
    return {i.id: i for i in tempano.store.node_instances(deployment_id)}


def in_namespace(namespace: str, *command: str) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, *command], capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout + done.stderr


def kill_namespace(namespace: str) -> None:
    """What a crashed VNF looks like: its processes killed, its namespace (with its interfaces) gone."""
    pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, check=True).stdout
    if pids.split():
        subprocess.run(["kill", "-KILL", *pids.split()], check=True)
    subprocess.run(["ip", "netns", "delete", namespace], check=True)


async def test_install_day2_failed_playbook_and_uninstall(tempano: Tempano, deployment_id: str) -> None:
    out = await install(tempano, deployment_id)
    assert out["client_address"] == "10.10.1.2" and out["server_address"] == "10.10.3.2"
    assert await passes(out, 80)
    assert await dropped(out, 8080)
    check = await asyncio.to_thread(
        subprocess.run, ["bash", "-c", out["check_command"]], capture_output=True, text=True, timeout=60
    )
    assert check.stdout.splitlines() == [f"port 80: {GREETING}", "port 8080: dropped"], check.stderr

    # day 2: the firewall's update_rules replaces the policy; the traffic follows it
    execution = await tempano.run(
        deployment_id,
        "execute_operation",
        {"operation": "Firewall.update_rules", "operation_inputs": {"allowed_tcp_ports": [8080]}},
        timeout=TIMEOUT,
    )
    assert execution.status == "succeeded", execution.error
    assert await passes(out, 8080)
    assert await dropped(out, 80)

    # a playbook that fails: the error names the host, the task and the message; the policy is unchanged
    execution = await tempano.run(
        deployment_id,
        "execute_operation",
        {
            "operation": "Firewall.update_rules",
            "node_ids": ["firewall_app"],
            "operation_inputs": {"allowed_tcp_ports": [70000]},
        },
        timeout=TIMEOUT,
    )
    assert execution.status == "failed"
    error = execution.error or ""
    assert "firewall_app_1 (node firewall_app) Firewall.update_rules failed" in error
    assert "host firewall_1" in error
    assert "task [install the firewall policy (allowed TCP ports 70000)]" in error
    assert "70000" in error and "iptables-restore" in error, error
    assert await passes(out, 8080)

    execution = await tempano.run(deployment_id, "uninstall", timeout=TIMEOUT)
    assert execution.status == "succeeded", execution.error
    assert leftovers(deployment_id) == []
    assert tempano.store.resources(deployment_id) == []


@pytest.mark.timeout(1500)  # several workflows end to end: minutes on a loaded machine, more than the default
async def test_heal_then_scale_out_and_in(tempano: Tempano, deployment_id: str) -> None:
    out = await install(tempano, deployment_id)
    assert await passes(out, 80)

    # the firewall VNF dies behind tempano's back: heal sees it and reinstalls it with its ports and software
    firewall = instances(tempano, deployment_id)["firewall_1"]
    kill_namespace(firewall.attributes["namespace"])
    # no answer (a timeout, or "no route to host" once the client's ARP entry has expired) as soon as the kernel
    # has torn the namespace's interfaces down, which it does asynchronously, seconds later on a busy machine
    assert await stops(out, 80)
    execution = await tempano.run(deployment_id, "heal", {"node_instance_id": "firewall_1"}, timeout=TIMEOUT)
    assert execution.status == "succeeded", execution.error
    reinstalled = {
        e.node_instance_id
        for e in tempano.store.events(deployment_id, execution_id=execution.id)
        if e.type == "operation_succeeded" and e.operation == "Standard.configure"
    }
    assert reinstalled == {"firewall_app_1"}
    assert await passes(out, 80)
    assert await dropped(out, 8080)

    # scale out: a second firewall, with its own ports and the policy, standing by
    execution = await tempano.run(deployment_id, "scale", {"group": "firewall_group", "delta": 1}, timeout=TIMEOUT)
    assert execution.status == "succeeded", execution.error
    live = instances(tempano, deployment_id)
    firewalls = sorted(i for i in live if live[i].node == "firewall")
    assert firewalls == ["firewall_1", "firewall_2"]
    assert {live[i].state for i in live if live[i].node.startswith("firewall")} == {"started"}
    for name in firewalls:
        namespace = live[name].attributes["namespace"]
        assert in_namespace(namespace, "sysctl", "-n", "net.ipv4.ip_forward").strip() == "1"
        policy = in_namespace(namespace, "iptables", "-S", "TEMPANO-FW")
        assert "--dport 80 -j ACCEPT" in policy and "-A TEMPANO-FW -j DROP" in policy, policy
    held = in_namespace(live["firewall_1"].attributes["namespace"], "ip", "-4", "-o", "addr")
    standby = in_namespace(live["firewall_2"].attributes["namespace"], "ip", "-4", "-o", "addr")
    assert "10.10.1.1/24" in held and "10.10.2.1/24" in held
    assert "10.10.1.1/" not in standby and "10.10.2.1/" not in standby
    assert await passes(out, 80)

    # scale in: the newest firewall goes, with its namespace and ports; the chain still works
    execution = await tempano.run(deployment_id, "scale", {"group": "firewall_group", "delta": -1}, timeout=TIMEOUT)
    assert execution.status == "succeeded", execution.error
    live = instances(tempano, deployment_id)
    assert sorted(i for i in live if live[i].node.startswith("firewall")) == [
        "firewall_1",
        "firewall_app_1",
        "firewall_client_port_1",
        "firewall_transit_port_1",
    ]
    gone = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert firewall.attributes["namespace"].replace("firewall_1", "firewall_2") not in gone
    assert await passes(out, 80)

    execution = await tempano.run(deployment_id, "uninstall", timeout=TIMEOUT)
    assert execution.status == "succeeded", execution.error
    assert leftovers(deployment_id) == []
