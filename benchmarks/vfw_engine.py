"""The vFW example through the whole engine: install, then heal of the firewall VNF after its namespace is killed.

Run as root: ``.venv/bin/python benchmarks/vfw_engine.py [rounds]``. Starts its own Temporal dev server (headless,
temporary database) and an in-process worker, like the tests. Prints, per execution, the wall time split into
plugin time (at least one operation running: namespaces, sshd, bridges/veths, Ansible) and orchestration time
(no operation running: Temporal round trips, workflow tasks, store activities), then the operation time per kind
(summed over operations that may run in parallel). Medians over the rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import _cli  # benchmarks/_cli.py: the script's directory is on the path

from tempano.api.service import ServiceError, Tempano
from tempano.api.settings import Settings
from tempano.api.up import connect_when_ready, exit_on_up_error, throwaway_dev_server
from tempano.api.worker import build_worker
from tempano.plugins.lab import cleanup, leftovers
from tempano.plugins.lab.testing import tcp_probe
from tempano.store import EventRecord, ExecutionRecord, Store

VFW = Path(__file__).parents[1] / "blueprints" / "examples" / "vfw" / "vfw.yaml"
KINDS = {
    "lab.server.create": "namespace + management veth (server.create)",
    "lab.server.start": "sshd start, until it answers (server.start)",
    "lab.network.create": "bridges + IPAM (network.create)",
    "lab.port.create": "veth ports + addresses (port.create)",
    "ansible.playbook.run": "Ansible playbooks (ssh, ansible-runner)",
    "lab.server.check": "health check (server.check)",
}
TEARDOWN = "teardown (stop, delete)"


def split(store: Store, execution: ExecutionRecord) -> tuple[float, float, dict[str, list[float]]]:
    """(wall, plugin time as the union of operation intervals, operation seconds per kind)."""
    events = store.events(execution.deployment_id, execution_id=execution.id, limit=1_000_000)
    started: dict[tuple[str | None, str | None, int | None], tuple[datetime, str]] = {}
    intervals: list[tuple[float, float]] = []
    per_kind: dict[str, list[float]] = defaultdict(list)
    for event in events:
        key = (event.node_instance_id, event.operation, event.attempt)
        if event.type == "operation_started":
            started[key] = (event.ts, str(event.data.get("implementation", "")))
        elif event.type in ("operation_succeeded", "operation_failed") and key in started:
            begin, implementation = started.pop(key)
            intervals.append((begin.timestamp(), event.ts.timestamp()))
            per_kind[KINDS.get(implementation, TEARDOWN)].append(event.ts.timestamp() - begin.timestamp())
    assert execution.ended_at is not None
    wall = execution.ended_at.timestamp() - execution.created_at.timestamp()
    return wall, union(intervals), per_kind


def union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def attempts(events: list[EventRecord]) -> int:
    """Failed operation attempts (the health check that finds the damage answers, it does not fail)."""
    return sum(1 for e in events if e.type == "operation_failed")


async def one_round(tempano: Tempano, figures: dict[str, dict[str, list[float]]]) -> None:
    deployment = f"bench-{uuid.uuid4().hex[:6]}"
    try:
        with contextlib.suppress(ServiceError):  # uploaded by an earlier round
            tempano.upload_blueprint("vfw", VFW)
        await tempano.create_deployment(deployment, "vfw")
        install = await tempano.run(deployment, "install", timeout=900)
        assert install.status == "succeeded", install.error
        out = tempano.outputs(deployment)
        record(tempano.store, install, figures["install"])

        firewall = {i.id: i for i in tempano.store.node_instances(deployment)}["firewall_1"]
        namespace = str(firewall.attributes["namespace"])
        pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, check=True).stdout
        if pids.split():
            subprocess.run(["kill", "-KILL", *pids.split()], check=True)
        subprocess.run(["ip", "netns", "delete", namespace], check=True)
        heal = await tempano.run(deployment, "heal", {"node_instance_id": "firewall_1"}, timeout=900)
        assert heal.status == "succeeded", heal.error
        assert heal.ended_at is not None
        record(tempano.store, heal, figures["heal firewall_1"])
        probe_started = time.monotonic()
        while tcp_probe(out["client_namespace"], out["server_address"], 80) != "tempano vfw service":
            assert time.monotonic() - probe_started < 60, "traffic did not pass again within 60 s of the heal"
        figures["heal firewall_1"]["traffic passes again (s after the heal ended)"].append(
            time.time() - heal.ended_at.timestamp()
        )
        uninstall = await tempano.run(deployment, "uninstall", timeout=900)
        assert uninstall.status == "succeeded", uninstall.error
        assert leftovers(deployment) == []
    finally:
        cleanup(deployment)


def record(store: Store, execution: ExecutionRecord, into: dict[str, list[float]]) -> None:
    wall, plugin, per_kind = split(store, execution)
    into["wall"].append(wall)
    into["plugin (some operation running)"].append(plugin)
    into["orchestration (no operation running)"].append(wall - plugin)
    for kind, values in per_kind.items():
        into[f"  {kind}: {len(values)} ops, summed"].append(sum(values))
    events = store.events(execution.deployment_id, execution_id=execution.id, limit=1_000_000)
    into["  failed operation attempts (retried)"].append(attempts(events))


async def run(rounds: int, address: str, server: subprocess.Popen[bytes]) -> dict[str, dict[str, list[float]]]:
    client = await connect_when_ready(address, server)
    data = Path(os.environ["TEMPANO_LAB_DIR"]).parent / "data"
    data.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data, temporal_address=address, task_queue=f"bench-{uuid.uuid4().hex[:8]}")
    store: Store = settings.store
    worker, pool = build_worker(client, store, task_queue=settings.task_queue, threads=32)
    figures: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    async with worker:
        tempano = Tempano(settings, client, store)
        for _ in range(rounds):
            await one_round(tempano, figures)
    pool.shutdown(wait=False, cancel_futures=True)
    store.close()
    return figures


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("the vFW benchmark runs on the lab VIM: run it as root")
    rounds = _cli.rounds(__doc__, 1)
    tmp = Path(tempfile.mkdtemp(prefix="tempano-bench-"))
    os.environ["TEMPANO_LAB_DIR"] = str(tmp / "lab")
    try:
        with throwaway_dev_server(tmp / "temporal.db") as (address, server):
            figures = asyncio.run(run(rounds, address, server))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    print(f"vFW example through the engine, median of {rounds} round(s); {os.cpu_count()} CPUs, load {load[0]:.1f}")
    print(f"{'':62} {'seconds':>8}")
    for phase, rows in figures.items():
        print(phase)
        for name, values in rows.items():
            print(f"  {name:60} {statistics.median(values):8.2f}")


if __name__ == "__main__":
    with exit_on_up_error("vfw_engine"):
        main()
