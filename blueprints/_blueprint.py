"""``load``: a blueprint file, directory or CSAR into a validated :class:`Blueprint`."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tempano.blueprints._csar import CSAR_DIR_PREFIX, extract_csar
from tempano.blueprints._errors import BlueprintCompileError, BlueprintLoadError, ErrorDetail
from tempano.blueprints._gc import paused_gc
from tempano.blueprints._loader import (
    ROOT_FILE_NAMES,
    SOL001_VNFD_TYPES,
    TYPE_SECTIONS,
    ImportResolver,
    SourceSet,
    bundled_sol001_types,
    display_name,
    library_sources,
    read_document,
)
from tempano.blueprints._normalize import normalize_for_parser
from tempano.blueprints._tosca import quoted_names, run_parser
from tempano.blueprints._yaml import DEFAULT_LIMITS, Limits, Path_, PositionMap, YamlDocument


@dataclass
class Blueprint:
    """A loaded, TOSCA-validated blueprint: its files, positions and merged types.

    tosca-parser's template is not kept: it only validates, and its objects form reference cycles (tens per node
    template) that would cost the cyclic GC a pass over them all when it is dropped later. Dropped as soon as it has
    validated, while the GC is paused, it goes with the first young collection, which scans those objects anyway.
    """

    root_file: Path
    """The root YAML file on disk."""
    base_dir: Path
    """Artifacts (playbooks, scripts) are relative to this directory."""
    file: str
    """The root file's name in messages."""
    document: YamlDocument
    """The root document as written (data and positions)."""
    sources: SourceSet
    """Every document read (root, imports, type library) and every type definition by name."""
    archive: Path | None = None
    """The CSAR this blueprint came from, if any (``base_dir`` then holds its extracted content)."""

    @property
    def template(self) -> Mapping[str, Any]:
        data = self.document.data
        return data if isinstance(data, Mapping) else {}

    @property
    def positions(self) -> PositionMap:
        return self.document.positions

    def cleanup(self) -> None:
        """Remove the directory a CSAR was extracted into (call it once artifacts are no longer needed)."""
        if self.archive is not None and self.base_dir.name.startswith(CSAR_DIR_PREFIX):
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def detail(self, path: Path_, message: str, entity: str = "") -> ErrorDetail:
        """An error located at ``path`` of the root document."""
        return self.positions.detail(path, message, entity)


def load(
    path: str | Path, *, allow_remote_imports: bool = False, limits: Limits = DEFAULT_LIMITS, confine: bool = False
) -> Blueprint:
    """Load and validate a blueprint: a YAML file, a directory holding one, or a CSAR (zip).

    A CSAR's imports always stay inside the archive; ``confine`` holds a file's or a directory's imports inside
    its directory too (for what a remote user sent: no import may read the server's other files).
    """
    with paused_gc():
        return _load(path, allow_remote_imports, limits, confine)


def _load(path: str | Path, allow_remote_imports: bool, limits: Limits, confine: bool) -> Blueprint:
    given = Path(path)
    try:
        is_dir = given.is_dir()
        exists = is_dir or given.exists()
    except OSError as exc:  # a name too long: the file system refuses to look (a NUL byte is just "not there")
        reason = exc.strerror or str(exc)
        raise BlueprintLoadError(
            [ErrorDetail(f"no file can have this path ({reason}); check the path", _shown(str(path)))]
        ) from None
    if is_dir:
        return _load_file(_root_in_directory(given, limits), given, allow_remote_imports, limits, confine=confine)
    if not exists:
        raise BlueprintLoadError([ErrorDetail("no such file or directory; check the path", _shown(str(path)))])
    if given.suffix.lower() in {".zip", ".csar"} or _looks_like_zip(given):
        # Extracted into a fresh temporary directory: Blueprint.cleanup() removes it.
        extracted, root = extract_csar(given, limits)
        archive_name = display_name(given)
        inside = extracted.resolve()

        def namer(member: Path) -> str:
            resolved = member.resolve()
            if resolved.is_relative_to(inside):
                return f"{archive_name}/{resolved.relative_to(inside).as_posix()}"
            return display_name(member)

        try:
            blueprint = _load_file(root, extracted, allow_remote_imports, limits, confine=True, namer=namer)
        except BaseException:
            shutil.rmtree(extracted, ignore_errors=True)  # no Blueprint to clean up after
            raise
        blueprint.archive = given
        return blueprint
    return _load_file(given, given.parent, allow_remote_imports, limits, confine=confine)


