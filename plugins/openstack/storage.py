"""Cinder operations: volumes (the full idempotency key sits in the volume's metadata)."""

from __future__ import annotations

from typing import Any

from tempano.plugins.contract import ConfigurationError, OperationContext, RetryableError
from tempano.plugins.openstack._plugin import plugin
from tempano.plugins.openstack._support import (
    KEY_METADATA,
    Op,
    find_or_fail,
    ignore_missing_get,
    maybe,
    nothing_recorded,
    op,
)
from tempano.plugins.openstack.compute import scalar_size


def _adopt_or_create(o: Op) -> Any:
    storage = o.block_storage
    props = o.properties

    def attrs() -> dict[str, Any]:
        if not props.get("size"):
            raise ConfigurationError(f"{o.where} needs a `size` (GB, or a TOSCA size such as '10 GB')")
        values: dict[str, Any] = {
            "name": o.where.name,
            "size": scalar_size(props["size"], "GiB"),
            "metadata": {
                **{str(k): str(v) for k, v in (props.get("metadata") or {}).items()},
                KEY_METADATA: o.ctx.idempotency_key,
            },
        }
        for prop in ("volume_type", "availability_zone", "description"):
            if props.get(prop):
                values[prop] = props[prop]
        if props.get("image"):
            values["image_id"] = find_or_fail(o, "image", str(props["image"]), o.image.find_image).id
        return values

    volume, _ = o.adopt_or_create(
        get=ignore_missing_get(storage.get_volume),
        find_mine=lambda: [
            v
            for v in storage.volumes(details=True, name=o.where.name)
            if (v.metadata or {}).get(KEY_METADATA) == o.ctx.idempotency_key
        ],
        find_external=lambda ref: maybe(storage.find_volume, ref),
        create=lambda: storage.create_volume(**attrs()),
    )
    return volume


@plugin.operation("volume.create")
def create_volume(ctx: OperationContext) -> dict[str, Any]:
    """A volume of ``size`` (from ``image`` when given: bootable); waits until it is ``available`` (a volume
    left in ``error`` is replaced on retry)."""
    o = op(ctx, "volume")
    storage = o.block_storage
    get = ignore_missing_get(storage.get_volume)
    volume = _adopt_or_create(o)
    if volume.status == "error" and o.external_id() is None:
        with o.call(f"delete the failed volume {volume.id} of"):
            storage.delete_volume(volume.id, ignore_missing=True)
        o.wait_gone(volume.id, get)
        ctx.forget_resource("volume", volume.id)
        volume = _adopt_or_create(o)
    ready = {"available", "in-use"} if o.external_id() else {"available"}
    volume = o.wait_for(volume.id, get, ready=ready, failed={"error"}, stage="available")
    if volume.status == "error":
        raise RetryableError(f"{o.where} ({volume.id}) went to error; the retry deletes it and creates it anew")
    outputs = {"id": volume.id, "name": volume.name, "size": volume.size, "cloud": o.where.cloud}
    for key, value in outputs.items():
        ctx.set_attribute(key, value)
    return outputs


@plugin.operation("volume.delete")
def delete_volume(ctx: OperationContext) -> None:
    """Delete the volume the ledger holds, once it is detached (an attached one makes the attempt retry)."""
    if nothing_recorded(ctx):
        return
    o = op(ctx, "volume")
    storage = o.block_storage
    get = ignore_missing_get(storage.get_volume)
    for entry in ctx.resources("volume"):
        if not entry.external:
            with o.call(f"read {entry.resource_id} of"):
                volume = get(entry.resource_id)
            if volume is not None and volume.status == "in-use":
                servers = ", ".join(a.get("server_id", "?") for a in volume.attachments or [])
                raise RetryableError(
                    f"{o.where} ({volume.id}) is still attached to server {servers}; it is deleted "
                    "once detached (uninstall detaches it when the server goes)"
                )
    o.delete_recorded(lambda i: storage.delete_volume(i, ignore_missing=True), get)
