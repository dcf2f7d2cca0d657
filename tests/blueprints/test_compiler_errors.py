"""Every bad blueprint is a BlueprintError naming file:line:col and the entity, never another exception."""

from __future__ import annotations

import io
import struct
import tempfile
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tempano.blueprints import BlueprintError, compile, load

HEADER = "tosca_definitions_version: tosca_simple_yaml_1_3\n"


def write(tmp_path: Path, text: str, name: str = "bp.yaml") -> Path:
    """Write a blueprint: the TOSCA header on line 1, then ``text`` dedented (so line 2 is empty)."""
    path = tmp_path / name
    body = textwrap.dedent(text)
    path.write_text(body if body.startswith("tosca_definitions_version") else HEADER + body)
    return path


def errors_of(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(BlueprintError) as caught:
        compile(load(path, **kwargs))  # type: ignore[arg-type]
    return str(caught.value).splitlines()


def test_duplicate_key_is_located(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        topology_template:
          node_templates:
            a:
              type: tempano.nodes.Logger
              type: tosca.nodes.Root
        """,
    )
    (line,) = errors_of(path)
    assert line == f"{path}:7:7: duplicate key 'type' in this mapping; remove or rename one of them"


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "topology_template:\n  node_templates: [a\n")
    (line,) = errors_of(path)
    assert line.startswith(f"{path}:4:1: YAML syntax error: did not find expected ',' or ']'")


def test_a_control_character_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, "description: a\x07b\n")
    (line,) = errors_of(path)
    assert line == f"{path}:2:15: YAML syntax error: character #x0007 is not allowed; fix the YAML at this place"


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        prev, cur = chr(96 + level), chr(97 + level)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    path = write(tmp_path, HEADER + "\n".join(lines) + "\n")
    (line,) = errors_of(path)
    assert "YAML aliases expand to more than" in line


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "a: &a [1, *a]\n")
    assert "recursive" in errors_of(path)[0]


def test_remote_import_refused_unless_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "imports:\n  - https://example.invalid/types.yaml\n")
    (line,) = errors_of(path)
    assert line.startswith(f"{path}:3:5:")
    assert "remote import 'https://example.invalid/types.yaml' refused" in line


def test_unknown_node_type_is_located(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        topology_template:
          node_templates:
            web:
              type: acme.nodes.Nope
        """,
    )
    lines = errors_of(path)
    assert any(line.startswith(f"{path}:6:7: web:") and "acme.nodes.Nope" in line for line in lines), lines


def test_unknown_requirement_target_is_located(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        topology_template:
          node_templates:
            web:
              type: tempano.nodes.Logger
              requirements:
                - dependency: ghost
        """,
    )
    lines = errors_of(path)
    assert any(line.startswith(f"{path}:") and "web" in line and "ghost" in line for line in lines), lines


def test_dependency_cycle_names_the_cycle(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        topology_template:
          node_templates:
            a:
              type: tempano.nodes.Logger
              requirements: [{dependency: b}]
            b:
              type: tempano.nodes.Logger
              requirements: [{dependency: a}]
        """,
    )
    (line,) = errors_of(path)
    assert line.startswith(f"{path}:7:7: a: the requirements form a dependency cycle: a -> b -> a")


def test_get_attribute_on_unknown_node_is_a_compile_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        topology_template:
          node_templates:
            a:
              type: tempano.nodes.Logger
          outputs:
            x:
              value: { get_attribute: [ ghost, ip ] }
        """,
    )
    lines = errors_of(path)
    assert any("ghost" in line and line.startswith(f"{path}:") for line in lines), lines


def test_get_property_of_unknown_property(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        topology_template:
          node_templates:
            a:
              type: tempano.nodes.Logger
              interfaces:
                Standard:
                  create:
                    implementation: builtin.log
                    inputs:
                      message: { get_property: [ SELF, colour ] }
        """,
    )
    lines = errors_of(path)
    # tosca-parser sees it first; the error is placed where the node writes the unknown name.
    assert any(line.startswith(f"{path}:12:48: a:") and '"colour"' in line for line in lines), lines


