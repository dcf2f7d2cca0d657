"""The REST API (FastAPI), versioned under /api/v1.

Every error is RFC 9457 problem+json: 401/403 for tokens and roles, 404 for unknown ids, 409 for state conflicts
(with the reason), 413 for oversized uploads, 422 for invalid requests, blueprints and inputs (with every error's
file, line and entity), 503 when Temporal is unreachable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from tempano.api import schemas as m
from tempano.api.auth import Admin, AuthError, Operator, TokenVerifier, Viewer, bootstrap, issue_token
from tempano.api.metrics import Metrics
from tempano.api.service import ID_PATTERN, TERMINAL, ServiceError, Tempano, check_id, connect, deployment_of
from tempano.api.settings import Settings, deployment_ui_link, execution_ui_link
from tempano.api.topology import RenderError, render_svg, topology_dot
from tempano.blueprints import BlueprintError
from tempano.blueprints.plan import Plan
from tempano.store import Conflict, EventRecord, ExecutionRecord, NotFound, StoreError
from tempano.workflows import registry
from tempano.workflows.models import ExecutionRef

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
EXECUTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}:[0-9]{1,9}$")
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
ZIP_TYPES = ("application/zip", "application/octet-stream")


def problem(status: int, title: str, detail: str, request: Request | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if request is not None:
        body["instance"] = request.url.path
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status, media_type=PROBLEM, headers=headers)


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        401: "No bearer token, or an unknown or revoked one",
        403: "The token's role does not allow this",
        404: "Unknown id",
        409: "The object's state forbids this (the detail says why)",
        413: "The upload is larger than the limit",
        422: "Invalid request, blueprint or inputs (errors lists each problem)",
        503: "Temporal is unreachable",
    }
    return {c: {"model": m.Problem, "description": described[c], "content": {PROBLEM: {}}} for c in codes}


READ = _problems(401, 403, 404, 422)
WRITE = _problems(401, 403, 404, 409, 422, 503)


def get_tempano(request: Request) -> Tempano:
    service: Tempano = request.app.state.tempano
    return service


def _known(kind: str, value: str, pattern: re.Pattern[str] = ID_PATTERN) -> str:
    """An id that cannot exist is unknown (404), without asking the store."""
    if not pattern.match(value):
        raise NotFound(f"no {kind} {value!r}")
    return value


Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page")]
BlueprintId = Annotated[str, Path(max_length=100, examples=["hello"])]
DeploymentId = Annotated[str, Path(max_length=100, examples=["hello-1"])]
ExecutionId = Annotated[str, Path(max_length=120, examples=["hello-1:1"])]


# ---------------------------------------------------------------- views


def plan_summary(plan: Plan) -> m.PlanSummary:
    return m.PlanSummary(
        plan_hash=plan.content_hash,
        description=plan.description,
        nodes=[
            m.NodeSummary(
                name=n.name,
                type=n.type,
                host=n.host,
                instances=n.instances.default,
                relationships=[
                    m.RelationshipSummary(name=r.name, type=r.type, target=r.target) for r in n.relationships
                ],
                operations=sorted(n.operations),
            )
            for n in plan.nodes.values()
        ],
        inputs={
            k: m.InputSummary(type=v.type, description=v.description, required=v.required, default=v.default)
            for k, v in plan.inputs.items()
        },
        outputs=sorted(plan.outputs),
        workflows=sorted(plan.imperative_workflows),
    )


def execution_view(tempano: Tempano, e: ExecutionRecord) -> m.ExecutionOut:
    return m.ExecutionOut(**e.model_dump(), ui=execution_ui_link(tempano.settings, e.workflow_id))


def ref_view(tempano: Tempano, ref: ExecutionRef) -> m.ExecutionRefOut:
    return m.ExecutionRefOut(**ref.model_dump(), ui=execution_ui_link(tempano.settings, ref.workflow_id))


def event_page(events: list[EventRecord], after: int) -> m.EventPage:
    """A page of events; ``next_after`` stays at ``after`` when there are none yet."""
    return m.EventPage(
        items=[m.EventOut(**e.model_dump()) for e in events], next_after=events[-1].id if events else after
    )


# ---------------------------------------------------------------- blueprints

blueprints = APIRouter(prefix="/api/v1/blueprints", tags=["blueprints"])

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "A TOSCA YAML document, a CSAR zip (with its playbooks and scripts), or either as the "
        "`file` part of a multipart form.",
        "content": {
            "application/yaml": {
                "schema": {"type": "string"},
                "example": "tosca_definitions_version: tosca_simple_yaml_1_3\nimports: [tempano/core.yaml]\n"
                "topology_template:\n  node_templates:\n    app:\n      type: tempano.nodes.Root\n",
            },
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


async def read_upload(request: Request, limit: int) -> tuple[str, bytes]:
    """The uploaded blueprint's (file name, bytes), refusing more than ``limit`` bytes (413)."""
    too_big = ServiceError(f"the upload is larger than the limit of {limit} bytes", status=413)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_big
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=10, max_part_size=limit)
        except StarletteHTTPException as e:
            raise ServiceError(f"the multipart body is invalid: {e.detail}", status=422) from None
        except (ValueError, KeyError, AssertionError) as e:
            raise ServiceError(f"the multipart body is invalid: {e}", status=422) from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ServiceError("the multipart body has no `file` part holding the blueprint", status=422)
        data = await upload.read(limit + 1)
        await form.close()
        if len(data) > limit:
            raise too_big
        return upload.filename or "blueprint.yaml", data
    if content_type and content_type not in YAML_TYPES + ZIP_TYPES + ("application/vnd.etsi.csar",):
        raise ServiceError(
            f"unsupported media type {content_type!r}: send application/yaml, application/zip or multipart/form-data",
            status=415,
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        raise ServiceError("the request body is empty: send the blueprint", status=422)
    return ("blueprint.zip" if content_type in ZIP_TYPES else "blueprint.yaml"), data


@blueprints.put(
    "/{blueprint_id}",
    status_code=201,
    response_model=m.BlueprintOut,
    openapi_extra=UPLOAD_BODY,
    responses=_problems(401, 403, 409, 413, 422),
    summary="Upload a blueprint",
)
async def upload_blueprint(
    blueprint_id: BlueprintId,
    request: Request,
    _: Admin,
) -> m.BlueprintOut:
    """Compiles and stores a blueprint: YAML body, CSAR zip body, or a multipart `file`. Invalid blueprints get
    422 with every error's file, line and entity."""
    tempano = get_tempano(request)
    check_id("blueprint", blueprint_id)
    filename, content = await read_upload(request, tempano.settings.max_upload_bytes)
    record = await run_in_threadpool(tempano.upload_blueprint_bytes, blueprint_id, filename, content)
    plan = Plan.model_validate(record.plan)
    return m.BlueprintOut(**record.model_dump(exclude={"plan"}), plan_summary=plan_summary(plan))


@blueprints.post(
    "/validate",
    response_model=m.ValidationOut,
    openapi_extra=UPLOAD_BODY,
    responses=_problems(401, 403, 413, 422),
    summary="Validate a blueprint without storing it",
)
async def validate_blueprint(request: Request, _: Operator) -> m.ValidationOut:
    tempano = get_tempano(request)
    filename, content = await read_upload(request, tempano.settings.max_upload_bytes)
    plan = await run_in_threadpool(tempano.validate_blueprint_bytes, filename, content)
    return m.ValidationOut(plan_summary=plan_summary(plan))


@blueprints.get("", response_model=m.Page[m.BlueprintListItem], responses=READ, summary="List blueprints")
def list_blueprints(request: Request, _: Viewer, offset: Offset = 0, limit: Limit = 100) -> m.Page[m.BlueprintListItem]:
    rows, total = get_tempano(request).store.blueprint_page(offset=offset, limit=limit)
    return m.Page(items=[m.BlueprintListItem(**b.model_dump()) for b in rows], total=total, offset=offset, limit=limit)


@blueprints.get("/{blueprint_id}", response_model=m.BlueprintOut, responses=READ, summary="Get a blueprint")
def get_blueprint(
    blueprint_id: BlueprintId,
    request: Request,
    _: Viewer,
    plan: Annotated[bool, Query(description="Include the full plan")] = False,
) -> m.BlueprintOut:
    b = get_tempano(request).store.get_blueprint(_known("blueprint", blueprint_id))
    compiled = Plan.model_validate(b.plan)
    return m.BlueprintOut(
        **b.model_dump(exclude={"plan"}), plan_summary=plan_summary(compiled), plan=b.plan if plan else None
    )


@blueprints.delete(
    "/{blueprint_id}", status_code=204, responses=_problems(401, 403, 404, 409), summary="Delete a blueprint"
)
def delete_blueprint(blueprint_id: BlueprintId, request: Request, _: Admin) -> Response:
    """Refused (409) while deployments use the blueprint."""
    get_tempano(request).delete_blueprint(_known("blueprint", blueprint_id))
    return Response(status_code=204)


# ---------------------------------------------------------------- deployments

deployments = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])


