"""Run openstack operations outside the engine the way its activity does: tests, REPL, benchmarks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tempano.plugins.contract import InstanceView, Relationship, Resource, RetryableError
from tempano.plugins.openstack._plugin import plugin
from tempano.plugins.testing import LocalContext, instance

FAST_POLLING = {"poll_interval": 0.01, "wait_timeout": 10}
"""Node properties that make waits poll every 10 ms (the emulator builds in milliseconds)."""


def openstack_node(name: str, type_name: str, *parents: str, cloud: str, **properties: Any) -> InstanceView:
    """A node instance of one of the plugin's types on ``cloud``, polling fast."""
    return instance(
        name,
        type=type_name,
        type_hierarchy=(type_name, *parents, "tosca.nodes.Root"),
        properties={"cloud": cloud, **FAST_POLLING, **properties},
    )


def depends_on(target: InstanceView, name: str = "dependency") -> Relationship:
    """A relationship to ``target`` (the plugin reads related instances by their node type)."""
    return Relationship(name, "tosca.relationships.DependsOn", ("tosca.relationships.DependsOn",), target)


class OperationRunner:
    """One LocalContext per attempt over one shared ledger; attribute writes persist on success."""

    def __init__(self, deployment_id: str = "dep") -> None:
        self.deployment_id = deployment_id
        self.ledger: list[Resource] = []
        self.attempts = 0
        self.last: LocalContext | None = None

    def run(
        self,
        operation: str,
        node: InstanceView,
        *,
        relationships: tuple[Relationship, ...] = (),
        heartbeat_details: Mapping[str, Any] | None = None,
        ledger: list[Resource] | None = None,
        **kwargs: Any,
    ) -> Mapping[str, Any] | None:
        """Run ``operation`` (``server.create``) once on ``node``."""
        ctx = LocalContext(
            node,
            operation=operation.rsplit(".", 1)[1],
            deployment_id=self.deployment_id,
            plugin="openstack",
            ledger=self.ledger if ledger is None else ledger,
            relationships=relationships,
            heartbeat_details=heartbeat_details,
            **kwargs,
        )
        self.last = ctx
        self.attempts += 1
        return plugin.operations[operation](ctx)

    def retrying(self, operation: str, node: InstanceView, attempts: int = 30, **kwargs: Any) -> Any:
        """Repeat on RetryableError as the engine's retry policy would, resuming from the last heartbeat."""
        details: Mapping[str, Any] | None = None
        for _ in range(attempts):
            try:
                return self.run(operation, node, heartbeat_details=details, **kwargs)
            except RetryableError:
                beats = self.last.heartbeats if self.last else []
                details = beats[-1] if beats else details
        raise AssertionError(f"{operation} on {node.id} still failing after {attempts} attempts")
