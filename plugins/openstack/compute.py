"""Nova operations: servers (with NFV flavors), key pairs, server groups, volume attachments.

Policy for a server that goes to ERROR: the attempt fails with a RetryableError quoting Nova's fault (or a
NonRetryableError when the node sets ``retry_on_error: false``); the ERROR server stays in the ledger, and
the next
attempt deletes it (waiting until it is gone) before booting a new one with the same idempotency tag.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from openstack.compute.v2.server import Server

from tempano.plugins.contract import (
    ConfigurationError,
    NonRetryableError,
    OperationContext,
    ResourceNotFound,
    RetryableError,
    unhealthy,
)
from tempano.plugins.openstack import _types as types
from tempano.plugins.openstack._plugin import plugin
from tempano.plugins.openstack._support import (
    KEY_METADATA,
    Op,
    default_name,
    find_or_fail,
    ignore_missing_get,
    maybe,
    nothing_recorded,
    op,
    owns_name,
)

_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
    "tb": 1000**4,
    "tib": 1024**4,
}
_NFV_SPECS = {
    "cpu_policy": "hw:cpu_policy",
    "cpu_thread_policy": "hw:cpu_thread_policy",
    "numa_nodes": "hw:numa_nodes",
    "mem_page_size": "hw:mem_page_size",
}


def scalar_size(value: Any, unit: str) -> int:
    """A TOSCA scalar-unit.size ("2 GB", "512 MiB") or a bare number already in ``unit``, expressed in "
    "``unit``."""
    if isinstance(value, int | float):
        return int(value)
    number, _, suffix = str(value).strip().partition(" ")
    if not suffix:
        return int(float(number))
    factor = _SIZE_UNITS.get(suffix.strip().lower())
    if factor is None:
        raise ConfigurationError(f"unknown size unit in {value!r}: use B, kB, KiB, MB, MiB, GB, GiB, TB or TiB")
    return max(1, round(float(number) * factor / _SIZE_UNITS[unit.lower()]))


def nfv_extra_specs(properties: Mapping[str, Any]) -> dict[str, str]:
    """Flavor extra specs for NFV placement from the node's properties (``flavor_extra_specs`` wins on "
    "conflict)."""
    specs = {spec: str(properties[prop]) for prop, spec in _NFV_SPECS.items() if properties.get(prop) is not None}
    specs.update({str(k): str(v) for k, v in (properties.get("flavor_extra_specs") or {}).items()})
    return specs


# -- servers
# ---------------------------------------------------------------------------------------------------


def _flavor_id(o: Op) -> str:
    compute = o.compute
    specs = nfv_extra_specs(o.properties)
    ref = o.properties.get("flavor")
    if ref:
        flavor = find_or_fail(
            o,
            "flavor",
            str(ref),
            lambda r, ignore_missing: compute.find_flavor(
                r, ignore_missing=ignore_missing, get_extra_specs=bool(specs)
            ),
        )
        wrong = {k: v for k, v in specs.items() if (flavor.extra_specs or {}).get(k) != v}
        if wrong:
            raise ConfigurationError(
                f"flavor {ref!r} on cloud {o.where.cloud!r} lacks the extra specs {wrong} that {o.where} "
                "asks for: "
                "pick a flavor that has them, or drop `flavor` and give `virtual_compute` so tempano makes "
                "one"
            )
        return str(flavor.id)
    sizing = o.properties.get("virtual_compute")
    if not sizing:
        raise ConfigurationError(f"{o.where} needs a `flavor` (name or id) or a `virtual_compute` sizing")
    fo = op(o.ctx, "flavor")
    name = "tempano-" + hashlib.sha256(o.ctx.idempotency_key.encode()).hexdigest()[:20]
    fo.where = type(fo.where)(fo.where.cloud, fo.where.instance_id, "flavor", name)
    flavor, _ = fo.adopt_or_create(
        get=ignore_missing_get(compute.get_flavor),
        find_mine=lambda: [f for f in compute.flavors(details=True) if f.name == name],
        find_external=lambda ref: None,
        create=lambda: compute.create_flavor(
            name=name,
            vcpus=int(sizing.get("vcpus", sizing.get("num_virtual_cpu", 1))),
            ram=scalar_size(sizing.get("ram", sizing.get("virtual_mem_size", 512)), "MiB"),
            disk=scalar_size(sizing.get("disk", sizing.get("size_of_storage", 1)), "GiB"),
            is_public=False,
        ),
    )
    if specs:
        # always re-applied: a crash between the flavor's creation and its specs must not leave it bare
        with fo.call("set the NFV extra specs of"):
            compute.create_flavor_extra_specs(flavor, specs)
    return str(flavor.id)


