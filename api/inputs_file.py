"""The YAML file of names and values that CLI commands take as deployment inputs or workflow parameters.

One reader for ``tempano deployments create --inputs``, ``install --inputs``, ``executions start --parameters`` and
the local ``blueprints plan --inputs``, so a file means the same everywhere. It imports neither the compiler nor the
rest of the CLI, so both command modules can use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from tempano.blueprints import yaml_problem

__all__ = ["read_inputs_file"]

_CORE = "tag:yaml.org,2002:"  # the prefix of the tags YAML gives its own types
_KINDS = {  # how to call what YAML made of a key, by its tag
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "null": "null",
    "timestamp": "a date",
    "binary": "bytes",
    "seq": "a list",
    "map": "a mapping",
    "set": "a set",
}


def read_inputs_file(path: Path) -> dict[str, Any]:
    """The mapping ``path`` holds; an empty file (or one of comments only) means no values.

    Whatever cannot be used (missing, a directory, not UTF-8, not YAML, not a mapping, a key that is not a string) is
    a :class:`click.ClickException` of one sentence naming the file and what to do.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise click.ClickException(
            f"cannot read {path}: it is not UTF-8 text (byte {e.start}); save it as UTF-8"
        ) from None
    except OSError as e:
        raise click.ClickException(
            f"cannot read {path} ({e.strerror or e}): give a YAML file of names and values"
        ) from None
    try:
        data = _load(path, text)
    except yaml.YAMLError as e:
        found = yaml_problem(e, text)
        where = f"{path}:{found.line}:{found.column}" if found.line else str(path)
        raise click.ClickException(f"{where}: not valid YAML ({found.problem}); fix the YAML at this place") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise click.ClickException(
            f"{path} holds a {type(data).__name__}, not a mapping of names to values: write one `name: value` per line"
        )
    for key in data:
        if not isinstance(key, str):  # only a `<<` merge can bring one past the look at the keys
            raise click.ClickException(
                f"{path}: the key `{key}` that `<<` merges in is not a string, so it names nothing; "
                "quote it where it is written"
            )
    return data


def _load(path: Path, text: str) -> Any:
    """What ``yaml.safe_load(text)`` does, with a look at the keys of a mapping before they become values."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_node() if loader.check_node() else None
        if loader.check_node():  # what it looked at is the second document's start
            raise click.ClickException(
                f"{path}:{loader.current_event.start_mark.line + 1}: a second YAML document starts here; keep one "
                "mapping of names to values in the file"
            )
        if isinstance(node, yaml.MappingNode):
            _refuse_keys_that_are_not_names(path, text, node)
        return loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def _refuse_keys_that_are_not_names(path: Path, text: str, mapping: yaml.MappingNode) -> None:
    """Refuses a key YAML reads as another type (`1`, `true`, `[a]`), or an empty or blank one: a name must be a
    string with something in it."""
    for key, _ in mapping.value:
        kind = key.tag.removeprefix(_CORE)
        if kind == "str" and not str(key.value).strip():
            raise click.ClickException(
                f"{_at(path, key)}: a key is {'empty' if not key.value else 'only blanks'}; write a name there"
            )
        if kind == key.tag or kind in ("str", "merge"):  # a local tag (`!x`) is the constructor's to refuse
            continue
        written = " ".join(text[key.start_mark.index : key.end_mark.index].split())
        raise click.ClickException(
            f"{_at(path, key)}: the key `{written}` is "
            f"{_KINDS.get(kind, f'a {kind}')}, not a name; quote it ({json.dumps(written, ensure_ascii=False)}) "
            "to make it one"
        )


def _at(path: Path, node: yaml.Node) -> str:
    """Where a node starts: ``file:line:column``."""
    return f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