@deployments.put(
    "/{deployment_id}", status_code=201, response_model=m.DeploymentListItem, responses=WRITE, summary="Create"
)
async def create_deployment(
    deployment_id: DeploymentId, body: m.DeploymentCreate, request: Request, _: Operator
) -> m.DeploymentListItem:
    """Creates a deployment of a blueprint: inputs are checked against the plan (422 lists every error), node
    instances are expanded, and the deployment's workflow starts."""
    d = await get_tempano(request).create_deployment(deployment_id, body.blueprint_id, body.inputs, labels=body.labels)
    return m.DeploymentListItem(**d.model_dump())


@deployments.get("", response_model=m.Page[m.DeploymentListItem], responses=READ, summary="List deployments")
def list_deployments(
    request: Request,
    _: Viewer,
    blueprint_id: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[str | None, Query(max_length=40, examples=["installed"])] = None,
    label: Annotated[list[str], Query(description="KEY=VALUE, repeatable (all must match)", max_length=20)] = [],  # noqa: B006
    offset: Offset = 0,
    limit: Limit = 100,
) -> m.Page[m.DeploymentListItem]:
    labels: dict[str, str] = {}
    for item in label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ServiceError(f"label filter {item!r}: write KEY=VALUE", status=422)
        labels[key] = value
    rows, total = get_tempano(request).store.deployment_page(
        blueprint_id=blueprint_id, status=status, labels=labels, offset=offset, limit=limit
    )
    return m.Page(items=[m.DeploymentListItem(**r.model_dump()) for r in rows], total=total, offset=offset, limit=limit)