def _requested_nics(o: Op) -> Iterator[dict[str, str]]:
    """The NICs the node asks for, in boot order: ``networks`` entries, then Port/Network relationships
    (resolved lazily: the first one alone costs at most one lookup)."""
    for item in o.properties.get("networks") or []:
        if item.get("port"):
            yield {"port": find_or_fail(o, "port", str(item["port"]), o.network.find_port).id}
            continue
        nic = {"uuid": find_or_fail(o, "network", str(item["network"]), o.network.find_network).id}
        if item.get("fixed_ip"):
            nic["fixed_ip"] = str(item["fixed_ip"])
        yield nic
    for rel in o.ctx.relationships:  # relationship order is NIC order
        if rel.target.is_a(types.PORT) or rel.target.is_a(types.NETWORK):
            if not rel.target.attributes.get("id"):
                raise ConfigurationError(
                    f"{o.where} is related to {rel.target.id}, which has no `id` yet: it must be created first"
                )
            yield {("port" if rel.target.is_a(types.PORT) else "uuid"): str(rel.target.attributes["id"])}


def _nics(o: Op) -> list[dict[str, str]] | str:
    # no NIC asked: let Nova pick the project's network, as `openstack server create` does
    return list(_requested_nics(o)) or "auto"


def _boot_volume(o: Op) -> str | None:
    """The id of the volume the server boots from (a ``BootsFrom`` relationship), if any."""
    volumes = [rel.target for rel in o.ctx.relationships if rel.is_a(types.BOOTS_FROM)]
    if not volumes:
        return None
    if len(volumes) > 1:
        raise ConfigurationError(
            f"{o.where} has {len(volumes)} boot volumes ({', '.join(v.id for v in volumes)}): a server boots "
            "from one; attach the others with `volume` requirements"
        )
    if not volumes[0].attributes.get("id"):
        raise ConfigurationError(
            f"{o.where} boots from {volumes[0].id}, which has no `id` yet: the volume must be created first"
        )
    return str(volumes[0].attributes["id"])


def _server_attrs(o: Op) -> dict[str, Any]:
    props, ctx = o.properties, o.ctx
    image_ref = props.get("image")
    boot_volume = _boot_volume(o)
    if not image_ref and boot_volume is None:
        raise ConfigurationError(f"{o.where} needs an `image` (name or id) or a `boot_volume`")
    attrs: dict[str, Any] = {
        "name": o.where.name,
        "flavor_id": _flavor_id(o),
        "networks": _nics(o),
        "metadata": {
            **{str(k): str(v) for k, v in (props.get("metadata") or {}).items()},
            KEY_METADATA: ctx.idempotency_key,
        },
        "tags": [o.tag],
    }
    if boot_volume is not None:
        # the volume stays when the server goes: the Volume node owns it and deletes it on uninstall
        attrs["block_device_mapping"] = [
            {
                "boot_index": 0,
                "uuid": boot_volume,
                "source_type": "volume",
                "destination_type": "volume",
                "delete_on_termination": False,
            }
        ]
    else:
        attrs["image_id"] = find_or_fail(o, "image", str(image_ref), o.image.find_image).id
    keypairs = [t.attributes.get("name") for t in ctx.targets(node_type=types.KEYPAIR)]
    key_name = props.get("key_name") or next((k for k in keypairs if k), None)
    if key_name:
        attrs["key_name"] = str(key_name)
    if props.get("user_data"):
        attrs["user_data"] = base64.b64encode(str(props["user_data"]).encode()).decode()
    for prop in ("availability_zone", "config_drive", "description"):
        if props.get(prop) is not None:
            attrs[prop] = props[prop]
    if props.get("security_groups"):
        attrs["security_groups"] = [{"name": str(g)} for g in props["security_groups"]]
    hints = {str(k): v for k, v in (props.get("scheduler_hints") or {}).items()}
    groups = [str(t.attributes["id"]) for t in ctx.targets(node_type=types.SERVER_GROUP) if t.attributes.get("id")]
    if props.get("server_group"):
        group = find_or_fail(o, "server group", str(props["server_group"]), o.compute.find_server_group)
        groups.insert(0, str(group.id))
    if groups:
        hints["group"] = groups[0]
    if hints:
        attrs["scheduler_hints"] = hints
    return attrs


