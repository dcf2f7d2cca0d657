"""The files a blueprint is made of: what must be kept when a single-file blueprint is stored.

A blueprint given as one YAML file lives in a directory that may hold anything (a home directory); only the files
it names are its own: the root template, its local imports (recursively), every file its plan names (operation
inputs such as ``script``/``playbook``, properties such as a node's ``playbook``: any string with a ``.`` or a
``/`` naming a file inside the blueprint directory) and the artifacts its templates declare. A playbook brings its directory's Ansible folders (``tasks/``, ``roles/``, ``templates/``, ...), or its
whole directory when that is a subdirectory of the blueprint, since Ansible resolves includes relative to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tempano.blueprints._blueprint import Blueprint
from tempano.blueprints._loader import is_url, resolve_written
from tempano.blueprints.plan import Plan

ANSIBLE_FOLDERS = (
    "roles",
    "tasks",
    "handlers",
    "templates",
    "files",
    "vars",
    "defaults",
    "group_vars",
    "host_vars",
    "library",
    "module_utils",
    "filter_plugins",
)
_PLAYBOOK_SUFFIXES = (".yaml", ".yml")
_LONGEST_PATH = 1024


def blueprint_files(blueprint: Blueprint, plan: Plan) -> list[str]:
    """The files ``blueprint`` (compiled into ``plan``) needs, as sorted POSIX paths relative to its base directory.

    Files outside the base directory are left out: the plan can only name files inside it.
    """
    base = blueprint.base_dir
    found: set[Path] = {blueprint.root_file, *blueprint.sources.local_imports}
    imports = set(found)
    roots = (blueprint.root_file.parent, base)
    # A file name has a suffix or a folder; other strings (names, addresses, flags) are not looked up.
    candidates = {
        text for text in (*_plan_strings(plan), *_declared_artifacts(blueprint)) if "." in text or "/" in text
    }
    for text in sorted(candidates):
        for start in roots:
            path = _file_inside(start, text, base)
            if path is not None:
                found.add(path)
                break
    for path in sorted(found - imports):
        if path.suffix.lower() in _PLAYBOOK_SUFFIXES:
            found.update(_playbook_companions(path, base))
    return sorted({path.relative_to(base).as_posix() for path in found if path.is_relative_to(base)})


def _file_inside(start: Path, text: str, base: Path) -> Path | None:
    if not text or len(text) > _LONGEST_PATH or "\n" in text or is_url(text):
        return None
    path = resolve_written(start, text)
    return path if path is not None and path.is_relative_to(base) and path != base and path.is_file() else None


def _plan_strings(plan: Plan) -> Iterator[str]:
    """Every string in the nodes' properties and operation inputs (where a plan names a file)."""
    for node in plan.nodes.values():
        yield from _strings(node.properties)
        for op in node.operations.values():
            yield from _strings(op.inputs)
        for rel in node.relationships:
            yield from _strings(rel.properties)
            for op in rel.operations.values():
                yield from _strings(op.inputs)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _declared_artifacts(blueprint: Blueprint) -> Iterator[str]:
    """The ``file`` of every artifact the node templates and the blueprint's own types declare."""
    topology = blueprint.template.get("topology_template")
    nodes = topology.get("node_templates") if isinstance(topology, Mapping) else None
    definitions: list[Any] = list(nodes.values()) if isinstance(nodes, Mapping) else []
    # The library's and profiles' types are named "<tempano ...>/file.yaml": they declare no files of ours.
    definitions.extend(t.definition for t in blueprint.sources.types.values() if not t.file.startswith("<"))
    for definition in definitions:
        artifacts = definition.get("artifacts") if isinstance(definition, Mapping) else None
        if not isinstance(artifacts, Mapping):
            continue
        for artifact in artifacts.values():
            file = artifact.get("file") if isinstance(artifact, Mapping) else artifact
            if isinstance(file, str):
                yield file


def _playbook_companions(playbook: Path, base: Path) -> Iterator[Path]:
    directory = playbook.parent
    folders = [directory] if directory != base else [directory / name for name in ANSIBLE_FOLDERS]
    for folder in folders:
        if folder.is_dir():
            for path in folder.rglob("*"):
                if path.is_file() and "__pycache__" not in path.parts and path.resolve().is_relative_to(base):
                    yield path.resolve()
