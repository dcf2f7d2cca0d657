"""The ``blueprints`` CLI group: validate and plan."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tempano.api.blueprint_commands import blueprints

HELLO = Path(__file__).parents[2] / "blueprints" / "examples" / "hello" / "hello.yaml"


def test_validate_ok() -> None:
    result = CliRunner().invoke(blueprints, ["validate", str(HELLO)])
    assert result.exit_code == 0, result.output
    assert result.output == "OK\n"


def test_validate_broken_prints_locations_and_fails(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(HELLO.read_text().replace("- dependency: database", "- dependency: ghost"))
    result = CliRunner().invoke(blueprints, ["validate", str(broken)])
    assert result.exit_code == 1
    assert f'{broken}:29:11: backend: Node template "ghost" was not found in "backend".' in result.output


def test_plan_json_with_inputs(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text("greeting: salut\n")
    result = CliRunner().invoke(blueprints, ["plan", str(HELLO), "--inputs", str(inputs)])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["nodes"]["database"]["properties"]["greeting"] == "salut"


def test_plan_with_an_empty_inputs_file_binds_the_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = CliRunner().invoke(blueprints, ["plan", str(HELLO), "--inputs", str(empty)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["nodes"]["database"]["properties"]["greeting"] == "hello"


def test_plan_with_bad_inputs_fails(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text("greeting: [1]\n")
    result = CliRunner().invoke(blueprints, ["plan", str(HELLO), "--inputs", str(inputs)])
    assert result.exit_code == 1
    assert "<inputs>: greeting: expected a string" in result.output


def test_plan_dot_draws_topology_and_install_order() -> None:
    result = CliRunner().invoke(blueprints, ["plan", str(HELLO), "--format", "dot"])
    assert result.exit_code == 0
    assert '"frontend" -> "backend"' in result.output
    assert "install wave 3" in result.output


def test_plan_svg_needs_dot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    result = CliRunner().invoke(blueprints, ["plan", str(HELLO), "--format", "svg"])
    assert result.exit_code == 1
    assert "apt-get install graphviz" in result.output


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_plan_svg() -> None:
    result = CliRunner().invoke(blueprints, ["plan", str(HELLO), "--format", "svg"])
    assert result.exit_code == 0
    assert "<svg" in result.output and "frontend" in result.output


# -- the installed console script ------------------------------------------------------------------------

TEMPANO = Path(sys.executable).parent / "tempano"
VNFD = HELLO.parents[1] / "openstack" / "vnfd_firewall.yaml"


def tempano(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TEMPANO), *map(str, args)], capture_output=True, text=True, timeout=300, check=False)


def test_installed_command_validates_and_locates_problems(tmp_path: Path) -> None:
    ok = tempano("blueprints", "validate", HELLO)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "OK\n", "")
    broken = tmp_path / "broken.yaml"
    broken.write_text(HELLO.read_text().replace("builtin.set_attributes", "builtin.set_atributes", 1))
    result = tempano("blueprints", "validate", broken)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"{broken}:21:13: database: Standard.configure: no installed plugin provides")
    assert "Traceback" not in result.stderr


def test_installed_command_plans_with_inputs_and_names_a_missing_one(tmp_path: Path) -> None:
    vnfd = tmp_path / "vnfd.yaml"
    vnfd.write_text(
        VNFD.read_text().replace(
            "    mgmt_network:\n      type: string\n      default: public\n      description: Existing network of the management external CP.\n",
            "",
        )
    )
    result = tempano("blueprints", "plan", vnfd)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["inputs"]["fw_mgmt_cp_network"]["required"] is True
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text("cloud: west\n")
    missing = tempano("blueprints", "plan", vnfd, "--inputs", inputs)
    assert missing.returncode == 1
    assert missing.stderr.startswith("<inputs>: fw_mgmt_cp_network: required input missing (type string): Name or id")
    inputs.write_text("fw_mgmt_cp_network: provider\n")
    dot = tempano("blueprints", "plan", vnfd, "--inputs", inputs, "--format", "dot")
    assert dot.returncode == 0 and dot.stdout.startswith("digraph")


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_installed_command_refuses_a_path_too_long_in_a_sentence(command: str, tmp_path: Path) -> None:
    path = tmp_path / ("a" * 5000)
    result = tempano("blueprints", command, path)
    assert result.returncode == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr == (
        f"{str(path)[:60]}...{'a' * 60} ({len(str(path))} characters): no file can have this path (File name too "
        "long); check the path\n"
    )


def test_installed_command_refuses_inputs_it_cannot_read_in_a_sentence(tmp_path: Path) -> None:
    binary = tmp_path / "inputs.yaml"
    binary.write_bytes(b"\xd0\x00\xff")
    result = tempano("blueprints", "plan", HELLO, "--inputs", binary)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"Error: cannot read {binary}: it is not UTF-8 text (byte 0); save it as UTF-8\n"