@deployments.get("/{deployment_id}", response_model=m.DeploymentOut, responses=READ, summary="Get a deployment")
def get_deployment(deployment_id: DeploymentId, request: Request, _: Viewer) -> m.DeploymentOut:
    """The deployment with its node instances (states and attributes), outputs and current execution."""
    tempano = get_tempano(request)
    store = tempano.store
    d = store.get_deployment(_known("deployment", deployment_id))
    current = store.current_execution(deployment_id)
    instances = store.node_instances(deployment_id)
    return m.DeploymentOut(
        **d.model_dump(exclude={"plan"}),
        node_instances=[m.NodeInstanceOut(**i.model_dump()) for i in instances],
        outputs=tempano.outputs(deployment_id, deployment=d, instances=instances),
        current_execution=execution_view(tempano, current) if current else None,
        ui=deployment_ui_link(tempano.settings, deployment_id),
    )


@deployments.get("/{deployment_id}/outputs", responses=READ, summary="A deployment's outputs")
def deployment_outputs(deployment_id: DeploymentId, request: Request, _: Viewer) -> dict[str, Any]:
    """Outputs as they stand now; an output that cannot be evaluated yet is null, with the reason under _errors."""
    return get_tempano(request).outputs(_known("deployment", deployment_id))


@deployments.delete(
    "/{deployment_id}", status_code=204, responses=_problems(401, 403, 404, 409, 422), summary="Delete a deployment"
)
async def delete_deployment(
    deployment_id: DeploymentId,
    request: Request,
    _: Operator,
    force: Annotated[bool, Query(description="Delete even if installed or running (forgets its resources)")] = False,
) -> Response:
    """Refused (409) unless the deployment is uninstalled (or was never installed) and idle, unless forced."""
    await get_tempano(request).delete_deployment(_known("deployment", deployment_id), force=force)
    return Response(status_code=204)


