"""Finding and reading a blueprint's files: the root YAML, its imports, and tempano's type library."""

from __future__ import annotations

import functools
import os
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tempano.blueprints._errors import BlueprintLoadError, ErrorDetail
from tempano.blueprints._yaml import DEFAULT_LIMITS, Limits, Path_, YamlDocument, load_yaml_bytes

TYPE_SECTIONS = (
    "artifact_types",
    "data_types",
    "capability_types",
    "interface_types",
    "relationship_types",
    "node_types",
    "group_types",
    "policy_types",
)
TYPES_DIR = Path(__file__).parent / "types"
PROFILES_DIR = Path(__file__).parent / "profiles"
ROOT_FILE_NAMES = ("blueprint.yaml", "main.yaml", "service.yaml", "template.yaml")

# Profile type files, imported by well-known URL or bare name, answered by our own local definitions (see
# profiles/README.md), so a vendor's VNFD compiles offline and without trusting the network.
_BUNDLED_PROFILES = frozenset(
    {"etsi_nfv_sol001_common_types.yaml", "etsi_nfv_sol001_vnfd_types.yaml", "etsi_nfv_sol001_nsd_types.yaml"}
)


def _bundled_profile(name: str) -> Path | None:
    """tempano's own copy of the profile file ``name``, if it has one."""
    path = PROFILES_DIR / name
    return path if name in _BUNDLED_PROFILES and path.is_file() else None


@dataclass(frozen=True)
class TypeDef:
    """One type definition and where it was written."""

    name: str
    section: str
    definition: Mapping[str, Any]
    file: str
    path: Path_
    """Key path of the definition inside ``file``."""


@dataclass
class SourceSet:
    """Every document a blueprint is made of, and the type definitions they contribute."""

    documents: dict[str, YamlDocument] = field(default_factory=dict)
    types: dict[str, TypeDef] = field(default_factory=dict)
    """Every type by name, whatever its section (TOSCA type names are unique across sections)."""
    errors: list[ErrorDetail] = field(default_factory=list)
    total_bytes: int = 0
    local_imports: set[Path] = field(default_factory=set)
    """The blueprint's own imported files on disk (resolved; not the library, profiles or URLs)."""

    def add_types(self, doc: YamlDocument, prefix: str | None = None) -> None:
        data = doc.data if isinstance(doc.data, Mapping) else {}
        for section in TYPE_SECTIONS:
            defs = data.get(section)
            if defs is None:
                continue
            if not isinstance(defs, Mapping):
                self.errors.append(doc.positions.detail((section,), f"{section} must be a mapping of types"))
                continue
            for name, definition in defs.items():
                if not isinstance(definition, Mapping):
                    definition = {} if definition is None else definition
                if not isinstance(definition, Mapping):
                    self.errors.append(
                        doc.positions.detail((section, name), "a type definition must be a mapping", name)
                    )
                    continue
                full = f"{prefix}.{name}" if prefix else str(name)
                self.types[full] = TypeDef(full, section, definition, doc.file, (section, name))


def display_name(path: Path) -> str:
    """How a file on disk is named in messages: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def resolve_written(base: Path, written: str) -> Path | None:
    """Where a path the blueprint wrote leads from ``base`` (resolved), or None where no file can be: a NUL byte, a
    name too long, a directory we may not enter. The file system raises for those instead of answering "no such
    file"; checked here, they become the caller's located error instead of an exception."""
    try:
        path = (base / written).resolve()
        path.is_file()  # a stat: raises OSError for the names and places above
    except (OSError, ValueError):
        return None
    return path


