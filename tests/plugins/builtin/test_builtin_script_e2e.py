"""The scripts example installed and uninstalled on the real Temporal server: script artifacts end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tempano.api.service import Tempano

SCRIPTS = Path(__file__).resolve().parents[3] / "blueprints" / "examples" / "scripts" / "scripts.yaml"

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_script_operations_get_inputs_and_give_outputs(tempano: Tempano, tmp_path: Path) -> None:
    tempano.upload_blueprint("scripts", SCRIPTS)
    await tempano.create_deployment("scripts-1", "scripts", {"site": "paris"})
    execution = await tempano.run("scripts-1", "install", timeout=120)
    assert execution.status == "succeeded", execution.error
    instances = {i.node: i for i in tempano.store.node_instances("scripts-1")}
    assert instances["registry"].attributes["url"] == "http://registry.paris.example:5000"
    assert instances["app"].attributes["status"] == "configured"
    assert tempano.outputs("scripts-1") == {
        "registry_url": "http://registry.paris.example:5000",
        "app_status": "configured",
    }
    uninstall = await tempano.run("scripts-1", "uninstall", timeout=120)
    assert uninstall.status == "succeeded", uninstall.error


async def test_a_failing_script_fails_the_install_with_its_stderr(tempano: Tempano, tmp_path: Path) -> None:
    (tmp_path / "broken.sh").write_text("echo 'cannot reach the registry' >&2\nexit 2\n")
    (tmp_path / "broken.yaml").write_text(
        "tosca_definitions_version: tosca_simple_yaml_1_3\n"
        "topology_template:\n"
        "  node_templates:\n"
        "    app:\n"
        "      type: tempano.nodes.Root\n"
        "      interfaces:\n"
        "        Standard:\n"
        "          create: broken.sh\n"
    )
    tempano.upload_blueprint("broken-script", tmp_path / "broken.yaml")
    await tempano.create_deployment("broken-script-1", "broken-script")
    execution = await tempano.run("broken-script-1", "install", timeout=120)
    assert execution.status == "failed"
    assert "script broken.sh failed with exit status 2: cannot reach the registry" in str(execution.error)
