"""CSAR archives (TOSCA CSAR, ETSI SOL004): safe extraction and the root template.

The root is TOSCA-Metadata/TOSCA.meta's ``Entry-Definitions`` or, without metadata, the only YAML file at the
top of the archive. Members are checked before anything is written: no absolute paths, no ``..``, no links,
bounded sizes (zip bombs), so an archive cannot write outside its extraction directory (zip-slip).
"""

from __future__ import annotations

import lzma
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tempano.blueprints._errors import BlueprintLoadError, ErrorDetail
from tempano.blueprints._loader import display_name, resolve_written
from tempano.blueprints._yaml import Limits

META = "TOSCA-Metadata/TOSCA.meta"
CSAR_DIR_PREFIX = "tempano-csar-"
MAX_MEMBERS = 10_000


def extract_csar(archive: Path, limits: Limits) -> tuple[Path, Path]:
    """Extract ``archive`` into a new temporary directory; returns (directory, root template path).

    The directory is removed again when the archive is refused.
    """
    name = display_name(archive)
    target = Path(tempfile.mkdtemp(prefix=CSAR_DIR_PREFIX))
    try:
        members = _extract(archive, name, target, limits)
        return target, _root(name, target, members)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _extract(archive: Path, name: str, target: Path, limits: Limits) -> set[str]:
    """Write the members into ``target``; returns their names."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            _check_members(name, members, limits)
            for info in members:
                if info.is_dir():
                    continue
                dest = target.joinpath(*PurePosixPath(info.filename).parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, dest.open("wb") as out:
                    remaining = limits.max_total_bytes
                    while chunk := src.read(1 << 16):
                        remaining -= len(chunk)
                        if remaining < 0:
                            raise BlueprintLoadError(
                                [ErrorDetail(f"{info.filename} expands beyond the size limit", name)]
                            )
                        out.write(chunk)
    except zipfile.BadZipFile as exc:
        raise BlueprintLoadError([ErrorDetail(f"not a valid CSAR (zip) archive: {exc}", name)]) from None
    except (RuntimeError, EOFError, zlib.error, lzma.LZMAError) as exc:
        # zipfile's answers to encrypted members (RuntimeError), unsupported compression (NotImplementedError)
        # and damaged compressed data.
        raise BlueprintLoadError(
            [ErrorDetail(f"cannot extract the archive ({exc}); rebuild it unencrypted, stored or deflated", name)]
        ) from None
    except OSError as exc:
        raise BlueprintLoadError([ErrorDetail(f"cannot read the archive: {exc}", name)]) from None
    return {info.filename for info in members}


def _check_members(name: str, members: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(members) > MAX_MEMBERS:
        raise BlueprintLoadError([ErrorDetail(f"the archive has more than {MAX_MEMBERS} members", name)])
    total = 0
    for info in members:
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
            raise BlueprintLoadError(
                [
                    ErrorDetail(
                        f"archive member {info.filename!r} would be written outside the archive (zip-slip); "
                        "rebuild the CSAR with relative paths",
                        name,
                    )
                ]
            )
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise BlueprintLoadError(
                [ErrorDetail(f"archive member {info.filename!r} is a symbolic link; links are refused", name)]
            )
        total += info.file_size
        if total > limits.max_total_bytes:
            raise BlueprintLoadError(
                [ErrorDetail(f"the archive expands to more than {limits.max_total_bytes} bytes", name)]
            )


def _root(name: str, directory: Path, members: set[str]) -> Path:
    if META in members:
        entry = None
        for line in (directory / META).read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Entry-Definitions":
                entry = value.strip()
        if not entry:
            raise BlueprintLoadError([ErrorDetail(f"{META} has no Entry-Definitions line; add one", name)])
        root = resolve_written(directory, entry)
        if root is None or not root.is_relative_to(directory.resolve()) or not root.is_file():
            raise BlueprintLoadError(
                [ErrorDetail(f"Entry-Definitions {entry!r} in {META} is not a file of the archive", name)]
            )
        return root
    top = sorted(p for p in directory.iterdir() if p.suffix.lower() in {".yaml", ".yml"} and p.is_file())
    if len(top) == 1:
        return top[0]
    found = ", ".join(p.name for p in top) or "none"
    raise BlueprintLoadError(
        [
            ErrorDetail(
                f"the archive has no {META} and not exactly one YAML file at its top (found: {found}); "
                "add TOSCA-Metadata/TOSCA.meta with Entry-Definitions",
                name,
            )
        ]
    )
