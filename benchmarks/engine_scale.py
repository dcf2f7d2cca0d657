"""Engine benchmarks on the real Temporal dev server: how big and how fast an install can be.

    .venv/bin/python benchmarks/engine_scale.py [sizes...] [--no-critical-path]   # default: 100 1000 10000 + critical path
    .venv/bin/python benchmarks/engine_scale.py --critical-path [--repeat N]        # the critical path alone (N runs, 3)

Scale: installs of plans with N node instances whose operations cost nothing (builtin.noop on create, configure and
start): one `core` instance, the rest spread over three templates that depend on it. Printed per size: wall time of
the install, CPU seconds of this process (the worker runs in it) and of the dev server (wall time is inflated on a
loaded machine; CPU is what to compare), workflow runs, history events and activities per instance, workflow tasks
completed, and the largest history of any run (Temporal's hard limits are 51,200 events and 50 MB per run; the goal
is every run under 10,240 events).

Critical path: 100 instances in four layers of 25 (each layer depends on the one before), every operation (create,
configure, start) sleeps 1 s, so the critical path is 4 x 3 s = 12 s. Printed: wall time / critical path (goal
<= 1.10), for each of ``--repeat`` runs (3 by default) and their median, with where the time beyond the sleeps goes.

Each line also gives the CPU steal of the machine during the run (time the hypervisor gave our vCPUs to others): on
a shared VM it can reach 30-50%, and then wall times and CPU seconds inflate; compare runs with little steal.

The dev server, worker and store are started here on free ports in a temporary directory and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause
from temporalio.client import Client

from tempano.api.service import Tempano
from tempano.api.settings import Settings
from tempano.api.up import connect_when_ready, exit_on_up_error, throwaway_dev_server
from tempano.api.worker import build_worker

SLEEP = 1.0


def ops(implementation: str) -> str:
    return "\n".join(
        f"          {op}: {{ implementation: {implementation} }}" for op in ("create", "configure", "start")
    )


def node(name: str, implementation: str, after: str | None) -> str:
    requirements = f"\n      requirements:\n        - dependency: {after}" if after else ""
    return (
        f"    {name}:\n      type: tempano.nodes.Root{requirements}\n"
        f"      interfaces:\n        Standard:\n{ops(implementation)}\n"
    )


def policy(name: str, count: int) -> str:
    return (
        f"    - {name}_count:\n        type: tempano.policies.Scaling\n        targets: [ {name} ]\n"
        f"        properties: {{ min_instances: 1, default_instances: {count}, max_instances: {count} }}\n"
    )


def blueprint(layers: list[tuple[str, int, str | None]], implementation: str) -> str:
    nodes = "".join(node(name, implementation, after) for name, _, after in layers)
    policies = "".join(policy(name, count) for name, count, _ in layers if count > 1)
    text = f"tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n{nodes}"
    return text + (f"  policies:\n{policies}" if policies else "")


def scale_blueprint(size: int) -> str:
    rest = size - 1
    share = [rest // 3 + (1 if i < rest % 3 else 0) for i in range(3)]
    layers: list[tuple[str, int, str | None]] = [("core", 1, None)]
    layers += [(f"edge_{i}", share[i], "core") for i in range(3)]
    return blueprint(layers, "builtin.noop")


def critical_path_blueprint() -> str:
    layers: list[tuple[str, int, str | None]] = [("layer_0", 25, None)]
    layers += [(f"layer_{i}", 25, f"layer_{i - 1}") for i in range(1, 4)]
    return blueprint(layers, "builtin.sleep")


@asynccontextmanager
async def stack(workdir: Path) -> AsyncIterator[tuple[Tempano, subprocess.Popen[bytes]]]:
    with throwaway_dev_server(workdir / "temporal.db", log=workdir / "temporal.log") as (address, server):
        settings = Settings(data_dir=workdir / "data", temporal_address=address, secret_key=None)
        client = await connect_when_ready(address, server)
        worker, pool = build_worker(client, settings.store, task_queue=settings.task_queue)
        async with worker:
            yield Tempano(settings, client, settings.store), server
        pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class Counted:
    """Deterministic figures of an execution: every run under the deployment (executions and their children)."""

    sizes: list[int] = field(default_factory=list)
    activities: int = 0
    workflow_tasks: int = 0
    slowest_task: float = 0.0
    """Seconds from a workflow task's start to its completion, the longest of any run (Temporal's timeout: 10 s)."""
    lost_tasks: list[str] = field(default_factory=list)
    """Workflow tasks that timed out or failed (each one redone by the worker), with the run and the reason."""


async def histories(client: Client, deployment_id: str) -> Counted:
    """Event counts of every run under the deployment, activities scheduled and workflow tasks completed."""
    counted = Counted()
    async for wf in client.list_workflows(f"WorkflowId STARTS_WITH 'dep:{deployment_id}:'"):
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        counted.sizes.append(len(history.events))
        started: dict[int, float] = {}
        for e in history.events:
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                counted.activities += 1
            elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                started[e.event_id] = e.event_time.ToMicroseconds() / 1e6
            elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                counted.workflow_tasks += 1
                began = started.get(e.workflow_task_completed_event_attributes.started_event_id)
                if began is not None:
                    counted.slowest_task = max(counted.slowest_task, e.event_time.ToMicroseconds() / 1e6 - began)
            elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                timeout = e.workflow_task_timed_out_event_attributes.timeout_type
                counted.lost_tasks.append(f"{wf.id}: workflow task timed out ({TimeoutType.Name(timeout)})")
            elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failed = e.workflow_task_failed_event_attributes
                cause = WorkflowTaskFailedCause.Name(failed.cause)
                counted.lost_tasks.append(f"{wf.id}: workflow task failed ({cause}: {failed.failure.message[:200]})")
    return counted


def server_cpu(server: subprocess.Popen[bytes]) -> float:
    """CPU seconds (user + system) the Temporal dev server has used so far."""
    fields = Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    median, p90 = (ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.5, 0.9))
    return f"median {median * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"


async def critical_path_breakdown(client: Client, deployment_id: str, sleep: float) -> list[str]:
    """Where the time beyond the operations' own sleep goes, from the install's history: the server's and
    worker's share before an operation starts, the store writes around the plugin call, and the workflow's
    reaction from one operation's end to the next one's schedule (same instance) or to the next layer."""
    async for wf in client.list_workflows(f"WorkflowId STARTS_WITH 'dep:{deployment_id}:exec:'"):
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        break
    else:
        return ["no execution history found"]
    scheduled: dict[int, tuple[str, float, float]] = {}
    started: dict[int, float] = {}
    to_start, inside, reaction, layer_gap = [], [], [], []
    last_done: dict[str, float] = {}
    seen: set[str] = set()
    latest_done: float | None = None
    first, last = history.events[0].event_time.ToDatetime().timestamp(), 0.0
    for e in history.events:
        t = e.event_time.ToDatetime().timestamp()
        last = t
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = e.activity_task_scheduled_event_attributes
            if attrs.activity_type.name not in ("run_operation", "run_operations"):
                continue
            instance = attrs.activity_id.split(":", 1)[0]
            # run_operations: the instance's create, configure and start in one activity
            scheduled[e.event_id] = (instance, t, sleep * (3 if attrs.activity_type.name == "run_operations" else 1))
            if instance in last_done:
                reaction.append(t - last_done.pop(instance))
            elif instance not in seen and latest_done is not None:
                layer_gap.append(t - latest_done)
                latest_done = None
            seen.add(instance)
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            sid = e.activity_task_started_event_attributes.scheduled_event_id
            if sid in scheduled:
                started[sid] = t
                to_start.append(t - scheduled[sid][1])
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = e.activity_task_completed_event_attributes.scheduled_event_id
            if sid in scheduled:
                inside.append(t - started.get(sid, scheduled[sid][1]) - scheduled[sid][2])
                last_done[scheduled[sid][0]] = t
                latest_done = t
    return [
        f"  execution run: {last - first:.2f} s, {len(history.events)} events, {len(scheduled)} operation activities",
        f"  scheduled -> started: {_quantiles(to_start)}",
        f"  started -> completed, beyond the operations' sleep: {_quantiles(inside)}",
        f"  completed -> same instance's next activity scheduled: {_quantiles(reaction)}",
        f"  a layer's last operation completed -> next layer's first scheduled: {_quantiles(layer_gap)}",
    ]


def cpu_ticks() -> tuple[int, int]:
    """All CPU ticks of the machine so far, and those stolen by the hypervisor (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[7]


@dataclass
class Measured:
    wall: float
    worker_cpu: float
    server_cpu: float
    steal: float
    """Share of the machine's CPU time stolen by the hypervisor during the run (0..1)."""


async def install(tempano: Tempano, server: subprocess.Popen[bytes], name: str, text: str, timeout: float) -> Measured:
    """Installs a blueprint; wall time, CPU seconds of this process (the worker) and of the dev server."""
    path = Path(tempfile.mkdtemp()) / f"{name}.yaml"
    path.write_text(text)
    tempano.upload_blueprint(name, path)
    await tempano.create_deployment(name, name)
    started, cpu, server_started, ticks = time.perf_counter(), time.process_time(), server_cpu(server), cpu_ticks()
    execution = await tempano.run(name, "install", timeout=timeout)
    await tempano.client.get_workflow_handle(execution.workflow_id).result()
    (total, stolen), (total_0, stolen_0) = cpu_ticks(), ticks
    measured = Measured(
        time.perf_counter() - started,
        time.process_time() - cpu,
        server_cpu(server) - server_started,
        (stolen - stolen_0) / max(1, total - total_0),
    )
    if execution.status != "succeeded":
        sys.exit(f"{name}: install {execution.status}: {execution.error}")
    return measured


async def main(sizes: list[int], critical_path: int) -> None:
    """``critical_path``: how many times to run the critical-path install (0: not at all)."""
    print(f"engine benchmark on {os.cpu_count()} cores, python {sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="tempano-bench-") as tmp:
        async with stack(Path(tmp)) as (tempano, server):
            ratios: list[float] = []
            print(
                f"{'instances':>10} {'install s':>10} {'inst/s':>7} {'worker cpu s':>13} {'server cpu s':>13} "
                f"{'runs':>5} {'events/inst':>12} {'acts/inst':>10} {'wf tasks':>9} {'slowest wft s':>14} "
                f"{'lost wft':>9} {'largest run':>12} {'steal':>6}"
            )
            for size in sizes:
                name = f"scale-{size}"
                m = await install(tempano, server, name, scale_blueprint(size), timeout=3600)
                c = await histories(tempano.client, name)
                print(
                    f"{size:>10} {m.wall:>10.1f} {size / m.wall:>7.0f} {m.worker_cpu:>13.1f} {m.server_cpu:>13.1f} "
                    f"{len(c.sizes):>5} {sum(c.sizes) / size:>12.1f} {c.activities / size:>10.2f} "
                    f"{c.workflow_tasks:>9} {c.slowest_task:>14.2f} {len(c.lost_tasks):>9} {max(c.sizes):>12} {m.steal:>6.0%}",
                    flush=True,
                )
                for lost in c.lost_tasks:
                    print(f"  {lost}")
            for run in range(1, critical_path + 1):
                name = f"critical-path-{run}"
                m = await install(tempano, server, name, critical_path_blueprint(), timeout=600)
                c = await histories(tempano.client, name)
                critical = 4 * 3 * SLEEP
                ratios.append(m.wall / critical)
                print(
                    f"critical path, run {run}/{critical_path}: 100 instances, 4 layers x 3 operations x {SLEEP:.0f} s "
                    f"= {critical:.0f} s; install {m.wall:.2f} s (worker cpu {m.worker_cpu:.1f} s, server cpu "
                    f"{m.server_cpu:.1f} s, {sum(c.sizes)} events, {c.activities} activities, steal {m.steal:.0%}); "
                    f"ratio {m.wall / critical:.3f} (goal <= 1.10)"
                )
                for line in await critical_path_breakdown(tempano.client, name, SLEEP):
                    print(line)
            if ratios:
                print(
                    f"critical path ratio over {len(ratios)} runs: median {statistics.median(ratios):.3f}, "
                    f"best {min(ratios):.3f}, worst {max(ratios):.3f}"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sizes", nargs="*", type=int, help="instances per scale install (default: 100 1000 10000)")
    parser.add_argument("--critical-path", action="store_true", help="the critical path alone, unless sizes are given")
    parser.add_argument("--no-critical-path", action="store_true", help="the scale installs alone")
    parser.add_argument("--repeat", type=int, default=3, metavar="N", help="critical-path runs (default: 3)")
    options = parser.parse_args()
    chosen = options.sizes or ([] if options.critical_path else [100, 1000, 10000])
    with exit_on_up_error("engine_scale"):
        asyncio.run(main(chosen, critical_path=0 if options.no_critical_path else options.repeat))
