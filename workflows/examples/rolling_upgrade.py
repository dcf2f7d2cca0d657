"""A rolling upgrade of a scaled VNF: one instance at a time, a health check after each, stop on the first
failure. Written on the public workflow API only, as any custom workflow would be.

Start it by name::

    tempano executions start rolling_upgrade -d vfw-1 -p node=fw -p operation=Maintenance.upgrade \\
        -p 'operation_inputs={version: "2.1"}' -p pause_s=30

Parameters: ``node`` (a node or scaling group), ``operation`` (``Interface.operation`` to run on each
instance), ``operation_inputs`` (optional), ``pause_s`` (optional wait between instances, a durable timer).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from tempano.workflows.api import WorkflowContext, WorkflowFailure


async def rolling_upgrade(ctx: WorkflowContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
    node = params.get("node")
    operation = params.get("operation")
    if not isinstance(node, str) or not isinstance(operation, str) or "." not in operation:
        raise WorkflowFailure(
            "rolling_upgrade needs parameters 'node' (a node or scaling group) and 'operation' "
            "(Interface.operation, e.g. Maintenance.upgrade)"
        )
    inputs = params.get("operation_inputs") or {}
    pause = float(params.get("pause_s") or 0)
    instances = sorted(await ctx.instances(node=node), key=lambda i: (i.node, i.index))
    if not instances:
        raise WorkflowFailure(f"rolling_upgrade: node or group {node!r} has no live instance")
    done: list[str] = []
    for n, inst in enumerate(instances, 1):
        ctx.progress(f"upgrading {inst.id} ({n}/{len(instances)})")
        await ctx.run_operation([inst.id], operation, inputs)
        if not await ctx.check_health(inst.id):
            await ctx.set_state([inst.id], "error")
            rest = [i.id for i in instances[n:]]
            raise WorkflowFailure(
                f"rolling upgrade of {node} stopped at {inst.id} ({n}/{len(instances)}): unhealthy after {operation}. "
                f"Upgraded and healthy: {', '.join(done) or 'none'}; not touched: {', '.join(rest) or 'none'}. "
                f"Heal {inst.id} (tempano executions start heal -p node_instance_id={inst.id}) or fix the "
                "upgrade, then resume this execution"
            )
        done.append(inst.id)
        await ctx.log(f"{inst.id} upgraded and healthy ({n}/{len(instances)})", instance_id=inst.id)
        if pause and n < len(instances):
            await ctx.sleep(timedelta(seconds=pause))
    return {"upgraded": done}