@deployments.get(
    "/{deployment_id}/node-instances",
    response_model=list[m.NodeInstanceOut],
    responses=READ,
    summary="List node instances",
    tags=["node instances"],
)
def list_node_instances(
    deployment_id: DeploymentId,
    request: Request,
    _: Viewer,
    node: Annotated[str | None, Query(max_length=200)] = None,
) -> list[m.NodeInstanceOut]:
    store = get_tempano(request).store
    store.get_deployment(_known("deployment", deployment_id))
    return [m.NodeInstanceOut(**i.model_dump()) for i in store.node_instances(deployment_id, node=node)]


@deployments.get(
    "/{deployment_id}/node-instances/{instance_id}",
    response_model=m.NodeInstanceDetail,
    responses=READ,
    summary="Get a node instance",
    tags=["node instances"],
)
def get_node_instance(
    deployment_id: DeploymentId,
    instance_id: Annotated[str, Path(max_length=200, examples=["backend_1"])],
    request: Request,
    _: Viewer,
) -> m.NodeInstanceDetail:
    """A node instance with its attributes, operation outputs and the resources it created (its ledger)."""
    store = get_tempano(request).store
    inst = store.node_instance(_known("deployment", deployment_id), _known("node instance", instance_id))
    resources = store.resources(deployment_id, instance_id)
    return m.NodeInstanceDetail(
        **inst.model_dump(exclude={"outputs"}),
        operation_outputs=inst.outputs,
        resources=[m.ResourceOut(**r.model_dump()) for r in resources],
    )


@deployments.get("/{deployment_id}/events", response_model=m.EventPage, responses=READ, summary="A deployment's events")
def deployment_events(
    deployment_id: DeploymentId,
    request: Request,
    _: Viewer,
    after: Annotated[int, Query(ge=0, le=2**62, description="Only events after this id")] = 0,
    limit: Limit = 1000,
) -> m.EventPage:
    store = get_tempano(request).store
    store.get_deployment(_known("deployment", deployment_id))
    return event_page(store.events(deployment_id, after_id=after, limit=limit), after)


@deployments.get(
    "/{deployment_id}/graph",
    responses={
        **READ,
        200: {"content": {"image/svg+xml": {}, "text/vnd.graphviz": {}}, "description": "The topology picture"},
        503: {"model": m.Problem, "description": "Graphviz is missing", "content": {PROBLEM: {}}},
    },
    response_class=Response,
    summary="The deployment's topology as SVG",
)
async def deployment_graph(
    deployment_id: DeploymentId,
    request: Request,
    _: Viewer,
    format: Annotated[str, Query(pattern="^(svg|dot)$")] = "svg",
) -> Response:
    """Node instances colored by state, containment (dashed) and relationships; each recent execution links to its
    page in the Temporal web UI."""
    tempano = get_tempano(request)
    store = tempano.store
    d = await run_in_threadpool(store.get_deployment, _known("deployment", deployment_id))
    instances = await run_in_threadpool(store.node_instances, deployment_id)
    executions = await run_in_threadpool(store.recent_executions, deployment_id, 10)
    dot = topology_dot(
        deployment_id,
        Plan.model_validate(d.plan),
        instances,
        executions,
        execution_link={e.id: execution_ui_link(tempano.settings, e.workflow_id) for e in executions},
        deployment_link=deployment_ui_link(tempano.settings, deployment_id),
    )
    if format == "dot":
        return Response(dot, media_type="text/vnd.graphviz")
    return Response(await render_svg(dot), media_type="image/svg+xml")


