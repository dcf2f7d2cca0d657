"""Durability: processes die mid-install and the install still completes, with every create made exactly once
(checked by the ledger and by the plugin's own record, tests/engine/durability/worker.py).

- the worker (a separate OS process) is SIGKILLed at random moments of 50-instance installs and restarted. The
  randomness is seeded: the seed is printed, and ``TEMPANO_CRASH_SEED=<seed>`` replays the same kill schedule
  (``TEMPANO_CRASH_TRIALS`` sets the number of installs);
- the Temporal server (persistent database) is SIGKILLed mid-install and restarted on the same file and ports."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter

from tempano.api.service import TERMINAL, Tempano
from tempano.api.settings import Settings
from tempano.api.up import stop_process
from tempano.blueprints import compile, load
from tempano.store import Store
from tempano.workflows.models import ExecutionRef
from tests.conftest import worker_polling

HERE = Path(__file__).resolve().parent
WORKER = HERE / "durability" / "worker.py"
BLUEPRINT = HERE / "durability" / "crash50.yaml"
INSTANCES = 50
SIDE_BY_SIDE = 2
"""Installs run two at a time, killed together: restarts are what costs time on a loaded machine."""

pytestmark = pytest.mark.asyncio(loop_scope="session")


def helper() -> ModuleType:
    """tests/engine/durability/worker.py as a module (tests are not a package)."""
    spec = importlib.util.spec_from_file_location("tempano_durability_worker", WORKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class WorkerProcess:
    """The worker as a child process that the test SIGKILLs and restarts. A standby process (imports done, waiting
    on stdin) is kept ready, so a restart costs a second even when the machine is loaded."""

    def __init__(self, settings: Settings, records: Path, log: Path, *, standby: bool = True) -> None:
        self.cmd = [
            sys.executable,
            str(WORKER),
            "--address",
            settings.temporal_address,
            "--task-queue",
            settings.task_queue,
            "--store-url",
            settings.store_url,
            "--records",
            str(records),
            "--standby",
        ]
        self.address, self.task_queue = settings.temporal_address, settings.task_queue
        self.standby = standby
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.spare: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                self.cmd, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def start(self) -> None:
        """Starts a worker (the standby one) polling, and readies the next standby."""
        proc = self.spare or self._spawn()
        assert proc.stdin is not None and proc.poll() is None, f"the standby worker died: {self.tail()}"
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        self.proc = proc
        self.starts += 1
        self.note(f"worker {proc.pid} started")
        self.spare = self._spawn() if self.standby else None

    async def polling(self) -> None:
        """Until the worker started last polls (the first one is still importing when started)."""
        assert self.proc is not None
        await worker_polling(self.address, self.task_queue, self.proc, self.log)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None and self.alive(), f"the worker died by itself: {self.tail()}"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.note(f"SIGKILL sent to worker {self.proc.pid}")

    def stop(self) -> None:
        for proc in (self.proc, self.spare):
            if proc is not None:
                stop_process(proc)

    def note(self, line: str) -> None:
        with self.log.open("a") as out:
            out.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} [test] {line}\n")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def plugin_record(records: Path, table: str, deployment_id: str) -> list[tuple[str, str, str]]:
    """(key, instance, resource id) rows of one of the plugin's tables for one deployment."""
    conn = sqlite3.connect(records, timeout=60)
    try:
        rows = conn.execute(f"select key, instance, resource_id from {table} where key like ?", (f"{deployment_id}.%",))
        return [(str(k), str(i), str(r)) for k, i, r in rows]
    finally:
        conn.close()


def adoptions(records: Path, deployment_id: str) -> int:
    conn = sqlite3.connect(records, timeout=60)
    try:
        return int(
            conn.execute("select count(*) from adoptions where key like ?", (f"{deployment_id}.%",)).fetchone()[0]
        )
    finally:
        conn.close()


