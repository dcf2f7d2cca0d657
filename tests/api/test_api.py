"""The REST API against the real stack (Temporal dev server, worker, store): blueprints, deployments, executions,
events, node instances, problem+json errors."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.asyncio(loop_scope="session")

HELLO = Path(__file__).resolve().parents[2] / "blueprints" / "examples" / "hello" / "hello.yaml"
TYPED = """\
tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  inputs:
    count: {type: integer}
    name: {type: string}
  node_templates:
    app:
      type: tempano.nodes.Logger
      properties:
        greeting: {get_input: name}
"""
FAILING = """\
tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    ok:
      type: tempano.nodes.Logger
    broken:
      type: tempano.nodes.Logger
      requirements:
        - dependency: ok
      interfaces:
        Standard:
          configure:
            implementation: builtin.fail
            inputs: {message: "configure failed on purpose"}
"""
YAML = {"Content-Type": "application/yaml"}


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    for fragment in fragments:
        assert fragment in body["detail"], body
    return body


async def wait_status(api: Api, execution_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await api.viewer.get(f"/api/v1/executions/{execution_id}")
        if r.status_code == 200 and r.json()["status"] in {"succeeded", "failed", "cancelled", "terminated"}:
            body: dict[str, Any] = r.json()
            return body
        assert asyncio.get_running_loop().time() < deadline, f"{execution_id} did not end: {r.text}"
        await asyncio.sleep(0.3)


async def test_blueprints_upload_three_ways_validate_list_get_delete(api: Api) -> None:
    text = HELLO.read_text()
    r = await api.admin.put("/api/v1/blueprints/hello-yaml", content=text, headers=YAML)
    assert r.status_code == 201, r.text
    summary = r.json()["plan_summary"]
    assert {n["name"] for n in summary["nodes"]} == {"database", "backend", "frontend"}
    assert summary["inputs"]["greeting"]["default"] == "hello"
    assert summary["outputs"] == ["database_message", "frontend_message"]

    r = await api.admin.put("/api/v1/blueprints/hello-form", files={"file": ("hello.yaml", text.encode())})
    assert r.status_code == 201, r.text

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("main.yaml", text)
        z.writestr(
            "TOSCA-Metadata/TOSCA.meta",
            "TOSCA-Meta-File-Version: 1.0\nCSAR-Version: 1.1\nCreated-By: test\nEntry-Definitions: main.yaml\n",
        )
    r = await api.admin.put(
        "/api/v1/blueprints/hello-csar", content=archive.getvalue(), headers={"Content-Type": "application/zip"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["plan_hash"] == (await api.viewer.get("/api/v1/blueprints/hello-yaml")).json()["plan_hash"]

    assert_problem(
        await api.admin.put("/api/v1/blueprints/hello-yaml", content=text, headers=YAML), 409, "exists already"
    )
    page = (await api.viewer.get("/api/v1/blueprints", params={"limit": 2})).json()
    assert page["total"] == 3 and [b["id"] for b in page["items"]] == ["hello-csar", "hello-form"]
    full = (await api.viewer.get("/api/v1/blueprints/hello-form", params={"plan": "true"})).json()
    assert set(full["plan"]["nodes"]) == {"database", "backend", "frontend"}

    # Validation stores nothing; a broken blueprint answers 422 with each error's file, line and entity.
    r = await api.operator.post("/api/v1/blueprints/validate", content=text, headers=YAML)
    assert r.status_code == 200 and r.json()["valid"] is True
    broken = text.replace("tempano.nodes.Logger", "tempano.nodes.Nope", 1).replace(
        "dependency: backend", "dependency: nowhere"
    )
    body = assert_problem(await api.operator.post("/api/v1/blueprints/validate", content=broken, headers=YAML), 422)
    assert len(body["errors"]) >= 2
    assert all(e["file"] and e["line"] > 0 for e in body["errors"]), body["errors"]
    assert {"database", "frontend"} <= {e["entity"].split(".")[0] for e in body["errors"]}, body["errors"]
    assert (await api.viewer.get("/api/v1/blueprints")).json()["total"] == 3

    assert_problem(await api.admin.put("/api/v1/blueprints/junk", content=b"\x00\xff: [", headers=YAML), 422)
    assert_problem(await api.admin.put("/api/v1/blueprints/junk", content=b"PK\x03\x04garbage", headers=YAML), 422)
    assert_problem(
        await api.admin.put("/api/v1/blueprints/big", content=b"#" * (300 * 1024), headers=YAML), 413, "limit"
    )
    assert_problem(await api.admin.put("/api/v1/blueprints/big", files={"file": ("b.yaml", b"#" * (300 * 1024))}), 413)
    assert_problem(await api.admin.put("/api/v1/blueprints/bad id!", content=text, headers=YAML), 422, "not valid")
    assert_problem(await api.viewer.get("/api/v1/blueprints/nope"), 404, "nope")

    r = await api.admin.delete("/api/v1/blueprints/hello-csar")
    assert r.status_code == 204
    assert_problem(await api.admin.delete("/api/v1/blueprints/hello-csar"), 404)


async def test_deployment_lifecycle_through_the_api(api: Api) -> None:
    assert (await api.admin.put("/api/v1/blueprints/hello", content=HELLO.read_text(), headers=YAML)).status_code == 201
    assert (await api.admin.put("/api/v1/blueprints/typed", content=TYPED, headers=YAML)).status_code == 201

    # Every input error at once.
    body = assert_problem(
        await api.operator.put(
            "/api/v1/deployments/t1", json={"blueprint_id": "typed", "inputs": {"count": "many", "bogus": 1}}
        ),
        422,
    )
    assert {e["entity"] for e in body["errors"]} == {"count", "name", "bogus"}, body["errors"]
    assert_problem(await api.operator.put("/api/v1/deployments/t1", json={"blueprint_id": "nope"}), 404, "nope")
    assert_problem(await api.operator.put("/api/v1/deployments/t1", json={"blueprint_id": "hello", "x": 1}), 422)

    r = await api.operator.put(
        "/api/v1/deployments/d1",
        json={"blueprint_id": "hello", "inputs": {"greeting": "bonjour"}, "labels": {"site": "paris"}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "created"
    assert_problem(await api.operator.put("/api/v1/deployments/d1", json={"blueprint_id": "hello"}), 409, "exists")
    r = await api.operator.put("/api/v1/deployments/d2", json={"blueprint_id": "hello", "labels": {"site": "lyon"}})
    assert r.status_code == 201
    assert_problem(await api.admin.delete("/api/v1/blueprints/hello"), 409, "d1, d2")

    listing = (await api.viewer.get("/api/v1/deployments", params={"label": "site=paris"})).json()
    assert [d["id"] for d in listing["items"]] == ["d1"] and listing["total"] == 1
    listing = (
        await api.viewer.get("/api/v1/deployments", params={"blueprint_id": "hello", "status": "created"})
    ).json()
    assert [d["id"] for d in listing["items"]] == ["d1", "d2"]
    assert_problem(await api.viewer.get("/api/v1/deployments", params={"label": "oops"}), 422, "KEY=VALUE")

    r = await api.operator.post("/api/v1/executions", json={"deployment_id": "d1", "workflow": "install"})
    assert r.status_code == 202, r.text
    ref = r.json()
    assert ref["workflow_id"] == "dep:d1:exec:1:install" and "/workflows/" in ref["ui"]
    assert_problem(
        await api.operator.post("/api/v1/executions", json={"deployment_id": "d1", "workflow": "no-such"}),
        422,
        "no-such",
    )
    assert_problem(
        await api.operator.post("/api/v1/executions", json={"deployment_id": "nope", "workflow": "install"}), 404
    )

    # Live events over server-sent events, from the start to the `end` event.
    seen: list[str] = []
    async with api.viewer.stream("GET", f"/api/v1/executions/{ref['execution_id']}/events/stream") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
                seen.append(event)
            if event == "end" and line.startswith("data: "):
                assert json.loads(line[6:])["status"] == "succeeded"
                break
    assert seen.count("operation_succeeded") >= 3 and seen[-1] == "end"

    execution = await wait_status(api, ref["execution_id"])
    assert execution["status"] == "succeeded", execution

    d = (await api.viewer.get("/api/v1/deployments/d1")).json()
    assert d["status"] == "installed" and d["current_execution"] is None
    assert {i["id"]: i["state"] for i in d["node_instances"]} == {
        "backend_1": "started",
        "database_1": "started",
        "frontend_1": "started",
    }
    assert d["outputs"]["database_message"] == "bonjour from database"
    assert "TempanoDeployment" in d["ui"]

    # Events page by page.
    first = (await api.viewer.get(f"/api/v1/executions/{ref['execution_id']}/events", params={"limit": 3})).json()
    assert len(first["items"]) == 3
    rest = (
        await api.viewer.get(f"/api/v1/executions/{ref['execution_id']}/events", params={"after": first["next_after"]})
    ).json()
    ids = [e["id"] for e in first["items"] + rest["items"]]
    assert ids == sorted(set(ids)) and len(rest["items"]) > 0
    dep_events = (await api.viewer.get("/api/v1/deployments/d1/events")).json()
    assert len(dep_events["items"]) >= len(ids)

    # Node instances, with attributes and the ledger.
    api.tempano.store.record_resource(
        "d1", "database_1", plugin="test", kind="volume", resource_id="vol-1", idempotency_key="d1.database_1.create"
    )
    instances = (await api.viewer.get("/api/v1/deployments/d1/node-instances", params={"node": "database"})).json()
    assert [i["id"] for i in instances] == ["database_1"]
    inst = (await api.viewer.get("/api/v1/deployments/d1/node-instances/database_1")).json()
    assert inst["attributes"]["port"] == 5432
    assert [(r["kind"], r["resource_id"]) for r in inst["resources"]] == [("volume", "vol-1")]
    assert "Standard.configure" in inst["operation_outputs"]
    assert_problem(await api.viewer.get("/api/v1/deployments/d1/node-instances/nope_1"), 404)

    executions = (await api.viewer.get("/api/v1/executions", params={"deployment_id": "d1"})).json()
    assert [e["workflow"] for e in executions["items"]] == ["install"]
    assert_problem(await api.operator.post(f"/api/v1/executions/{ref['execution_id']}/cancel"), 409, "succeeded")
    assert_problem(await api.operator.post(f"/api/v1/executions/{ref['execution_id']}/resume"), 409)
    assert_problem(await api.viewer.get("/api/v1/executions/d1:99"), 404)
    assert_problem(await api.viewer.get("/api/v1/executions/not-an-id"), 404)

    # Installed: deletion refused, unless forced; after uninstall it goes.
    assert_problem(await api.operator.delete("/api/v1/deployments/d1"), 409, "uninstall it first")
    r = await api.operator.post("/api/v1/executions", json={"deployment_id": "d1", "workflow": "uninstall"})
    assert (await wait_status(api, r.json()["execution_id"]))["status"] == "succeeded"
    assert (await api.operator.delete("/api/v1/deployments/d1")).status_code == 204
    assert_problem(await api.viewer.get("/api/v1/deployments/d1"), 404)
    assert (await api.operator.delete("/api/v1/deployments/d2", params={"force": "true"})).status_code == 204
    assert (await api.admin.delete("/api/v1/blueprints/hello")).status_code == 204


async def test_resume_and_rollback_of_a_failed_install(api: Api) -> None:
    assert (await api.admin.put("/api/v1/blueprints/failing", content=FAILING, headers=YAML)).status_code == 201
    assert (await api.operator.put("/api/v1/deployments/f1", json={"blueprint_id": "failing"})).status_code == 201
    ref = (await api.operator.post("/api/v1/executions", json={"deployment_id": "f1", "workflow": "install"})).json()
    failed = await wait_status(api, ref["execution_id"])
    assert failed["status"] == "failed" and "on purpose" in failed["error"]
    assert (await api.viewer.get("/api/v1/deployments/f1")).json()["status"] == "failed"

    r = await api.operator.post(f"/api/v1/executions/{ref['execution_id']}/resume")
    assert r.status_code == 202, r.text
    resumed = await wait_status(api, r.json()["execution_id"])
    assert resumed["workflow"] == "install" and resumed["status"] == "failed"
    events = (await api.viewer.get(f"/api/v1/executions/{resumed['id']}/events")).json()["items"]
    # The resumed run skips what succeeded before: the `ok` node is not configured again.
    assert not [e for e in events if e["type"] == "operation_started" and e["node_instance_id"] == "ok_1"]

    r = await api.operator.post(f"/api/v1/executions/{ref['execution_id']}/rollback")
    assert r.status_code == 202, r.text
    rollback = await wait_status(api, r.json()["execution_id"])
    assert rollback["workflow"] == "rollback" and rollback["status"] == "succeeded", rollback
    assert (await api.viewer.get("/api/v1/deployments/f1")).json()["status"] == "created"
    assert (await api.operator.delete("/api/v1/deployments/f1", params={"force": True})).status_code == 204


async def test_health_readiness_workflows_and_unknown_routes(api: Api) -> None:
    assert (await api.anonymous.get("/healthz")).json() == {"status": "ok"}
    assert (await api.anonymous.get("/readyz")).json() == {"status": "ready"}
    workflows = (await api.viewer.get("/api/v1/workflows")).json()
    assert {"install", "uninstall", "heal", "scale", "rollback"} <= set(workflows["builtin"])
    assert_problem(await api.viewer.get("/api/v1/nowhere"), 404)
    assert_problem(await api.viewer.post("/api/v1/deployments"), 405)
    assert_problem(
        await api.operator.put(
            "/api/v1/deployments/x", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        422,
    )
    schema = (await api.anonymous.get("/openapi.json")).json()
    assert "/api/v1/deployments/{deployment_id}/graph" in schema["paths"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
