"""An in-memory :class:`OperationContext` for running plugin operations outside the engine (tests, REPL)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tempano.plugins.contract import InstanceView, OperationContext, Relationship, Resource


class LocalContext(OperationContext):
    """Runs one operation with a ledger and secrets kept in plain dicts (shared between calls if passed in)."""

    def __init__(
        self,
        instance: InstanceView,
        *,
        operation: str,
        inputs: Mapping[str, Any] | None = None,
        deployment_id: str = "dep",
        execution_id: str = "exec-1",
        plugin: str = "test",
        ledger: list[Resource] | None = None,
        secrets: Mapping[str, str] | None = None,
        host: InstanceView | None = None,
        relationships: tuple[Relationship, ...] = (),
        source: InstanceView | None = None,
        target: InstanceView | None = None,
        blueprint_dir: Path | None = None,
        heartbeat_details: Mapping[str, Any] | None = None,
        attempt: int = 1,
    ) -> None:
        self.instance = instance
        self.operation = operation
        self.inputs = dict(inputs or {})
        self.deployment_id = deployment_id
        self.execution_id = execution_id
        self.idempotency_key = f"{deployment_id}.{instance.id}.{operation}"
        self.attempt = attempt
        self.plugin = plugin
        self.ledger = ledger if ledger is not None else []
        self.secrets = dict(secrets or {})
        self.host = host
        self.relationships = relationships
        self.source = source
        self.target = target
        self.blueprint_dir = blueprint_dir
        self.logger = logging.getLogger(f"tempano.plugin.{plugin}")
        self.cancelled = threading.Event()
        self.heartbeats: list[dict[str, Any]] = []
        self._previous_heartbeat = dict(heartbeat_details or {})

    def record_resource(
        self, kind: str, resource_id: str, data: Mapping[str, Any] | None = None, *, external: bool = False
    ) -> None:
        if any(r.kind == kind and r.resource_id == resource_id for r in self.ledger):
            return
        self.ledger.append(
            Resource(kind, resource_id, self.plugin, self.instance.id, self.idempotency_key, dict(data or {}), external)
        )

    def forget_resource(self, kind: str, resource_id: str) -> None:
        self.ledger[:] = [r for r in self.ledger if not (r.kind == kind and r.resource_id == resource_id)]

    def resources(self, kind: str | None = None) -> list[Resource]:
        return [r for r in self.ledger if r.node_instance_id == self.instance.id and (kind is None or r.kind == kind)]

    def heartbeat(self, details: Mapping[str, Any] | None = None) -> None:
        self.heartbeats.append(dict(details or {}))

    @property
    def heartbeat_details(self) -> Mapping[str, Any]:
        return self._previous_heartbeat

    def get_secret(self, name: str) -> str:
        try:
            return self.secrets[name]
        except KeyError:
            raise KeyError(f"no secret named {name!r}") from None


def instance(
    node: str = "node",
    *,
    index: int = 1,
    type: str = "tempano.nodes.Root",
    type_hierarchy: tuple[str, ...] = (),
    properties: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Any] | None = None,
    host_id: str | None = None,
) -> InstanceView:
    """A node instance view for tests."""
    return InstanceView(
        id=f"{node}_{index}",
        node=node,
        type=type,
        type_hierarchy=type_hierarchy or (type, "tosca.nodes.Root"),
        properties=dict(properties or {}),
        attributes=dict(attributes or {}),
        host_id=host_id,
    )
