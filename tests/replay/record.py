"""Records the replay corpus: runs representative executions on a real Temporal dev server (started here, in
memory, on free ports) with an in-process worker, and writes their histories to tests/replay/histories/*.json
(with index.json: each history's workflow id and type).

``scripts/record-histories`` (or ``.venv/bin/python tests/replay/record.py [--out DIR]``). Re-record only when a
workflow change is deliberate and no execution recorded with the old code can still be running anywhere;
otherwise keep the old histories and guard the change with ``workflow.patched()``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus

from tempano.api.service import Tempano
from tempano.api.settings import Settings
from tempano.api.up import connect_when_ready, exit_on_up_error, throwaway_dev_server
from tempano.api.worker import build_worker
from tempano.plugins import builtin
from tempano.plugins.registry import PluginRegistry

HERE = Path(__file__).resolve().parent
BLUEPRINTS = HERE / "blueprints"
HISTORIES = HERE / "histories"
INDEX = "index.json"


async def _run(
    tempano: Tempano,
    deployment_id: str,
    workflow: str,
    *,
    expect: str = "succeeded",
    rollback_of: str | None = None,
    **parameters: Any,
) -> str:
    """Runs one execution to its end (the workflow's own, not only the store's record); its workflow id."""
    ref = await tempano.start_execution(deployment_id, workflow, parameters, rollback_of=rollback_of)
    record = await tempano.wait_execution(ref.execution_id, timeout=600)
    if record.status != expect:
        raise RuntimeError(f"{workflow} on {deployment_id} ended {record.status}, not {expect}: {record.error}")
    handle = tempano.client.get_workflow_handle(ref.workflow_id)
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        await asyncio.sleep(0.2)
    return ref.workflow_id


async def record(client: Client, out: Path, work: Path) -> dict[str, str]:
    """Runs the scenarios; {history name: workflow id}."""
    settings = Settings(data_dir=work, temporal_address="unused:0", task_queue="record-histories", secret_key=None)
    store = settings.store
    worker, pool = build_worker(client, store, task_queue=settings.task_queue, plugins=PluginRegistry([builtin.plugin]))
    wanted: dict[str, str] = {}
    try:
        async with worker:
            tempano = Tempano(settings, client, store)
            for name in ("lifecycle", "failing", "many"):
                tempano.upload_blueprint(name, BLUEPRINTS / f"{name}.yaml")
                await tempano.create_deployment(name, name)

            wanted["install"] = await _run(tempano, "lifecycle", "install")
            wanted["heal_reinstall"] = await _run(tempano, "lifecycle", "heal", node_instance_id="app_1", force=True)
            wanted["scale_out"] = await _run(tempano, "lifecycle", "scale", node="app", delta=1)
            wanted["scale_in"] = await _run(tempano, "lifecycle", "scale", node="app", delta=-1)
            wanted["uninstall"] = await _run(tempano, "lifecycle", "uninstall")
            wanted["deployment"] = "dep:lifecycle"

            wanted["install_failed"] = await _run(tempano, "failing", "install", expect="failed")
            wanted["rollback"] = await _run(tempano, "failing", "rollback", rollback_of="failing:1")

            wanted["install_201_batches"] = await _run(tempano, "many", "install")
            wanted["node_batch_100"] = f"{wanted['install_201_batches']}:batch:1:many"
            wanted["deployment_many"] = "dep:many"

            out.mkdir(parents=True, exist_ok=True)
            index: dict[str, dict[str, str]] = {}
            for name, workflow_id in wanted.items():
                history = await client.get_workflow_handle(workflow_id).fetch_history()
                # One event per line: reviewable diffs, and the file stays what `temporal workflow show` reads.
                document = json.loads(history.to_json())
                events = ",\n".join(json.dumps(e, sort_keys=True) for e in document["events"])
                (out / f"{name}.json").write_text('{"events": [\n' + events + "\n]}\n")
                started = history.events[0].workflow_execution_started_event_attributes
                index[name] = {"workflow_id": workflow_id, "workflow_type": started.workflow_type.name}
                print(f"{name}: {workflow_id} ({len(history.events)} events)")
            # Replay needs each history's workflow id too (child workflow ids are derived from it).
            (out / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        store.close()
    return wanted


async def main_async(out: Path) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="tempano-record-") as tmp,
        throwaway_dev_server(log=Path(tmp) / "temporal.log") as (address, proc),
    ):
        client = await connect_when_ready(address, proc)
        await record(client, out, Path(tmp) / "data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HISTORIES, help=f"where to write (default {HISTORIES})")
    asyncio.run(main_async(parser.parse_args().out))


if __name__ == "__main__":
    with exit_on_up_error("record"):
        main()
