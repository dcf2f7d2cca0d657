"""What every openstack operation shares: naming and tagging with the idempotency key, adoption, waiting."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from openstack import exceptions as sdk

from tempano.plugins.contract import (
    ConfigurationError,
    NonRetryableError,
    OperationContext,
    PluginError,
    ResourceNotFound,
    RetryableError,
)
from tempano.plugins.openstack._connection import cloud_name, connect
from tempano.plugins.openstack._errors import Where, calling

KEY_METADATA = "tempano_idempotency_key"
"""Server and volume metadata key holding the full idempotency key."""
TRANSIENT_POLL_FAILURES = 5
"""Consecutive transient failures a wait tolerates before giving the attempt up (polling is idempotent)."""


def key_tag(key: str) -> str:
    """The tag marking what an operation created: readable when it fits Nova's 60-character tag limit."""
    tag = f"tempano:{key}"
    if len(tag) <= 60 and "," not in tag and "/" not in tag:
        return tag
    return "tempano:" + hashlib.sha256(key.encode()).hexdigest()[:40]


def default_name(ctx: OperationContext) -> str:
    """The ``name`` property, else ``<deployment>-<node instance>``."""
    name = ctx.properties.get("name")
    return str(name) if name else f"{ctx.deployment_id}-{ctx.instance.id}"


def owns_name(ctx: OperationContext) -> bool:
    """Whether the resource name was derived by tempano (so an existing one of that name can only be ours)."""
    return not ctx.properties.get("name")


@dataclass
class Op:
    """One operation's view of its cloud: the connection, where it acts, and the node's settings."""

    ctx: OperationContext
    kind: str
    where: Where
    conn: Any

    @property
    def properties(self) -> Mapping[str, Any]:
        return self.ctx.properties

    @property
    def tag(self) -> str:
        return key_tag(self.ctx.idempotency_key)

    @property
    def poll_interval(self) -> float:
        return float(self.properties.get("poll_interval", 2.0))

    @property
    def wait_timeout(self) -> float:
        return float(self.properties.get("wait_timeout", 900.0))

    def _proxy(self, service: str) -> Any:
        # the first use of a service authenticates and reads the catalog: its failures need the same sentences
        with self.call(f"reach the {service} service for"):
            return getattr(self.conn, service)

    @property
    def compute(self) -> Any:
        return self._proxy("compute")

    @property
    def network(self) -> Any:
        return self._proxy("network")

    @property
    def image(self) -> Any:
        return self._proxy("image")

    @property
    def block_storage(self) -> Any:
        return self._proxy("block_storage")

    def call(self, action: str) -> Any:
        """Context manager translating SDK errors for ``action`` on this resource."""
        return calling(self.where, action)

    def external_id(self) -> str | None:
        """The resource to adopt when ``use_external_resource`` is set, else None."""
        if not self.properties.get("use_external_resource"):
            return None
        resource_id = self.properties.get("resource_id")
        if not resource_id:
            raise ConfigurationError(
                f"{self.where} sets use_external_resource but no resource_id: give the name or id of the "
                "existing "
                f"{self.kind} to adopt"
            )
        return str(resource_id)

    def recorded_id(self) -> str | None:
        """The id a previous attempt of this operation made: from its heartbeat, else from the ledger."""
        beat = self.ctx.heartbeat_details.get(f"{self.kind}_id")
        if beat:
            return str(beat)
        owned = [r for r in self.ctx.resources(self.kind) if not r.external]
        return owned[-1].resource_id if owned else None

    def record(self, resource_id: str, *, external: bool = False, **data: Any) -> None:
        self.ctx.record_resource(
            self.kind,
            resource_id,
            {"cloud": self.where.cloud, "name": self.where.name, **data},
            external=external,
        )

    def adopt_or_create(
        self,
        *,
        get: Callable[[str], Any | None],
        find_mine: Callable[[], list[Any]],
        find_external: Callable[[str], Any | None],
        create: Callable[[], Any],
    ) -> tuple[Any, bool]:
        """The object this operation manages and whether it was created now.

        Order: ``use_external_resource`` (recorded as external, never deleted); the id a previous attempt
        left in
        its heartbeat or the ledger; an object carrying this operation's idempotency tag; else a new object,
        recorded in the ledger before anything waits on it.
        """
        external = self.external_id()
        if external is not None:
            with self.call("look up the existing"):
                found = find_external(external)
            if found is None:
                raise_not_found(self.where, external)
            self.record(found.id, external=True)
            return found, False
        previous = self.recorded_id()
        if previous:
            with self.call("look up the previously created"):
                found = get(previous)
            if found is not None:
                self.record(found.id)
                return found, False
            # gone since (deleted out of band): the ledger entry is stale
            self.ctx.forget_resource(self.kind, previous)
        with self.call("look up by idempotency tag"):
            mine = find_mine()
        if mine:
            for extra in mine:  # duplicates from an old bug would otherwise leak: uninstall removes them all
                self.record(extra.id)
            return mine[0], False
        with self.call("create"):
            created = create()
        self.record(created.id)
        return created, True

    def wait_for(
        self,
        resource_id: str,
        fetch: Callable[[str], Any | None],
        *,
        ready: Collection[str],
        failed: Collection[str] = (),
        stage: str = "ready",
    ) -> Any:
        """Poll until the object's status is in ``ready`` or ``failed``; heartbeats carry its id for a
        retry."""
        deadline = time.monotonic() + self.wait_timeout
        transient = 0
        status = "unknown"
        while True:
            if self.ctx.cancelled.is_set():
                raise NonRetryableError(
                    f"cancelled while waiting for {self.where} ({resource_id}) to become {stage}; it stays "
                    "in the "
                    "resource ledger, so uninstall removes it"
                )
            try:
                with self.call(f"poll the status of {resource_id} of"):
                    obj = fetch(resource_id)
                transient = 0
            except PluginError as exc:
                transient += 1
                if not exc.retryable or transient > TRANSIENT_POLL_FAILURES:
                    raise
                obj = None
                self.ctx.logger.warning("transient failure while polling %s: %s", self.where, exc)
            else:
                if obj is None:
                    raise RetryableError(
                        f"{self.where} ({resource_id}) disappeared while waiting for it to become {stage}; "
                        "the "
                        "retry creates it anew"
                    )
                status = str(obj.status)
                if status in ready or status in failed:
                    self.ctx.heartbeat({f"{self.kind}_id": resource_id, "status": status})
                    return obj
            self.ctx.heartbeat({f"{self.kind}_id": resource_id, "status": status})
            if time.monotonic() > deadline:
                raise RetryableError(
                    f"{self.where} ({resource_id}) is still {status} after {self.wait_timeout:.0f} s; the "
                    "retry "
                    f"resumes waiting on the same {self.kind} (raise wait_timeout if the cloud is slow)"
                )
            self.ctx.cancelled.wait(self.poll_interval)

    def wait_gone(self, resource_id: str, fetch: Callable[[str], Any | None]) -> None:
        """Poll until the object is gone (404)."""
        deadline = time.monotonic() + self.wait_timeout
        while True:
            with self.call(f"check the deletion of {resource_id} of"):
                obj = fetch(resource_id)
            if obj is None:
                return
            self.ctx.heartbeat({f"deleting_{self.kind}_id": resource_id, "status": str(obj.status)})
            if self.ctx.cancelled.is_set():
                raise NonRetryableError(f"cancelled while deleting {self.where} ({resource_id})")
            if time.monotonic() > deadline:
                raise RetryableError(
                    f"{self.where} ({resource_id}) is still {obj.status} {self.wait_timeout:.0f} s after its "
                    "deletion was asked; the retry asks again"
                )
            self.ctx.cancelled.wait(self.poll_interval)

    def delete_recorded(self, delete: Callable[[str], None], fetch: Callable[[str], Any | None] | None = None) -> None:
        """Delete exactly what the ledger holds for this kind (adopted externals are only forgotten)."""
        for entry in self.ctx.resources(self.kind):
            if not entry.external:
                with self.call(f"delete {entry.resource_id} of"):
                    delete(entry.resource_id)
                if fetch is not None:
                    self.wait_gone(entry.resource_id, fetch)
            self.ctx.forget_resource(self.kind, entry.resource_id)


