"""``ansible.playbook.run``: run a playbook from the blueprint against the node's host with ansible-runner.

Inputs: ``playbook`` (path relative to the blueprint directory, else the node's ``playbook`` property),
``timeout`` (seconds, default 600); every other input becomes an extra var. Each task result becomes a log
line (``fw_1 | TASK [enable forwarding] | changed``). A failed task raises a NonRetryableError naming host,
task and message; an unreachable host a RetryableError; a timeout or a cancellation stops the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from tempano.plugins.ansible import inventory
from tempano.plugins.ansible._plugin import plugin
from tempano.plugins.contract import (
    ConfigurationError,
    NonRetryableError,
    OperationContext,
    RetryableError,
)

DEFAULT_TIMEOUT = 600
RESERVED_INPUTS = {"playbook": None, "timeout": None}
RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}
# Lab servers get new host keys on every reinstall: never prompt, never remember them. One ssh master per
# host and run (its socket in the run's directory) is reused by every task, and closed when the run ends.
SSH_ARGS = (
    "-o ControlMaster=auto -o ControlPersist=120s -o StrictHostKeyChecking=no "
    "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
)


@dataclass
class Failure:
    host: str
    task: str
    message: str


@dataclass
class Progress:
    """What the event handler saw, for the error message and the result."""

    failed: list[Failure] = field(default_factory=list)
    unreachable: list[Failure] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def resolve_playbook(ctx: OperationContext) -> Path:
    """The playbook's path, refused if it is missing or escapes the blueprint directory."""
    name = ctx.inputs.get("playbook") or ctx.properties.get("playbook")
    if not name:
        raise ConfigurationError(
            f"{ctx.instance.id} {ctx.operation}: no playbook given; set the operation input or the node's "
            "playbook property to a path inside the blueprint (e.g. playbooks/firewall.yaml)"
        )
    return ctx.artifact("playbook", str(name))


def _message(res: dict[str, Any]) -> str:
    """The most useful sentence of a failed module result."""
    parts = [str(res[k]).strip() for k in ("msg", "stderr", "module_stderr", "reason") if res.get(k)]
    if not parts and res.get("stdout"):
        parts.append(str(res["stdout"]).strip())
    if not parts and res.get("results"):  # a loop: the first failed item
        for item in res["results"]:
            if isinstance(item, dict) and item.get("failed"):
                return _message(item)
    text = " / ".join(dict.fromkeys(parts)) or "no message"
    return text if len(text) < 600 else text[:600] + "..."


def _handler(ctx: OperationContext, progress: Progress) -> Any:
    def handle(event: dict[str, Any]) -> bool:
        status = RESULT_EVENTS.get(str(event.get("event")))
        if status is None:
            return True
        data = event.get("event_data") or {}
        res = data.get("res") or {}
        if status == "ok" and res.get("changed"):
            status = "changed"
        if status == "failed" and data.get("ignore_errors"):
            status = "failed (ignored)"
        host = str(data.get("host", "?"))
        task = str(data.get("task", "?")).strip()
        progress.counts[status] = progress.counts.get(status, 0) + 1
        line = f"{host} | TASK [{task}] | {status}"
        if status in ("failed", "unreachable"):
            failure = Failure(host, task, _message(res))
            (progress.failed if status == "failed" else progress.unreachable).append(failure)
            line += f": {failure.message}"
        ctx.log("%s", line)
        ctx.heartbeat({"host": host, "task": task})
        return True

    return handle


def _search_path() -> str:
    """PATH with this interpreter's bin folder first, so the venv's ansible-playbook is found.

    (ansible-runner's ``binary`` option would switch it to raw mode, which loses the task events.)
    """
    beside = Path(sys.executable).parent
    path = os.environ.get("PATH", os.defpath)
    if (beside / "ansible-playbook").exists():
        path = f"{beside}{os.pathsep}{path}"
    if shutil.which("ansible-playbook", path=path) is None:
        raise NonRetryableError(
            "ansible-playbook is not installed on this worker: install tempano with its dependencies "
            "(ansible-core), e.g. scripts/setup"
        )
    return path


