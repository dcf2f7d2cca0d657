"""The built-in workflows, written on the public API (:mod:`tempano.workflows.api`) like any custom one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio import workflow

from tempano.workflows import registry
from tempano.workflows.api import WorkflowContext, WorkflowFailure, store_activity

with workflow.unsafe.imports_passed_through():
    from tempano.workflows.models import RollbackInput, RollbackPlan, ScaleInput, ScaleResult, StatesInput

RELINK_PHASES = ("preconfigure", "postconfigure", "establish")


async def install(ctx: WorkflowContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    await ctx.install()
    return {}


async def uninstall(ctx: WorkflowContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    await ctx.uninstall(continue_on_error=bool(params.get("ignore_failure", False)))
    return {}


async def reinstall(ctx: WorkflowContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    await ctx.uninstall(continue_on_error=True)
    await ctx.install()
    return {}


async def start(ctx: WorkflowContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    await ctx.lifecycle(_ids(params), ("start",), order="install", final_state="started")
    return {}


async def stop(ctx: WorkflowContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    await ctx.lifecycle(_ids(params), ("stop",), order="uninstall", final_state="stopped")
    return {}


async def restart(ctx: WorkflowContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    await stop(ctx, params)
    await start(ctx, params)
    return {}


async def execute_operation(ctx: WorkflowContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Runs ``operation`` on chosen ``node_ids`` and/or ``node_instance_ids`` (all instances if neither)."""
    operation = params.get("operation")
    if not isinstance(operation, str) or "." not in operation:
        raise WorkflowFailure(
            "execute_operation needs parameter 'operation' as Interface.operation, e.g. Day2.update_rules"
        )
    ids = list(params.get("node_instance_ids") or [])
    for node in params.get("node_ids") or []:
        ids.extend(i.id for i in await ctx.instances(node=node))
    if not ids:
        ids = [i.id for i in await ctx.instances() if operation in i.operations]
        if not ids:
            raise WorkflowFailure(f"no node of the deployment has an operation {operation!r}")
    result = await ctx.run_operation(sorted(set(ids)), operation, params.get("operation_inputs") or {})
    return {"instances": list(result.succeeded)}


async def heal(ctx: WorkflowContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Health check, then the node's Health.heal operation, or a reinstall of the instance's subgraph with its
    relationship operations re-run against its peers."""
    instance_id = params.get("node_instance_id")
    if not isinstance(instance_id, str):
        raise WorkflowFailure("heal needs parameter 'node_instance_id'")
    force = bool(params.get("force", False))
    if await ctx.check_health(instance_id) and not force:
        await ctx.log(f"{instance_id} is healthy: nothing to heal", instance_id=instance_id)
        return {"healed": False, "healthy": True}
    info = await ctx.instance(instance_id)
    if "Health.heal" in info.operations:
        await ctx.log(f"{instance_id} is unhealthy: running its Health.heal operation", instance_id=instance_id)
        await ctx.run_operation([instance_id], "Health.heal")
        healthy = await ctx.check_health(instance_id)
        if healthy:
            await ctx.set_state([instance_id], "started")
            return {"healed": True, "method": "heal_operation"}
        await ctx.log(f"{instance_id} still unhealthy after Health.heal: reinstalling", instance_id=instance_id)
    sub = await ctx.subgraph([instance_id])
    await ctx.log(
        f"{instance_id} is unhealthy: reinstalling {', '.join(sub.instance_ids)}"
        + (f" and re-wiring {', '.join(sub.peers)}" if sub.peers else ""),
        instance_id=instance_id,
    )
    peers = {p: sub.instance_ids for p in sub.peers}
    # The peers let go of the broken instances first (best effort: those may not answer).
    await ctx.relink(peers, ("unlink",), continue_on_error=True)
    await ctx.uninstall(sub.instance_ids, continue_on_error=True)
    await ctx.install(sub.instance_ids)
    await ctx.relink(peers, RELINK_PHASES)
    return {"healed": True, "method": "reinstall", "reinstalled": list(sub.instance_ids)}


async def scale(ctx: WorkflowContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """``delta`` more (or fewer) instances of ``node`` or scaling group ``group``; scale-in removes the chosen
    ``node_instance_ids`` or else the newest."""
    target = params.get("group") or params.get("node")
    delta = params.get("delta")
    if not isinstance(target, str) or not isinstance(delta, int) or delta == 0:
        raise WorkflowFailure("scale needs parameters 'node' (or 'group') and a non-zero integer 'delta'")
    result: ScaleResult = await store_activity(
        "scale",
        ScaleInput(
            deployment_id=ctx.deployment_id,
            execution_id=ctx.execution_id,
            target=target,
            delta=delta,
            instance_ids=tuple(params.get("node_instance_ids") or ()),
            resume_chain=ctx.input.resume_chain,
        ),
        f"scale {target} {delta:+d}",
        ScaleResult,
    )
    if delta > 0:
        await ctx.log(f"scale out {target} by {delta}: adding {', '.join(result.added)}")
        await ctx.install(result.added)
        if result.peers:
            await ctx.relink(result.peers, ("establish",))
        return {"added": list(result.added)}
    sub = await ctx.subgraph(result.removing)
    await ctx.log(f"scale in {target} by {-delta}: removing {', '.join(result.removing)}")
    if sub.peers:
        await ctx.relink({p: result.removing for p in sub.peers}, ("unlink",))
    await ctx.uninstall(result.removing)
    await store_activity(
        "remove_instances",
        StatesInput(deployment_id=ctx.deployment_id, instance_ids=result.removing, state="deleted"),
        f"remove {len(result.removing)} instance(s)",
    )
    return {"removed": list(result.removing)}


async def rollback(ctx: WorkflowContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Removes what execution ``execution_id`` created (resources it recorded, instances it touched)."""
    of = params.get("execution_id")
    if not isinstance(of, str):
        raise WorkflowFailure("rollback needs parameter 'execution_id'")
    plan: RollbackPlan = await store_activity(
        "rollback_plan",
        RollbackInput(deployment_id=ctx.deployment_id, execution_id=ctx.execution_id, of_execution=of),
        f"what {of} created",
        RollbackPlan,
    )
    if not plan.instance_ids:
        await ctx.log(f"{of} created nothing: nothing to roll back")
        return {"removed": []}
    await ctx.uninstall(plan.instance_ids, continue_on_error=False)
    await ctx.set_state(plan.instance_ids, "uninitialized")
    if plan.added:
        await store_activity(
            "remove_instances",
            StatesInput(deployment_id=ctx.deployment_id, instance_ids=plan.added, state="deleted"),
            f"remove {len(plan.added)} instance(s) added by {of}",
        )
    return {"removed": list(plan.instance_ids)}


def _ids(params: Mapping[str, Any]) -> list[str] | None:
    ids = params.get("node_instance_ids")
    return list(ids) if ids else None


BUILTINS = {
    "install": install,
    "uninstall": uninstall,
    "reinstall": reinstall,
    "start": start,
    "stop": stop,
    "restart": restart,
    "execute_operation": execute_operation,
    "heal": heal,
    "scale": scale,
    "rollback": rollback,
}
for _name, _fn in BUILTINS.items():
    registry.register(_name, _fn, builtin=True)
