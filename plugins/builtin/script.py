"""``builtin.script``: run a script shipped with the blueprint on the worker.

The compiler turns an operation implemented by a script artifact (``.sh``, ``.bash``, ``.py``) into
``builtin.script`` with the input ``script``: its path relative to the blueprint directory.

- Interpreter: the script's ``#!`` line when it has one, else ``bash`` for ``.bash``, the worker's Python for
  ``.py`` and ``sh`` otherwise (the executable bit is not needed: CSARs lose it).
- Environment: the worker's, plus every operation input as a variable of the same name (strings as they are,
  numbers and booleans as text, lists and maps as JSON, null as empty), plus ``TEMPANO_DEPLOYMENT_ID``,
  ``TEMPANO_NODE``, ``TEMPANO_NODE_INSTANCE``, ``TEMPANO_OPERATION``, ``TEMPANO_BLUEPRINT_DIR``,
  ``TEMPANO_SOURCE_INSTANCE``/``TEMPANO_TARGET_INSTANCE`` for relationship operations, and
  ``TEMPANO_OUTPUTS``.
- Outputs: lines ``name=value`` the script appends to the file ``$TEMPANO_OUTPUTS`` become the operation's outputs
  (``get_operation_output``) and the node instance's attributes (``get_attribute``); values are strings, a later
  line wins (``echo "address=10.0.0.5" >> "$TEMPANO_OUTPUTS"``).
- The working directory is a fresh temporary one, removed afterwards (``$TEMPANO_BLUEPRINT_DIR`` or
  ``$(dirname "$0")`` reach the blueprint's files).
- Every stdout line is logged; stderr lines too, prefixed with ``stderr:``. Exit 0 succeeds; exit 75
  (EX_TEMPFAIL) asks for a retry; any other status fails the operation with the last stderr lines.
- Input ``timeout`` (seconds, optional) bounds the run; the operation's own timeout and a cancellation also stop
  it: the script's whole process group gets SIGTERM, then SIGKILL after 5 seconds.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from tempano.plugins.contract import (
    ConfigurationError,
    NonRetryableError,
    OperationContext,
    RetryableError,
)

RESERVED_INPUTS = frozenset({"script", "timeout"})
RETRY_EXIT_STATUS = 75
STDERR_TAIL = 10
KILL_GRACE_S = 5.0
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OUTPUT_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$")


def resolve_script(ctx: OperationContext) -> Path:
    """The script's path, refused if missing or outside the blueprint directory."""
    where = f"{ctx.instance.id} {ctx.operation}"
    name = ctx.inputs.get("script")
    if not name:
        raise ConfigurationError(
            f"{where}: builtin.script needs the input `script`, a path inside the blueprint (e.g. scripts/create.sh)"
        )
    return ctx.artifact("script", str(name))


def command(path: Path) -> list[str]:
    """How to run ``path``: its ``#!`` line, else an interpreter chosen by its suffix."""
    with path.open("rb") as f:
        first = f.readline(512)
    if first.startswith(b"#!"):
        words = shlex.split(first[2:].decode("utf-8", "replace").strip())
        if words:
            return [*words, str(path)]
    suffix = path.suffix.lower()
    if suffix == ".py":
        return [sys.executable, str(path)]
    if suffix == ".bash":
        return ["bash", str(path)]
    return ["sh", str(path)]


