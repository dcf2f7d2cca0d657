"""The REST API (FastAPI), versioned under /api/v1. Errors are RFC 9457 problem+json."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tempano.api.service import ServiceError, Tempano, connect
from tempano.api.settings import Settings, execution_ui_link
from tempano.store import Conflict, NotFound, StoreError

PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}, status, media_type=PROBLEM
    )


def get_tempano(request: Request) -> Tempano:
    service: Tempano = request.app.state.tempano
    return service


TempanoDep = Annotated[Tempano, Depends(get_tempano)]


class DeploymentCreate(BaseModel):
    blueprint_id: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class ExecutionStart(BaseModel):
    deployment_id: str
    workflow: str = Field(examples=["install"])
    parameters: dict[str, Any] = Field(default_factory=dict)


blueprints = APIRouter(prefix="/api/v1/blueprints", tags=["blueprints"])
deployments = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])
executions = APIRouter(prefix="/api/v1/executions", tags=["executions"])


@blueprints.put("/{blueprint_id}", status_code=201)
async def upload_blueprint(
    blueprint_id: str,
    tempano: TempanoDep,
    request: Request,
    filename: Annotated[str, Query(description="blueprint.yaml, or a .zip/.csar archive")] = "blueprint.yaml",
) -> dict[str, Any]:
    """Uploads a blueprint: a YAML document or a CSAR zip as the request body."""
    content = await request.body()
    record = tempano.upload_blueprint_bytes(blueprint_id, filename, content)
    return {
        "id": record.id,
        "plan_hash": record.plan_hash,
        "description": record.description,
        "nodes": sorted(record.plan["nodes"]),
    }


@blueprints.get("")
async def list_blueprints(tempano: TempanoDep) -> list[dict[str, Any]]:
    return [
        {"id": b.id, "description": b.description, "created_at": b.created_at} for b in tempano.store.list_blueprints()
    ]


@blueprints.get("/{blueprint_id}")
async def get_blueprint(blueprint_id: str, tempano: TempanoDep) -> dict[str, Any]:
    b = tempano.store.get_blueprint(blueprint_id)
    return {
        "id": b.id,
        "description": b.description,
        "plan_hash": b.plan_hash,
        "plan": b.plan,
        "created_at": b.created_at,
    }


@blueprints.delete("/{blueprint_id}", status_code=204)
async def delete_blueprint(blueprint_id: str, tempano: TempanoDep) -> None:
    tempano.store.delete_blueprint(blueprint_id)


@deployments.put("/{deployment_id}", status_code=201)
async def create_deployment(deployment_id: str, body: DeploymentCreate, tempano: TempanoDep) -> dict[str, Any]:
    d = await tempano.create_deployment(deployment_id, body.blueprint_id, body.inputs, labels=body.labels)
    return {"id": d.id, "blueprint_id": d.blueprint_id, "status": d.status}


@deployments.get("")
async def list_deployments(
    tempano: TempanoDep, blueprint_id: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    return [
        {"id": d.id, "blueprint_id": d.blueprint_id, "status": d.status, "labels": d.labels}
        for d in tempano.store.list_deployments(blueprint_id=blueprint_id, status=status)
    ]


@deployments.get("/{deployment_id}")
async def get_deployment(deployment_id: str, tempano: TempanoDep) -> dict[str, Any]:
    d = tempano.store.get_deployment(deployment_id)
    return {
        "id": d.id,
        "blueprint_id": d.blueprint_id,
        "status": d.status,
        "inputs": d.inputs,
        "labels": d.labels,
        "node_instances": [
            {"id": i.id, "node": i.node, "state": i.state, "host_id": i.host_id, "attributes": i.attributes}
            for i in tempano.store.node_instances(deployment_id)
        ],
    }


@deployments.get("/{deployment_id}/outputs")
async def deployment_outputs(deployment_id: str, tempano: TempanoDep) -> dict[str, Any]:
    return tempano.outputs(deployment_id)


@deployments.delete("/{deployment_id}", status_code=204)
async def delete_deployment(deployment_id: str, tempano: TempanoDep, force: bool = False) -> None:
    await tempano.delete_deployment(deployment_id, force=force)


@executions.post("", status_code=202)
async def start_execution(body: Annotated[ExecutionStart, Body()], tempano: TempanoDep) -> dict[str, Any]:
    ref = await tempano.start_execution(body.deployment_id, body.workflow, body.parameters)
    return {**ref.model_dump(), "ui": execution_ui_link(tempano.settings, ref.workflow_id)}


@executions.get("")
async def list_executions(tempano: TempanoDep, deployment_id: str | None = None) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json") for e in tempano.store.list_executions(deployment_id)]


@executions.get("/{execution_id}")
async def get_execution(execution_id: str, tempano: TempanoDep) -> dict[str, Any]:
    e = tempano.store.get_execution(execution_id)
    return {**e.model_dump(mode="json"), "ui": execution_ui_link(tempano.settings, e.workflow_id)}


@executions.post("/{execution_id}/cancel", status_code=202)
async def cancel_execution(execution_id: str, tempano: TempanoDep) -> dict[str, str]:
    return {"result": await tempano.cancel_execution(execution_id)}


@executions.post("/{execution_id}/resume", status_code=202)
async def resume_execution(execution_id: str, tempano: TempanoDep) -> dict[str, Any]:
    e = tempano.store.get_execution(execution_id)
    ref = await tempano.start_execution(e.deployment_id, e.workflow, resume_of=execution_id)
    return ref.model_dump()


@executions.post("/{execution_id}/rollback", status_code=202)
async def rollback_execution(execution_id: str, tempano: TempanoDep) -> dict[str, Any]:
    e = tempano.store.get_execution(execution_id)
    ref = await tempano.start_execution(e.deployment_id, "rollback", rollback_of=execution_id)
    return ref.model_dump()


@executions.get("/{execution_id}/events")
async def execution_events(
    execution_id: str, tempano: TempanoDep, after: int = 0, limit: Annotated[int, Query(ge=1, le=10000)] = 1000
) -> list[dict[str, Any]]:
    tempano.store.get_execution(execution_id)
    return [
        e.model_dump(mode="json") for e in tempano.store.events(execution_id=execution_id, after_id=after, limit=limit)
    ]


def create_app(settings: Settings | None = None, service: Tempano | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.tempano = service or Tempano(settings, await connect(settings))
        yield

    app = FastAPI(
        title="tempano", version="0.1.0", lifespan=lifespan, description="Durable NFV orchestration on Temporal"
    )
    for router in (blueprints, deployments, executions):
        app.include_router(router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(tempano: TempanoDep) -> JSONResponse:
        try:
            await tempano.client.service_client.check_health()
            tempano.store.list_blueprints()
        except Exception as e:
            return problem(503, "Not ready", f"tempano is not ready: {e}")
        return JSONResponse({"status": "ready"})

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, e: ServiceError) -> JSONResponse:
        return problem(e.status, "Request refused", e.message)

    @app.exception_handler(NotFound)
    async def not_found(_: Request, e: NotFound) -> JSONResponse:
        return problem(404, "Not found", str(e))

    @app.exception_handler(Conflict)
    async def conflict(_: Request, e: Conflict) -> JSONResponse:
        return problem(409, "Conflict", str(e))

    @app.exception_handler(StoreError)
    async def store_error(_: Request, e: StoreError) -> JSONResponse:
        return problem(400, "Refused", str(e))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        return problem(
            422, "Invalid request", "the request does not match the schema", errors=_jsonable_errors(e.errors())
        )

    try:
        from tempano.blueprints import BlueprintError

        @app.exception_handler(BlueprintError)
        async def bad_blueprint(_: Request, e: Any) -> JSONResponse:
            errors = [
                {"message": d.message, "file": d.file, "line": d.line, "column": d.column, "entity": d.entity}
                for d in getattr(e, "errors", [])
            ]
            return problem(422, "Invalid blueprint", str(e), errors=errors)
    except ImportError:  # pragma: no cover - the compiler always exports it
        pass

    return app


def _jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    return [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
        for err in errors
    ]
