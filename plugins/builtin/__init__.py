"""The built-in plugin: operations with no external system, for examples, tests and glue.

- ``builtin.log``: logs a message (input ``message``) and returns nothing;
- ``builtin.set_attributes``: copies the operation's inputs into runtime attributes;
- ``builtin.noop``: does nothing;
- ``builtin.sleep``: waits ``seconds`` (default 1), heartbeating and giving up at once when cancelled;
- ``builtin.fail``: raises (input ``message``, ``retryable``, ``times``: fail only the first N attempts);
- ``builtin.script``: runs a script artifact of the blueprint (see :mod:`tempano.plugins.builtin.script`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tempano.plugins.builtin.script import run_script
from tempano.plugins.contract import NonRetryableError, OperationContext, Plugin, RetryableError

plugin = Plugin("builtin", "operations without an external system")
plugin.operation("script")(run_script)


@plugin.operation("log")
def log(ctx: OperationContext) -> None:
    message = ctx.inputs.get("message") or f"{ctx.operation} on {ctx.instance.id}"
    ctx.log("%s", message)


@plugin.operation("set_attributes")
def set_attributes(ctx: OperationContext) -> Mapping[str, Any]:
    for name, value in ctx.inputs.items():
        ctx.set_attribute(name, value)
    ctx.log("%s: set %s", ctx.instance.id, ", ".join(sorted(ctx.inputs)) or "nothing")
    return dict(ctx.inputs)


@plugin.operation("noop")
def noop(ctx: OperationContext) -> None:
    return None


@plugin.operation("sleep")
def sleep(ctx: OperationContext) -> None:
    # One wait, woken by a cancellation: no polling (dozens of sleeping operations waking 20 times a second took
    # the GIL from the ones doing work).
    deadline = time.monotonic() + float(ctx.inputs.get("seconds", 1))
    if ctx.cancelled.wait(max(0.0, deadline - time.monotonic())):
        left = deadline - time.monotonic()
        raise NonRetryableError(f"{ctx.instance.id}: {ctx.operation} cancelled with {left:.1f} s left")


@plugin.operation("fail")
def fail(ctx: OperationContext) -> None:
    times = int(ctx.inputs.get("times", 0))
    if times and ctx.attempt > times:
        ctx.log("%s: succeeding on attempt %d", ctx.instance.id, ctx.attempt)
        return
    message = str(ctx.inputs.get("message", f"{ctx.operation} failed on purpose"))
    if bool(ctx.inputs.get("retryable", False)):
        raise RetryableError(message)
    raise NonRetryableError(message)