# ---------------------------------------------------------------- executions

executions = APIRouter(prefix="/api/v1/executions", tags=["executions"])


@executions.post("", status_code=202, response_model=m.ExecutionRefOut, responses=WRITE, summary="Start")
async def start_execution(body: m.ExecutionStart, request: Request, _: Operator) -> m.ExecutionRefOut:
    """Starts a workflow (install, uninstall, heal, scale, a custom one or one the blueprint declares) on a
    deployment; it runs now, or after the deployment's current execution (queued)."""
    tempano = get_tempano(request)
    ref = await tempano.start_execution(body.deployment_id, body.workflow, body.parameters)
    return ref_view(tempano, ref)


@executions.get("", response_model=m.Page[m.ExecutionOut], responses=READ, summary="List executions")
def list_executions(
    request: Request,
    _: Viewer,
    deployment_id: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[str | None, Query(max_length=40)] = None,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> m.Page[m.ExecutionOut]:
    tempano = get_tempano(request)
    rows, total = tempano.store.execution_page(
        deployment_id=deployment_id, status=status, workflow=workflow, offset=offset, limit=limit
    )
    return m.Page(items=[execution_view(tempano, e) for e in rows], total=total, offset=offset, limit=limit)


async def find_execution(tempano: Tempano, execution_id: str) -> m.ExecutionOut:
    """The execution as recorded or, until its deployment's workflow records it (as it starts it), as that workflow
    holds it: ``queued`` behind another execution (or ``pending``), without parameters or times."""
    store = tempano.store
    _known("execution", execution_id, EXECUTION_RE)
    # NotFound at once when the deployment does not exist: an unknown id costs this one read
    recorded = await run_in_threadpool(store.recorded_execution, execution_id, deployment_of(execution_id))
    if recorded is not None:
        return execution_view(tempano, recorded)
    held = await tempano.unrecorded_execution(execution_id)
    if held is None or held.status in TERMINAL:
        # Recorded while the workflow was asked (or it ended), unless it was cancelled while queued.
        try:
            return execution_view(tempano, await run_in_threadpool(store.get_execution, execution_id))
        except NotFound:
            if held is None:
                raise
    return m.ExecutionOut(
        id=held.execution_id,
        deployment_id=deployment_of(execution_id),
        seq=held.seq,
        workflow=held.workflow,
        parameters=None,
        status=held.status,
        workflow_id=held.workflow_id,
        error=held.error,
        created_at=None,
        ended_at=None,
        ui=execution_ui_link(tempano.settings, held.workflow_id),
    )


@executions.get("/{execution_id}", response_model=m.ExecutionOut, responses=READ, summary="Get an execution")
async def get_execution(execution_id: ExecutionId, request: Request, _: Viewer) -> m.ExecutionOut:
    """An execution; one that waits behind another execution of its deployment is `queued`."""
    return await find_execution(get_tempano(request), execution_id)


async def _ended(tempano: Tempano, execution_id: str, action: str, allowed: set[str]) -> m.ExecutionOut:
    e = await find_execution(tempano, execution_id)
    if e.status not in allowed:
        raise ServiceError(
            f"execution {execution_id} is {e.status}: only {', '.join(sorted(allowed))} executions can be {action}",
            status=409,
        )
    return e


@executions.post("/{execution_id}/cancel", status_code=202, response_model=m.ActionOut, responses=WRITE)
async def cancel_execution(execution_id: ExecutionId, request: Request, _: Operator) -> m.ActionOut:
    """Cancels a running execution gracefully, or takes a queued one off the queue (409 if it has ended)."""
    tempano = get_tempano(request)
    await _ended(tempano, execution_id, "cancelled", {"queued", "pending", "running"})
    return m.ActionOut(result=await tempano.cancel_execution(execution_id))


@executions.post("/{execution_id}/resume", status_code=202, response_model=m.ExecutionRefOut, responses=WRITE)
async def resume_execution(execution_id: ExecutionId, request: Request, _: Operator) -> m.ExecutionRefOut:
    """Runs a failed or cancelled execution again as a new execution: only its failed and not-yet-run steps."""
    tempano = get_tempano(request)
    e = await _ended(tempano, execution_id, "resumed", {"failed", "cancelled", "terminated"})
    ref = await tempano.start_execution(e.deployment_id, e.workflow, resume_of=execution_id)
    return ref_view(tempano, ref)


@executions.post("/{execution_id}/rollback", status_code=202, response_model=m.ExecutionRefOut, responses=WRITE)
async def rollback_execution(execution_id: ExecutionId, request: Request, _: Operator) -> m.ExecutionRefOut:
    """Removes what an ended execution created (a new `rollback` execution)."""
    tempano = get_tempano(request)
    e = await _ended(tempano, execution_id, "rolled back", {"failed", "cancelled", "succeeded", "terminated"})
    ref = await tempano.start_execution(e.deployment_id, "rollback", rollback_of=execution_id)
    return ref_view(tempano, ref)


@executions.post("/{execution_id}/terminate", status_code=202, response_model=m.ActionOut, responses=WRITE)
async def terminate_execution(
    execution_id: ExecutionId, request: Request, _: Admin, reason: Annotated[str, Query(max_length=500)] = ""
) -> m.ActionOut:
    """The admin escape: ends a running execution at once (no graceful cancellation); it is recorded as
    terminated, with the reason, and instances it left half-way are marked error."""
    tempano = get_tempano(request)
    await _ended(tempano, execution_id, "terminated", {"pending", "running"})
    await tempano.terminate_execution(execution_id, reason)
    return m.ActionOut(result="terminated")


@executions.get("/{execution_id}/progress", responses=READ, summary="What a running execution waits on")
async def execution_progress(execution_id: ExecutionId, request: Request, _: Viewer) -> dict[str, Any]:
    """Current details, the operations in flight, and each pending activity's attempt, last heartbeat and
    last failure (from Temporal)."""
    tempano = get_tempano(request)
    return await tempano.execution_progress(_known("execution", execution_id, EXECUTION_RE))


@executions.get("/{execution_id}/events", response_model=m.EventPage, responses=READ, summary="Events, paged")
def execution_events(
    execution_id: ExecutionId,
    request: Request,
    _: Viewer,
    after: Annotated[int, Query(ge=0, le=2**62, description="Only events after this id")] = 0,
    limit: Limit = 1000,
) -> m.EventPage:
    """Lifecycle events (operation started/succeeded/failed with attempt and duration, logs), oldest first."""
    store = get_tempano(request).store
    store.get_execution(_known("execution", execution_id, EXECUTION_RE))
    return event_page(store.events(execution_id=execution_id, after_id=after, limit=limit), after)


@executions.get(
    "/{execution_id}/events/stream",
    responses={**READ, 200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
    response_class=StreamingResponse,
    summary="Events, live (server-sent events)",
)
async def stream_events(
    execution_id: ExecutionId,
    request: Request,
    _: Viewer,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    """Each event as `id`/`event`/`data` (JSON) as it happens; an `end` event carries the final status. Resumes
    after `Last-Event-ID` on reconnect."""
    store = get_tempano(request).store
    await run_in_threadpool(store.get_execution, _known("execution", execution_id, EXECUTION_RE))
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after

    async def feed() -> AsyncIterator[str]:
        cursor, idle = start, 0.0
        while not await request.is_disconnected():
            events = await run_in_threadpool(store.events, execution_id=execution_id, after_id=cursor, limit=500)
            for e in events:
                cursor = e.id
                yield f"id: {e.id}\nevent: {e.type}\ndata: {json.dumps(e.model_dump(mode='json'))}\n\n"
            if events:
                idle = 0.0
                continue
            record = await run_in_threadpool(store.get_execution, execution_id)
            if record.status in TERMINAL:
                tail = await run_in_threadpool(store.events, execution_id=execution_id, after_id=cursor, limit=500)
                if not tail:
                    end = {"status": record.status, "error": record.error}
                    yield f"event: end\ndata: {json.dumps(end)}\n\n"
                    return
                continue
            idle += 0.5
            if idle >= 15:
                idle = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(0.5)

    return StreamingResponse(feed(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


# ---------------------------------------------------------------- workflows, secrets, tokens

admin = APIRouter(prefix="/api/v1", tags=["administration"])


@admin.get("/workflows", response_model=m.WorkflowsOut, responses=_problems(401, 403), summary="Known workflows")
def list_workflows(_: Viewer) -> m.WorkflowsOut:
    names = registry.names()
    return m.WorkflowsOut(
        builtin=[n for n in names if registry.is_builtin(n)], custom=[n for n in names if not registry.is_builtin(n)]
    )


@admin.put("/secrets/{name}", status_code=204, responses=_problems(401, 403, 422), tags=["secrets"])
def put_secret(
    name: Annotated[str, Path(max_length=100, examples=["vim_password"])],
    body: m.SecretIn,
    request: Request,
    _: Admin,
) -> Response:
    """Stores (or replaces) a secret, encrypted; its value can never be read back through the API. Blueprints
    use it with `get_secret`, resolved only inside operations."""
    check_id("secret", name)
    get_tempano(request).store.put_secret(name, body.value)
    return Response(status_code=204)


@admin.get("/secrets", response_model=m.SecretList, responses=_problems(401, 403), tags=["secrets"])
def list_secrets(request: Request, _: Admin) -> m.SecretList:
    return m.SecretList(names=get_tempano(request).store.list_secrets())


@admin.delete("/secrets/{name}", status_code=204, responses=_problems(401, 403, 404), tags=["secrets"])
def delete_secret(name: Annotated[str, Path(max_length=100)], request: Request, _: Admin) -> Response:
    get_tempano(request).store.delete_secret(_known("secret", name))
    return Response(status_code=204)


@admin.post(
    "/tokens", status_code=201, response_model=m.TokenCreated, responses=_problems(401, 403, 422), tags=["tokens"]
)
def create_token(body: m.TokenCreate, request: Request, _: Admin) -> m.TokenCreated:
    """Issues a token; its value is in this answer only (the store keeps its hash)."""
    token, value = issue_token(get_tempano(request).store, body.name, body.role)
    return m.TokenCreated(**token.model_dump(), token=value)


@admin.get("/tokens", response_model=list[m.TokenOut], responses=_problems(401, 403), tags=["tokens"])
def list_tokens(request: Request, _: Admin) -> list[m.TokenOut]:
    return [m.TokenOut(**t.model_dump()) for t in get_tempano(request).store.list_tokens()]


@admin.delete("/tokens/{token_id}", status_code=204, responses=_problems(401, 403, 404, 409), tags=["tokens"])
def revoke_token(token_id: Annotated[str, Path(max_length=40)], request: Request, principal: Admin) -> Response:
    """Revokes a token (at once in this process, within seconds elsewhere). Refused (409) for the caller's own
    token and the last active admin token, so the API cannot be locked."""
    store = get_tempano(request).store
    target = store.get_token(_known("token", token_id))
    if target.id == principal.token_id:
        raise ServiceError("a token cannot revoke itself: use another admin token", status=409)
    if target.role == "admin" and not target.revoked and store.count_active_tokens("admin") <= 1:
        raise ServiceError("this is the last active admin token: create another admin token first", status=409)
    store.revoke_token(token_id)
    verifier: TokenVerifier = request.app.state.tokens
    verifier.forget()
    return Response(status_code=204)


@admin.get("/whoami", response_model=m.WhoAmI, responses=_problems(401), tags=["tokens"])
def whoami(principal: Viewer) -> m.WhoAmI:
    return m.WhoAmI(token_id=principal.token_id, name=principal.name, role=principal.role)


# ---------------------------------------------------------------- the app


def create_app(settings: Settings | None = None, service: Tempano | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tempano = service or Tempano(settings, await connect(settings))
        app.state.tempano = tempano
        app.state.tokens = TokenVerifier(tempano.store, enabled=settings.auth)
        if settings.auth:
            bootstrap(tempano.store, settings.data_dir, settings.admin_token)
        try:
            registry.load_custom_workflows()
        except Exception:  # a broken plugin package must not keep the API down
            log.exception("custom workflows could not be loaded")
        metrics.watch_store(tempano.store)
        yield

    app = FastAPI(
        title="tempano",
        version="0.1.0",
        lifespan=lifespan,
        description="Durable NFV orchestration on Temporal: blueprints, deployments, executions, events. "
        "Authenticate with `Authorization: Bearer <token>`; errors are RFC 9457 problem+json.",
    )
    app.middleware("http")(metrics.middleware)
    for router in (blueprints, deployments, executions, admin):
        app.include_router(router)

    @app.get("/healthz", tags=["health"], response_model=m.Status)
    async def healthz() -> m.Status:
        """The API process is alive."""
        return m.Status(status="ok")

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=m.Status,
        responses={503: {"model": m.Problem, "content": {PROBLEM: {}}}},
    )
    async def readyz(request: Request) -> Any:
        """Temporal and the store answer."""
        tempano = get_tempano(request)
        try:
            await asyncio.wait_for(tempano.client.service_client.check_health(), 5)
            await run_in_threadpool(tempano.store.count_active_tokens)
        except Exception as e:
            return problem(503, "Not ready", f"tempano is not ready: {type(e).__name__}: {e}", request)
        return m.Status(status="ready")

    @app.get("/metrics", tags=["health"], response_class=Response, responses=_problems(401, 403))
    def prometheus(_: Viewer) -> Response:
        """Prometheus metrics: API requests, deployments and executions by status, operation durations."""
        return metrics.render()

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, e: AuthError) -> JSONResponse:
        return problem(e.status, "Unauthorized" if e.status == 401 else "Forbidden", e.detail, request)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, e: ServiceError) -> JSONResponse:
        titles = {409: "Conflict", 413: "Upload too large", 415: "Unsupported media type", 422: "Invalid request"}
        return problem(e.status, titles.get(e.status, "Request refused"), e.message, request)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, e: NotFound) -> JSONResponse:
        return problem(404, "Not found", str(e.args[0] if e.args else e), request)

    @app.exception_handler(Conflict)
    async def conflict(request: Request, e: Conflict) -> JSONResponse:
        return problem(409, "Conflict", str(e), request)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, e: StoreError) -> JSONResponse:
        return problem(422, "Refused", str(e), request)

    @app.exception_handler(RPCError)
    async def temporal_error(request: Request, e: RPCError) -> JSONResponse:
        return problem(503, "Temporal unavailable", f"the Temporal server did not answer: {e.message}", request)

    @app.exception_handler(RenderError)
    async def render_error(request: Request, e: RenderError) -> JSONResponse:
        return problem(503, "Cannot draw", str(e), request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = _jsonable_errors(e.errors())
        detail = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['message']}" for err in errors[:5])
        return problem(
            422, "Invalid request", detail or "the request does not match the schema", request, errors=errors
        )

    @app.exception_handler(BlueprintError)
    async def bad_blueprint(request: Request, e: BlueprintError) -> JSONResponse:
        errors = [
            {"message": d.message, "file": d.file, "line": d.line, "column": d.column, "entity": d.entity}
            for d in e.errors
        ]
        title = "Invalid inputs" if type(e).__name__ == "InputError" else "Invalid blueprint"
        return problem(422, title, str(e), request, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return problem(e.status_code, _reason(e.status_code), str(e.detail), request)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=e)
        return problem(500, "Internal error", f"tempano failed unexpectedly ({type(e).__name__}); see its log", request)

    return app


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    # The offending input is left out: it may be a secret.
    return [
        {"loc": [p if isinstance(p, int) else str(p) for p in err.get("loc", ())], "message": str(err.get("msg", ""))}
        for err in errors
    ]
