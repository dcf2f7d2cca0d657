"""The walking skeleton's blueprint compiles into the plan the engine expects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tempano.blueprints import InputError, Plan, bind_inputs, compile, compile_path, load

HELLO = Path(__file__).parents[2] / "blueprints" / "examples" / "hello" / "hello.yaml"


@pytest.fixture(scope="module")
def plan() -> Plan:
    return compile(load(HELLO))


def test_nodes_and_type_level_operations(plan: Plan) -> None:
    assert sorted(plan.nodes) == ["backend", "database", "frontend"]
    ops = plan.nodes["backend"].operations
    assert ops["Standard.create"].implementation == "builtin.log"
    assert ops["Standard.configure"].implementation == "builtin.set_attributes"
    assert plan.nodes["backend"].type_hierarchy == ("tosca.nodes.SoftwareComponent", "tosca.nodes.Root")


def test_install_order_follows_requirements(plan: Plan) -> None:
    install = plan.workflows["install"].steps
    assert install["database"].after == ()
    assert install["backend"].after == ("database",)
    assert install["frontend"].after == ("backend",)
    uninstall = plan.workflows["uninstall"].steps
    assert uninstall["database"].after == ("backend",)
    assert uninstall["frontend"].after == ()
    assert install["database"].phases[0] == "create"
    assert set(plan.workflows) == {"install", "uninstall", "start", "stop"}


def test_get_input_stays_symbolic_until_bound(plan: Plan) -> None:
    database = plan.nodes["database"]
    assert database.properties["greeting"] == {"get_input": "greeting"}
    message = database.operations["Standard.configure"].inputs["message"]
    assert message == {"concat": [{"get_input": "greeting"}, " from database"]}


def test_bind_inputs_resolves_and_keeps_runtime_functions(plan: Plan) -> None:
    bound = bind_inputs(plan, {"greeting": "hi"})
    assert bound.nodes["database"].properties["greeting"] == "hi"
    assert bound.nodes["database"].operations["Standard.configure"].inputs["message"] == "hi from database"
    backend_msg = bound.nodes["backend"].operations["Standard.configure"].inputs["message"]
    assert backend_msg == {"concat": ["backend uses db on port ", {"get_attribute": ["database", "port"]}]}
    assert bind_inputs(plan, {}).nodes["database"].properties["greeting"] == "hello"


def test_bind_inputs_refuses_wrong_type_and_unknown_names(plan: Plan) -> None:
    with pytest.raises(InputError) as caught:
        bind_inputs(plan, {"greeting": 42, "colour": "red"})
    text = str(caught.value)
    assert "greeting: expected a string, got int 42" in text
    assert "colour: unknown input (the blueprint declares: greeting)" in text
    assert len(caught.value.errors) == 2


def test_plan_json_round_trip_and_stable_hash(plan: Plan) -> None:
    again = Plan.model_validate_json(plan.model_dump_json())
    assert again == plan
    assert again.content_hash == plan.content_hash
    assert compile_path(HELLO).content_hash == plan.content_hash
    assert json.loads(plan.canonical_json())["nodes"]["frontend"]["relationships"][0]["target"] == "backend"


def test_content_hash_is_the_same_in_another_process(plan: Plan) -> None:
    code = (
        "from tempano.blueprints import compile_path; "
        f"print(compile_path({str(HELLO)!r}, has_operation=None).content_hash)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == plan.content_hash
