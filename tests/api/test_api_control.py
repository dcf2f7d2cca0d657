"""Execution control through the API: what a running execution waits on, and terminate (admin) with its reason."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tempano.api.service import Tempano, TemporalUnavailable
from tempano.api.worker import build_worker
from tempano.workflows.engine import deployment_workflow_id
from tests.api.conftest import Api

pytestmark = pytest.mark.asyncio(loop_scope="session")

SLOW = """\
tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    slow:
      type: tempano.nodes.Logger
      interfaces:
        Standard:
          configure:
            implementation: builtin.sleep
            inputs: {seconds: 600}
"""
YAML = {"Content-Type": "application/yaml"}


async def wait_for(api: Api, execution_id: str, check: Any, timeout: float = 90) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body: dict[str, Any] = (await api.viewer.get(f"/api/v1/executions/{execution_id}/progress")).json()
        if check(body):
            return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.3)


async def test_progress_then_terminate_with_a_reason(api: Api) -> None:
    assert (await api.admin.put("/api/v1/blueprints/slow", content=SLOW, headers=YAML)).status_code == 201
    assert (await api.operator.put("/api/v1/deployments/slow1", json={"blueprint_id": "slow"})).status_code == 201
    ref = (await api.operator.post("/api/v1/executions", json={"deployment_id": "slow1", "workflow": "install"})).json()
    execution_id = ref["execution_id"]

    configure = "slow_1 Standard.configure (builtin.sleep)"
    running = await wait_for(api, execution_id, lambda b: configure in b.get("waiting_on", []))
    assert running["waiting_on"] == [configure]
    assert f"waiting on {configure}" in running["details"]
    pending = await wait_for(api, execution_id, lambda b: b["pending"])
    # slow_1's create, configure and start run in one activity; the operation it runs now is named
    assert pending["pending"][0]["activity_id"] == "slow_1:Standard.create..Standard.start"
    assert pending["pending"][0]["operation"] == "Standard.configure"
    assert pending["pending"][0]["attempt"] == 1

    refused = await api.operator.post(f"/api/v1/executions/{execution_id}/terminate", params={"reason": "x"})
    assert refused.status_code == 403
    r = await api.admin.post(f"/api/v1/executions/{execution_id}/terminate", params={"reason": "stuck VIM"})
    assert r.status_code == 202, r.text
    ended = await wait_for(api, execution_id, lambda b: b["status"] == "terminated")
    assert "terminated by an operator (stuck VIM)" in ended["error"]
    again = await api.admin.post(f"/api/v1/executions/{execution_id}/terminate")
    assert again.status_code == 409
    node = (await api.viewer.get("/api/v1/deployments/slow1/node-instances/slow_1")).json()
    assert node["state"] in {"error", "created"}


async def test_a_queued_execution_is_found_before_it_starts_and_can_be_taken_off_the_queue(api: Api) -> None:
    assert (await api.admin.put("/api/v1/blueprints/slowq", content=SLOW, headers=YAML)).status_code == 201
    assert (await api.operator.put("/api/v1/deployments/queue1", json={"blueprint_id": "slowq"})).status_code == 201
    start = {"deployment_id": "queue1", "workflow": "install"}
    first = (await api.operator.post("/api/v1/executions", json=start)).json()["execution_id"]
    await wait_for(api, first, lambda b: b.get("waiting_on"))
    uninstall = {**start, "workflow": "uninstall", "parameters": {"ignore_failure": True}}
    ref = (await api.operator.post("/api/v1/executions", json=uninstall)).json()
    assert ref["queued"] is True

    # The deployment's workflow records it only when it starts it: until then the API asks that workflow.
    r = await api.viewer.get(f"/api/v1/executions/{ref['execution_id']}")
    assert r.status_code == 200, r.text
    queued = r.json()
    assert queued == {
        "id": ref["execution_id"],
        "deployment_id": "queue1",
        "seq": ref["seq"],
        "workflow": "uninstall",
        "parameters": None,
        "status": "queued",
        "workflow_id": ref["workflow_id"],
        "error": None,
        "created_at": None,
        "ended_at": None,
        "ui": ref["ui"],
    }
    assert (await api.viewer.get(f"/api/v1/executions/{first}")).json()["status"] == "running"
    unknown = await api.viewer.get(f"/api/v1/executions/queue1:{ref['seq'] + 1}")
    assert unknown.status_code == 404, unknown.text

    r = await api.operator.post(f"/api/v1/executions/{ref['execution_id']}/cancel")
    assert r.status_code == 202, r.text
    assert r.json() == {"result": "removed from the queue"}
    cancelled = (await api.viewer.get(f"/api/v1/executions/{ref['execution_id']}")).json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"] == "cancelled while queued, before it started: nothing ran"
    # Recorded in the store, not only held by the deployment's workflow (which keeps its 10 latest in view): it
    # stays found, and waiting on it answers at once.
    record = api.tempano.store.get_execution(ref["execution_id"])
    assert (record.status, record.workflow, record.workflow_id) == ("cancelled", "uninstall", ref["workflow_id"])
    assert record.parameters == {"ignore_failure": True}  # what it would have run with (a resume runs the same)
    assert record.ended_at is not None
    waited = await asyncio.wait_for(api.tempano.wait_execution(ref["execution_id"], timeout=60), 5)
    assert waited.status == "cancelled"
    events = [e async for e in api.tempano.follow_events(ref["execution_id"], timeout=5)]
    assert events == []
    again = await api.operator.post(f"/api/v1/executions/{ref['execution_id']}/cancel")
    assert again.status_code == 409, again.text

    assert (await api.admin.post(f"/api/v1/executions/{first}/terminate")).status_code == 202
    await wait_for(api, first, lambda b: b["status"] == "terminated")


async def test_progress_without_a_worker_answers_in_seconds_with_what_the_store_knows(api: Api) -> None:
    # A deployment on a task queue of its own, whose worker stops once the execution runs.
    settings = api.tempano.settings.model_copy(update={"task_queue": f"tq-{uuid.uuid4().hex[:12]}"})
    own = Tempano(settings, api.tempano.client, api.tempano.store)
    assert (await api.admin.put("/api/v1/blueprints/slown", content=SLOW, headers=YAML)).status_code == 201
    worker, pool = build_worker(own.client, own.store, task_queue=settings.task_queue, threads=4)
    async with worker:
        await own.create_deployment("noworker1", "slown")
        execution_id = (await own.start_execution("noworker1", "install")).execution_id
        await wait_for(api, execution_id, lambda b: b.get("waiting_on"))
    pool.shutdown(wait=False, cancel_futures=True)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        r = await api.viewer.get(f"/api/v1/executions/{execution_id}/progress")
        took = loop.time() - started
        assert r.status_code == 200, r.text
        body = r.json()
        assert took < 30, f"the progress call took {took:.1f} s"
        assert body["status"] == "running"
        assert body["details"] == (
            f"no worker answered execution {execution_id}'s progress query within 5 s "
            f"(task queue {settings.task_queue!r}): is `tempano worker` (or `tempano up`) running?"
        )
        # The stopping worker cancelled the operation (its end is in the store); Temporal still holds the activity.
        assert "waiting_on" not in body
        assert [p["activity_id"] for p in body["pending"]] == ["slow_1:Standard.create..Standard.start"], body

        # A cancel nobody takes is refused after the update timeout, with a sentence (not a hung request).
        own.settings = settings.model_copy(update={"update_timeout": 2.0})
        with pytest.raises(TemporalUnavailable, match=f"no worker took the cancel of {execution_id} within 2s"):
            await asyncio.wait_for(own.cancel_execution(execution_id), 15)
        with pytest.raises(TemporalUnavailable, match="no worker took the request within 2s"):
            await asyncio.wait_for(own.start_execution("noworker1", "uninstall"), 15)
    finally:
        for workflow_id in (
            deployment_workflow_id("noworker1"),
            api.tempano.store.get_execution(execution_id).workflow_id,
        ):
            await api.tempano.client.get_workflow_handle(workflow_id).terminate(reason="test over")