def read_document(path: Path, display: str, limits: Limits, sources: SourceSet) -> YamlDocument:
    """Read and parse one file, within the size limits."""
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise BlueprintLoadError(
                [ErrorDetail(f"the file is larger than {limits.max_file_bytes} bytes; split it", display)]
            )
        sources.total_bytes += size
        if sources.total_bytes > limits.max_total_bytes:
            raise BlueprintLoadError(
                [ErrorDetail(f"the blueprint's files exceed {limits.max_total_bytes} bytes in all", display)]
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise BlueprintLoadError([ErrorDetail(f"cannot read the file: {exc.strerror}", display)]) from None
    return load_yaml_bytes(raw, display, limits)


@functools.lru_cache(maxsize=4)
def _library(directory: str, signature: tuple[tuple[str, int, int], ...]) -> tuple[YamlDocument, ...]:
    docs = []
    for name, _, _ in signature:
        path = Path(directory) / name
        docs.append(load_yaml_bytes(path.read_bytes(), f"<tempano types>/{name}"))
    return tuple(docs)


def type_library() -> tuple[YamlDocument, ...]:
    """Every file of blueprints/types/, parsed once per process (again if a file changes)."""
    files = sorted(TYPES_DIR.glob("*.yaml"))
    signature = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    return _library(str(TYPES_DIR), signature)


def is_url(text: str) -> bool:
    return urllib.parse.urlsplit(text).scheme in {"http", "https", "ftp", "file"}


class ImportResolver:
    """Reads a document's imports, recursively, into a :class:`SourceSet`."""

    def __init__(
        self,
        sources: SourceSet,
        *,
        base_dir: Path,
        confine: bool,
        allow_remote: bool,
        limits: Limits = DEFAULT_LIMITS,
        namer: Callable[[Path], str] = display_name,
    ) -> None:
        self._namer = namer
        self._sources = sources
        self._base = base_dir.resolve()
        self._confine = confine
        self._allow_remote = allow_remote
        self._limits = limits
        self._seen: set[str] = set()

    def resolve(self, doc: YamlDocument, here: Path | str) -> None:
        """Load every import of ``doc`` (which lives at ``here``: a local path or a URL)."""
        data = doc.data if isinstance(doc.data, Mapping) else {}
        imports = data.get("imports")
        if imports is None:
            return
        if not isinstance(imports, list):
            self._sources.errors.append(doc.positions.detail(("imports",), "imports must be a list"))
            return
        repositories = data.get("repositories") if isinstance(data.get("repositories"), Mapping) else {}
        for index, entry in enumerate(imports):
            for target, prefix in self._entries(doc, index, entry, repositories or {}):
                self._load(doc, ("imports", index), target, prefix, here)

    def _entries(
        self, doc: YamlDocument, index: int, entry: Any, repositories: Mapping[str, Any]
    ) -> list[tuple[str, str | None]]:
        where = ("imports", index)
        if isinstance(entry, str):
            return [(entry, None)]
        if isinstance(entry, Mapping):
            if "file" in entry:
                return [self._definition(doc, where, entry, repositories)]
            # TOSCA 1.0 style: a list of {name: file-or-definition}
            found: list[tuple[str, str | None]] = []
            for name, value in entry.items():
                if isinstance(value, str):
                    found.append((value, None))
                elif isinstance(value, Mapping) and "file" in value:
                    found.append(self._definition(doc, (*where, name), value, repositories))
                else:
                    self._sources.errors.append(
                        doc.positions.detail((*where, name), "an import needs a file name", str(name))
                    )
            return found
        self._sources.errors.append(doc.positions.detail(where, "an import must be a file name or a mapping"))
        return []

    def _definition(
        self, doc: YamlDocument, where: Path_, entry: Mapping[str, Any], repositories: Mapping[str, Any]
    ) -> tuple[str, str | None]:
        target = str(entry.get("file"))
        repo = entry.get("repository")
        if repo is not None:
            definition = repositories.get(str(repo))
            url = definition.get("url") if isinstance(definition, Mapping) else definition
            if not isinstance(url, str):
                self._sources.errors.append(
                    doc.positions.detail(where, f"the import names repository {repo!r}, which is not defined")
                )
            else:
                target = url.rstrip("/") + "/" + target.lstrip("/")
        prefix = entry.get("namespace_prefix")
        return target, str(prefix) if prefix else None

    def _load(self, doc: YamlDocument, where: Path_, target: str, prefix: str | None, here: Path | str) -> None:
        bundled = _bundled_profile(target.rstrip("/").rsplit("/", 1)[-1]) if is_url(target) else None
        if bundled is not None:
            self._read_local(doc, where, bundled, f"<tempano profiles>/{bundled.name}", prefix)
            return
        if is_url(target) or (isinstance(here, str) and is_url(here)):
            url = target if is_url(target) else urllib.parse.urljoin(str(here), target)
            self._read_remote(doc, where, url, prefix)
            return
        base = Path(here).parent if isinstance(here, Path) else self._base
        path = resolve_written(base, target)
        if path is None:
            self._sources.errors.append(doc.positions.detail(where, f"the import {target!r} cannot name a file"))
            return
        if self._confine and not path.is_relative_to(self._base):
            self._sources.errors.append(
                doc.positions.detail(
                    where,
                    f"the import {target!r} points outside the blueprint: an archive or an uploaded document may "
                    "import only its own files; put the imported file in the CSAR",
                )
            )
            return
        if not path.is_file():
            # tosca-parser's fallback, relied on by published templates: "custom_types/x.yaml" imported from a
            # file that already lives in custom_types/ means the sibling x.yaml.
            head, _, tail = target.replace("\\", "/").rpartition("/")
            sibling = (base / tail).resolve()
            if head and base.as_posix().endswith(head) and sibling.is_file():
                path = sibling
        if not path.is_file():
            # A VNFD importing the SOL001 type files by bare name but not shipping them gets tempano's own.
            bundled = _bundled_profile(path.name)
            if bundled is not None:
                self._read_local(doc, where, bundled, f"<tempano profiles>/{bundled.name}", prefix)
                return
            self._sources.errors.append(
                doc.positions.detail(where, f"the imported file {target!r} does not exist (looked at {path})")
            )
            return
        self._sources.local_imports.add(path)
        self._read_local(doc, where, path, self._namer(path), prefix)

    def _read_local(self, doc: YamlDocument, where: Path_, path: Path, display: str, prefix: str | None) -> None:
        key = str(path)
        if key in self._seen:
            return
        self._seen.add(key)
        if len(self._sources.documents) >= self._limits.max_files:
            self._sources.errors.append(
                doc.positions.detail(where, f"the blueprint imports more than {self._limits.max_files} files")
            )
            return
        self._add(lambda: read_document(path, display, self._limits, self._sources), display, prefix, path)

    def _read_remote(self, doc: YamlDocument, where: Path_, url: str, prefix: str | None) -> None:
        if not self._allow_remote:
            self._sources.errors.append(
                doc.positions.detail(
                    where,
                    f"remote import {url!r} refused: save the file next to the blueprint and import it by "
                    "relative path, or allow remote imports explicitly",
                )
            )
            return
        if url in self._seen:
            return
        self._seen.add(url)
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                raw = response.read(self._limits.max_file_bytes + 1)
        except (OSError, ValueError) as exc:
            self._sources.errors.append(doc.positions.detail(where, f"cannot fetch {url!r}: {exc}"))
            return
        self._add(lambda: load_yaml_bytes(raw, url, self._limits), url, prefix, url)

    def _add(self, read: Callable[[], YamlDocument], key: str, prefix: str | None, here: Path | str) -> None:
        """Add the document ``read`` returns (named ``key``), its types and its imports."""
        try:
            imported = read()
        except BlueprintLoadError as exc:
            self._sources.errors.extend(exc.errors)
            return
        self._sources.documents[key] = imported
        self._sources.add_types(imported, prefix)
        self.resolve(imported, here)


SOL001_VNFD_TYPES = "etsi_nfv_sol001_vnfd_types.yaml"


@functools.cache
def bundled_sol001_types() -> frozenset[str]:
    """Every type name tempano's own SOL001 subset (profiles/) defines."""
    names: set[str] = set()
    for path in PROFILES_DIR.glob("etsi_nfv_sol001_*.yaml"):
        data = load_yaml_bytes(path.read_bytes(), f"<tempano profiles>/{path.name}").data
        if isinstance(data, Mapping):
            for section in TYPE_SECTIONS:
                defs = data.get(section)
                if isinstance(defs, Mapping):
                    names.update(str(name) for name in defs)
    return frozenset(names)


def library_sources() -> SourceSet:
    """A source set holding only tempano's type library."""
    sources = SourceSet()
    for doc in type_library():
        sources.documents[doc.file] = doc
        sources.add_types(doc)
    return sources