def check_install(store: Store, records: Path, deployment_id: str) -> tuple[int, int]:
    """Every create ran exactly once: by the plugin's record, the ledger and the instances' attributes.
    Returns (creates, adoptions)."""
    made = plugin_record(records, "creates", deployment_id)
    instances = store.node_instances(deployment_id)
    assert len(instances) == INSTANCES
    # Exactly one real create per instance, under the instance's deterministic idempotency key...
    assert Counter(instance for _, instance, _ in made) == Counter({i.id: 1 for i in instances}), deployment_id
    assert {key for key, _, _ in made} == {f"{deployment_id}.{i.id}.Standard.create" for i in instances}
    # ... which the ledger holds once, as the plugin's VIM does, and the instance's attributes name.
    made_by_instance = {instance: resource for _, instance, resource in made}
    ledger = store.resources(deployment_id)
    assert sorted((r.node_instance_id, r.resource_id) for r in ledger) == sorted(made_by_instance.items())
    live = {instance: resource for _, instance, resource in plugin_record(records, "resources", deployment_id)}
    assert live == made_by_instance
    assert {i.id: (i.state, i.attributes.get("resource_id")) for i in instances} == {
        i: ("started", r) for i, r in made_by_instance.items()
    }
    return len(made), adoptions(records, deployment_id)