def _discard_failed(o: Op, server: Any) -> None:
    """Delete a server a previous attempt left in ERROR, wait until it is gone, and drop it from the
    ledger."""
    o.ctx.log("deleting %s %s left in ERROR by a previous attempt before booting anew", o.where, server.id)
    compute = o.compute
    with o.call(f"delete the ERROR server {server.id} of"):
        compute.delete_server(server.id, ignore_missing=True)
    o.wait_gone(server.id, ignore_missing_get(compute.get_server))
    o.ctx.forget_resource("server", server.id)


def _adopt_or_boot(o: Op) -> tuple[Any, bool]:
    compute = o.compute
    return o.adopt_or_create(
        get=ignore_missing_get(compute.get_server),
        find_mine=lambda: list(compute.servers(details=True, tags=o.tag)),
        find_external=lambda ref: maybe(compute.find_server, ref),
        create=lambda: compute.create_server(**_server_attrs(o)),
    )


def _private_address(o: Op, server: Any, fixed: list[Mapping[str, Any]]) -> str | None:
    """The fixed address of the first NIC the server was booted with.

    Nova keys its address map by network, in no NIC order: with several NICs (MAC addresses), the port of
    the first requested NIC says which address it is."""
    several = len({a.get("OS-EXT-IPS-MAC:mac_addr") for a in fixed}) > 1
    first = next(_requested_nics(o), None) if several else None
    if first is None:
        return str(fixed[0]["addr"]) if fixed else None
    if first.get("fixed_ip"):
        return first["fixed_ip"]
    with o.call(f"list the ports of server {server.id} for"):
        ports = list(o.network.ports(device_id=server.id))
    for port in ports:
        if port.fixed_ips and (port.id == first.get("port") or port.network_id == first.get("uuid")):
            return str(port.fixed_ips[0]["ip_address"])
    return str(fixed[0]["addr"])


def _server_outputs(o: Op, server: Any, private_address: str | None = None) -> dict[str, Any]:
    """The server's attributes; ``private_address``: already known (a start or stop keeps the first NIC's
    address, which spares the port lookups of a server with several NICs)."""
    addresses = server.addresses or {}
    fixed = [a for ips in addresses.values() for a in ips if a.get("OS-EXT-IPS:type") != "floating"]
    floating = [a["addr"] for ips in addresses.values() for a in ips if a.get("OS-EXT-IPS:type") == "floating"]
    outputs = {
        "id": server.id,
        "name": server.name,
        "cloud": o.where.cloud,
        "status": server.status,
        "host_id": server.host_id,
        "private_address": private_address or _private_address(o, server, fixed),
        "public_address": floating[0] if floating else None,
        "addresses": {net: [a["addr"] for a in ips] for net, ips in addresses.items()},
        "networks": {
            net: {"network_name": net, "addresses": [a["addr"] for a in ips]} for net, ips in addresses.items()
        },
    }
    for name, value in outputs.items():
        o.ctx.set_attribute(name, value)
    return outputs


