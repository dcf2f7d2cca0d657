"""The YAML file of names and values that CLI commands take as deployment inputs or workflow parameters.

One reader for ``tempano deployments create --inputs``, ``install --inputs``, ``executions start --parameters`` and
the local ``blueprints plan --inputs``, so a file means the same everywhere. It imports neither the compiler nor the
rest of the CLI, so both command modules can use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

__all__ = ["read_inputs_file"]


def read_inputs_file(path: Path) -> dict[str, Any]:
    """The mapping ``path`` holds; an empty file (or one of comments only) means no values.

    Whatever cannot be used (missing, a directory, not UTF-8, not YAML, not a mapping) is a
    :class:`click.ClickException` of one sentence naming the file and what to do.
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
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = e.problem or e.context or "invalid YAML"
        raise click.ClickException(f"{where}: not valid YAML ({problem}); fix the YAML at this place") from None
    except yaml.reader.ReaderError as e:  # a control character: no line or column, a position
        raise click.ClickException(
            f"{path}: not valid YAML (character #x{e.character:04x} at position {e.position} is not allowed); remove it"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise click.ClickException(
            f"{path} holds a {type(data).__name__}, not a mapping of names to values: write one `name: value` per line"
        )
    return data
