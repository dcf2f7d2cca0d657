"""Tempano.upload_blueprint: plugin operations checked against the installed plugins, CSARs cleaned up."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import pytest

from tempano.api.service import Tempano
from tempano.blueprints import BlueprintCompileError

TEMPLATE = """\
tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    app:
      type: tempano.nodes.Root
      interfaces:
        Standard:
          create: {create}
"""


def extracted_csars() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("tempano-csar-*"))


def test_an_unknown_plugin_operation_is_a_located_compile_error(tempano: Tempano, tmp_path: Path) -> None:
    path = tmp_path / "bp" / "typo.yaml"
    path.parent.mkdir()
    path.write_text(TEMPLATE.format(create="builtin.nop"))
    with pytest.raises(BlueprintCompileError) as caught:
        tempano.upload_blueprint("typo", path)
    (error,) = caught.value.errors
    assert (error.file, error.line, error.entity) == (str(path), 8, "app")
    assert "no installed plugin provides operation 'builtin.nop'" in error.message


def test_a_csar_is_kept_as_a_copy_and_its_extraction_removed(tempano: Tempano, tmp_path: Path) -> None:
    csar = tmp_path / "app.csar"
    with zipfile.ZipFile(csar, "w") as archive:
        archive.writestr(
            "TOSCA-Metadata/TOSCA.meta", "TOSCA-Meta-File-Version: 1.0\nEntry-Definitions: Definitions/app.yaml\n"
        )
        archive.writestr("Definitions/app.yaml", TEMPLATE.format(create="../Scripts/create.sh"))
        archive.writestr("Scripts/create.sh", "echo created\n")
    before = extracted_csars()
    record = tempano.upload_blueprint("app", csar)
    assert extracted_csars() == before
    assert record.source_dir is not None and record.main_file == "Definitions/app.yaml"
    assert (Path(record.source_dir) / "Scripts" / "create.sh").read_text() == "echo created\n"
    assert record.plan["nodes"]["app"]["operations"]["Standard.create"]["inputs"] == {"script": "Scripts/create.sh"}


def test_a_blueprint_next_to_the_data_directory_does_not_copy_it(tempano: Tempano) -> None:
    data = tempano.settings.data_dir
    path = data.parent / "beside.yaml"
    path.write_text(TEMPLATE.format(create="builtin.noop"))
    record = tempano.upload_blueprint("beside", path)
    assert record.source_dir is not None
    assert sorted(p.name for p in Path(record.source_dir).iterdir()) == sorted(
        p.name for p in data.parent.iterdir() if p != data
    )
