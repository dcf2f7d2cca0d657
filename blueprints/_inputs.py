"""``bind_inputs``: a deployment's inputs validated against the plan and substituted into it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tempano.blueprints._errors import ErrorDetail, InputError
from tempano.blueprints._functions import fold, is_constant
from tempano.blueprints.functions import STRING_FUNCTIONS, FunctionError, function_name
from tempano.blueprints.plan import InputSpec, Plan

_WHERE = "<inputs>"
_SCALAR_UNIT = re.compile(r"^\s*[-+]?\d+(\.\d+)?\s*[A-Za-z]+\s*$")


def bind_inputs(plan: Plan, inputs: Mapping[str, Any]) -> Plan:
    """Validate ``inputs`` and return the plan with every get_input (and what folds over it) resolved."""
    errors: list[ErrorDetail] = []
    for name in sorted(set(inputs) - set(plan.inputs)):
        known = ", ".join(sorted(plan.inputs)) or "none"
        errors.append(ErrorDetail(f"unknown input (the blueprint declares: {known})", _WHERE, entity=str(name)))
    values: dict[str, Any] = {}
    for name, spec in plan.inputs.items():
        if name in inputs:
            value = inputs[name]
        elif spec.default is not None:
            value = spec.default
        elif spec.required:
            what = f": {spec.description.rstrip('.')}" if spec.description else ""
            errors.append(
                ErrorDetail(f"required input missing (type {spec.type}){what}; give it a value", _WHERE, entity=name)
            )
            continue
        else:
            values[name] = None
            continue
        problem = check_value(value, spec)
        if problem:
            errors.append(ErrorDetail(problem, _WHERE, entity=name))
        values[name] = value
    if errors:
        raise InputError(errors)
    data = plan.model_dump(mode="json")
    binder = _Binder(values)
    for section in ("nodes", "outputs", "imperative_workflows", "groups"):
        data[section] = binder.bind(data[section])
    if binder.errors:
        raise InputError(binder.errors)
    return Plan.model_validate(data)


class _Binder:
    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values
        self.errors: list[ErrorDetail] = []

    def bind(self, value: Any) -> Any:
        name = function_name(value)
        if name is None:
            if isinstance(value, dict):
                return {k: self.bind(v) for k, v in value.items()}
            if isinstance(value, list):
                return [self.bind(v) for v in value]
            return value
        args = value[name]
        if name == "get_input":
            keys = args if isinstance(args, list) else [args]
            found: Any = self.values.get(str(keys[0]))
            for key in keys[1:]:
                if isinstance(found, Mapping) and str(key) in found:
                    found = found[str(key)]
                elif isinstance(found, list) and isinstance(key, int) and 0 <= key < len(found):
                    found = found[key]
                else:
                    self.errors.append(
                        ErrorDetail(f"get_input: the input has no element {key!r}", _WHERE, entity=str(keys[0]))
                    )
                    return None
            return found
        bound = self.bind(args)
        if name in STRING_FUNCTIONS and is_constant(bound):
            try:
                return fold(name, bound)
            except (FunctionError, ValueError, TypeError) as exc:
                self.errors.append(ErrorDetail(f"{name} over the inputs failed: {exc}", _WHERE))
        return {name: bound}


def check_value(value: Any, spec: InputSpec) -> str | None:
    """Why ``value`` does not suit ``spec`` (type, then constraints), or None."""
    problem = _check_type(value, spec.type, spec.entry_schema)
    if problem:
        return problem
    for constraint in spec.constraints:
        problem = _check_constraint(value, constraint)
        if problem:
            return problem
    return None


def _check_type(value: Any, type_name: str, entry_schema: Mapping[str, Any] | None) -> str | None:
    expected = {
        "string": (str,),
        "integer": (int,),
        "float": (int, float),
        "boolean": (bool,),
        "list": (list,),
        "map": (dict,),
        "timestamp": (str,),
        "version": (str, int, float),
    }.get(type_name)
    if expected is not None:
        if isinstance(value, bool) and type_name != "boolean":
            return f"expected a {type_name}, got a boolean ({value!r})"
        if not isinstance(value, expected):
            return f"expected a {type_name}, got {type(value).__name__} {value!r}"
        if entry_schema and isinstance(entry_schema.get("type"), str):
            items = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else []
            for item in items:
                problem = _check_type(item, entry_schema["type"], None)
                if problem:
                    return f"an entry is invalid: {problem}"
        return None
    if type_name.startswith("scalar-unit."):
        if not isinstance(value, str) or not _SCALAR_UNIT.match(value):
            return f"expected a {type_name} such as '4 GB' or '30 s', got {value!r}"
        return None
    if type_name == "range":
        if not (isinstance(value, list) and len(value) == 2):
            return f"expected a range [min, max], got {value!r}"
        return None
    # Complex data types are checked field by field by the plugins that read them; a mapping is required.
    if "." in type_name and not isinstance(value, dict):
        return f"expected a mapping of type {type_name}, got {type(value).__name__}"
    return None


def _check_constraint(value: Any, constraint: Mapping[str, Any]) -> str | None:
    if len(constraint) != 1:
        return None
    ((operator, bound),) = constraint.items()
    try:
        if operator in {"equal"} and value != bound:
            return f"must equal {bound!r}"
        if operator == "greater_than" and not value > bound:
            return f"must be greater than {bound!r}"
        if operator == "greater_or_equal" and not value >= bound:
            return f"must be at least {bound!r}"
        if operator == "less_than" and not value < bound:
            return f"must be less than {bound!r}"
        if operator == "less_or_equal" and not value <= bound:
            return f"must be at most {bound!r}"
        if operator == "in_range" and not (bound[0] <= value <= bound[1]):
            return f"must be in the range {bound[0]!r}..{bound[1]!r}"
        if operator == "valid_values" and value not in bound:
            return f"must be one of {', '.join(repr(b) for b in bound)}"
        if operator == "length" and len(value) != bound:
            return f"must have length {bound}"
        if operator == "min_length" and len(value) < bound:
            return f"must have length at least {bound}"
        if operator == "max_length" and len(value) > bound:
            return f"must have length at most {bound}"
        if operator == "pattern" and not re.fullmatch(str(bound), str(value)):
            return f"must match the pattern {bound!r}"
    except (TypeError, IndexError, KeyError, re.error):
        return f"cannot be checked against the constraint {operator}: {bound!r} (wrong type of value?)"
    return None