def env_value(value: Any) -> str:
    """An input value as an environment variable's text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True)


def _environment(ctx: OperationContext, blueprint_dir: Path, outputs_file: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in ctx.inputs.items():
        if name in RESERVED_INPUTS:
            continue
        if not _ENV_NAME.match(name):
            raise ConfigurationError(
                f"{ctx.instance.id} {ctx.operation}: input {name!r} cannot be an environment variable of the "
                "script; rename it to letters, digits and underscores"
            )
        env[name] = env_value(value)
    env.update(
        TEMPANO_DEPLOYMENT_ID=ctx.deployment_id,
        TEMPANO_NODE=ctx.instance.node,
        TEMPANO_NODE_INSTANCE=ctx.instance.id,
        TEMPANO_OPERATION=ctx.operation,
        TEMPANO_BLUEPRINT_DIR=str(blueprint_dir),
        TEMPANO_OUTPUTS=str(outputs_file),
    )
    if ctx.source is not None:
        env["TEMPANO_SOURCE_INSTANCE"] = ctx.source.id
    if ctx.target is not None:
        env["TEMPANO_TARGET_INSTANCE"] = ctx.target.id
    return env


def _pump(stream: IO[str], handle: Any) -> threading.Thread:
    def run() -> None:
        for line in stream:
            handle(line.rstrip("\n"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to the script's process group, SIGKILL if it is still there after the grace period."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def read_outputs(path: Path) -> dict[str, str]:
    """``name=value`` lines of the outputs file (other lines are ignored)."""
    if not path.is_file():
        return {}
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _OUTPUT_LINE.match(line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def run_script(ctx: OperationContext) -> Mapping[str, Any]:
    """Run the script artifact; its outputs file's ``name=value`` lines are the outputs and attributes."""
    path = resolve_script(ctx)
    assert ctx.blueprint_dir is not None  # checked by resolve_script
    where = f"{ctx.instance.id} {ctx.operation}: script {ctx.inputs['script']}"
    raw_timeout = ctx.inputs.get("timeout")
    try:
        timeout = float(raw_timeout) if raw_timeout not in (None, "") else None
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where}: input timeout {raw_timeout!r} is not a number of seconds") from None
    workdir = Path(tempfile.mkdtemp(prefix="tempano-script-"))
    outputs_file = workdir / ".tempano-outputs"
    outputs_file.touch()
    stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)

    def on_stderr(line: str) -> None:
        stderr_tail.append(line)
        ctx.log("%s | stderr: %s", ctx.instance.id, line)

    try:
        env = _environment(ctx, ctx.blueprint_dir.resolve(), outputs_file)
        argv = command(path)
        ctx.log("%s | SCRIPT %s", ctx.instance.id, path.name)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,  # its own process group, so a kill reaches what it started
            )
        except OSError as exc:
            raise NonRetryableError(f"{where} could not be started with {argv[0]!r}: {exc.strerror or exc}") from None
        readers = [
            _pump(proc.stdout, lambda line: ctx.log("%s | %s", ctx.instance.id, line)),  # type: ignore[arg-type]
            _pump(proc.stderr, on_stderr),  # type: ignore[arg-type]
        ]
        deadline = time.monotonic() + timeout if timeout is not None else None
        stopped = ""
        while True:
            try:
                proc.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                pass
            if ctx.cancelled.is_set():
                stopped = "was cancelled"
            elif deadline is not None and time.monotonic() >= deadline:
                stopped = f"did not finish within {timeout:g} s; raise its timeout input or fix it"
            if stopped:
                _stop(proc)
                break
        for reader in readers:
            reader.join(timeout=KILL_GRACE_S)
        outputs = read_outputs(outputs_file)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    last = " / ".join(stderr_tail) or "no stderr output"
    if stopped:
        raise NonRetryableError(f"{where} {stopped} (stopped; last stderr: {last})")
    if proc.returncode == RETRY_EXIT_STATUS:
        raise RetryableError(f"{where} asked for a retry (exit status {RETRY_EXIT_STATUS}): {last}")
    if proc.returncode != 0:
        raise NonRetryableError(
            f"{where} failed with exit status {proc.returncode}: {last}",
            details={"exit_status": proc.returncode, "stderr": list(stderr_tail)},
        )
    for name, value in outputs.items():
        ctx.set_attribute(name, value)
    ctx.log(
        "%s | SCRIPT %s | done%s", ctx.instance.id, path.name, f", outputs: {', '.join(outputs)}" if outputs else ""
    )
    return outputs
