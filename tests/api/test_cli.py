"""The `tempano` CLI as a client of the served API: cfy-like verbs, live following, exit codes, --json."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tempano.api.cli import main
from tempano.api.inputs_file import read_inputs_file
from tests.api.conftest import Api

pytestmark = pytest.mark.asyncio(loop_scope="session")

HELLO = Path(__file__).resolve().parents[2] / "blueprints" / "examples" / "hello" / "hello.yaml"
FAILING = """\
tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    broken:
      type: tempano.nodes.Logger
      interfaces:
        Standard:
          create:
            implementation: builtin.fail
            inputs: {message: "create failed on purpose"}
"""


async def cli(api: Api, *args: str, role: str = "admin") -> Result:
    """Runs the CLI in a thread (the API serves from this test's event loop)."""
    base = ["--api-url", api.url] + (["--token", api.tokens[role]] if role in api.tokens else [])
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke, main, [*base, *args], catch_exceptions=False, env={"TEMPANO_TOKEN": ""}
    )


async def test_install_follow_inspect_uninstall(api: Api, tmp_path: Path) -> None:
    r = await cli(api, "install", str(HELLO), "-d", "c1", "-i", "greeting=salut", "-l", "env=test")
    assert r.exit_code == 0, r.output
    assert "installing c1 (execution c1:1)" in r.output and "/workflows/" in r.output
    assert "3/3 started" in r.output  # the live view of node states
    assert "[backend_1]" in r.output  # events, per node instance
    assert '"salut from database"' in r.output and "install succeeded" in r.output

    r = await cli(api, "deployments", "list", "-l", "env=test", "--json")
    assert [d["id"] for d in json.loads(r.output)] == ["c1"]
    r = await cli(api, "deployments", "get", "c1", role="viewer")
    assert r.exit_code == 0 and "c1 (c1): installed" in r.output and "frontend_1" in r.output
    r = await cli(api, "deployments", "outputs", "c1", role="viewer")
    assert json.loads(r.output)["database_message"] == "salut from database"
    r = await cli(api, "executions", "list", "-d", "c1", "--json", role="viewer")
    assert [(e["workflow"], e["status"]) for e in json.loads(r.output)] == [("install", "succeeded")]
    r = await cli(api, "executions", "get", "c1:1", role="viewer")
    assert "install on c1: succeeded" in r.output
    r = await cli(api, "events", "c1:1", "--json", role="viewer")
    assert any(e["type"] == "operation_succeeded" for e in json.loads(r.output))
    r = await cli(api, "blueprints", "get", "c1", role="viewer")
    assert "backend (tempano.nodes.Logger)" in r.output and "greeting: string" in r.output
    r = await cli(api, "deployments", "graph", "c1", "-o", str(tmp_path / "c1.svg"), role="viewer")
    assert r.exit_code == 0 and (tmp_path / "c1.svg").read_text().lstrip().startswith("<?xml")

    # A viewer may not start executions: exit status 1 with the reason.
    r = await cli(api, "executions", "start", "stop", "-d", "c1", role="viewer")
    assert r.exit_code == 1 and "operator" in r.output
    r = await cli(api, "deployments", "list", role="nobody")
    assert r.exit_code == 1 and "Unauthorized (401)" in r.output and "--token" in r.output

    r = await cli(api, "uninstall", "c1", role="operator")
    assert r.exit_code == 0, r.output
    assert "3/3 deleted" in r.output and "uninstall succeeded" in r.output
    r = await cli(api, "deployments", "list", "--json")
    assert json.loads(r.output) == []