@plugin.operation("server.create")
def create_server(ctx: OperationContext) -> dict[str, Any]:
    """Boot (or adopt) the server and wait until it is ACTIVE."""
    o = op(ctx, "server")
    external = o.external_id() is not None
    server, _ = _adopt_or_boot(o)
    if server.status == "ERROR" and not external:
        _discard_failed(o, server)
        server, _ = _adopt_or_boot(o)
    ready = {"ACTIVE", "SHUTOFF"} if external else {"ACTIVE"}
    server = o.wait_for(
        server.id,
        ignore_missing_get(o.compute.get_server),
        ready=ready,
        failed={"ERROR"},
        stage="ACTIVE",
    )
    if server.status == "ERROR":
        fault = (server.fault or {}).get("message") or "Nova gave no fault message"
        message = f"{o.where} ({server.id}) went to ERROR: {fault}"
        if external:
            raise NonRetryableError(f"{message}; it is an adopted server, so tempano does not replace it")
        if ctx.properties.get("retry_on_error", True) is False:
            raise NonRetryableError(
                f"{message}; retry_on_error is false, so the execution stops here (uninstall removes it)"
            )
        raise RetryableError(f"{message}; the retry deletes it and boots a new one")
    return _server_outputs(o, server)


def _server_id(o: Op) -> str:
    server_id = o.ctx.attributes.get("id") or o.recorded_id()
    if not server_id:
        external = o.external_id()
        if external:
            return external
        raise ConfigurationError(f"{o.where} has no server yet: run its create operation first")
    return str(server_id)


def _power(ctx: OperationContext, action: str, wanted: str, from_status: str) -> dict[str, Any]:
    o = op(ctx, "server")
    compute = o.compute
    if action == "stop" and not (o.ctx.attributes.get("id") or o.recorded_id() or o.external_id()):
        # uninstall or rollback after a create that made no server (quota refusal, bad flavor...)
        ctx.log("%s has no server: nothing to stop", o.where)
        return {}
    with o.call("read the state of"):
        server = ignore_missing_get(compute.get_server)(_server_id(o))
    if server is None:
        if action == "stop":
            ctx.log("%s is gone already: nothing to stop", o.where)
            return {}
        raise ResourceNotFound(f"{o.where} no longer exists on cloud {o.where.cloud!r}: heal or reinstall the node")
    if o.external_id() is None and server.status == from_status:
        with o.call(action):
            getattr(compute, f"{action}_server")(server.id)
        server = o.wait_for(
            server.id, ignore_missing_get(compute.get_server), ready={wanted}, failed={"ERROR"}, stage=wanted
        )
        if server.status == "ERROR":
            raise RetryableError(f"{o.where} ({server.id}) went to ERROR on {action}; the retry tries again")
    return _server_outputs(o, server, o.ctx.attributes.get("private_address"))


@plugin.operation("server.start")
def start_server(ctx: OperationContext) -> dict[str, Any]:
    """Power the server on if it is SHUTOFF (an adopted server's power state is never changed)."""
    return _power(ctx, "start", "ACTIVE", "SHUTOFF")


@plugin.operation("server.stop")
def stop_server(ctx: OperationContext) -> dict[str, Any]:
    """Power the server off if it is ACTIVE (an adopted server's power state is never changed)."""
    return _power(ctx, "stop", "SHUTOFF", "ACTIVE")


@plugin.operation("server.delete")
def delete_server(ctx: OperationContext) -> None:
    """Delete the servers (and the NFV flavor) the ledger holds, waiting until they are gone."""
    if nothing_recorded(ctx):
        return
    o = op(ctx, "server")
    compute = o.compute
    o.delete_recorded(lambda i: compute.delete_server(i, ignore_missing=True), ignore_missing_get(compute.get_server))
    op(ctx, "flavor").delete_recorded(lambda i: compute.delete_flavor(i, ignore_missing=True))


@plugin.operation("server.check")
def check_server(ctx: OperationContext) -> dict[str, Any]:
    """Healthy when the server exists and is ACTIVE; otherwise ``healthy: false`` with the reason."""
    o = op(ctx, "server")
    server_id = _server_id(o)
    with o.call("check the health of"):
        server = ignore_missing_get(o.compute.get_server)(server_id)
    if server is None:
        return unhealthy(f"{o.where} ({server_id}) no longer exists")
    if server.status != "ACTIVE":
        fault = (server.fault or {}).get("message", "")
        return unhealthy(
            f"{o.where} ({server_id}) is {server.status}" + (f": {fault}" if fault else ""), status=server.status
        )
    return {"healthy": True, "status": server.status}


