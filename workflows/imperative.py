"""TOSCA imperative workflows (``topology_template.workflows``), run on the public workflow API.

The compiler turns each into an :class:`~tempano.blueprints.plan.ImperativeWorkflow`; this module interprets it:

- a step without predecessors starts at once; a step named in other steps' ``on_success``/``on_failure`` waits
  until all of them have ended, and runs if at least one of those links fired (the predecessor succeeded and
  names it in ``on_success``, or failed and names it in ``on_failure``); otherwise it is skipped;
- a step's activities run in order on every instance of its target (a node, or a group's members):
  ``set_state``, ``call_operation`` (with inputs), ``delegate`` (install/uninstall/start/stop of those
  instances, or another workflow given ``node_instance_ids``), ``inline`` (another workflow by name);
- the execution fails when a step fails and names no ``on_failure`` step, with every such step's message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from temporalio import workflow

from tempano.workflows.api import WorkflowContext, WorkflowFailure
from tempano.workflows.registry import WorkflowFn

with workflow.unsafe.imports_passed_through():
    from tempano.blueprints.plan import ImperativeWorkflow, WorkflowActivity, WorkflowStep


def bind(name: str, definition: ImperativeWorkflow) -> WorkflowFn:
    """A workflow function running ``definition`` (so imperative workflows start by name like any other)."""

    async def run(ctx: WorkflowContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
        return await run_imperative(ctx, name, definition, params)

    return run


async def run_imperative(
    ctx: WorkflowContext, name: str, definition: ImperativeWorkflow, params: Mapping[str, Any]
) -> Mapping[str, Any]:
    values = _inputs(name, definition, params)
    preds: dict[str, list[tuple[str, bool]]] = {s: [] for s in definition.steps}
    for step_name, step in definition.steps.items():
        for nxt in step.on_success:
            preds[nxt].append((step_name, True))
        for nxt in step.on_failure:
            preds[nxt].append((step_name, False))
    outcome: dict[str, str] = {}
    errors: dict[str, str] = {}
    pending = set(definition.steps)
    while pending:
        ready = sorted(s for s in pending if all(p in outcome for p, _ in preds[s]))
        if not ready:
            raise WorkflowFailure(f"workflow {name}: steps {', '.join(sorted(pending))} wait on each other (a cycle)")
        pending -= set(ready)
        to_run: list[str] = []
        for s in ready:
            fired = not preds[s] or any(
                outcome[p] == ("succeeded" if on_success else "failed") for p, on_success in preds[s]
            )
            if fired:
                to_run.append(s)
            else:
                outcome[s] = "skipped"
        results = await asyncio.gather(
            *(_step(ctx, name, s, definition.steps[s], values) for s in to_run), return_exceptions=True
        )
        for s, result in zip(to_run, results, strict=True):
            if isinstance(result, WorkflowFailure):
                outcome[s] = "failed"
                errors[s] = result.message
            elif isinstance(result, BaseException):
                raise result
            else:
                outcome[s] = "succeeded"
    unhandled = {s: m for s, m in errors.items() if not definition.steps[s].on_failure}
    if unhandled:
        raise WorkflowFailure(
            f"workflow {name}: " + "; ".join(f"step {s} failed: {m}" for s, m in sorted(unhandled.items()))
        )
    return {"steps": dict(sorted(outcome.items()))}


def _inputs(name: str, definition: ImperativeWorkflow, params: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(definition.inputs))
    if unknown:
        raise WorkflowFailure(
            f"workflow {name} has no input(s) {', '.join(unknown)} (it takes: {', '.join(definition.inputs) or 'none'})"
        )
    values: dict[str, Any] = {}
    for key, spec in definition.inputs.items():
        if key in params:
            values[key] = params[key]
        elif spec.default is not None:
            values[key] = spec.default
        elif spec.required:
            raise WorkflowFailure(f"workflow {name} needs input {key!r} ({spec.description or spec.type})")
    return values


async def _step(ctx: WorkflowContext, name: str, step_name: str, step: WorkflowStep, values: dict[str, Any]) -> None:
    where = f"workflow {name} step {step_name}"
    if step.target_relationship:
        raise WorkflowFailure(f"{where}: target_relationship steps are not supported; target the node instead")
    ids = [i.id for i in await ctx.instances(node=step.target)]
    await ctx.log(f"{where} on {step.target} ({len(ids)} instance(s))")
    if not ids:
        return
    for activity in step.activities:
        ctx.progress(f"{where}: {activity.kind} {activity.value}")
        await _activity(ctx, where, ids, activity, values)


async def _activity(
    ctx: WorkflowContext, where: str, ids: list[str], activity: WorkflowActivity, values: dict[str, Any]
) -> None:
    if activity.kind == "set_state":
        await ctx.set_state(ids, activity.value)
    elif activity.kind == "call_operation":
        await ctx.run_operation(ids, activity.value, _bind_inputs(activity.inputs, values))
    elif activity.kind == "delegate":
        if activity.value in {"install", "deploy"}:
            await ctx.install(ids)
        elif activity.value in {"uninstall", "undeploy"}:
            await ctx.uninstall(ids)
        elif activity.value == "start":
            await ctx.lifecycle(ids, ("start",), order="install", final_state="started")
        elif activity.value == "stop":
            await ctx.lifecycle(ids, ("stop",), order="uninstall", final_state="stopped")
        else:
            await ctx.call_workflow(activity.value, {"node_instance_ids": ids})
    elif activity.kind == "inline":
        await ctx.call_workflow(activity.value, values)
    else:  # the compiler admits no other kind
        raise WorkflowFailure(f"{where}: unknown activity {activity.kind!r}")


def _bind_inputs(value: Any, values: Mapping[str, Any]) -> Any:
    """The workflow's own inputs in ``{get_input: name}``; other functions are left to the operation."""
    if isinstance(value, Mapping):
        if set(value) == {"get_input"} and isinstance(value["get_input"], str) and value["get_input"] in values:
            return values[value["get_input"]]
        return {k: _bind_inputs(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_bind_inputs(v, values) for v in value]
    return value