@plugin.operation("playbook.run")
def run_playbook(ctx: OperationContext) -> dict[str, Any]:
    """Run the playbook against the node's host; outputs are the task counts and the run status."""
    playbook = resolve_playbook(ctx)
    timeout = int(ctx.inputs.get("timeout") or DEFAULT_TIMEOUT)
    host, inv = inventory.build(ctx)
    progress = Progress()
    workdir = Path(tempfile.mkdtemp(prefix="tempano-ansible-"))
    env = {
        "PATH": _search_path(),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_SSH_ARGS": SSH_ARGS,
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(workdir / "cp"),
        "ANSIBLE_SSH_CONTROL_PATH": str(workdir / "cp" / "%%C"),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        # no ~/.ansible needed or touched: everything of the run lives (and dies) in its own directory
        "ANSIBLE_HOME": str(workdir / "home"),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
        # lab servers share the worker's files: keep their module temp files in the run's directory too
        "ANSIBLE_REMOTE_TMP": str(workdir / "remote"),
        "ANSIBLE_CONFIG": str(workdir / "ansible.cfg"),
    }
    (workdir / "ansible.cfg").write_text("[defaults]\n")
    ctx.log("%s | PLAYBOOK %s on %s", host, playbook.name, inv["all"]["hosts"][host].get("ansible_host"))
    try:
        runner = ansible_runner.run(
            private_data_dir=str(workdir),
            project_dir=str(playbook.parent),
            playbook=str(playbook),
            inventory=inv,
            limit=host,
            extravars=inventory.extra_vars(ctx, RESERVED_INPUTS),
            envvars=env,
            timeout=timeout,
            quiet=True,
            event_handler=_handler(ctx, progress),
            cancel_callback=ctx.cancelled.is_set,
            settings={"suppress_ansible_output": True},
        )
        status, rc = str(runner.status), runner.rc
        stdout = "" if progress.failed or progress.unreachable else _tail(runner)
    finally:
        _close_masters(workdir / "cp")
        shutil.rmtree(workdir, ignore_errors=True)
    where = f"playbook {playbook.name} on {host}"
    if status == "canceled":
        raise NonRetryableError(f"{where} was cancelled")
    if status == "timeout":
        raise NonRetryableError(f"{where} did not finish within {timeout} s; raise the timeout input or fix it")
    if progress.failed:
        first = progress.failed[0]
        raise NonRetryableError(
            f"{where} failed: host {first.host}, task [{first.task}]: {first.message}",
            details={"host": first.host, "task": first.task, "message": first.message},
        )
    if progress.unreachable:
        first = progress.unreachable[0]
        raise RetryableError(
            f"{where}: host {first.host} is unreachable ({first.message}); check that it runs and its sshd answers",
            details={"host": first.host, "task": first.task, "message": first.message},
        )
    if status != "successful":
        raise NonRetryableError(f"{where} failed (ansible-playbook exit {rc}): {stdout or 'no output'}")
    ctx.log("%s | PLAYBOOK %s | %s", host, playbook.name, _summary(progress.counts))
    return {"status": status, "tasks": dict(progress.counts)}


def _close_masters(control_dir: Path) -> None:
    """End the run's ssh master connections, so no ssh process outlives the operation."""
    if not control_dir.exists():
        return
    for socket_path in control_dir.iterdir():
        subprocess.run(
            ["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "tempano-master"],
            capture_output=True,
            timeout=10,
            check=False,
        )


def _tail(runner: Any) -> str:
    try:
        text = runner.stdout.read()
    except (AttributeError, OSError, ValueError):
        return ""
    lines = [line for line in str(text).splitlines() if line.strip()]
    return " / ".join(lines[-5:])


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no tasks"
