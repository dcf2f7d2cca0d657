"""The `tempano` CLI as a client of the served API: cfy-like verbs, live following, exit codes, --json."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tempano.api.cli import main
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

    r = await asyncio.to_thread(run, "deployments", "create", "x", "-b", "y", "-i", "a=[")
    assert r.exit_code == 1 and "input 'a=[' is not valid YAML" in r.output
    # Every command taking a file of inputs reads it the same way: one sentence naming the file and what to do.
    files = {name: tmp_path / name for name in ("broken.yaml", "binary.yaml", "list.yaml", "control.yaml")}
    files["broken.yaml"].write_text("a: [\n")
    files["binary.yaml"].write_bytes(b"\xd0\x00")
    files["list.yaml"].write_text("- a\n- b\n")
    files["control.yaml"].write_text("a: \x01\n")
    missing, directory = tmp_path / "missing.yaml", tmp_path
    expected = {
        files["broken.yaml"]: f"{files['broken.yaml']}:2:1: not valid YAML (expected the node content, but found "
        "'<stream end>'); fix the YAML at this place",
        files["binary.yaml"]: f"cannot read {files['binary.yaml']}: it is not UTF-8 text (byte 0); save it as UTF-8",
        files["list.yaml"]: f"{files['list.yaml']} holds a list, not a mapping of names to values: write one "
        "`name: value` per line",
        files["control.yaml"]: f"{files['control.yaml']}: not valid YAML (character #x0001 at position 3 is not "
        "allowed); remove it",
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
    r = await asyncio.to_thread(run, "deployments", "list", TEMPANO_API_PORT="abc")
    assert r.exit_code == 1 and "TEMPANO_API_PORT: Input should be a valid integer" in r.output