# -- key pairs and server groups
# --------------------------------------------------------------------------------


@plugin.operation("keypair.create")
def create_keypair(ctx: OperationContext) -> dict[str, Any]:
    """Register the ``public_key`` under the node's name (a name tempano did not derive is never taken
    over)."""
    o = op(ctx, "keypair")
    compute = o.compute
    public_key = str(ctx.properties.get("public_key") or "").strip()
    if not public_key and o.external_id() is None:
        raise ConfigurationError(f"{o.where} needs a `public_key` (tempano does not keep generated private keys)")
    name = o.where.name

    def mine() -> list[Any]:
        found = maybe(compute.find_keypair, name)
        if found is None:
            return []
        if owns_name(ctx) and found.public_key.strip() == public_key:
            return [found]
        raise ConfigurationError(
            f"key pair {name!r} already exists on cloud {o.where.cloud!r} and was not made by "
            f"{ctx.instance.id}: "
            "set use_external_resource: true with resource_id to use it, or choose another name"
        )

    keypair, _ = o.adopt_or_create(
        get=lambda i: maybe(compute.find_keypair, i),
        find_mine=mine,
        find_external=lambda ref: maybe(compute.find_keypair, ref),
        create=lambda: compute.create_keypair(name=name, public_key=public_key),
    )
    outputs = {"id": keypair.id or keypair.name, "name": keypair.name, "fingerprint": keypair.fingerprint}
    for key, value in outputs.items():
        ctx.set_attribute(key, value)
    return outputs


@plugin.operation("keypair.delete")
def delete_keypair(ctx: OperationContext) -> None:
    """Delete the key pair the ledger holds."""
    if nothing_recorded(ctx):
        return
    o = op(ctx, "keypair")
    o.delete_recorded(lambda i: o.compute.delete_keypair(i, ignore_missing=True))


@plugin.operation("server_group.create")
def create_server_group(ctx: OperationContext) -> dict[str, Any]:
    """A server group with the ``policy`` (affinity, anti-affinity, soft-affinity, soft-anti-affinity)."""
    o = op(ctx, "server_group")
    compute = o.compute
    policy = str(ctx.properties.get("policy", "anti-affinity"))
    name = default_name(ctx)
    group, _ = o.adopt_or_create(
        get=ignore_missing_get(compute.get_server_group),
        # server group names are not unique: only a name tempano derived can identify ours
        find_mine=lambda: [g for g in compute.server_groups() if g.name == name] if owns_name(ctx) else [],
        find_external=lambda ref: maybe(compute.find_server_group, ref),
        create=lambda: compute.create_server_group(name=name, policy=policy),
    )
    outputs = {"id": group.id, "name": group.name, "policy": group.policy or (group.policies or [policy])[0]}
    for key, value in outputs.items():
        ctx.set_attribute(key, value)
    return outputs


@plugin.operation("server_group.delete")
def delete_server_group(ctx: OperationContext) -> None:
    """Delete the server group the ledger holds."""
    if nothing_recorded(ctx):
        return
    o = op(ctx, "server_group")
    o.delete_recorded(lambda i: o.compute.delete_server_group(i, ignore_missing=True))


# -- volume attachments (relationship operations: source = server, target = volume)
# -------------------------------


def _attachment_ends(ctx: OperationContext) -> tuple[str, str]:
    source, target = ctx.source, ctx.target
    server_id = source.attributes.get("id") if source else None
    volume_id = target.attributes.get("id") if target else None
    if not server_id or not volume_id:
        raise ConfigurationError(
            f"volume attachment of {ctx.instance.id} needs both the server and the volume to exist (server "
            "id "
            f"{server_id!r}, volume id {volume_id!r}): create them first"
        )
    return str(server_id), str(volume_id)


