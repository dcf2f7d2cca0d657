"""The plugin contract: what an operation receives, what it may raise, how a plugin declares itself."""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class PluginError(Exception):
    """An operation failed. ``retryable`` tells the engine whether another attempt can help."""

    retryable: bool = True

    def __init__(self, message: str, *, retryable: bool | None = None, details: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable
        self.details = dict(details or {})


class RetryableError(PluginError):
    """A transient fault: a 5xx answer, a timeout, a resource busy for now."""

    retryable = True


class NonRetryableError(PluginError):
    """Retrying cannot help; the execution fails with this message."""

    retryable = False


class QuotaExceeded(NonRetryableError):
    """The VIM refuses for lack of quota."""


class ResourceNotFound(NonRetryableError):
    """A resource the operation needs (image, flavor, network...) does not exist."""


class AuthenticationFailed(NonRetryableError):
    """Credentials were refused."""


class ConfigurationError(NonRetryableError):
    """The blueprint gave properties or inputs the plugin cannot use."""


def unhealthy(reason: str, **facts: Any) -> dict[str, Any]:
    """A health check's answer for a broken instance: an answer, not an error (heal acts on it). The engine puts
    the reason in the execution's history; ``facts`` (a status, the problems found) go along in the outputs."""
    return {"healthy": False, "reason": reason, **facts}


@dataclass(frozen=True)
class Resource:
    """One entry of the resource ledger: something an operation created in an external system."""

    kind: str
    resource_id: str
    plugin: str
    node_instance_id: str
    idempotency_key: str
    data: Mapping[str, Any] = field(default_factory=dict)
    external: bool = False  # adopted with use_external_resource: never deleted


@dataclass
class InstanceView:
    """A node instance as an operation sees it: identity, type, properties and live attributes.

    ``attributes`` is a copy; writes go through :meth:`OperationContext.set_attribute` (or the
    relationship side's ``set_attribute``) so the engine can persist them.
    """

    id: str
    node: str
    type: str
    type_hierarchy: tuple[str, ...]
    properties: Mapping[str, Any]
    attributes: dict[str, Any]
    host_id: str | None = None
    _writes: dict[str, Any] = field(default_factory=dict, repr=False)

    def is_a(self, type_name: str) -> bool:
        return type_name == self.type or type_name in self.type_hierarchy

    def set_attribute(self, name: str, value: Any) -> None:
        self.attributes[name] = value
        self._writes[name] = value

    @property
    def attribute_writes(self) -> dict[str, Any]:
        return dict(self._writes)


@dataclass(frozen=True)
class Relationship:
    """A relationship of the node instance to another instance (a filled requirement)."""

    name: str
    """The requirement name (``host``, ``link``, ``binding``, ``dependency``...)."""
    type: str
    type_hierarchy: tuple[str, ...]
    target: InstanceView
    properties: Mapping[str, Any] = field(default_factory=dict)

    def is_a(self, type_name: str) -> bool:
        return type_name == self.type or type_name in self.type_hierarchy


class OperationContext(abc.ABC):
    """Everything a plugin operation may use. Implemented by the activity layer (and by test harnesses)."""

    deployment_id: str
    execution_id: str
    operation: str
    """The lifecycle name of the operation (``create``, ``configure``, ``pre_configure_source``...)."""
    inputs: Mapping[str, Any]
    """The operation's inputs, with every function already resolved."""
    idempotency_key: str
    """Deterministic for (deployment, node instance, operation): name/tag what you create with it."""
    attempt: int
    instance: InstanceView
    """The node instance the operation runs on (the relationship's source for relationship operations)."""
    host: InstanceView | None = None
    """The instance this one is hosted on (``tosca.relationships.HostedOn``), if any."""
    relationships: tuple[Relationship, ...] = ()
    """The instance's outgoing relationships, each with the target instance's current attributes."""
    source: InstanceView | None = None
    target: InstanceView | None = None
    """For relationship operations: both ends. ``instance`` is the side the operation runs on."""
    blueprint_dir: Path | None = None
    """Where the blueprint's artifacts (playbooks, scripts) are, on this worker."""
    logger: logging.Logger
    cancelled: threading.Event
    """Set when the engine cancels the operation: long waits must check it and stop."""

    @property
    def properties(self) -> Mapping[str, Any]:
        return self.instance.properties

    @property
    def attributes(self) -> Mapping[str, Any]:
        return self.instance.attributes

    def set_attribute(self, name: str, value: Any) -> None:
        """Set a runtime attribute of the node instance (persisted when the operation succeeds)."""
        self.instance.set_attribute(name, value)

    def artifact(self, kind: str, name: str) -> Path:
        """The blueprint's file ``name`` (a path relative to the blueprint directory), refused with a
        :class:`ConfigurationError` if it escapes that directory, :class:`ResourceNotFound` if it is missing.
        ``kind`` names it in the messages (``playbook``, ``script``)."""
        where = f"{self.instance.id} {self.operation}"
        if self.blueprint_dir is None:
            raise ConfigurationError(f"{where}: the blueprint directory is unknown, so {kind} {name!r} cannot be found")
        base = self.blueprint_dir.resolve()
        try:
            path = (base / name).resolve()
            path.is_file()  # a stat: raises for a name too long (resolve raises for a NUL byte)
        except (OSError, ValueError) as e:
            raise ConfigurationError(f"{where}: no file can be named {kind} {name!r} ({e}); fix the path") from None
        if not path.is_relative_to(base):
            raise ConfigurationError(
                f"{where}: {kind} {name!r} is outside the blueprint directory {base}; ship it with the blueprint "
                "and give a relative path"
            )
        if not path.is_file():
            raise ResourceNotFound(f"{where}: {kind} {name!r} does not exist in the blueprint directory {base}")
        return path

    def targets(self, type_name: str | None = None, *, node_type: str | None = None) -> list[InstanceView]:
        """Targets of the outgoing relationships, filtered by relationship type and/or target node type."""
        return [
            r.target
            for r in self.relationships
            if (type_name is None or r.is_a(type_name)) and (node_type is None or r.target.is_a(node_type))
        ]

    @abc.abstractmethod
    def record_resource(
        self, kind: str, resource_id: str, data: Mapping[str, Any] | None = None, *, external: bool = False
    ) -> None:
        """Write what was just created to the ledger, at once (before any wait), so a crash cannot lose it."""

    @abc.abstractmethod
    def forget_resource(self, kind: str, resource_id: str) -> None:
        """Remove a ledger entry once the resource is really gone."""

    @abc.abstractmethod
    def resources(self, kind: str | None = None) -> list[Resource]:
        """The ledger entries of this node instance, oldest first."""

    @abc.abstractmethod
    def heartbeat(self, details: Mapping[str, Any] | None = None) -> None:
        """Tell the engine the operation is alive; ``details`` come back in ``heartbeat_details`` on retry."""

    @property
    @abc.abstractmethod
    def heartbeat_details(self) -> Mapping[str, Any]:
        """What the previous attempt last passed to :meth:`heartbeat` (empty on the first attempt)."""

    @abc.abstractmethod
    def get_secret(self, name: str) -> str:
        """A secret from tempano's secret store. Never log it or put it in attributes.

        Raises a :class:`LookupError` (catch that, not a subclass) when the store holds no such secret.
        """

    def log(self, message: str, *args: Any) -> None:
        """A line for the execution's lifecycle history."""
        self.logger.info(message, *args)


OperationFn = Callable[[OperationContext], Mapping[str, Any] | None]


class Plugin:
    """A named set of operations. Register it under the ``tempano.plugins`` entry-point group.

    ::

        plugin = Plugin("lab")

        @plugin.operation("server.create")
        def create_server(ctx: OperationContext) -> dict[str, Any]: ...
    """

    def __init__(self, name: str, description: str = "") -> None:
        self.name = name
        self.description = description
        self.operations: dict[str, OperationFn] = {}

    def operation(self, name: str) -> Callable[[OperationFn], OperationFn]:
        def register(fn: OperationFn) -> OperationFn:
            if name in self.operations:
                raise ValueError(f"plugin {self.name!r} declares operation {name!r} twice")
            self.operations[name] = fn
            return fn

        return register

    def __repr__(self) -> str:
        return f"Plugin({self.name!r}, {len(self.operations)} operations)"