def _looks_like_zip(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _shown(path: str) -> str:
    """A path as messages show it: a very long one by its ends."""
    return path if len(path) <= 200 else f"{path[:60]}...{path[-60:]} ({len(path)} characters)"


_ROOT_MARKERS = (b"tosca_definitions_version", b"topology_template")
"""A directory's blueprint, when no file has a conventional name, is the one YAML file that writes both."""
_SCAN_CHUNK = 16 * 1024


def _writes_root_markers(path: Path, limit: int) -> bool:
    """Whether the file writes both :data:`_ROOT_MARKERS`; read until it has shown both, and never past ``limit``
    bytes (loading refuses a larger file anyway). The markers are ASCII, so bytes answer as text would."""
    missing = set(_ROOT_MARKERS)
    keep = max(map(len, _ROOT_MARKERS)) - 1  # a marker may straddle two chunks
    tail = b""
    seen = 0
    try:
        with path.open("rb") as handle:
            while missing and seen < limit:
                chunk = handle.read(min(_SCAN_CHUNK, limit - seen))
                if not chunk:
                    break
                seen += len(chunk)
                window = tail + chunk
                missing = {marker for marker in missing if marker not in window}
                tail = window[-keep:]
    except OSError:
        return False
    return not missing


def _root_in_directory(directory: Path, limits: Limits) -> Path:
    for name in ROOT_FILE_NAMES:
        if (directory / name).is_file():
            return directory / name
    candidates = [
        path
        for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
        if _writes_root_markers(path, limits.max_file_bytes)
    ]
    if len(candidates) == 1:
        return candidates[0]
    names = ", ".join(p.name for p in candidates) or "none"
    raise BlueprintLoadError(
        [
            ErrorDetail(
                f"cannot tell which YAML file is the blueprint (candidates: {names}); "
                f"name it {ROOT_FILE_NAMES[0]} or pass the file itself",
                display_name(directory),
            )
        ]
    )


def _load_file(
    root: Path,
    base_dir: Path,
    allow_remote: bool,
    limits: Limits,
    *,
    confine: bool,
    namer: Callable[[Path], str] = display_name,
) -> Blueprint:
    sources = library_sources()
    display = namer(root)
    document = read_document(root, display, limits, sources)
    if not isinstance(document.data, Mapping):
        raise BlueprintLoadError(
            [ErrorDetail("the blueprint must be a YAML mapping with tosca_definitions_version", display, 1, 1)]
        )
    if "heat_template_version" in document.data and "tosca_definitions_version" not in document.data:
        raise BlueprintLoadError(
            [
                document.positions.detail(
                    ("heat_template_version",),
                    "this is an OpenStack Heat (HOT) template, not a TOSCA service template: tempano deploys TOSCA "
                    "blueprints; describe its resources with the tempano.nodes.openstack.* types instead",
                )
            ]
        )
    sources.documents[display] = document
    resolver = ImportResolver(
        sources, base_dir=base_dir, confine=confine, allow_remote=allow_remote, limits=limits, namer=namer
    )
    resolver.resolve(document, root.resolve())
    # The root's own types win over imported ones, which win over the library.
    sources.add_types(document)
    sources.errors.extend(_unimported_sol001_types(document, sources))
    if sources.errors:
        raise BlueprintLoadError(sources.errors)
    blueprint = Blueprint(root.resolve(), base_dir.resolve(), display, document, sources)
    parser_input = _parser_input(document.data, sources)
    _, errors = run_parser(parser_input, lambda message: locate(blueprint, message))
    if errors:
        raise BlueprintCompileError(errors)
    return blueprint


_SOL001_PREFIXES = ("tosca.nodes.nfv.", "tosca.groups.nfv.", "tosca.policies.nfv.")


def _unimported_sol001_types(document: YamlDocument, sources: SourceSet) -> list[ErrorDetail]:
    """Templates of an ETSI SOL001 type that nothing the blueprint imports defines.

    tosca_simple_yaml_* defines no NFV types (only tosca_simple_profile_for_nfv_1_0_0 has some, tosca-parser's own):
    a SOL001 VNFD imports their definitions, and tempano answers that import with its own copy.
    """
    data = document.data
    if not isinstance(data, Mapping) or not str(data.get("tosca_definitions_version", "")).startswith(
        "tosca_simple_yaml"
    ):
        return []
    topology = data.get("topology_template")
    if not isinstance(topology, Mapping):
        return []
    typed: list[tuple[Path_, str, Any]] = []
    for section in ("node_templates", "groups"):
        entries = topology.get(section)
        if isinstance(entries, Mapping):
            typed.extend((("topology_template", section, name), str(name), t) for name, t in entries.items())
    policies = topology.get("policies")
    if isinstance(policies, list):
        for index, entry in enumerate(policies):
            if isinstance(entry, Mapping):
                typed.extend(
                    (("topology_template", "policies", index, name), str(name), t) for name, t in entry.items()
                )
    errors = []
    for path, name, template in typed:
        type_name = template.get("type") if isinstance(template, Mapping) else None
        if not isinstance(type_name, str) or not type_name.startswith(_SOL001_PREFIXES) or type_name in sources.types:
            continue
        if type_name in bundled_sol001_types():
            advice = (
                f"import its definitions, e.g. `imports: [{SOL001_VNFD_TYPES}]` (tempano answers that import with "
                "its own copy)"
            )
        else:
            advice = "import a file that defines it (tempano's own SOL001 subset does not)"
        message = f"type {type_name!r} is an ETSI SOL001 (NFV) type, which the blueprint does not import: {advice}"
        errors.append(document.positions.detail((*path, "type"), message, name))
    return errors


def _parser_input(data: Mapping[str, Any], sources: SourceSet) -> dict[str, Any]:
    """The template as tosca-parser should see it: every type inlined, imports and workflows removed."""
    template = {k: v for k, v in data.items() if k not in {"imports", "repositories", *TYPE_SECTIONS}}
    for type_def in sources.types.values():
        template.setdefault(type_def.section, {})[type_def.name] = type_def.definition
    topology = template.get("topology_template")
    if isinstance(topology, Mapping):
        # tosca-parser 2.15 has no support for workflows: the compiler handles them.
        template["topology_template"] = {k: v for k, v in topology.items() if k != "workflows"}
    # tosca-parser edits some of what it is given: it gets its own copy, ours stays as written.
    return normalize_for_parser(_copy(template))


def _copy(value: Any) -> Any:
    """A deep copy of YAML data (dicts, lists, scalars): several times faster than copy.deepcopy."""
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value


_TOPOLOGY_SECTIONS = ("node_templates", "inputs", "outputs", "groups", "relationship_templates")


def locate(blueprint: Blueprint, message: str) -> ErrorDetail:
    """Place a tosca-parser message at the entity it names (it gives no positions of its own)."""
    topology = blueprint.template.get("topology_template")
    topology = topology if isinstance(topology, Mapping) else {}
    names = quoted_names(message)
    for name in names:
        for section in _TOPOLOGY_SECTIONS:
            entries = topology.get(section)
            if isinstance(entries, Mapping) and name in entries:
                path: Path_ = ("topology_template", section, name)
                # Narrow down to where the entity writes another quoted word (a bad target, a field).
                for other in names:
                    narrower = _first_mention(entries[name], other, path) if other != name else None
                    if narrower is not None:
                        return blueprint.detail(narrower, message, name)
                return blueprint.detail(path, message, name)
        policies = topology.get("policies")
        if isinstance(policies, list):
            for index, policy in enumerate(policies):
                if isinstance(policy, Mapping) and name in policy:
                    return blueprint.detail(("topology_template", "policies", index, name), message, name)
    for name in names:
        type_def = blueprint.sources.types.get(name)
        if type_def is not None:
            doc = blueprint.sources.documents.get(type_def.file)
            if doc is not None:
                return doc.positions.detail(type_def.path, message, name)
    # Otherwise the first place the root document writes one of the quoted words (an input name, a value).
    for name in names:
        mention = _first_mention(blueprint.template, name, ())
        if mention is not None:
            in_node = len(mention) > 2 and mention[:2] == ("topology_template", "node_templates")
            return blueprint.detail(mention, message, str(mention[2]) if in_node else "")
    return blueprint.detail((), message)


def _first_mention(value: Any, word: str, path: Path_) -> Path_ | None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == word:
                return (*path, key)
            found = _first_mention(item, word, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_mention(item, word, (*path, index))
            if found is not None:
                return found
    elif isinstance(value, str) and value == word:
        return path
    return None