@plugin.operation("volume.attach")
def attach_volume(ctx: OperationContext) -> dict[str, Any]:
    """Attach the target volume to the source server (adopts an existing attachment) and wait for
    ``in-use``."""
    o = op(ctx, "volume_attachment")
    server_id, volume_id = _attachment_ends(ctx)
    compute, storage = o.compute, o.block_storage
    resource_id = f"{server_id}/{volume_id}"
    with o.call(f"list the attachments of server {server_id} for"):
        existing = [a for a in compute.volume_attachments(server_id) if a.volume_id == volume_id]
    if existing:
        attachment = existing[0]
    else:
        with o.call(f"attach volume {volume_id} to server {server_id} for"):
            attachment = compute.create_volume_attachment(server_id, volume=volume_id)
    o.record(resource_id, server_id=server_id, volume_id=volume_id)
    # the wait (its polling, its timeout) and its failure then name both ends
    ends = replace(o, where=replace(o.where, kind="attachment", name=f"volume {volume_id} to server {server_id}"))
    get_volume = ignore_missing_get(storage.get_volume)
    volume = ends.wait_for(volume_id, get_volume, ready={"in-use"}, failed={"error"}, stage="in-use")
    if volume.status == "error":
        # The ledger entry is what volume.detach undoes, so it follows Nova, which may keep the failed attachment
        # or undo it (its compute manager drops the block device mapping of an attach that failed). While Nova
        # lists it, the entry stays and uninstall detaches it. Once Nova does not, the entry goes: detach would
        # find nothing to remove, then wait on a volume that stays in error and fail uninstall; the volume itself
        # is the volume node's entry, and Cinder deletes a volume in error.
        with ends.call("list the server's attachments after a failed attach of"):
            still_attached = any(a.volume_id == volume_id for a in compute.volume_attachments(server_id))
        if still_attached:
            ledger = "Nova still lists the attachment, so it stays in the resource ledger and uninstall detaches it"
        else:
            ctx.forget_resource("volume_attachment", resource_id)
            ledger = "Nova no longer lists the attachment, so it left the resource ledger"
        raise NonRetryableError(
            f"{ends.where}: volume {volume_id} went to error while attaching to server {server_id}; {ledger}. "
            f"Check the volume (openstack volume show {volume_id}) and fix or reset it (openstack volume set "
            f"--state available --detached {volume_id}, after openstack server remove volume {server_id} "
            f"{volume_id} if the server still lists it), then resume the execution (tempano executions resume) "
            "to attach it again"
        )
    ctx.set_attribute("device", attachment.device)
    return {"device": attachment.device}


@plugin.operation("volume.detach")
def detach_volume(ctx: OperationContext) -> None:
    """Detach what :func:`attach_volume` recorded and wait until the volume is ``available`` again."""
    if nothing_recorded(ctx):
        return
    o = op(ctx, "volume_attachment")
    compute, get_volume = o.compute, ignore_missing_get(o.block_storage.get_volume)
    for entry in o.ctx.resources("volume_attachment"):
        server_id, _, volume_id = entry.resource_id.partition("/")
        # every failure below (the detach call, polling, the wait's timeout) then names both ends
        each = replace(o, where=replace(o.where, kind="attachment", name=f"volume {volume_id} to server {server_id}"))
        with each.call("detach"):
            # a typed server spares the SDK a GET that guesses which argument is the server (and warns)
            compute.delete_volume_attachment(Server.existing(id=server_id), volume_id, ignore_missing=True)
            volume = get_volume(volume_id)
        if volume is not None and volume.status != "available":
            volume = each.wait_for(volume_id, get_volume, ready={"available"}, failed={"error"}, stage="available")
            if volume.status == "error":
                raise NonRetryableError(
                    f"{each.where}: volume {volume_id} went to error while detaching from server {server_id}; "
                    "the attachment stays in the resource ledger. Check the volume (openstack volume show "
                    f"{volume_id}) and the server's console log; once the server no longer uses the volume, "
                    "reset it (openstack volume set --state available --detached) and run uninstall again"
                )
        ctx.forget_resource("volume_attachment", entry.resource_id)
