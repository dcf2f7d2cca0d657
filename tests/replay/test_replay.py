"""Replay tests: the committed histories of representative executions (tests/replay/histories, recorded by
``scripts/record-histories``) replay against the current workflow code. A change that would derail executions in
flight fails here: guard it with ``workflow.patched()``, or re-record if no old execution can still be running.
The last tests prove the check can fail: deliberately changed workflows raise NondeterminismError."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

import tempano.workflows.api as workflow_api
from tempano.api.worker import workflow_runner
from tempano.workflows import registry
from tempano.workflows.api import WorkflowContext
from tempano.workflows.engine import WORKFLOWS

HISTORIES = Path(__file__).resolve().parent / "histories"
CORPUS = {
    "install": "Execution",
    "uninstall": "Execution",
    "install_failed": "Execution",
    "rollback": "Execution",
    "heal_reinstall": "Execution",
    "scale_out": "Execution",
    "scale_in": "Execution",
    "install_201_batches": "Execution",
    "node_batch_100": "NodeBatch",
    "deployment": "Deployment",
    "deployment_many": "Deployment",
    # Recorded with store activities as local ones (workflow.patched("local-store-activities")); those above
    # were recorded before, and must replay too.
    "install_local_store": "Execution",
    "heal_local_store": "Execution",
    "deployment_local_store": "Deployment",
    # Recorded with an instance's operations of a step in one activity (workflow.patched("operation-chains")).
    "install_chains": "Execution",
    "heal_reinstall_chains": "Execution",
    "node_batch_100_chains": "NodeBatch",
    "scale_out_chains": "Execution",
    # Recorded with steps planned while the steps they wait on run, and the "running" status written while the
    # first reads run (workflow.patched("plan-ahead")).
    "install_plan_ahead": "Execution",
    "install_failed_plan_ahead": "Execution",
    "heal_reinstall_plan_ahead": "Execution",
    "scale_out_plan_ahead": "Execution",
    "uninstall_plan_ahead": "Execution",
}

INDEX: dict[str, dict[str, str]] = json.loads((HISTORIES / "index.json").read_text())


def load(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(INDEX[name]["workflow_id"], (HISTORIES / f"{name}.json").read_text())


def replayer() -> Replayer:
    """The worker's workflows, data converter and sandbox (api/worker.py). Without the 2 s deadlock detection:
    replay checks what the code decides, not how fast it does so, and on a loaded CI machine an activation that
    schedules a hundred operations once took longer ("Potential deadlock detected")."""
    registry.load_custom_workflows()
    return Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(pydantic_data_converter),
        debug_mode=True,
    )


def test_the_corpus_is_complete() -> None:
    assert {p.stem for p in HISTORIES.glob("*.json")} - {"index"} == set(CORPUS) == set(INDEX)
    for name, workflow_type in CORPUS.items():
        events = load(name).events
        started = events[0].workflow_execution_started_event_attributes
        assert started.workflow_type.name == workflow_type, name
    # The batch path really is in the corpus: the 201-instance install started NodeBatch children.
    children = [
        e
        for e in load("install_201_batches").events
        if e.HasField("start_child_workflow_execution_initiated_event_attributes")
    ]
    assert len(children) == 3
    # The local store activities really are in the corpus: markers, and no activity but the operations.
    events = load("install_local_store").events
    scheduled = {
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    assert scheduled == {"run_operation"}
    assert any(e.HasField("marker_recorded_event_attributes") for e in events)
    # The chains really are in the corpus: each instance's install is one run_operations activity.
    scheduled_chains = [
        e.activity_task_scheduled_event_attributes
        for e in load("install_chains").events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled_chains and {a.activity_type.name for a in scheduled_chains} == {"run_operations"}
    # Planning ahead really is in the corpus: a step was planned before the step it waits on had ended.
    ahead = load("install_plan_ahead").events
    first_end = next(i for i, e in enumerate(ahead) if e.HasField("activity_task_completed_event_attributes"))
    planned = [i for i, e in enumerate(ahead) if _local_activity(e) == "plan_batch"]
    assert len(planned) >= 2 and planned[1] < first_end


def _local_activity(event: Any) -> str | None:
    """The activity type of a local activity's marker, else None."""
    if not event.HasField("marker_recorded_event_attributes"):
        return None
    details = event.marker_recorded_event_attributes.details
    if "data" not in details:
        return None
    return str(json.loads(details["data"].payloads[0].data)["activity_type"])


@pytest.mark.parametrize("name", sorted(CORPUS))
async def test_history_replays_on_current_code(name: str) -> None:
    result = await replayer().replay_workflow(load(name), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name}: {result.replay_failure}"


def _log_first(
    fn: Callable[[WorkflowContext, Mapping[str, Any]], Awaitable[Mapping[str, Any] | None]],
) -> Callable[[WorkflowContext, Mapping[str, Any]], Awaitable[Mapping[str, Any] | None]]:
    async def changed(ctx: WorkflowContext, params: Mapping[str, Any]) -> Mapping[str, Any] | None:
        await ctx.log("a step that the recorded execution never took")
        return await fn(ctx, params)

    return changed


async def test_a_workflow_with_a_new_step_fails_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    original = registry.get("install")
    assert original is not None
    monkeypatch.setitem(registry._workflows, "install", _log_first(original))
    with pytest.raises(workflow.NondeterminismError):
        await replayer().replay_workflow(load("install"))


async def test_a_changed_batch_size_fails_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workflow_api, "BATCH_SIZE", 50)  # 201 instances: 5 NodeBatch children, not 3
    with pytest.raises(workflow.NondeterminismError):
        await replayer().replay_workflow(load("install_201_batches"))
