"""The OpenStack plugin through the whole engine: the real Temporal server, tempano's worker, the real openstacksdk
and emulated clouds reached through a clouds.yaml the test writes (``clouds`` fixture: ``east`` and ``west``)."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from tempano.api.service import Tempano
from tempano.api.settings import Settings
from tempano.plugins import load_plugins
from tempano.plugins.openstack import plugin
from tempano.plugins.openstack.testing import OpenStackEmulator, write_clouds_yaml
from tempano.store import Store
from tests.conftest import worker_polling

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[2] / "blueprints" / "examples" / "openstack"
MULTI_NETWORK = EXAMPLES / "multi_network.yaml"
VNFD = EXAMPLES / "vnfd_firewall.yaml"
ONE_SERVER = HERE / "blueprints" / "one_server.yaml"
TWO_CLOUDS = HERE / "blueprints" / "two_clouds.yaml"

pytestmark = pytest.mark.asyncio(loop_scope="session")


def duplicates(cloud: OpenStackEmulator) -> dict[str, list[str]]:
    """Names or idempotency tags held by more than one resource of a kind (what a careless retry leaves)."""
    found: dict[str, list[str]] = {}
    for kind, items in cloud.leftovers().items():
        marks: Counter[str] = Counter()
        for item in items:
            if item.get("name"):
                marks[f"name={item['name']}"] += 1
            for tag in item.get("tags") or []:
                marks[f"tag={tag}"] += 1
        extra = [mark for mark, n in marks.items() if n > 1]
        if extra:
            found[kind] = extra
    return found


def ports_of(cloud: OpenStackEmulator, server_id: str) -> list[dict[str, Any]]:
    return cloud.find("port", device_id=server_id)


async def install(tempano: Tempano, deployment: str, timeout: float = 300) -> float:
    started = time.monotonic()
    execution = await tempano.run(deployment, "install", timeout=timeout)
    assert execution.status == "succeeded", execution.error
    return time.monotonic() - started


async def uninstall(tempano: Tempano, deployment: str, timeout: float = 300) -> None:
    execution = await tempano.run(deployment, "uninstall", timeout=timeout)
    assert execution.status == "succeeded", execution.error
    assert tempano.store.resources(deployment) == []


async def test_multi_network_install_then_uninstall_leaves_nothing(
    tempano: Tempano, client: Client, clouds: dict[str, OpenStackEmulator]
) -> None:
    east = clouds["east"]
    tempano.upload_blueprint("mn", MULTI_NETWORK)
    await tempano.create_deployment("os-mn-1", "mn", {"cloud": "east"})
    seconds = await install(tempano, "os-mn-1")
    print(f"\nmulti-network install without faults: {seconds:.1f} s")

    made = east.leftovers()
    assert {kind: len(items) for kind, items in made.items()} == {
        "server": 2,
        "keypair": 1,
        "server_group": 1,
        "network": 2,
        "subnet": 2,
        "port": 5,  # 4 ports of the blueprint + the router's interface
        "router": 1,
        "floatingip": 1,
        "security_group": 1,
        "security_group_rule": 5,  # 2 default egress rules + 3 of the blueprint
        "volume": 1,
    }
    attrs = {i.node: i.attributes for i in tempano.store.node_instances("os-mn-1")}
    for vm in ("fw_a", "fw_b"):
        [server] = east.find("server", id=attrs[vm]["id"])
        assert server["status"] == "ACTIVE"
        assert {p["id"] for p in ports_of(east, server["id"])} == {
            attrs[f"{vm}_mgmt"]["id"],
            attrs[f"{vm}_data"]["id"],
        }
    [group] = east.find("server_group", id=attrs["fw_group"]["id"])
    assert sorted(group["members"]) == sorted([attrs["fw_a"]["id"], attrs["fw_b"]["id"]])
    [volume] = east.find("volume", id=attrs["fw_log"]["id"])
    assert volume["status"] == "in-use"
    [fip] = east.find("floatingip", id=attrs["fw_a_public"]["id"])
    assert fip["port_id"] == attrs["fw_a_mgmt"]["id"]
    outputs = tempano.outputs("os-mn-1")
    assert outputs["fw_a_public_address"] == fip["floating_ip_address"]
    fw_b_ips = [ip["ip_address"] for port in ports_of(east, attrs["fw_b"]["id"]) for ip in port["fixed_ips"]]
    assert outputs["fw_b_address"] in fw_b_ips
    [data_a] = east.find("port", id=attrs["fw_a_data"]["id"])
    assert [ip["ip_address"] for ip in data_a["fixed_ips"]] == ["10.20.0.11"]
    assert clouds["west"].leftovers() == {}

    await uninstall(tempano, "os-mn-1")
    assert east.leftovers() == {}

    # credentials stay in clouds.yaml: no password, token or auth URL in any workflow history of the deployment
    secrets = [east.identity.password.encode(), east.auth_url.encode(), *(t.encode() for t in east.identity.tokens)]
    assert east.identity.tokens
    runs = [run async for run in client.list_workflows("TempanoDeployment = 'os-mn-1'")]
    assert {run.id for run in runs} >= {"dep:os-mn-1:exec:1:install", "dep:os-mn-1:exec:2:uninstall"}
    for run in runs:
        history = await client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
        text = history.to_json()  # payload data is base64 in it: decode every one
        raw = text.encode() + b"".join(base64.b64decode(d) for d in re.findall(r'"data": "([A-Za-z0-9+/=]+)"', text))
        assert b"openstack.server.create" in raw or not run.id.endswith(":install")
        assert not [s for s in secrets if s in raw], run.id


async def test_vnfd_install_then_uninstall_leaves_nothing(
    tempano: Tempano, clouds: dict[str, OpenStackEmulator]
) -> None:
    east = clouds["east"]
    tempano.upload_blueprint("vnfd", VNFD)
    await tempano.create_deployment("os-vnfd-1", "vnfd", {"cloud": "east"})
    seconds = await install(tempano, "os-vnfd-1")
    print(f"\nVNFD install without faults: {seconds:.1f} s")

    attrs = {i.node: i.attributes for i in tempano.store.node_instances("os-vnfd-1")}
    [server] = east.find("server", id=attrs["fw_vdu"]["id"])
    assert server["status"] == "ACTIVE"
    assert server["flavor"]["vcpus"] == 2
    assert server["flavor"]["extra_specs"]["hw:cpu_policy"] == "dedicated"
    assert server["server_groups"] == [attrs["fw_anti_affinity"]["id"]]
    cps = {attrs[cp]["id"] for cp in ("fw_mgmt_cp", "fw_inside_cp", "fw_outside_cp")}
    assert {p["id"] for p in ports_of(east, server["id"])} == cps
    [inside] = east.find("port", id=attrs["fw_inside_cp"]["id"])
    assert inside["binding:vnic_type"] == "direct"
    [volume] = east.find("volume", id=attrs["fw_log"]["id"])
    assert volume["status"] == "in-use"
    assert len(east.leftovers()["floatingip"]) == 1

    await uninstall(tempano, "os-vnfd-1")
    assert east.leftovers() == {}


@pytest.mark.parametrize("blueprint", [MULTI_NETWORK, VNFD], ids=["multi-network", "vnfd"])
async def test_install_completes_despite_5xx_and_latency_without_duplicates(
    tempano: Tempano, clouds: dict[str, OpenStackEmulator], blueprint: Path
) -> None:
    east = clouds["east"]
    east.faults.error_rate = 0.1
    east.faults.latency = 0.02
    tempano.upload_blueprint("bp", blueprint)
    deployment = f"os-faults-{blueprint.stem}"
    await tempano.create_deployment(deployment, "bp", {"cloud": "east"})
    seconds = await install(tempano, deployment, timeout=600)
    print(f"\n{blueprint.name} install with 10% 5xx + 20 ms latency: {seconds:.1f} s, {east.injected_errors} errors")
    assert east.injected_errors > 0
    assert duplicates(east) == {}
    made = east.leftovers()
    # nothing was ever made twice, not even briefly: every create whose answer was lost got adopted
    tagged_ports = [p for p in made["port"] if p["tags"]]  # not Nova's or the router's own ports
    counts = {kind: len(items) for kind, items in made.items() if kind not in {"port", "security_group_rule"}}
    assert {kind: east.created[kind] for kind in counts} == counts
    assert east.created["port"] == len(tagged_ports)
    assert all(server["status"] == "ACTIVE" for server in made["server"])
    # the ledger holds each resource once
    ledger = tempano.store.resources(deployment)
    ids = [(r.kind, r.resource_id) for r in ledger]
    assert len(ids) == len(set(ids))

    await uninstall(tempano, deployment, timeout=600)
    assert east.leftovers() == {}


async def test_quota_exhaustion_fails_clearly_and_rollback_leaves_nothing(
    tempano: Tempano, clouds: dict[str, OpenStackEmulator]
) -> None:
    east = clouds["east"]
    east.faults.quotas = {"server": 1}  # the blueprint has two
    tempano.upload_blueprint("mn", MULTI_NETWORK)
    await tempano.create_deployment("os-mn-quota", "mn", {"cloud": "east"})
    execution = await tempano.run("os-mn-quota", "install", timeout=300)
    assert execution.status == "failed"
    error = execution.error or ""
    print(f"\nquota failure: {error}")
    assert "on cloud 'east'" in error
    assert re.search(r"server 'os-mn-quota-fw_[ab]_1'", error)
    assert "Quota exceeded for instances" in error
    assert "ask the cloud administrator for a higher quota" in error
    assert east.created["server"] == 1  # a quota refusal is not retried

    rollback = await tempano.run("os-mn-quota", "rollback", {"execution_id": execution.id}, timeout=300)
    assert rollback.status == "succeeded", rollback.error
    assert east.leftovers() == {}
    assert tempano.store.resources("os-mn-quota") == []


async def test_server_in_error_is_replaced_by_the_retry(tempano: Tempano, clouds: dict[str, OpenStackEmulator]) -> None:
    east = clouds["east"]
    east.faults.servers_to_error = 1
    tempano.upload_blueprint("one", ONE_SERVER)
    await tempano.create_deployment("os-err-retry", "one", {"cloud": "east"})
    await install(tempano, "os-err-retry")

    assert east.created["server"] == 2  # the ERROR one, then its replacement
    [server] = east.find("server")
    assert server["status"] == "ACTIVE"
    vm = tempano.store.node_instance("os-err-retry", "vm_1")
    assert vm.attributes["id"] == server["id"]
    [port] = ports_of(east, server["id"])  # the port moved to the new server
    assert port["id"] == tempano.store.node_instance("os-err-retry", "port_1").attributes["id"]
    failed = [e for e in tempano.store.events("os-err-retry") if e.type == "operation_failed"]
    assert len(failed) == 1 and "went to ERROR" in (failed[0].message or "")
    await uninstall(tempano, "os-err-retry")
    assert east.leftovers() == {}


async def test_server_in_error_without_retry_fails_then_heal_replaces_it(
    tempano: Tempano, clouds: dict[str, OpenStackEmulator]
) -> None:
    east = clouds["east"]
    east.faults.servers_to_error = 1
    tempano.upload_blueprint("one", ONE_SERVER)
    await tempano.create_deployment("os-err-heal", "one", {"cloud": "east", "retry_on_error": False})
    execution = await tempano.run("os-err-heal", "install", timeout=300)
    assert execution.status == "failed"
    error = execution.error or ""
    assert "went to ERROR: Exceeded maximum number of retries" in error and "retry_on_error is false" in error
    assert "on cloud 'east'" in error and "server 'os-err-heal-vm_1'" in error
    assert east.created["server"] == 1

    heal = await tempano.run("os-err-heal", "heal", {"node_instance_id": "vm_1"}, timeout=300)
    assert heal.status == "succeeded", heal.error
    [server] = east.find("server")
    assert server["status"] == "ACTIVE" and east.created["server"] == 2
    assert tempano.store.node_instance("os-err-heal", "vm_1").attributes["id"] == server["id"]
    await uninstall(tempano, "os-err-heal")
    assert east.leftovers() == {}


async def test_heal_replaces_a_server_that_went_to_error_after_install(
    tempano: Tempano, clouds: dict[str, OpenStackEmulator]
) -> None:
    east = clouds["east"]
    tempano.upload_blueprint("one", ONE_SERVER)
    await tempano.create_deployment("os-heal", "one", {"cloud": "east"})
    await install(tempano, "os-heal")
    before = tempano.store.node_instance("os-heal", "vm_1").attributes["id"]

    healthy = await tempano.run("os-heal", "heal", {"node_instance_id": "vm_1"}, timeout=300)
    assert healthy.status == "succeeded", healthy.error
    assert east.created["server"] == 1  # healthy: nothing done

    east.fail_server(before, "host compute-1 lost power")
    heal = await tempano.run("os-heal", "heal", {"node_instance_id": "vm_1"}, timeout=300)
    assert heal.status == "succeeded", heal.error
    [server] = east.find("server")
    assert server["id"] != before and server["status"] == "ACTIVE"
    assert tempano.store.node_instance("os-heal", "vm_1").attributes["id"] == server["id"]
    assert [p["id"] for p in ports_of(east, server["id"])] == [
        tempano.store.node_instance("os-heal", "port_1").attributes["id"]
    ]
    await uninstall(tempano, "os-heal")
    assert east.leftovers() == {}


async def test_one_deployment_spans_two_clouds(tempano: Tempano, clouds: dict[str, OpenStackEmulator]) -> None:
    east, west = clouds["east"], clouds["west"]
    tempano.upload_blueprint("os-two", TWO_CLOUDS)
    await tempano.create_deployment("os-two", "os-two", {"cloud_a": "east", "cloud_b": "west"})
    await install(tempano, "os-two")

    attrs = {i.node: i.attributes for i in tempano.store.node_instances("os-two")}
    for cloud, vm, net in ((east, "vm_a", "net_a"), (west, "vm_b", "net_b")):
        [server] = cloud.find("server")
        assert server["id"] == attrs[vm]["id"] and attrs[vm]["cloud"] == cloud.name
        [port] = ports_of(cloud, server["id"])
        assert port["network_id"] == attrs[net]["id"]
        assert {kind for kind in cloud.leftovers()} == {"server", "network", "subnet", "port"}
    outputs = tempano.outputs("os-two")
    assert outputs["a_address"].startswith("10.10.0.") and outputs["b_address"].startswith("10.20.0.")
    clouds_of = {r.data.get("cloud") for r in tempano.store.resources("os-two")}
    assert clouds_of == {"east", "west"}

    await uninstall(tempano, "os-two")
    assert east.leftovers() == {} and west.leftovers() == {}


async def test_unreachable_cloud_fails_naming_the_cloud_and_what_to_do(
    tempano: Tempano, clouds: dict[str, OpenStackEmulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = OpenStackEmulator("north").start()
    down.stop()  # its port is closed now: nothing answers there
    path = write_clouds_yaml(tmp_path / "clouds-with-north.yaml", [*clouds.values(), down])
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    tempano.upload_blueprint("one", ONE_SERVER)
    await tempano.create_deployment("os-down", "one", {"cloud": "north"})
    started = time.monotonic()
    execution = await tempano.run("os-down", "install", timeout=300)
    print(f"\nunreachable cloud: failed after {time.monotonic() - started:.1f} s: {execution.error}")
    assert execution.status == "failed"
    error = execution.error or ""
    assert "cloud 'north'" in error and "could not be reached" in error
    assert "auth_url" in error  # what to check

    await uninstall(tempano, "os-down")


async def test_missing_clouds_yaml_entry_fails_at_once(tempano: Tempano, clouds: dict[str, OpenStackEmulator]) -> None:
    tempano.upload_blueprint("one", ONE_SERVER)
    await tempano.create_deployment("os-nowhere", "one", {"cloud": "nowhere"})
    execution = await tempano.run("os-nowhere", "install", timeout=300)
    assert execution.status == "failed"
    error = execution.error or ""
    assert "cloud 'nowhere' is not usable from clouds.yaml" in error and "attempt 1/" in error
    assert "add an entry named 'nowhere'" in error


def test_plugin_registers_under_the_entry_point_group() -> None:
    [entry] = [e for e in entry_points(group="tempano.plugins") if e.name == "openstack"]
    assert entry.load() is plugin
    registry = load_plugins()
    assert registry.plugins["openstack"] is plugin
    assert registry.resolve("openstack.server.create") is plugin.operations["server.create"]


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """tempano's worker as its own OS process (``tempano worker``) on the test's task queue, store and clouds.yaml."""
    env = {
        **os.environ,  # OS_CLIENT_CONFIG_FILE, set by the clouds fixture
        "TEMPANO_DATA_DIR": str(settings.data_dir),
        "TEMPANO_TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPANO_TASK_QUEUE": settings.task_queue,
        "TEMPANO_WORKER_THREADS": "8",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tempano.api.cli", "worker"],
        env=env,
        cwd=log.parent,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def test_worker_killed_while_server_builds_adopts_the_same_server(
    settings: Settings, client: Client, store: Store, clouds: dict[str, OpenStackEmulator], tmp_path: Path
) -> None:
    east = clouds["east"]
    east.faults.server_build_seconds = 15  # BUILD long enough to kill the worker in the middle
    tempano = Tempano(settings, client, store)  # no worker in this process: the one below is the only one
    tempano.upload_blueprint("one", ONE_SERVER)
    await tempano.create_deployment("os-kill", "one", {"cloud": "east"})
    log = tmp_path / "worker.log"
    workers = [start_worker(settings, log)]
    try:
        await worker_polling(settings.temporal_address, settings.task_queue, workers[0], log)
        t0 = time.monotonic()
        ref = await tempano.start_execution("os-kill", "install")
        deadline = time.monotonic() + 120
        while not east.find("server"):
            assert time.monotonic() < deadline, f"no server was created; worker log:\n{log.read_text()[-3000:]}"
            assert workers[0].poll() is None, f"the worker died:\n{log.read_text()[-3000:]}"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # the create is now waiting for ACTIVE, heartbeating the server id
        [building] = east.find("server")
        assert building["status"] == "BUILD"
        os.killpg(workers[0].pid, signal.SIGKILL)
        workers[0].wait()

        t1 = time.monotonic()
        workers.append(start_worker(settings, log))
        execution = await tempano.wait_execution(ref.execution_id, timeout=400)
        t2 = time.monotonic()
        print(f"\nworker killed {t1 - t0:.1f} s after the install started; install done {t2 - t1:.1f} s after the kill")
        assert execution.status == "succeeded", f"{execution.error}\nworker log:\n{log.read_text()[-3000:]}"
        [server] = east.find("server")
        assert server["id"] == building["id"] and server["status"] == "ACTIVE"
        assert east.created["server"] == 1  # adopted, not duplicated
        assert store.node_instance("os-kill", "vm_1").attributes["id"] == building["id"]

        # the create really ran twice: the killed attempt timed out on its heartbeat and the next one adopted
        history = await client.get_workflow_handle(ref.workflow_id).fetch_history()
        scheduled = {
            e.event_id: e.activity_task_scheduled_event_attributes.activity_id
            for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
        }
        attempts = [
            e.activity_task_started_event_attributes.attempt
            for e in history.events
            if e.HasField("activity_task_started_event_attributes")
            and scheduled[e.activity_task_started_event_attributes.scheduled_event_id].startswith(
                "vm_1:Standard.create"
            )
        ]
        assert attempts and max(attempts) >= 2
        # vm_1's operations run in one activity: its create's own attempts are counted in the events
        creates = [
            e.attempt
            for e in store.events("os-kill", execution_id=ref.execution_id)
            if e.type == "operation_started" and e.node_instance_id == "vm_1" and e.operation == "Standard.create"
        ]
        assert creates == [1, 2]

        await uninstall(tempano, "os-kill")
        print(f"uninstall {time.monotonic() - t2:.1f} s")
        assert east.leftovers() == {}
    finally:
        for proc in workers:
            stop_worker(proc)