@pytest.mark.timeout(1500)  # minutes on a loaded machine: don't let the suite's default cut it short
async def test_worker_sigkilled_during_installs(client: Client, settings: Settings, tmp_path: Path) -> None:
    seed = int(os.environ.get("TEMPANO_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    trials = int(os.environ.get("TEMPANO_CRASH_TRIALS", "10"))
    print(f"\ncrash test seed {seed} (replay: TEMPANO_CRASH_SEED={seed}), {trials} installs, {SIDE_BY_SIDE} at a time")
    rng = random.Random(seed)

    store = settings.store
    records = tmp_path / "records.db"
    helper().init_records(records)
    plan = compile(load(BLUEPRINT), has_operation=None)
    store.put_blueprint("crash50", plan.model_dump(mode="json"), plan.content_hash)
    tempano = Tempano(settings, client, store)
    worker = WorkerProcess(settings, records, tmp_path / "worker.log")
    worker.start()
    await worker.polling()
    kills = creates = adopted = retried = 0
    hits: Counter[str] = Counter()  # kills each execution lived through

    async def reached(refs: dict[str, ExecutionRef], table: str, target: int, timeout: float = 120.0) -> None:
        """Waits until one of the deployments has `target` rows in the plugin's `table` (or `timeout` passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if max(len(plugin_record(records, table, d)) for d in refs) >= target:
                return
            await asyncio.sleep(0.02)

    async def kill_during(refs: dict[str, ExecutionRef], table: str) -> int:
        """SIGKILLs the worker 1-3 times while the executions run (restarting it each time); the kills made.

        The first kill comes when the furthest execution has made a random number (0 to 3/4 of the instances) of
        its creates (deletes): a point in the work, not in time, so that it lands in every execution however fast
        the engine gets. The others come at random times."""
        made = 0
        for n in range(rng.randint(1, 3)):
            if n == 0:
                await reached(refs, table, rng.randint(0, INSTANCES * 3 // 4))
            else:
                await asyncio.sleep(rng.uniform(0.1, 8.0))
            running = [
                r.execution_id for r in refs.values() if store.get_execution(r.execution_id).status not in TERMINAL
            ]
            if not running:
                break
            worker.kill()
            made += 1
            hits.update(running)
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            worker.start()
        return made

    try:
        for first in range(1, trials + 1, SIDE_BY_SIDE):
            started = time.monotonic()
            refs = {}
            for trial in range(first, min(first + SIDE_BY_SIDE, trials + 1)):
                deployment_id = f"crash-{trial}"
                await tempano.create_deployment(deployment_id, "crash50")
                refs[deployment_id] = await tempano.start_execution(deployment_id, "install")
            kills += await kill_during(refs, "creates")
            for deployment_id, ref in refs.items():
                try:
                    execution = await tempano.wait_execution(ref.execution_id, timeout=300)
                except TimeoutError:
                    pytest.fail(f"{deployment_id} (seed {seed}): install never finished; worker log:\n{worker.tail()}")
                assert execution.status == "succeeded", f"{deployment_id} (seed {seed}): {execution.error}"
                await client.get_workflow_handle(execution.workflow_id).result()
                made, adoptions_ = check_install(store, records, deployment_id)
                events = store.events(deployment_id, execution_id=execution.id, limit=100_000)
                again = sum(1 for e in events if e.type == "operation_started" and (e.attempt or 1) > 1)
                creates, adopted, retried = creates + made, adopted + adoptions_, retried + again
                print(
                    f"{deployment_id}: lived through {hits[ref.execution_id]} kill(s); {made} creates, "
                    f"{adoptions_} adoptions, {again} retried attempts; round {time.monotonic() - started:.1f}s"
                )

        # Uninstalls, killed too: each resource the ledger holds is deleted exactly once, nothing is left.
        refs = {d: await tempano.start_execution(d, "uninstall") for d in ("crash-1", "crash-2")[:trials]}
        kills += await kill_during(refs, "deletes")
        for deployment_id, ref in refs.items():
            execution = await tempano.wait_execution(ref.execution_id, timeout=300)
            assert execution.status == "succeeded", f"{deployment_id} uninstall (seed {seed}): {execution.error}"
            made = {instance: resource for _, instance, resource in plugin_record(records, "creates", deployment_id)}
            deleted = plugin_record(records, "deletes", deployment_id)
            assert Counter(instance for _, instance, _ in deleted) == Counter(dict.fromkeys(made, 1))
            assert {instance: resource for _, instance, resource in deleted} == made
            assert plugin_record(records, "resources", deployment_id) == []
            assert store.resources(deployment_id) == []
            assert {i.state for i in store.node_instances(deployment_id)} == {"deleted"}
            print(f"{deployment_id} uninstall: lived through {hits[ref.execution_id]} kill(s); {len(deleted)} deletes")
    finally:
        worker.stop()
        store.close()
    print(
        f"crash test: {trials} installs of {INSTANCES} instances and 2 uninstalls completed, {kills} SIGKILLs "
        f"({sum(hits.values())} execution-kills), {worker.starts} worker starts, {creates} creates (one per instance), "
        f"{adopted} adoptions, {retried} retried attempts (seed {seed})"
    )
    assert all(hits[f"crash-{t}:1"] >= 1 for t in range(1, trials + 1)), f"an install saw no kill: {hits} (seed {seed})"


async def test_dev_server_killed_and_restarted_mid_install(own_dev_server: Any, tmp_path: Path) -> None:
    """The Temporal server (its own, on a database file) is SIGKILLed mid-install and restarted on the same file
    and ports: the same workflow run carries on, and the install completes with every create made once."""
    server = own_dev_server
    client = await Client.connect(server.address, data_converter=pydantic_data_converter)
    settings = Settings(
        data_dir=tmp_path / "data",
        temporal_address=server.address,
        task_queue=f"tq-{uuid.uuid4().hex[:12]}",
        secret_key=None,
    )
    store = settings.store
    records = tmp_path / "records.db"
    helper().init_records(records)
    plan = compile(load(BLUEPRINT), has_operation=None)
    store.put_blueprint("crash50", plan.model_dump(mode="json"), plan.content_hash)
    tempano = Tempano(settings, client, store)
    worker = WorkerProcess(settings, records, tmp_path / "worker.log", standby=False)
    worker.start()
    await worker.polling()
    try:
        await tempano.create_deployment("restart-1", "crash50")
        ref = await tempano.start_execution("restart-1", "install")
        handle = client.get_workflow_handle(ref.workflow_id)

        def done_operations() -> int:
            return len(store.events("restart-1", execution_id=ref.execution_id, types=["operation_succeeded"]))

        deadline = time.monotonic() + 300
        while done_operations() < 30:  # of 100: well under way
            assert time.monotonic() < deadline, f"the install made no progress: {worker.tail()}"
            await asyncio.sleep(0.2)
        run_id = (await handle.describe()).run_id
        server.kill()
        at_kill = done_operations()
        await asyncio.sleep(3)
        await asyncio.to_thread(server.start)
        print(f"\ndev server killed after {at_kill}/100 operations, restarted on {server.db_file.name}")

        execution = await tempano.wait_execution(ref.execution_id, timeout=300)
        assert execution.status == "succeeded", execution.error
        await handle.result()
        description = await handle.describe()
        assert description.run_id == run_id and description.status == WorkflowExecutionStatus.COMPLETED
        made, adopted = check_install(store, records, "restart-1")
        assert worker.alive(), f"the worker did not ride out the outage: {worker.tail()}"
        print(f"install completed in the same run; {made} creates, {adopted} adoptions")
    finally:
        worker.stop()
        store.close()
