"""The `tempano` command: runs the stack (`up`, `worker`, `api`) and drives it through the REST API."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import click
import httpx
import yaml

from tempano.api import blueprint_commands
from tempano.api.settings import Settings

TERMINAL = {"succeeded", "failed", "cancelled", "terminated"}


class ApiClient:
    """A thin client of tempano's REST API whose errors are sentences."""

    def __init__(self, settings: Settings) -> None:
        self.base = settings.api_url
        self.http = httpx.Client(base_url=self.base, timeout=60)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise click.ClickException(
                f"cannot reach the tempano API at {self.base}; is `tempano up` running?"
            ) from None
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = body.get("detail") or body
            except ValueError:
                detail = response.text
            raise click.ClickException(f"{method} {path}: {detail}")
        return response.json() if response.content else None


def _settings() -> Settings:
    return Settings()


def _pack(path: Path) -> tuple[str, bytes]:
    """A blueprint file or directory as one upload: a YAML document, or a zip of the directory with a
    TOSCA.meta naming the entry file (so playbooks and scripts travel with it)."""
    if path.is_file() and path.suffix in {".zip", ".csar"}:
        return path.name, path.read_bytes()
    root = path if path.is_dir() else path.parent
    entry = None if path.is_dir() else path.name
    siblings = [p for p in root.rglob("*") if p.is_file() and p != path]
    if entry is not None and not siblings:
        return path.name, path.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(root.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                archive.write(file, file.relative_to(root).as_posix())
        if entry is not None and not (root / "TOSCA-Metadata" / "TOSCA.meta").exists():
            archive.writestr(
                "TOSCA-Metadata/TOSCA.meta",
                f"TOSCA-Meta-File-Version: 1.0\nCSAR-Version: 1.1\nCreated-By: tempano\nEntry-Definitions: {entry}\n",
            )
    return f"{root.name}.zip", buffer.getvalue()


def _inputs(inputs_file: str | None, pairs: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if inputs_file:
        loaded = yaml.safe_load(Path(inputs_file).read_text())
        if not isinstance(loaded, dict):
            raise click.ClickException(f"{inputs_file}: inputs must be a mapping of input names to values")
        values.update(loaded)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise click.ClickException(f"input {pair!r}: write NAME=VALUE")
        values[name] = yaml.safe_load(value)
    return values


def _print_event(event: dict[str, Any]) -> None:
    when = str(event["ts"])[11:19]
    where = f" [{event['node_instance_id']}]" if event.get("node_instance_id") else ""
    level = "" if event["level"] == "info" else f" {event['level'].upper()}"
    click.echo(f"{when}{level}{where} {event['message']}")


def follow(api: ApiClient, execution_id: str, *, timeout: float = 3600, quiet: bool = False) -> dict[str, Any]:
    """Prints the execution's events as they come until it ends; returns the execution."""
    after = 0
    deadline = time.monotonic() + timeout
    while True:
        try:
            execution = api.call("GET", f"/api/v1/executions/{execution_id}")
        except click.ClickException:
            execution = None  # not recorded yet: queued behind another execution
        if execution is not None:
            for event in api.call("GET", f"/api/v1/executions/{execution_id}/events", params={"after": after}):
                after = event["id"]
                if not quiet:
                    _print_event(event)
            if execution["status"] in TERMINAL:
                return dict(execution)
        if time.monotonic() > deadline:
            raise click.ClickException(f"execution {execution_id} still running after {timeout:.0f}s")
        time.sleep(0.5)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def main(verbose: bool) -> None:
    """tempano: durable NFV orchestration (TOSCA blueprints run as Temporal workflows)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s")


@main.command()
def up() -> None:
    """Start the Temporal dev server, a worker and the API; stop them all on Ctrl-C."""
    from tempano.api.up import up as run_up

    sys.exit(run_up(_settings()))


@main.command()
def worker() -> None:
    """Run a worker (workflows and plugin activities)."""
    from tempano.api.worker import run_worker

    asyncio.run(run_worker(_settings()))


@main.command()
def api() -> None:
    """Serve the REST API."""
    import uvicorn

    from tempano.api.app import create_app

    settings = _settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning")


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("-d", "--deployment", "deployment_id", help="Deployment id (default: the blueprint's name).")
@click.option("-b", "--blueprint-id", help="Blueprint id (default: the deployment id).")
@click.option("--inputs", "inputs_file", type=click.Path(exists=True), help="YAML file of inputs.")
@click.option("-i", "--input", "pairs", multiple=True, help="NAME=VALUE (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def install(
    path: Path,
    deployment_id: str | None,
    blueprint_id: str | None,
    inputs_file: str | None,
    pairs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Upload a blueprint, create a deployment, install it and follow it to the end."""
    settings = _settings()
    api = ApiClient(settings)
    deployment_id = deployment_id or (path.stem if path.is_file() else path.name)
    blueprint_id = blueprint_id or deployment_id
    filename, content = _pack(path)
    api.call("PUT", f"/api/v1/blueprints/{blueprint_id}", params={"filename": filename}, content=content)
    api.call(
        "PUT",
        f"/api/v1/deployments/{deployment_id}",
        json={"blueprint_id": blueprint_id, "inputs": _inputs(inputs_file, pairs)},
    )
    ref = api.call("POST", "/api/v1/executions", json={"deployment_id": deployment_id, "workflow": "install"})
    if not as_json:
        click.echo(f"installing {deployment_id} (execution {ref['execution_id']}); Temporal UI: {ref['ui']}")
    execution = follow(api, ref["execution_id"], quiet=as_json)
    outputs = api.call("GET", f"/api/v1/deployments/{deployment_id}/outputs")
    if as_json:
        click.echo(json.dumps({"execution": execution, "outputs": outputs}, indent=2, default=str))
    else:
        click.echo(f"install {execution['status']}" + (f": {execution['error']}" if execution.get("error") else ""))
        click.echo("outputs:")
        for name, value in outputs.items():
            click.echo(f"  {name}: {json.dumps(value)}")
    if execution["status"] != "succeeded":
        sys.exit(1)


@main.command()
@click.argument("deployment_id")
@click.option("--delete/--keep", default=True, help="Delete the deployment (and its blueprint) afterwards.")
def uninstall(deployment_id: str, delete: bool) -> None:
    """Uninstall a deployment and follow it to the end."""
    api = ApiClient(_settings())
    ref = api.call("POST", "/api/v1/executions", json={"deployment_id": deployment_id, "workflow": "uninstall"})
    execution = follow(api, ref["execution_id"])
    click.echo(f"uninstall {execution['status']}")
    if execution["status"] != "succeeded":
        sys.exit(1)
    if delete:
        blueprint_id = api.call("GET", f"/api/v1/deployments/{deployment_id}")["blueprint_id"]
        api.call("DELETE", f"/api/v1/deployments/{deployment_id}")
        with contextlib.suppress(click.ClickException):  # another deployment may still use it
            api.call("DELETE", f"/api/v1/blueprints/{blueprint_id}")


@main.group()
def executions() -> None:
    """Start, follow and inspect executions."""


@executions.command("start")
@click.argument("workflow")
@click.option("-d", "--deployment", "deployment_id", required=True)
@click.option("-p", "--parameter", "pairs", multiple=True, help="NAME=VALUE (YAML value, repeatable).")
def executions_start(workflow: str, deployment_id: str, pairs: tuple[str, ...]) -> None:
    """Start WORKFLOW (install, heal, scale, a custom one...) on a deployment."""
    api = ApiClient(_settings())
    ref = api.call(
        "POST",
        "/api/v1/executions",
        json={"deployment_id": deployment_id, "workflow": workflow, "parameters": _inputs(None, pairs)},
    )
    click.echo(
        f"execution {ref['execution_id']} ({workflow}){' queued' if ref['queued'] else ''}; Temporal UI: {ref['ui']}"
    )
    execution = follow(api, ref["execution_id"])
    click.echo(f"{workflow} {execution['status']}" + (f": {execution['error']}" if execution.get("error") else ""))
    if execution["status"] != "succeeded":
        sys.exit(1)


@executions.command("list")
@click.option("-d", "--deployment", "deployment_id")
def executions_list(deployment_id: str | None) -> None:
    api = ApiClient(_settings())
    for e in api.call("GET", "/api/v1/executions", params={"deployment_id": deployment_id} if deployment_id else {}):
        click.echo(f"{e['id']:30} {e['workflow']:18} {e['status']:10} {e.get('error') or ''}")


@executions.command("events")
@click.argument("execution_id")
def executions_events(execution_id: str) -> None:
    """Print an execution's lifecycle events (node, operation, attempt, state, duration, errors)."""
    api = ApiClient(_settings())
    for event in api.call("GET", f"/api/v1/executions/{execution_id}/events"):
        _print_event(event)


@main.command()
@click.argument("execution_id")
def events(execution_id: str) -> None:
    """Print an execution's lifecycle events (same as `executions events`)."""
    executions_events.callback(execution_id)  # type: ignore[misc]


@main.group()
def deployments() -> None:
    """List and inspect deployments."""


@deployments.command("list")
def deployments_list() -> None:
    api = ApiClient(_settings())
    for d in api.call("GET", "/api/v1/deployments"):
        click.echo(f"{d['id']:30} {d['blueprint_id']:24} {d['status']}")


@deployments.command("outputs")
@click.argument("deployment_id")
def deployments_outputs(deployment_id: str) -> None:
    api = ApiClient(_settings())
    click.echo(json.dumps(api.call("GET", f"/api/v1/deployments/{deployment_id}/outputs"), indent=2))


main.add_command(blueprint_commands.blueprints)


if __name__ == "__main__":
    main()