def test_missing_plugin_operation_and_artifact(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        topology_template:
          node_templates:
            a:
              type: tempano.nodes.Logger
              interfaces:
                Standard:
                  create: builtin.no_such_operation
                  configure: playbooks/missing.yaml
        """,
    )
    lines = errors_of(path)
    assert any(
        line.startswith(f"{path}:9:11: a: Standard.create")
        and "no installed plugin" in line
        and "builtin.no_such_operation" in line
        for line in lines
    ), lines
    assert any(
        line.startswith(f"{path}:10:11: a: Standard.configure") and "playbooks/missing.yaml" in line for line in lines
    ), lines


def test_tosca_parser_crash_becomes_blueprint_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        node_types:
          my.T:
            derived_from: tosca.nodes.Root
            properties: [not, a, mapping]
        topology_template:
          node_templates:
            a:
              type: my.T
        """,
    )
    assert errors_of(path)


def test_tosca_parser_validation_error_is_located_at_the_entity(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        topology_template:
          node_templates:
            a:
              type: tempano.nodes.Logger
              properties:
                colour: red
        """,
    )
    lines = errors_of(path)
    assert any(line.startswith(f"{path}:7:7: a:") and "colour" in line for line in lines), lines


def test_zip_slip_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.csar"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("bp.yaml", HEADER)
        zf.writestr("../../escape.sh", "echo owned")
    (line,) = errors_of(archive)
    assert "evil.csar" in line and "zip-slip" in line
    assert not (tmp_path.parent / "escape.sh").exists()


def test_missing_file(tmp_path: Path) -> None:
    (line,) = errors_of(tmp_path / "nope.yaml")
    assert "no such file" in line


def test_a_heat_template_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text("description: a stack\nheat_template_version: 2018-08-31\nresources: {}\n")
    assert errors_of(path) == [
        f"{path}:2:1: this is an OpenStack Heat (HOT) template, not a TOSCA service template: tempano deploys "
        "TOSCA blueprints; describe its resources with the tempano.nodes.openstack.* types instead"
    ]


# Names the file system refuses with an exception (ValueError for a NUL byte, OSError for a name too long) rather
# than "no such file".
IMPOSSIBLE_NAMES = pytest.mark.parametrize("name", ["a\\0b.yaml", "x" * 300 + ".yaml"], ids=["nul", "too-long"])


@IMPOSSIBLE_NAMES
def test_a_blueprint_path_no_file_can_have_is_refused(tmp_path: Path, name: str) -> None:
    (line,) = errors_of(tmp_path / name.replace("\\0", "\0"))
    # a NUL byte is "not there" to the file system; a name too long cannot even be looked up
    expected = "no such file or directory" if "\\0" in name else "no file can have this path (File name too long)"
    assert line.endswith(f": {expected}; check the path"), line


def test_a_very_long_path_is_shown_by_its_ends(tmp_path: Path) -> None:
    path = tmp_path / ("a" * 5000)
    (line,) = errors_of(path)
    assert line == (
        f"{str(path)[:60]}...{'a' * 60} ({len(str(path))} characters): no file can have this path (File name too "
        "long); check the path"
    )


def test_a_directory_blueprint_is_found_reading_no_more_than_it_needs(tmp_path: Path) -> None:
    """Without a conventional name, the blueprint is the one YAML file writing both tosca_definitions_version and
    topology_template: each file is read until it has shown both, not whole."""
    io_counters = Path("/proc/self/io")
    if not io_counters.exists():
        pytest.skip("needs Linux's /proc/self/io")
    padding = ("# " + "x" * 98 + "\n") * 200_000  # 20 MB after the markers
    for name in ("one.yaml", "two.yaml"):
        (tmp_path / name).write_text(HEADER + "topology_template: {}\n" + padding)
    errors_of(tmp_path / "nope.yaml")  # whatever loading imports is imported by now

    def bytes_read() -> int:
        counters = dict(line.split(": ") for line in io_counters.read_text().splitlines())
        return int(counters["rchar"])

    before = bytes_read()
    (line,) = errors_of(tmp_path)
    assert "cannot tell which YAML file is the blueprint (candidates: one.yaml, two.yaml)" in line
    assert bytes_read() - before < 1_000_000


def test_a_directory_blueprint_is_found_when_its_topology_is_far_down(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("tosca_definitions_version: not a blueprint\n")
    # topology_template starts 7 bytes before 16 KiB: where a read in pieces of a power of two splits it.
    comment = "#" * (16 * 1024 - 7 - len(HEADER) - 1) + "\n"
    blueprint = HEADER + comment + "topology_template:\n  node_templates: {}\n"
    assert blueprint.index("topology_template") == 16 * 1024 - 7
    (tmp_path / "service_x.yml").write_text(blueprint)
    assert load(tmp_path).root_file.name == "service_x.yml"


@IMPOSSIBLE_NAMES
def test_an_import_no_file_can_have_is_located(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, HEADER + f'imports:\n  - "{name}"\n')
    (line,) = errors_of(path)
    assert line.startswith(f"{path}:3:5:") and "cannot name a file" in line, line


@IMPOSSIBLE_NAMES
def test_an_artifact_no_file_can_have_is_located(tmp_path: Path, name: str) -> None:
    path = write(
        tmp_path,
        f"""
        topology_template:
          node_templates:
            a:
              type: tempano.nodes.Logger
              interfaces:
                Standard:
                  configure: "{name}"
        """,
    )
    (line,) = errors_of(path)
    assert line.startswith(f"{path}:9:11: a: Standard.configure") and "does not exist" in line, line


@IMPOSSIBLE_NAMES
def test_a_csar_entry_no_file_can_have_is_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "odd.csar"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("TOSCA-Metadata/TOSCA.meta", f"Entry-Definitions: {name}\n".replace("\\0", "\0"))
        zf.writestr("bp.yaml", HEADER)
    (line,) = errors_of(archive)
    assert "odd.csar" in line and "is not a file of the archive" in line, line


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The directory temporary directories (CSAR extractions) are made in during the test."""
    directory = tmp_path / "scratch"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


def _encrypted(data: bytearray) -> None:
    data[6] |= 1  # the encryption flag, in the local and the central header
    data[data.find(b"PK\x01\x02") + 8] |= 1


def _unknown_compression(data: bytearray) -> None:
    struct.pack_into("<H", data, 8, 99)
    struct.pack_into("<H", data, data.find(b"PK\x01\x02") + 10, 99)


def _damaged_data(data: bytearray) -> None:
    for index in range(40, 60):
        data[index] ^= 0xFF


@pytest.mark.parametrize("damage", [_encrypted, _unknown_compression, _damaged_data])
def test_an_archive_that_cannot_be_extracted_is_refused(
    tmp_path: Path, scratch: Path, damage: Callable[[bytearray], None]
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bp.yaml", HEADER * 20)
    data = bytearray(buffer.getvalue())
    damage(data)
    archive = tmp_path / "damaged.csar"
    archive.write_bytes(data)
    (line,) = errors_of(archive)
    assert line.startswith(f"{archive}: cannot extract the archive"), line
    assert not any(scratch.iterdir())


@pytest.mark.parametrize(
    "members",
    [
        {"TOSCA-Metadata/TOSCA.meta": "TOSCA-Meta-File-Version: 1.0\n"},  # no Entry-Definitions
        {"bp.yaml": HEADER + "topology_template:\n  node_templates:\n    a:\n      type: acme.Nope\n"},
    ],
    ids=["no-root", "invalid"],
)
def test_a_refused_archive_leaves_no_extraction(tmp_path: Path, scratch: Path, members: dict[str, str]) -> None:
    archive = tmp_path / "bad.csar"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    assert errors_of(archive)
    assert not any(scratch.iterdir())
