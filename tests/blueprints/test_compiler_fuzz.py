"""Property: a mutated blueprint compiles into a Plan or fails with a BlueprintError, nothing else."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tempano.blueprints import BlueprintError, Plan, bind_inputs, compile, load

HELLO = Path(__file__).parents[2] / "blueprints" / "examples" / "hello" / "hello.yaml"
SEED: dict[str, Any] = yaml.safe_load(HELLO.read_text())
SEED["topology_template"]["node_templates"]["vm"] = {
    "type": "tosca.nodes.Compute",
    "capabilities": {"scalable": {"properties": {"default_instances": 2}}},
}
SEED["topology_template"]["node_templates"]["database"]["requirements"] = [{"host": "vm"}]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from(["", "database", "backend", "SELF", "HOST", "tosca.nodes.Root", "builtin.log", "x.sh"]),
    st.text(max_size=8),
)
functions = st.sampled_from(
    [
        {"get_input": "greeting"},
        {"get_input": "nope"},
        {"get_property": ["SELF", "greeting"]},
        {"get_property": ["HOST", "nope"]},
        {"get_attribute": ["ghost", "x"]},
        {"concat": []},
        {"token": ["a,b", ",", 5]},
        {"join": [["a"], 1]},
        {"get_secret": "s"},
    ]
)
values = st.recursive(
    st.one_of(scalars, functions),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += paths(value, (*prefix, index))
    return found


def mutate(data: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    if not path:
        return value if action == "replace" else data
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif action == "rename" and isinstance(parent, dict):
        parent[f"{last}_x"] = parent.pop(last)
    elif action == "wrap":
        parent[last] = [parent[last]]
    return data


def outcome(text: str, inputs: dict[str, Any] | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bp.yaml"
        path.write_text(text)
        try:
            plan = compile(load(path), has_operation=None)
            assert isinstance(plan, Plan)
            assert Plan.model_validate_json(plan.model_dump_json()) == plan
            if inputs is not None:
                bind_inputs(plan, inputs)
        except BlueprintError as error:
            assert error.errors and all(e.message for e in error.errors)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_structural_mutations(data: st.DataObject) -> None:
    blueprint = yaml.safe_load(yaml.safe_dump(SEED))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(blueprint)))
        action = data.draw(st.sampled_from(["delete", "replace", "rename", "wrap"]))
        blueprint = mutate(blueprint, path, action, copy.deepcopy(data.draw(values)))
    inputs = data.draw(st.dictionaries(st.sampled_from(["greeting", "other"]), values, max_size=2))
    outcome(yaml.safe_dump(blueprint), inputs)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(HELLO.read_text()) - 1), st.text(max_size=4), st.integers(0, 3))
def test_text_mutations(position: int, insert: str, cut: int) -> None:
    text = HELLO.read_text()
    outcome(text[:position] + insert + text[position + cut :])
