"""The activity layer's :class:`OperationContext`: adapts Temporal (heartbeats, cancellation, retries) and the
store (ledger, secrets) to the plugin contract."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from temporalio import activity

from tempano.plugins.contract import InstanceView, OperationContext, Relationship, Resource
from tempano.store import Store

AUTO_HEARTBEAT_S = 2.0


TASK_TAG = "tempano_task"
"""Heartbeat detail naming the operation of a chain that sent it (a retried chain gives details back only to it)."""


class ActivityContext(OperationContext):
    """One attempt of one operation, run inside a Temporal activity."""

    def __init__(
        self,
        *,
        store: Store,
        plugin: str,
        deployment_id: str,
        execution_id: str,
        operation: str,
        inputs: Mapping[str, Any],
        idempotency_key: str,
        attempt: int,
        instance: InstanceView,
        host: InstanceView | None,
        relationships: tuple[Relationship, ...] | Callable[[], tuple[Relationship, ...]],
        source: InstanceView | None,
        target: InstanceView | None,
        blueprint_dir: Path | None,
        heartbeat_details: Mapping[str, Any],
        logger: logging.Logger,
        tag: str | None = None,
    ) -> None:
        self.store = store
        self.plugin = plugin
        self.deployment_id = deployment_id
        self.execution_id = execution_id
        self.operation = operation
        self.inputs = inputs
        self.idempotency_key = idempotency_key
        self.attempt = attempt
        self.instance = instance
        self.host = host
        self._relationships = relationships
        self.source = source
        self.target = target
        self.blueprint_dir = blueprint_dir
        self.logger = logger
        self.cancelled = threading.Event()
        self._previous = dict(heartbeat_details)
        self._details: dict[str, Any] = dict(heartbeat_details)
        if tag is not None:
            self._details[TASK_TAG] = tag
        self._lock = threading.Lock()
        self.lines: list[str] = []

    @property
    def relationships(self) -> tuple[Relationship, ...]:
        """Built on first use when given as a function: most operations never look at them, and an instance
        related to dozens of others spent more on their views than on the rest of starting the operation."""
        with self._lock:
            if callable(self._relationships):
                self._relationships = self._relationships()
            return self._relationships

    @relationships.setter
    def relationships(self, value: tuple[Relationship, ...]) -> None:
        with self._lock:
            self._relationships = value

    def record_resource(
        self, kind: str, resource_id: str, data: Mapping[str, Any] | None = None, *, external: bool = False
    ) -> None:
        self.store.record_resource(
            self.deployment_id,
            self.instance.id,
            plugin=self.plugin,
            kind=kind,
            resource_id=resource_id,
            idempotency_key=self.idempotency_key,
            execution_id=self.execution_id,
            data=data,
            external=external,
        )

    def forget_resource(self, kind: str, resource_id: str) -> None:
        self.store.forget_resource(self.deployment_id, self.instance.id, kind, resource_id)

    def resources(self, kind: str | None = None) -> list[Resource]:
        return [
            Resource(
                kind=r.kind,
                resource_id=r.resource_id,
                plugin=r.plugin,
                node_instance_id=r.node_instance_id,
                idempotency_key=r.idempotency_key,
                data=r.data,
                external=r.external,
            )
            for r in self.store.resources(self.deployment_id, self.instance.id)
            if kind is None or r.kind == kind
        ]

    def heartbeat(self, details: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            if details:
                self._details.update(details)
            snapshot = dict(self._details)
        activity.heartbeat(snapshot)
        if activity.is_cancelled():
            self.cancelled.set()

    @property
    def heartbeat_details(self) -> Mapping[str, Any]:
        return self._previous

    def get_secret(self, name: str) -> str:
        return self.store.get_secret(name)

    def log(self, message: str, *args: Any) -> None:
        line = message % args if args else message
        self.lines.append(line)
        self.logger.info("%s", line)

    @contextmanager
    def auto_heartbeat(self) -> Iterator[None]:
        """Heartbeats every couple of seconds while the plugin works, so a dead worker is noticed within the
        heartbeat timeout (not the operation's whole timeout) and cancellation reaches the plugin."""
        # Looked up on every beat: a plugin (or a test standing for a frozen worker) may replace it meanwhile.
        with heartbeating(lambda: self.heartbeat(), f"heartbeat-{self.instance.id}"):
            yield


@contextmanager
def heartbeating(beat: Callable[[], None], name: str) -> Iterator[None]:
    """Calls ``beat`` every AUTO_HEARTBEAT_S seconds (a quarter of the activity's heartbeat timeout when that is
    shorter), from a thread of its own (in the caller's context, which holds the activity), while the block runs.
    The cadence runs from the block's start whatever the block does meanwhile: a chain of operations shorter than
    the interval still beats, however many of them it runs. A beat that fails stops the beating, never the work."""
    done = threading.Event()
    ctx = contextvars.copy_context()
    interval = beat_interval()

    def loop() -> None:
        while not done.wait(interval):
            try:
                ctx.run(beat)
            except Exception:
                return

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=interval * 2)


def beat_interval() -> float:
    """How often a heartbeating block beats: every AUTO_HEARTBEAT_S seconds, or four times per heartbeat timeout
    when that is shorter (Temporal sends at most one heartbeat per 0.8 x the timeout, so a beat must be ready well
    before then)."""
    try:
        timeout = activity.info().heartbeat_timeout
    except RuntimeError:  # not in an activity (a plugin's own test)
        return AUTO_HEARTBEAT_S
    if not timeout:
        return AUTO_HEARTBEAT_S
    return min(AUTO_HEARTBEAT_S, timeout.total_seconds() / 4)
