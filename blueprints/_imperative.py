"""TOSCA imperative workflows (topology_template.workflows) compiled into :class:`ImperativeWorkflow`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tempano.blueprints._functions import FunctionCompiler
from tempano.blueprints.plan import ImperativeWorkflow, InputSpec, WorkflowActivity, WorkflowStep

if TYPE_CHECKING:
    from tempano.blueprints._state import CompileState

_ACTIVITIES = ("set_state", "call_operation", "delegate", "inline")


def compile_imperative(compiler: CompileState, functions: FunctionCompiler) -> dict[str, ImperativeWorkflow]:
    """Every workflow of the topology; unknown targets, activities and step links are errors."""
    raw = compiler.topology.get("workflows")
    result: dict[str, ImperativeWorkflow] = {}
    if not isinstance(raw, Mapping):
        return result
    groups = compiler.topology.get("groups")
    group_names = set(groups) if isinstance(groups, Mapping) else set()
    for wf_name in sorted(raw):
        definition = raw[wf_name]
        base = ("topology_template", "workflows", wf_name)
        if not isinstance(definition, Mapping):
            compiler.error(base, "a workflow must be a mapping with steps", str(wf_name))
            continue
        steps_raw: Mapping[str, Any] = _mapping(definition.get("steps"))
        steps: dict[str, WorkflowStep] = {}
        for step_name in sorted(steps_raw):
            step = steps_raw[step_name]
            spath = (*base, "steps", step_name)
            entity = f"{wf_name}.{step_name}"
            if not isinstance(step, Mapping):
                compiler.error(spath, "a step must be a mapping with target and activities", entity)
                continue
            target = str(step.get("target", ""))
            if target not in compiler.nodes and target not in group_names:
                compiler.error((*spath, "target"), f"step target {target!r} is no node template or group", entity)
            activities = []
            for index, activity in enumerate(step.get("activities") or []):
                apath = (*spath, "activities", index)
                if not isinstance(activity, Mapping) or len(activity) != 1:
                    compiler.error(apath, f"an activity is one of {', '.join(_ACTIVITIES)}", entity)
                    continue
                ((kind, value),) = activity.items()
                if kind not in _ACTIVITIES:
                    compiler.error(apath, f"unknown activity {kind!r}: use one of {', '.join(_ACTIVITIES)}", entity)
                    continue
                inputs: dict[str, Any] = {}
                if isinstance(value, Mapping):  # call_operation: {operation: ..., inputs: ...}
                    inputs = dict(_mapping(value.get("inputs")))
                    value = value.get("operation") or value.get("workflow")
                activities.append(
                    WorkflowActivity(
                        kind=kind,
                        value=str(value),
                        inputs=functions.compile_value(inputs, None, apath, entity) if inputs else {},
                    )
                )
            links = {}
            for key in ("on_success", "on_failure"):
                names = step.get(key) or []
                names = [names] if isinstance(names, str) else list(names)
                for link in names:
                    if link not in steps_raw:
                        compiler.error((*spath, key), f"{key} names {link!r}, which is no step of {wf_name}", entity)
                links[key] = tuple(str(n) for n in names)
            filters = step.get("filter") or []
            steps[str(step_name)] = WorkflowStep(
                target=target,
                target_relationship=str(step["target_relationship"]) if step.get("target_relationship") else None,
                activities=tuple(activities),
                on_success=links["on_success"],
                on_failure=links["on_failure"],
                filter=tuple(f for f in filters if isinstance(f, Mapping)),
            )
        inputs_raw: Mapping[str, Any] = _mapping(definition.get("inputs"))
        result[str(wf_name)] = ImperativeWorkflow(
            description=str(definition.get("description", "") or "").strip(),
            inputs={
                str(k): InputSpec(**{f: v[f] for f in ("type", "description", "required", "default") if f in v})
                for k, v in sorted(inputs_raw.items())
                if isinstance(v, Mapping)
            },
            preconditions=tuple(p for p in definition.get("preconditions") or [] if isinstance(p, Mapping)),
            steps=steps,
        )
    return result


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
