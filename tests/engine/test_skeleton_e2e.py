"""The walking skeleton end to end: blueprint -> plan -> deployment -> install on the real Temporal server."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client

from tempano.api.service import Tempano

HELLO = Path(__file__).resolve().parents[2] / "blueprints" / "examples" / "hello" / "hello.yaml"

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_hello_install_completes_with_attributes_and_outputs(tempano: Tempano, client: Client) -> None:
    tempano.upload_blueprint("hello", HELLO)
    await tempano.create_deployment("skeleton-1", "hello", {"greeting": "bonjour"})
    execution = await tempano.run("skeleton-1", "install", timeout=120)

    assert execution.status == "succeeded", execution.error
    instances = {i.node: i for i in tempano.store.node_instances("skeleton-1")}
    assert {n: i.state for n, i in instances.items()} == {
        "database": "started",
        "backend": "started",
        "frontend": "started",
    }
    assert instances["database"].attributes == {"message": "bonjour from database", "port": 5432}
    assert instances["backend"].attributes["message"] == "backend uses db on port 5432"
    assert instances["frontend"].attributes["message"] == "frontend in front of: backend uses db on port 5432"
    assert tempano.outputs("skeleton-1") == {
        "database_message": "bonjour from database",
        "frontend_message": "frontend in front of: backend uses db on port 5432",
    }

    # Install order follows the dependencies: each configure starts after the previous node's start.
    events = tempano.store.events("skeleton-1", execution_id=execution.id)
    started = [
        e.node_instance_id for e in events if e.type == "operation_started" and e.operation == "Standard.configure"
    ]
    assert started == ["database_1", "backend_1", "frontend_1"]

    # The execution is a real Temporal workflow with a meaningful id, findable by search attribute.
    handle = client.get_workflow_handle(execution.workflow_id)
    assert execution.workflow_id == "dep:skeleton-1:exec:1:install"
    await handle.result()  # the store records success just before the workflow itself completes
    desc = await handle.describe()
    assert desc.status is not None and desc.status.name == "COMPLETED"
    found = [
        w.id async for w in client.list_workflows("TempanoDeployment = 'skeleton-1' AND TempanoWorkflow = 'install'")
    ]
    assert found == ["dep:skeleton-1:exec:1:install"]
    history = await handle.fetch_history()
    scheduled = [e for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
    # each instance's create, configure and start run in one activity, named after the instance and operations
    chains = {
        e.activity_task_scheduled_event_attributes.activity_id
        for e in scheduled
        if e.activity_task_scheduled_event_attributes.activity_type.name == "run_operations"
    }
    assert chains == {f"{n}_1:Standard.create..Standard.start" for n in ("database", "backend", "frontend")}


async def test_uninstall_reverses_and_deletes(tempano: Tempano) -> None:
    tempano.upload_blueprint("hello", HELLO)
    await tempano.create_deployment("skeleton-2", "hello")
    assert (await tempano.run("skeleton-2", "install", timeout=120)).status == "succeeded"
    execution = await tempano.run("skeleton-2", "uninstall", timeout=120)
    assert execution.status == "succeeded", execution.error
    events = tempano.store.events("skeleton-2", execution_id=execution.id)
    stopped = [e.node_instance_id for e in events if e.type == "operation_started" and e.operation == "Standard.stop"]
    assert stopped == ["frontend_1", "backend_1", "database_1"]
    assert {i.state for i in tempano.store.node_instances("skeleton-2")} == {"deleted"}
    assert tempano.store.get_deployment("skeleton-2").status == "uninstalled"