async def test_a_failed_install_exits_non_zero_and_json_says_why(api: Api, tmp_path: Path) -> None:
    blueprint = tmp_path / "failing.yaml"
    blueprint.write_text(FAILING)
    r = await cli(api, "install", str(blueprint), "--json")
    assert r.exit_code == 1
    result = json.loads(r.output)
    assert result["execution"]["status"] == "failed" and "on purpose" in result["execution"]["error"]

    r = await cli(api, "blueprints", "upload", str(HELLO), "-b", "h2", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["id"] == "h2"
    r = await cli(api, "deployments", "create", "h2-1", "-b", "h2", "-i", "nope=1")
    assert r.exit_code == 1 and "unknown input" in r.output
    assert (await cli(api, "blueprints", "list")).output.count("h2") == 1
    assert (await cli(api, "blueprints", "delete", "h2")).exit_code == 0
    r = await cli(api, "blueprints", "validate", str(HELLO))  # the compiler's local check still works
    assert r.exit_code == 0 and "OK" in r.output


async def test_an_empty_inputs_file_means_no_inputs(api: Api, tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert (await cli(api, "blueprints", "upload", str(HELLO), "-b", "h")).exit_code == 0
    r = await cli(api, "deployments", "create", "h1", "-b", "h", "--inputs", str(empty))
    assert r.exit_code == 0, r.output
    r = await cli(api, "deployments", "get", "h1", "--json")
    assert json.loads(r.output)["inputs"] == {}
    r = await cli(api, "executions", "start", "install", "-d", "h1", "--parameters", str(empty), "--no-follow")
    assert r.exit_code == 0, r.output


async def test_bad_inputs_and_settings_are_sentences_not_tracebacks(tmp_path: Path) -> None:
    def run(*args: str, **env: str) -> Result:
        env = {"TEMPANO_DATA_DIR": str(tmp_path), **env}
        return CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)

    # A NAME=VALUE pair: one sentence naming the input, PyYAML's problem at its column, and the value as a string.
    pairs = {
        ("deployments", "create", "x", "-b", "y", "-i", "a=["): "input 'a': '[' is not valid YAML (expected the "
        "node content, but found '<stream end>' at column 2); fix it, or pass it as a string with -i 'a=\"[\"'",
        ("install", str(HELLO), "-i", "x=[a, b"): "input 'x': '[a, b' is not valid YAML (expected ',' or ']', but "
        "got '<stream end>' at column 6); fix it, or pass it as a string with -i 'x=\"[a, b\"'",
        ("executions", "start", "install", "-d", "x", "-p", "y=a\n  b: ["): "parameter 'y': 'a\\n  b: [' is not "
        "valid YAML (mapping values are not allowed here at line 2, column 4); fix it, or pass it as a string with "
        "-p 'y=\"a\\n  b: [\"'",
        ("deployments", "create", "x", "-b", "y", "-i", "x=\x01"): "input 'x': '\\x01' is not valid YAML (character "
        "#x0001 is not allowed at column 1); fix it, or pass it as a string with -i 'x=\"\\x01\"'",
        ("deployments", "create", "x", "-b", "y", "-i", "=5"): "input '=5' has no name: write NAME=VALUE",
        ("executions", "start", "install", "-d", "x", "-p", "=5"): "parameter '=5' has no name: write NAME=VALUE",
        ("deployments", "create", "x", "-b", "y", "-i", " =5"): "input ' =5' has no name: write NAME=VALUE",
    }
    for command, sentence in pairs.items():
        r = await asyncio.to_thread(run, *command)
        assert (r.exit_code, r.output) == (1, f"Error: {sentence}\n"), command
    # Every command taking a file of inputs reads it the same way: one sentence naming the file and what to do.
    written = {
        "broken.yaml": "a: [\n",
        "list.yaml": "- a\n- b\n",
        "control.yaml": "a: \x01\n",
        "number-key.yaml": "a: 1\n1: x\n",
        "boolean-key.yaml": "{a: 1, true: y}\n",
        "list-key.yaml": "[a]: b\n",  # PyYAML cannot even build this mapping (a list is unhashable)
        "merged-key.yaml": "<<: {1: x}\n",
        "empty-key.yaml": '"": x\n',
        "blank-key.yaml": 'a: 1\n"  ": x\n',
        "two-documents.yaml": "a: 1\n---\nb: 2\n",
    }
    files = {name: tmp_path / name for name in ("binary.yaml", *written)}
    for name, text in written.items():
        files[name].write_text(text)
    files["binary.yaml"].write_bytes(b"\xd0\x00")
    missing, directory = tmp_path / "missing.yaml", tmp_path
    expected = {
        files["broken.yaml"]: f"{files['broken.yaml']}:2:1: not valid YAML (expected the node content, but found "
        "'<stream end>'); fix the YAML at this place",
        files["binary.yaml"]: f"cannot read {files['binary.yaml']}: it is not UTF-8 text (byte 0); save it as UTF-8",
        files["list.yaml"]: f"{files['list.yaml']} holds a list, not a mapping of names to values: write one "
        "`name: value` per line",
        files["control.yaml"]: f"{files['control.yaml']}:1:4: not valid YAML (character #x0001 is not allowed); fix "
        "the YAML at this place",
        files["number-key.yaml"]: f"{files['number-key.yaml']}:2:1: the key `1` is an integer, not a name; quote it "
        '("1") to make it one',
        files["boolean-key.yaml"]: f"{files['boolean-key.yaml']}:1:8: the key `true` is a boolean, not a name; quote "
        'it ("true") to make it one',
        files["list-key.yaml"]: f"{files['list-key.yaml']}:1:1: the key `[a]` is a list, not a name; quote it "
        '("[a]") to make it one',
        files["merged-key.yaml"]: f"{files['merged-key.yaml']}: the key `1` that `<<` merges in is not a string, so "
        "it names nothing; quote it where it is written",
        files["empty-key.yaml"]: f"{files['empty-key.yaml']}:1:1: a key is empty; write a name there",
        files["blank-key.yaml"]: f"{files['blank-key.yaml']}:2:1: a key is only blanks; write a name there",
        files["two-documents.yaml"]: f"{files['two-documents.yaml']}:2: a second YAML document starts here; keep one "
        "mapping of names to values in the file",
        missing: f"cannot read {missing} (No such file or directory): give a YAML file of names and values",
        directory: f"cannot read {directory} (Is a directory): give a YAML file of names and values",
    }
    for path, sentence in expected.items():
        for command in (
            ("deployments", "create", "x", "-b", "y", "--inputs", str(path)),
            ("install", str(HELLO), "--inputs", str(path)),
            ("executions", "start", "install", "-d", "x", "--parameters", str(path)),
            ("blueprints", "plan", str(HELLO), "--inputs", str(path)),
        ):
            r = await asyncio.to_thread(run, *command)
            assert (r.exit_code, r.output) == (1, f"Error: {sentence}\n"), command
    # Quoted keys, `!!str` and merges of string keys are names.
    (tmp_path / "names.yaml").write_text("'1': a\n!!str true: b\n<<: {c: 3}\n")
    assert read_inputs_file(tmp_path / "names.yaml") == {"1": "a", "true": "b", "c": 3}
    r = await asyncio.to_thread(run, "deployments", "list", TEMPANO_API_PORT="abc")
    assert r.exit_code == 1 and "TEMPANO_API_PORT: Input should be a valid integer" in r.output
