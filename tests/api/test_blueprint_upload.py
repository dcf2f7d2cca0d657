"""Tempano.upload_blueprint: plugin operations checked against the installed plugins, CSARs cleaned up."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import pytest

from tempano.api.cli import _pack
from tempano.api.service import ServiceError, Tempano
from tempano.blueprints import BlueprintCompileError, BlueprintError
from tempano.store import NotFound

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


def stored_files(directory: str | None) -> list[str]:
    assert directory is not None
    root = Path(directory)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_a_blueprint_next_to_the_data_directory_does_not_copy_it(tempano: Tempano) -> None:
    data = tempano.settings.data_dir
    path = data.parent / "beside.yaml"
    path.write_text(TEMPLATE.format(create="builtin.noop"))
    (data.parent / "unrelated.txt").write_text("not the blueprint's\n")
    record = tempano.upload_blueprint("beside", path)
    assert stored_files(record.source_dir) == ["beside.yaml"]


APP_TYPES = """\
tosca_definitions_version: tosca_simple_yaml_1_3
imports:
  - more/base_types.yaml
node_types:
  example.App:
    derived_from: tempano.nodes.Root
    artifacts:
      settings: {file: files/app.conf, type: tosca.artifacts.File}
    interfaces:
      Standard:
        create: scripts/create.sh
        configure: playbooks/site.yaml
"""

MAIN = """\
tosca_definitions_version: tosca_simple_yaml_1_3
imports:
  - types/app_types.yaml
topology_template:
  node_templates:
    app:
      type: example.App
"""


def a_home_with_a_blueprint(home: Path) -> Path:
    """A blueprint saved among unrelated files: an import in a subdirectory naming a script, a playbook (with its
    included tasks) and a declared artifact."""
    files = {
        "main.yaml": MAIN,
        "types/app_types.yaml": APP_TYPES,
        "types/more/base_types.yaml": "tosca_definitions_version: tosca_simple_yaml_1_3\n",
        "scripts/create.sh": "echo created\n",
        "scripts/unused.sh": "echo unused\n",
        "playbooks/site.yaml": "- hosts: all\n  tasks:\n    - include_tasks: tasks/step.yaml\n",
        "playbooks/tasks/step.yaml": "- debug: {msg: step}\n",
        "files/app.conf": "answer = 42\n",
        "notes/diary.txt": "unrelated\n",
        "other.yaml": "tosca_definitions_version: tosca_simple_yaml_1_3\n",
    }
    for name, text in files.items():
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_text(text)
    with (home / "big.iso").open("wb") as big:
        big.truncate(8 << 20)  # sparse: an unrelated large file
    return home / "main.yaml"


def test_a_single_file_blueprint_keeps_only_the_files_it_names(tempano: Tempano, tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = a_home_with_a_blueprint(home)
    tempano.settings = tempano.settings.model_copy(update={"max_blueprint_bytes": 1 << 20})
    record = tempano.upload_blueprint("named", path)
    assert record.main_file == "main.yaml"
    assert stored_files(record.source_dir) == [
        "files/app.conf",
        "main.yaml",
        "playbooks/site.yaml",
        "playbooks/tasks/step.yaml",
        "scripts/create.sh",
        "types/app_types.yaml",
        "types/more/base_types.yaml",
    ]
    operations = record.plan["nodes"]["app"]["operations"]
    assert operations["Standard.create"]["inputs"] == {"script": "scripts/create.sh"}
    assert (Path(str(record.source_dir)) / "scripts" / "create.sh").read_text() == "echo created\n"


def test_a_directory_over_the_size_limit_is_refused_with_the_sizes(tempano: Tempano, tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = a_home_with_a_blueprint(home)
    tempano.settings = tempano.settings.model_copy(update={"max_blueprint_bytes": 1 << 20})
    with pytest.raises(ServiceError) as caught:
        tempano.upload_blueprint("whole", home)
    assert caught.value.status == 413
    assert caught.value.message.startswith("blueprint whole: its files take 8.0 MiB, more than the 1.0 MiB a blueprint")
    assert "TEMPANO_MAX_BLUEPRINT_BYTES" in caught.value.message
    with pytest.raises(NotFound):
        tempano.store.get_blueprint("whole")
    assert not (tempano.settings.blueprints_dir / "whole").exists()
    # Without the large file the directory is kept whole.
    (home / "big.iso").unlink()
    record = tempano.upload_blueprint("whole", home)
    assert "notes/diary.txt" in stored_files(record.source_dir)
    assert path.name == record.main_file


def test_the_cli_uploads_a_single_file_with_only_the_files_it_names(tmp_path: Path) -> None:
    path = a_home_with_a_blueprint(tmp_path / "home")
    filename, content = _pack(path)
    assert filename == "home.zip"
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        names = sorted(archive.namelist())
    assert "big.iso" not in names and "notes/diary.txt" not in names and "scripts/unused.sh" not in names
    assert {"main.yaml", "types/app_types.yaml", "scripts/create.sh", "TOSCA-Metadata/TOSCA.meta"} <= set(names)


def test_an_uploaded_document_cannot_import_the_servers_files(tempano: Tempano, tmp_path: Path) -> None:
    """What a remote user sends is confined to its upload: an import naming a server path is a located error,
    while the same file given by a path on this machine (the operator's own) may import beside it."""
    types = tmp_path / "server_types.yaml"
    types.write_text(
        "tosca_definitions_version: tosca_simple_yaml_1_3\n"
        "node_types:\n  my.Node:\n    derived_from: tempano.nodes.Root\n"
    )
    document = (
        f"tosca_definitions_version: tosca_simple_yaml_1_3\nimports:\n  - {types}\n"
        "topology_template:\n  node_templates:\n    app:\n      type: my.Node\n"
    )
    with pytest.raises(BlueprintError) as caught:
        tempano.upload_blueprint_bytes("sent", "sent.yaml", document.encode())
    assert any("points outside the blueprint" in e.message and e.line == 3 for e in caught.value.errors)
    with pytest.raises(BlueprintError):
        tempano.validate_blueprint_bytes("sent.yaml", document.encode())

    local = tmp_path / "local.yaml"
    local.write_text(document)
    assert tempano.upload_blueprint("local", local).plan["nodes"]["app"]["type"] == "my.Node"
