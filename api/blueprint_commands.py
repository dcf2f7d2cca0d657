"""``tempano blueprints ...``: validate a blueprint, show its plan (JSON, DOT or SVG)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import click

import tempano.blueprints as bp  # names looked up on use: the compiler loads only when a command needs it
from tempano.api.inputs_file import read_inputs_file


def _fail(error: bp.BlueprintError) -> None:
    for detail in error.errors:
        click.echo(str(detail), err=True)
    raise SystemExit(1)


def own_files(path: Path) -> list[str]:
    """The files a single-file blueprint names (relative to its directory), so an upload carries only those; just
    the file itself when it does not compile (the server then reports why)."""
    try:
        blueprint = bp.load(path)
    except bp.BlueprintError:
        return [path.name]
    try:
        return bp.blueprint_files(blueprint, bp.compile(blueprint, has_operation=None))
    except bp.BlueprintError:
        return [path.name]
    finally:
        blueprint.cleanup()


@click.group("blueprints")
def blueprints() -> None:
    """Validate blueprints and show the plans they compile into."""


@blueprints.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--allow-remote-imports", is_flag=True, help="Fetch imports given as URLs.")
def validate(path: Path, allow_remote_imports: bool) -> None:
    """Print OK, or every problem as file:line:col: entity: message (exit status 1)."""
    try:
        bp.compile_path(path, allow_remote_imports=allow_remote_imports)
    except bp.BlueprintError as error:
        _fail(error)
    click.echo("OK")


@blueprints.command("plan")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--inputs",
    "inputs_file",
    type=click.Path(path_type=Path),
    help="YAML or JSON file of deployment inputs to bind.",
)
@click.option("--format", "fmt", type=click.Choice(["json", "dot", "svg"]), default="json", show_default=True)
@click.option("--allow-remote-imports", is_flag=True, help="Fetch imports given as URLs.")
def plan(path: Path, inputs_file: Path | None, fmt: str, allow_remote_imports: bool) -> None:
    """Show the plan PATH compiles into: JSON, or the topology and install order as DOT or SVG."""
    inputs = read_inputs_file(inputs_file) if inputs_file is not None else None
    try:
        compiled = bp.compile_path(path, allow_remote_imports=allow_remote_imports)
        if inputs is not None:
            compiled = bp.bind_inputs(compiled, inputs)
    except bp.BlueprintError as error:
        _fail(error)
    if fmt == "json":
        click.echo(json.dumps(compiled.model_dump(mode="json"), indent=2, sort_keys=True))
        return
    dot = bp.plan_to_dot(compiled, title=path.stem)
    if fmt == "dot":
        click.echo(dot, nl=False)
        return
    binary = shutil.which("dot")
    if binary is None:
        raise click.ClickException(
            "--format svg needs Graphviz's dot program, which is not installed: install it "
            "(Debian/Ubuntu: apt-get install graphviz) or use --format dot"
        )
    result = subprocess.run([binary, "-Tsvg"], input=dot.encode(), capture_output=True, check=False)
    if result.returncode != 0:
        raise click.ClickException(f"dot failed: {result.stderr.decode(errors='replace').strip()}")
    click.echo(result.stdout.decode(), nl=False)