def nothing_recorded(ctx: OperationContext) -> bool:
    """True when the ledger holds nothing of this node instance: a delete then has nothing to do and must not
    need the cloud (uninstall after a create that never reached it, or a cloud that is gone)."""
    if ctx.resources():
        return False
    ctx.log("%s recorded nothing on its cloud: nothing to delete", ctx.instance.id)
    return True


def op(ctx: OperationContext, kind: str) -> Op:
    """The operation's cloud connection and the description of the resource it acts on."""
    cloud = cloud_name(ctx)
    name = default_name(ctx)
    if ctx.properties.get("use_external_resource") and ctx.properties.get("resource_id"):
        name = str(ctx.properties["resource_id"])
    return Op(ctx, kind, Where(cloud, ctx.instance.id, kind, name), connect(cloud))


def raise_not_found(where: Where, what: str) -> NoReturn:
    """Fail because a resource the blueprint names does not exist."""
    raise ResourceNotFound(
        f"{where.kind} {what!r} does not exist on cloud {where.cloud!r} (wanted by node instance "
        f"{where.instance_id}): check the name or id in the blueprint"
    )


def find_or_fail(op: Op, kind: str, name_or_id: str, finder: Callable[..., Any]) -> Any:
    """Resolve a name or id of a resource this node needs (flavor, image, network...) or fail naming it."""
    with op.call(f"look up {kind} {name_or_id!r} for"):
        found = maybe(finder, name_or_id)
    if found is None:
        raise_not_found(Where(op.where.cloud, op.where.instance_id, kind, name_or_id), name_or_id)
    return found


def target_id(ctx: OperationContext, node_type: str) -> list[str]:
    """The ``id`` attributes of related instances of ``node_type`` (in relationship order)."""
    ids = []
    for target in ctx.targets(node_type=node_type):
        if not target.attributes.get("id"):
            raise ConfigurationError(
                f"node instance {ctx.instance.id} needs {target.id} ({node_type}) to exist first, but it "
                "has no `id` "
                "attribute yet: the related node must be created before this one"
            )
        ids.append(str(target.attributes["id"]))
    return ids


def maybe(finder: Callable[..., Any], *args: Any, **kwargs: Any) -> Any | None:
    """Call an openstacksdk ``find_*`` that raises on a miss (the SDK 6 default) and answer None instead.

    Passing ``ignore_missing=False`` explicitly keeps SDK 6 from changing anything and its
    RemovedInSDK60Warning quiet; ``find_image`` warns regardless, from inside openstacksdk (``Image.find``
    searches with ``ignore_missing=True`` before it looks at hidden images)."""
    try:
        return finder(*args, ignore_missing=False, **kwargs)
    except sdk.NotFoundException:
        return None


def ignore_missing_get(getter: Callable[[str], Any]) -> Callable[[str], Any | None]:
    """A getter that answers None for a 404 instead of raising."""

    def get(resource_id: str) -> Any | None:
        try:
            return getter(resource_id)
        except sdk.NotFoundException:
            return None

    return get
