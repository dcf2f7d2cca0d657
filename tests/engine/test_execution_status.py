"""The activity that records an execution's end: whoever sees the execution ended finds everything else settled."""

from __future__ import annotations

from pathlib import Path

from temporalio.testing import ActivityEnvironment

from tempano.activities.engine import EngineActivities
from tempano.plugins import PluginRegistry
from tempano.store import NewInstance, Store
from tempano.workflows.models import ExecutionStatusInput


def test_a_terminated_execution_reads_ended_only_once_instances_and_deployment_are_settled(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create_schema()
    store.put_blueprint("bp", {}, "hash")
    store.create_deployment("d", "bp", {}, {}, [NewInstance(id=f"vm_{i}", node="vm", index=i) for i in (1, 2)])
    store.set_deployment_status("d", "installing")
    store.create_execution("d:1", "d", 1, "install", {}, "dep:d:exec:1:install")
    store.set_execution_status("d:1", "running")
    store.set_states("d", ["vm_1"], "configuring")
    store.set_states("d", ["vm_2"], "started")

    seen: list[tuple[str, str, dict[str, str], list[str]]] = []
    record_status = store.set_execution_status

    def spy(execution_id: str, status: str, *, error: str | None = None) -> None:
        # what a reader polling the execution finds the moment it reads it ended
        states = {i.id: i.state for i in store.node_instances("d")}
        events = [e.type for e in store.events("d", execution_id="d:1")]
        seen.append((status, store.get_deployment("d").status, states, events))
        record_status(execution_id, status, error=error)

    store.set_execution_status = spy  # type: ignore[method-assign]
    activities = EngineActivities(store, PluginRegistry())
    ActivityEnvironment().run(
        activities.execution_status,
        ExecutionStatusInput(
            deployment_id="d",
            execution_id="d:1",
            workflow="install",
            status="terminated",
            error="terminated by an operator",
            deployment_status="failed",
            settle=True,
        ),
    )
    assert seen == [("terminated", "failed", {"vm_1": "error", "vm_2": "started"}, ["execution_terminated"])]
    assert store.get_execution("d:1").status == "terminated"
    store.close()
