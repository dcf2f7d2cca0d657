"""The `tempano` command: runs the stack (`up`, `worker`, `api`) and drives it through the REST API."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import shlex
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, NoReturn

import click
import httpx
import yaml
from pydantic import ValidationError

from tempano.api.blueprint_commands import blueprints, own_files  # local validate/plan (the compiler's)
from tempano.api.inputs_file import read_inputs_file
from tempano.api.settings import Settings, read_token_file
from tempano.blueprints import yaml_problem

TERMINAL = {"succeeded", "failed", "cancelled", "terminated"}


class ApiClient:
    """A thin client of tempano's REST API whose errors are sentences (exit status 1)."""

    def __init__(self, settings: Settings, *, base_url: str | None = None, token: str | None = None) -> None:
        self.base = base_url or settings.api_url
        token = token or settings.token or read_token_file(settings.data_dir)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.base, timeout=60, headers=headers)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise click.ClickException(_problem_text(method, path, response))
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content or None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise click.ClickException(
                f"cannot reach the tempano API at {self.base}; is `tempano up` running?"
            ) from None
        except httpx.TimeoutException:
            raise click.ClickException(f"the tempano API at {self.base} did not answer in time") from None


def _problem_text(method: str, path: str, response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{method} {path}: HTTP {response.status_code}: {response.text[:500]}"
    if not isinstance(body, dict):
        return f"{method} {path}: HTTP {response.status_code}: {body}"
    lines = [f"{body.get('title', 'Error')} ({response.status_code}): {body.get('detail', body)}"]
    if response.status_code == 401:
        lines.append("give a token with --token or TEMPANO_TOKEN (the admin's is in <data dir>/admin.token)")
    for err in body.get("errors") or []:
        if err.get("file"):
            lines.append(
                f"  {err['file']}:{err.get('line', 0)}:{err.get('column', 0)}: {err.get('entity', '')}: {err['message']}"
            )
    return "\n".join(lines)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as e:
        wrong = "; ".join(f"TEMPANO_{'_'.join(map(str, err['loc'])).upper()}: {err['msg']}" for err in e.errors())
        raise click.ClickException(f"invalid setting(s): {wrong}") from None


def _pack(path: Path) -> tuple[str, bytes]:
    """A blueprint file or directory as one upload: a YAML document, or a zip with a TOSCA.meta naming the entry
    file (so playbooks and scripts travel with it): a directory's whole tree, or the files a YAML file names."""
    if path.is_file() and path.suffix in {".zip", ".csar"}:
        return path.name, path.read_bytes()
    root = path if path.is_dir() else path.parent
    entry = None if path.is_dir() else path.name
    if entry is None:
        files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    else:
        files = [root / name for name in own_files(path)]
        if files == [path]:
            return path.name, path.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            archive.write(file, file.relative_to(root).as_posix())
        if entry is not None:
            archive.writestr(
                "TOSCA-Metadata/TOSCA.meta",
                f"TOSCA-Meta-File-Version: 1.0\nCSAR-Version: 1.1\nCreated-By: tempano\nEntry-Definitions: {entry}\n",
            )
    return f"{root.name}.zip", buffer.getvalue()


def _inputs(
    inputs_file: Path | None, pairs: tuple[str, ...], *, kind: str = "input", option: str = "-i"
) -> dict[str, Any]:
    """The file's values (if any), then each NAME=VALUE pair's over them; ``kind`` and ``option`` word the errors."""
    values = read_inputs_file(inputs_file) if inputs_file is not None else {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise click.ClickException(f"{kind} {pair!r}: write NAME=VALUE")
        if not name.strip():
            raise click.ClickException(f"{kind} {pair!r} has no name: write NAME=VALUE")
        try:
            values[name] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            # The same characters in double quotes, escaped as YAML reads them back, and quoted for the shell.
            string = yaml.safe_dump(value, default_style='"', width=float("inf"), allow_unicode=True).rstrip("\n")
            raise click.ClickException(
                f"{kind} {name!r}: {value!r} is not valid YAML ({_yaml_problem(e, value)}); "
                f"fix it, or pass it as a string with {option} {shlex.quote(f'{name}={string}')}"
            ) from None
    return values


def _yaml_problem(error: yaml.YAMLError, text: str) -> str:
    """PyYAML's error in one line, its place given in ``text`` (a column alone when the text is one line)."""
    found = yaml_problem(error, text)
    if not found.line:
        return found.problem
    where = f"column {found.column}" if found.line == 1 else f"line {found.line}, column {found.column}"
    return f"{found.problem} at {where}"


def _labels(pairs: tuple[str, ...]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.ClickException(f"label {pair!r}: write KEY=VALUE")
        labels[key] = value
    return labels


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _print_event(event: dict[str, Any]) -> None:
    when = str(event["ts"])[11:19]
    where = f" [{event['node_instance_id']}]" if event.get("node_instance_id") else ""
    level = "" if event["level"] == "info" else f" {event['level'].upper()}"
    click.echo(f"{when}{level}{where} {event['message']}")


DONE_STATE = {"install": "started", "reinstall": "started", "start": "started", "uninstall": "deleted"}


def _progress(workflow: str, instances: list[dict[str, Any]]) -> str:
    """`3/12 started (started 3, configuring 2, uninitialized 7)`: where the deployment's instances stand."""
    counts: dict[str, int] = {}
    for inst in instances:
        counts[inst["state"]] = counts.get(inst["state"], 0) + 1
    states = ", ".join(f"{state} {n}" for state, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    done = DONE_STATE.get(workflow)
    if done is None:
        return f"nodes: {states}"
    return f"{counts.get(done, 0)}/{len(instances)} {done} ({states})"


def follow(
    api: ApiClient,
    execution_id: str,
    *,
    timeout: float = 3600,
    quiet: bool = False,
    poll: float = 0.5,
) -> dict[str, Any]:
    """Shows the execution live until it ends (its events, and node states as they change); returns it."""
    after = 0
    deadline = time.monotonic() + timeout
    last_progress = ""
    deployment_id, workflow = execution_id.rsplit(":", 1)[0], ""
    while True:
        response = api.request("GET", f"/api/v1/executions/{execution_id}")
        if response.status_code not in {200, 404}:
            raise click.ClickException(_problem_text("GET", f"/api/v1/executions/{execution_id}", response))
        execution = response.json() if response.status_code == 200 else None
        # Until it starts (queued behind another execution) it has no record, so no events (and an API older than
        # the `queued` status answers 404); one cancelled while queued never has one.
        if execution is not None and execution["created_at"] is not None:
            workflow = execution["workflow"]
            page = api.call("GET", f"/api/v1/executions/{execution_id}/events", params={"after": after})
            for event in page["items"]:
                if not quiet:
                    _print_event(event)
            after = page["next_after"]
            if not quiet:
                instances = api.call("GET", f"/api/v1/deployments/{deployment_id}/node-instances")
                progress = _progress(workflow, instances)
                if progress != last_progress:
                    click.secho(f"   {workflow}: {progress}", fg="cyan")
                    last_progress = progress
        if execution is not None and execution["status"] in TERMINAL:
            return dict(execution)
        if time.monotonic() > deadline:
            raise click.ClickException(f"execution {execution_id} still running after {timeout:.0f}s")
        time.sleep(poll)


def _finish(execution: dict[str, Any], as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """Prints how the execution ended; exit status 1 unless it succeeded."""
    if as_json:
        _print_json({"execution": execution, **(extra or {})})
    else:
        error = f": {execution['error']}" if execution.get("error") else ""
        color = "green" if execution["status"] == "succeeded" else "red"
        click.secho(f"{execution['workflow']} {execution['status']}{error}", fg=color)
    if execution["status"] != "succeeded":
        sys.exit(1)


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (for scripts).")


class Context:
    def __init__(self, api_url: str | None, token: str | None) -> None:
        self.api_url = api_url
        self.token = token

    def api(self) -> ApiClient:
        return ApiClient(_settings(), base_url=self.api_url, token=self.token)


pass_ctx = click.make_pass_decorator(Context)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.option("--api-url", envvar="TEMPANO_API_URL", help="The API's URL (default: from TEMPANO_API_HOST/PORT).")
@click.option("--token", envvar="TEMPANO_TOKEN", help="API token (default: <data dir>/admin.token).")
@click.pass_context
def main(ctx: click.Context, verbose: bool, api_url: str | None, token: str | None) -> None:
    """tempano: durable NFV orchestration (TOSCA blueprints run as Temporal workflows)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # request lines would be noise (and carry ids)
    ctx.obj = Context(api_url, token)


@main.command()
def up() -> None:
    """Start the Temporal dev server, a worker and the API; stop them all on Ctrl-C."""
    from tempano.api.up import up as run_up

    sys.exit(run_up(_settings()))


@main.command()
def worker() -> None:
    """Run a worker (workflows and plugin activities)."""
    from tempano.api.service import ServiceError
    from tempano.api.worker import run_worker

    try:
        asyncio.run(run_worker(_settings()))
    except ServiceError as e:  # Temporal unreachable: the sentence, not a traceback
        _exit_unreachable(e.message)


def _exit_unreachable(message: str) -> NoReturn:
    """Says why, and exits at once (1): after a failed connection, the Temporal SDK's runtime threads can abort a
    normal interpreter shutdown ("Fatal Python error: PyGILState_Release", exit -6; temporalio/sdk-python#300,
    seen here under load)."""
    click.echo(f"Error: {message}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


@main.command()
def api() -> None:
    """Serve the REST API."""
    import uvicorn

    from tempano.api.service import ServiceError, connect

    settings = _settings()
    # Temporal is reached before uvicorn starts: an unreachable one is then a sentence, where the app's startup
    # would have it logged by uvicorn as a traceback.
    try:
        if settings.api_workers > 1:
            # Each worker process connects again, building its app from the same TEMPANO_* environment.
            asyncio.run(connect(settings))
            uvicorn.run(
                "tempano.api.app:create_app",
                factory=True,
                workers=settings.api_workers,
                host=settings.api_host,
                port=settings.api_port,
                log_level="warning",
            )
            return
        started = asyncio.run(_serve_api(settings))
    except ServiceError as e:
        _exit_unreachable(e.message)
    except KeyboardInterrupt:  # uvicorn hands Ctrl-C back once it has shut down
        return
    if not started:  # uvicorn said why (the port is taken...)
        sys.exit(1)


async def _serve_api(settings: Settings) -> bool:
    """Serves the API on a client connected beforehand; whether the server started."""
    import uvicorn

    from tempano.api.app import create_app
    from tempano.api.service import Tempano, connect

    tempano = Tempano(settings, await connect(settings))
    app = create_app(settings, service=tempano)
    server = uvicorn.Server(uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_level="warning"))
    await server.serve()
    return server.started


def _upload(api: ApiClient, path: Path, blueprint_id: str) -> dict[str, Any]:
    try:
        filename, content = _pack(path)
    except OSError as e:
        raise click.ClickException(
            f"cannot read {e.filename or path} ({e.strerror}) to upload the blueprint {path}"
        ) from None
    kind = "application/zip" if filename.endswith(".zip") or filename.endswith(".csar") else "application/yaml"
    result: dict[str, Any] = api.call(
        "PUT", f"/api/v1/blueprints/{blueprint_id}", content=content, headers={"Content-Type": kind}
    )
    return result


def _start(api: ApiClient, deployment_id: str, workflow: str, parameters: dict[str, Any]) -> dict[str, Any]:
    ref: dict[str, Any] = api.call(
        "POST",
        "/api/v1/executions",
        json={"deployment_id": deployment_id, "workflow": workflow, "parameters": parameters},
    )
    return ref


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("-d", "--deployment", "deployment_id", help="Deployment id (default: the blueprint's name).")
@click.option("-b", "--blueprint-id", help="Blueprint id (default: the deployment id).")
@click.option("--inputs", "inputs_file", type=click.Path(path_type=Path), help="YAML file of inputs.")
@click.option("-i", "--input", "pairs", multiple=True, help="NAME=VALUE (repeatable).")
@click.option("-l", "--label", "labels", multiple=True, help="KEY=VALUE label (repeatable).")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait for the install.")
@json_option
@pass_ctx
def install(
    ctx: Context,
    path: Path,
    deployment_id: str | None,
    blueprint_id: str | None,
    inputs_file: Path | None,
    pairs: tuple[str, ...],
    labels: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    """Upload a blueprint, create a deployment, install it and follow it to the end."""
    api = ctx.api()
    deployment_id = deployment_id or (path.stem if path.is_file() else path.name)
    blueprint_id = blueprint_id or deployment_id
    deployment = {"blueprint_id": blueprint_id, "inputs": _inputs(inputs_file, pairs), "labels": _labels(labels)}
    _upload(api, path, blueprint_id)  # after the inputs are read: a wrong inputs file uploads nothing
    api.call("PUT", f"/api/v1/deployments/{deployment_id}", json=deployment)
    ref = _start(api, deployment_id, "install", {})
    if not as_json:
        click.echo(f"installing {deployment_id} (execution {ref['execution_id']}); Temporal UI: {ref['ui']}")
    execution = follow(api, ref["execution_id"], quiet=as_json, timeout=timeout)
    outputs = api.call("GET", f"/api/v1/deployments/{deployment_id}/outputs")
    if not as_json:
        click.echo("outputs:")
        for name, value in outputs.items():
            click.echo(f"  {name}: {json.dumps(value)}")
    _finish(execution, as_json, {"outputs": outputs})


@main.command()
@click.argument("deployment_id")
@click.option("--delete/--keep", default=True, help="Delete the deployment (and its blueprint) afterwards.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait for the uninstall.")
@json_option
@pass_ctx
def uninstall(ctx: Context, deployment_id: str, delete: bool, timeout: float, as_json: bool) -> None:
    """Uninstall a deployment, follow it to the end, then delete it."""
    api = ctx.api()
    ref = _start(api, deployment_id, "uninstall", {})
    if not as_json:
        click.echo(f"uninstalling {deployment_id} (execution {ref['execution_id']}); Temporal UI: {ref['ui']}")
    execution = follow(api, ref["execution_id"], quiet=as_json, timeout=timeout)
    if execution["status"] == "succeeded" and delete:
        blueprint_id = api.call("GET", f"/api/v1/deployments/{deployment_id}")["blueprint_id"]
        api.call("DELETE", f"/api/v1/deployments/{deployment_id}")
        with contextlib.suppress(click.ClickException):  # another deployment may still use it
            api.call("DELETE", f"/api/v1/blueprints/{blueprint_id}")
    _finish(execution, as_json)


# ---------------------------------------------------------------- blueprints

main.add_command(blueprints)


@blueprints.command("upload")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("-b", "--blueprint-id", help="Blueprint id (default: the file or directory name).")
@json_option
@pass_ctx
def blueprints_upload(ctx: Context, path: Path, blueprint_id: str | None, as_json: bool) -> None:
    """Upload a blueprint (YAML file, directory with its playbooks, or CSAR) to the API."""
    blueprint_id = blueprint_id or (path.stem if path.is_file() else path.name)
    result = _upload(ctx.api(), path, blueprint_id)
    if as_json:
        _print_json(result)
    else:
        click.echo(f"blueprint {result['id']} uploaded ({len(result['plan_summary']['nodes'])} nodes)")


@blueprints.command("list")
@json_option
@pass_ctx
def blueprints_list(ctx: Context, as_json: bool) -> None:
    """List uploaded blueprints."""
    items = _all(ctx.api(), "/api/v1/blueprints", {})
    if as_json:
        _print_json(items)
        return
    for b in items:
        click.echo(f"{b['id']:30} {str(b['created_at'])[:19]:20} {b['description'][:60]}")


@blueprints.command("get")
@click.argument("blueprint_id")
@json_option
@pass_ctx
def blueprints_get(ctx: Context, blueprint_id: str, as_json: bool) -> None:
    """Show a blueprint's plan summary: nodes, inputs, outputs, workflows."""
    b = ctx.api().call("GET", f"/api/v1/blueprints/{blueprint_id}")
    if as_json:
        _print_json(b)
        return
    plan = b["plan_summary"]
    click.echo(f"{b['id']}: {b['description']}".rstrip(": "))
    click.echo("nodes:")
    for n in plan["nodes"]:
        rels = ", ".join(f"{r['name']} -> {r['target']}" for r in n["relationships"])
        click.echo(f"  {n['name']} ({n['type']}) x{n['instances']}{'  ' + rels if rels else ''}")
    click.echo("inputs:")
    for name, spec in plan["inputs"].items():
        default = f" = {json.dumps(spec['default'])}" if spec["default"] is not None else ""
        click.echo(f"  {name}: {spec['type']}{default}")
    click.echo(f"outputs: {', '.join(plan['outputs']) or '-'}")
    if plan["workflows"]:
        click.echo(f"workflows: {', '.join(plan['workflows'])}")


@blueprints.command("delete")
@click.argument("blueprint_id")
@pass_ctx
def blueprints_delete(ctx: Context, blueprint_id: str) -> None:
    """Delete a blueprint no deployment uses."""
    ctx.api().call("DELETE", f"/api/v1/blueprints/{blueprint_id}")
    click.echo(f"blueprint {blueprint_id} deleted")


def _all(api: ApiClient, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item of a paged listing."""
    items: list[dict[str, Any]] = []
    while True:
        page = api.call("GET", path, params={**params, "offset": len(items), "limit": 1000})
        items += page["items"]
        if not page["items"] or len(items) >= page["total"]:
            return items


# ---------------------------------------------------------------- deployments


@main.group()
def deployments() -> None:
    """Create, list, inspect and delete deployments."""


@deployments.command("create")
@click.argument("deployment_id")
@click.option("-b", "--blueprint-id", required=True)
@click.option("--inputs", "inputs_file", type=click.Path(path_type=Path), help="YAML file of inputs.")
@click.option("-i", "--input", "pairs", multiple=True, help="NAME=VALUE (repeatable).")
@click.option("-l", "--label", "labels", multiple=True, help="KEY=VALUE (repeatable).")
@json_option
@pass_ctx
def deployments_create(
    ctx: Context,
    deployment_id: str,
    blueprint_id: str,
    inputs_file: Path | None,
    pairs: tuple[str, ...],
    labels: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create a deployment of a blueprint (inputs checked against it)."""
    d = ctx.api().call(
        "PUT",
        f"/api/v1/deployments/{deployment_id}",
        json={"blueprint_id": blueprint_id, "inputs": _inputs(inputs_file, pairs), "labels": _labels(labels)},
    )
    if as_json:
        _print_json(d)
    else:
        click.echo(f"deployment {d['id']} created from {d['blueprint_id']}")


@deployments.command("list")
@click.option("-b", "--blueprint-id")
@click.option("--status")
@click.option("-l", "--label", "labels", multiple=True, help="KEY=VALUE (repeatable, all must match).")
@json_option
@pass_ctx
def deployments_list(
    ctx: Context, blueprint_id: str | None, status: str | None, labels: tuple[str, ...], as_json: bool
) -> None:
    """List deployments (filter by blueprint, status, labels)."""
    params: dict[str, Any] = {"label": list(labels)}
    if blueprint_id:
        params["blueprint_id"] = blueprint_id
    if status:
        params["status"] = status
    items = _all(ctx.api(), "/api/v1/deployments", params)
    if as_json:
        _print_json(items)
        return
    for d in items:
        labels_text = ",".join(f"{k}={v}" for k, v in d["labels"].items())
        click.echo(f"{d['id']:30} {d['blueprint_id']:24} {d['status']:12} {labels_text}")


@deployments.command("get")
@click.argument("deployment_id")
@json_option
@pass_ctx
def deployments_get(ctx: Context, deployment_id: str, as_json: bool) -> None:
    """Show a deployment: status, node instances and their states, current execution."""
    d = ctx.api().call("GET", f"/api/v1/deployments/{deployment_id}")
    if as_json:
        _print_json(d)
        return
    click.echo(f"{d['id']} ({d['blueprint_id']}): {d['status']}")
    current = d["current_execution"]
    if current:
        click.echo(f"running: {current['workflow']} ({current['id']}) {current['ui']}")
    click.echo("node instances:")
    for inst in d["node_instances"]:
        host = f" on {inst['host_id']}" if inst["host_id"] else ""
        click.echo(f"  {inst['id']:30} {inst['state']:14}{host}")
    click.echo(f"Temporal UI: {d['ui']}")


@deployments.command("outputs")
@click.argument("deployment_id")
@pass_ctx
def deployments_outputs(ctx: Context, deployment_id: str) -> None:
    """Print a deployment's outputs (JSON)."""
    _print_json(ctx.api().call("GET", f"/api/v1/deployments/{deployment_id}/outputs"))


@deployments.command("graph")
@click.argument("deployment_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout).")
@click.option("--format", "fmt", type=click.Choice(["svg", "dot"]), default="svg", show_default=True)
@pass_ctx
def deployments_graph(ctx: Context, deployment_id: str, output: Path | None, fmt: str) -> None:
    """The deployment's topology, instances colored by state, executions linked to the Temporal UI."""
    body = ctx.api().call("GET", f"/api/v1/deployments/{deployment_id}/graph", params={"format": fmt})
    if output is None:
        click.echo(body.decode(), nl=False)
    else:
        try:
            output.write_bytes(body)
        except OSError as e:
            raise click.ClickException(f"cannot write {output} ({e.strerror}): choose another --output") from None
        click.echo(f"written to {output}")


@deployments.command("delete")
@click.argument("deployment_id")
@click.option("--force", is_flag=True, help="Delete even if installed or busy (forgets its resources).")
@pass_ctx
def deployments_delete(ctx: Context, deployment_id: str, force: bool) -> None:
    """Delete an uninstalled deployment."""
    ctx.api().call("DELETE", f"/api/v1/deployments/{deployment_id}", params={"force": force})
    click.echo(f"deployment {deployment_id} deleted")


# ---------------------------------------------------------------- executions


@main.group()
def executions() -> None:
    """Start, follow, inspect, cancel and resume executions."""


@executions.command("start")
@click.argument("workflow")
@click.option("-d", "--deployment", "deployment_id", required=True)
@click.option("-p", "--parameter", "pairs", multiple=True, help="NAME=VALUE (YAML value, repeatable).")
@click.option("--parameters", "parameters_file", type=click.Path(path_type=Path), help="YAML file of parameters.")
@click.option("--follow/--no-follow", "follow_", default=True, help="Follow it to the end (default) or return at once.")
@click.option("--timeout", default=3600.0, show_default=True)
@json_option
@pass_ctx
def executions_start(
    ctx: Context,
    workflow: str,
    deployment_id: str,
    pairs: tuple[str, ...],
    parameters_file: Path | None,
    follow_: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Start WORKFLOW (install, heal, scale, a custom one...) on a deployment."""
    api = ctx.api()
    ref = _start(api, deployment_id, workflow, _inputs(parameters_file, pairs, kind="parameter", option="-p"))
    _after_start(api, ref, follow_, timeout, as_json)


def _after_start(api: ApiClient, ref: dict[str, Any], follow_: bool, timeout: float, as_json: bool) -> None:
    if not follow_:
        if as_json:
            _print_json(ref)
        else:
            queued = " (queued)" if ref["queued"] else ""
            click.echo(f"execution {ref['execution_id']} ({ref['workflow']}){queued}; Temporal UI: {ref['ui']}")
        return
    if not as_json:
        queued = " queued" if ref["queued"] else ""
        click.echo(f"execution {ref['execution_id']} ({ref['workflow']}){queued}; Temporal UI: {ref['ui']}")
    _finish(follow(api, ref["execution_id"], quiet=as_json, timeout=timeout), as_json)


@executions.command("list")
@click.option("-d", "--deployment", "deployment_id")
@click.option("--status")
@json_option
@pass_ctx
def executions_list(ctx: Context, deployment_id: str | None, status: str | None, as_json: bool) -> None:
    """List executions."""
    params = {k: v for k, v in {"deployment_id": deployment_id, "status": status}.items() if v}
    items = _all(ctx.api(), "/api/v1/executions", params)
    if as_json:
        _print_json(items)
        return
    for e in items:
        click.echo(f"{e['id']:30} {e['workflow']:18} {e['status']:10} {e.get('error') or ''}")


@executions.command("get")
@click.argument("execution_id")
@json_option
@pass_ctx
def executions_get(ctx: Context, execution_id: str, as_json: bool) -> None:
    """Show an execution."""
    e = ctx.api().call("GET", f"/api/v1/executions/{execution_id}")
    if as_json:
        _print_json(e)
        return
    click.echo(f"{e['id']} {e['workflow']} on {e['deployment_id']}: {e['status']}")
    if e["parameters"]:
        click.echo(f"parameters: {json.dumps(e['parameters'])}")
    if e["error"]:
        click.echo(f"error: {e['error']}")
    if e["created_at"] is not None:  # null while queued
        click.echo(f"started {str(e['created_at'])[:19]}, ended {str(e['ended_at'] or '-')[:19]}")
    click.echo(f"Temporal UI: {e['ui']}")


@executions.command("cancel")
@click.argument("execution_id")
@pass_ctx
def executions_cancel(ctx: Context, execution_id: str) -> None:
    """Cancel a running or queued execution."""
    result = ctx.api().call("POST", f"/api/v1/executions/{execution_id}/cancel")
    click.echo(f"{execution_id}: {result['result']}")


@executions.command("terminate")
@click.argument("execution_id")
@click.option("--reason", default="", help="Recorded with the execution.")
@pass_ctx
def executions_terminate(ctx: Context, execution_id: str, reason: str) -> None:
    """End a running execution at once (admin escape: no graceful cancellation)."""
    ctx.api().call("POST", f"/api/v1/executions/{execution_id}/terminate", params={"reason": reason})
    click.echo(f"{execution_id}: terminated")


@executions.command("progress")
@click.argument("execution_id")
@json_option
@pass_ctx
def executions_progress(ctx: Context, execution_id: str, as_json: bool) -> None:
    """What a running execution waits on: operations in flight, attempts, heartbeats, last failures."""
    p = ctx.api().call("GET", f"/api/v1/executions/{execution_id}/progress")
    if as_json:
        _print_json(p)
        return
    click.echo(f"{execution_id}: {p['status']}" + (f": {p['details']}" if p.get("details") else ""))
    for a in p.get("pending", []):
        failure = f"; last failure: {a['last_failure']}" if a.get("last_failure") else ""
        click.echo(f"  {a['activity_id']} attempt {a['attempt']}, last heartbeat {a['last_heartbeat'] or '-'}{failure}")


@executions.command("resume")
@click.argument("execution_id")
@click.option("--follow/--no-follow", "follow_", default=True)
@click.option("--timeout", default=3600.0, show_default=True)
@json_option
@pass_ctx
def executions_resume(ctx: Context, execution_id: str, follow_: bool, timeout: float, as_json: bool) -> None:
    """Run a failed or cancelled execution's failed and not-yet-run steps (a new execution)."""
    api = ctx.api()
    _after_start(api, api.call("POST", f"/api/v1/executions/{execution_id}/resume"), follow_, timeout, as_json)


@executions.command("rollback")
@click.argument("execution_id")
@click.option("--follow/--no-follow", "follow_", default=True)
@click.option("--timeout", default=3600.0, show_default=True)
@json_option
@pass_ctx
def executions_rollback(ctx: Context, execution_id: str, follow_: bool, timeout: float, as_json: bool) -> None:
    """Remove what an execution created (a new rollback execution)."""
    api = ctx.api()
    _after_start(api, api.call("POST", f"/api/v1/executions/{execution_id}/rollback"), follow_, timeout, as_json)


@executions.command("events")
@click.argument("execution_id")
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep printing until the execution ends.")
@json_option
@pass_ctx
def executions_events(ctx: Context, execution_id: str, follow_: bool, as_json: bool) -> None:
    """Print an execution's lifecycle events (node, operation, attempt, state, duration, errors)."""
    api = ctx.api()
    if follow_ and not as_json:
        follow(api, execution_id)
        return
    events = _events(api, execution_id)
    if as_json:
        _print_json(events)
        return
    for event in events:
        _print_event(event)


def _events(api: ApiClient, execution_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = api.call("GET", f"/api/v1/executions/{execution_id}/events", params={"after": after})
        events += page["items"]
        if not page["items"]:
            return events
        after = page["next_after"]


@main.command()
@click.argument("execution_id")
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep printing until the execution ends.")
@json_option
@click.pass_context
def events(ctx: click.Context, execution_id: str, follow_: bool, as_json: bool) -> None:
    """Print an execution's lifecycle events (same as `executions events`)."""
    ctx.invoke(executions_events, execution_id=execution_id, follow_=follow_, as_json=as_json)


# ---------------------------------------------------------------- secrets and tokens


@main.group()
def secrets() -> None:
    """Secrets for blueprints (get_secret): write-only, stored encrypted (admin)."""


@secrets.command("put")
@click.argument("name")
@click.option("--from-file", type=click.File("r"), help="Read the value from a file ('-': stdin).")
@pass_ctx
def secrets_put(ctx: Context, name: str, from_file: Any) -> None:
    """Store a secret (prompted for without echo unless --from-file)."""
    value = from_file.read().rstrip("\n") if from_file else click.prompt("value", hide_input=True)
    ctx.api().call("PUT", f"/api/v1/secrets/{name}", json={"value": value})
    click.echo(f"secret {name} stored")


@secrets.command("list")
@pass_ctx
def secrets_list(ctx: Context) -> None:
    for name in ctx.api().call("GET", "/api/v1/secrets")["names"]:
        click.echo(name)


@secrets.command("delete")
@click.argument("name")
@pass_ctx
def secrets_delete(ctx: Context, name: str) -> None:
    ctx.api().call("DELETE", f"/api/v1/secrets/{name}")
    click.echo(f"secret {name} deleted")


@main.group()
def tokens() -> None:
    """API tokens (admin)."""


@tokens.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator", "admin"]), required=True)
@pass_ctx
def tokens_create(ctx: Context, name: str, role: str) -> None:
    """Issue a token; it is printed once and cannot be shown again."""
    t = ctx.api().call("POST", "/api/v1/tokens", json={"name": name, "role": role})
    click.echo(t["token"])


@tokens.command("list")
@json_option
@pass_ctx
def tokens_list(ctx: Context, as_json: bool) -> None:
    items = ctx.api().call("GET", "/api/v1/tokens")
    if as_json:
        _print_json(items)
        return
    for t in items:
        click.echo(f"{t['id']:14} {t['role']:9} {'revoked' if t['revoked'] else 'active':8} {t['name']}")


@tokens.command("revoke")
@click.argument("token_id")
@pass_ctx
def tokens_revoke(ctx: Context, token_id: str) -> None:
    ctx.api().call("DELETE", f"/api/v1/tokens/{token_id}")
    click.echo(f"token {token_id} revoked")


if __name__ == "__main__":
    main()
