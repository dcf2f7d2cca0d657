"""Servers: a network namespace with loopback up, a management veth into the deployment's management bridge,
and an sshd on the management address that accepts the deployment's key.

Operations: ``lab.server.create``, ``lab.server.start``, ``lab.server.stop``, ``lab.server.delete``,
``lab.server.check``.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tempano.plugins.contract import NonRetryableError, OperationContext, unhealthy
from tempano.plugins.lab import _deployment, _naming, _sshd, _state, _system, _veth
from tempano.plugins.lab._plugin import plugin

MGMT_INTERFACE = "mgmt0"


@dataclass(frozen=True)
class ServerNames:
    """Where one server's pieces are, all derived from (deployment, node instance)."""

    namespace: str
    mgmt_veth: str
    directory: Path


def names(deployment_id: str, instance_id: str) -> ServerNames:
    return ServerNames(
        namespace=_naming.namespace_name(deployment_id, instance_id),
        mgmt_veth=_naming.interface_name(deployment_id, instance_id, _naming.MGMT_VETH),
        directory=_state.deployment_dir(deployment_id) / "servers" / _naming.safe_filename(instance_id),
    )


def _alive(ctx: OperationContext, what: dict[str, Any]) -> None:
    ctx.heartbeat(what)
    if ctx.cancelled.is_set():
        raise NonRetryableError(f"{ctx.operation} of {ctx.instance.id} was cancelled while waiting")


def build(ctx: OperationContext) -> dict[str, Any]:
    """Create or adopt the namespace, its management interface and sshd files; returns the attributes."""
    _system.require_privileges()
    dep = ctx.deployment_id
    n = names(dep, ctx.instance.id)
    # one lock per deployment: the shared management bridge and pools are changed by parallel creates
    with _state.locked(_state.deployment_lock(dep)):
        mgmt = _deployment.ensure_management(dep)
        ctx.record_resource("mgmt_bridge", mgmt.bridge, {"shared": True})
        key = _deployment.ensure_keypair(dep)
        # recorded before it is made: a crash right after creation can't leave an unknown object behind
        address = _state.Ipam(dep, _deployment.MGMT_NETWORK).allocate(ctx.idempotency_key)
        ctx.record_resource("address", address, {"network": _deployment.MGMT_NETWORK, "key": ctx.idempotency_key})
        ctx.record_resource("namespace", n.namespace)
        if not _system.netns_exists(n.namespace):
            _system.run(["ip", "netns", "add", n.namespace], what=f"creating namespace {n.namespace}")
        _system.run(
            ["ip", "-n", n.namespace, "link", "set", "dev", "lo", "up"],
            what=f"bringing loopback up in namespace {n.namespace}",
        )
        ctx.record_resource("veth", n.mgmt_veth, {"namespace": n.namespace})
        _veth.ensure(n.mgmt_veth, n.namespace, MGMT_INTERFACE, tag=ctx.idempotency_key, bridge=mgmt.bridge)
        _veth.set_address(n.namespace, MGMT_INTERFACE, f"{address}/{mgmt.subnet.prefixlen}")
        ctx.record_resource("files", str(n.directory))
        user = _sshd.login_user()
        _sshd.write_server_files(n.directory, address=address, public_key=key.with_suffix(".pub"), user=user)
    ctx.log("%s: namespace %s, management %s on %s", ctx.instance.id, n.namespace, address, mgmt.bridge)
    return {
        "ip": address,
        "private_address": address,
        "public_address": address,
        "namespace": n.namespace,
        "ssh_user": user,
        "ssh_key_file": str(key),
        "ssh_port": 22,
        "python_interpreter": _python(),
        "mgmt_interface": MGMT_INTERFACE,
        "mgmt_host_interface": n.mgmt_veth,
        "mgmt_bridge": mgmt.bridge,
        "mgmt_cidr": str(mgmt.subnet),
        "mgmt_host_address": mgmt.host_address,
    }


def _python() -> str:
    """The Python Ansible should use in a server: namespaces share the host's files, so the host's Python.

    Named explicitly because interpreter discovery over ssh can pick a broken shim (pyenv) on the login PATH.
    """
    system = Path("/usr/bin/python3")
    return str(system) if system.exists() else sys.executable


def _set_all(ctx: OperationContext, attributes: dict[str, Any]) -> dict[str, Any]:
    for name, value in attributes.items():
        ctx.set_attribute(name, value)
    return attributes


@plugin.operation("server.create")
def create_server(ctx: OperationContext) -> dict[str, Any]:
    """Create (or adopt) the server's namespace and management interface."""
    return _set_all(ctx, build(ctx))


def start(ctx: OperationContext) -> dict[str, Any]:
    """Start (or adopt) the sshd and wait until it answers; returns ``{sshd_pid}``."""
    _system.require_privileges()
    n = names(ctx.deployment_id, ctx.instance.id)
    address = ctx.instance.attributes.get("ip")
    if not address or not _system.netns_exists(n.namespace):
        raise NonRetryableError(
            f"server {ctx.instance.id} has no namespace {n.namespace} (or no management address): "
            "run lab.server.create first (heal reinstalls it)"
        )
    ctx.record_resource("process", f"sshd@{n.namespace}", {"pid_file": str(n.directory / "sshd.pid")})
    pid = _sshd.start_sshd(
        n.namespace, n.directory, str(address), alive=lambda: _alive(ctx, {"namespace": n.namespace})
    )
    ctx.log("%s: sshd (pid %d) answers on %s:22 in namespace %s", ctx.instance.id, pid, address, n.namespace)
    ctx.set_attribute("sshd_pid", pid)
    return {"sshd_pid": pid}


@plugin.operation("server.start")
def start_server(ctx: OperationContext) -> dict[str, Any]:
    """Start the server's sshd (adopting one that already runs) and wait until it answers."""
    return start(ctx)


@plugin.operation("server.stop")
def stop_server(ctx: OperationContext) -> None:
    """Stop the server's sshd; the namespace and its interfaces stay."""
    n = names(ctx.deployment_id, ctx.instance.id)
    if _sshd.stop_sshd(n.directory):
        ctx.log("%s: sshd stopped in namespace %s", ctx.instance.id, n.namespace)
    ctx.forget_resource("process", f"sshd@{n.namespace}")


def destroy(ctx: OperationContext) -> list[str]:
    """Remove what the ledger holds for this instance, plus its derived names (a crash may have beaten the
    ledger), then the deployment's shared parts if nothing else uses them. Idempotent."""
    _system.require_privileges()
    dep = ctx.deployment_id
    n = names(dep, ctx.instance.id)
    removed: list[str] = []
    with _state.locked(_state.deployment_lock(dep)):
        for res in reversed(ctx.resources()):
            if res.external:
                ctx.forget_resource(res.kind, res.resource_id)
                continue
            if res.kind == "process":
                _sshd.stop_sshd(Path(str(res.data.get("pid_file", n.directory / "sshd.pid"))).parent)
            elif res.kind == "veth" and _system.delete_link(res.resource_id):
                removed.append(f"veth {res.resource_id}")
            elif res.kind == "namespace" and _system.delete_netns(res.resource_id):
                removed.append(f"namespace {res.resource_id}")
            elif res.kind == "address":
                _state.Ipam(dep, str(res.data.get("network"))).release(str(res.data.get("key")))
            elif res.kind == "files" and Path(res.resource_id).exists():
                _remove_tree(Path(res.resource_id))
                removed.append(f"files {res.resource_id}")
            if res.kind != "mgmt_bridge":
                ctx.forget_resource(res.kind, res.resource_id)
        # the names are this instance's alone, so removing them is safe even if the ledger never heard of them
        if _system.delete_link(n.mgmt_veth):
            removed.append(f"veth {n.mgmt_veth}")
        if _system.delete_netns(n.namespace):
            removed.append(f"namespace {n.namespace}")
        if n.directory.exists():
            _remove_tree(n.directory)
        removed += _deployment.prune(dep)
        for res in ctx.resources("mgmt_bridge"):
            ctx.forget_resource(res.kind, res.resource_id)
    return removed


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    parent = path.parent
    if parent.name == "servers" and parent.exists() and not any(parent.iterdir()):
        parent.rmdir()


@plugin.operation("server.delete")
def delete_server(ctx: OperationContext) -> None:
    """Delete the namespace (and every process in it), its management veth and its files."""
    removed = destroy(ctx)
    ctx.log("%s: removed %s", ctx.instance.id, ", ".join(removed) or "nothing (already gone)")


def health(ctx: OperationContext) -> dict[str, Any]:
    """``healthy: true`` with the facts that were checked, or ``healthy: false`` with the reason when the
    namespace or its sshd is gone (an answer, not an error: heal then reinstalls the server)."""
    n = names(ctx.deployment_id, ctx.instance.id)
    address = str(ctx.instance.attributes.get("ip", ""))
    if not _system.netns_exists(n.namespace):
        return unhealthy(f"server {ctx.instance.id} is unhealthy: its namespace {n.namespace} is gone")
    pid = _sshd.sshd_pid(n.directory)
    if pid is None:
        return unhealthy(f"server {ctx.instance.id} is unhealthy: no sshd runs in namespace {n.namespace}")
    if not address or not _sshd.accepts(address):
        return unhealthy(
            f"server {ctx.instance.id} is unhealthy: sshd (pid {pid}) does not answer on {address or '?'}:22 "
            f"in namespace {n.namespace}",
        )
    return {"healthy": True, "namespace": n.namespace, "sshd_pid": pid}


@plugin.operation("server.check")
def check_server(ctx: OperationContext) -> dict[str, Any]:
    """Health check: ``healthy: false`` when the namespace or its sshd is gone, so heal reinstalls the server."""
    return health(ctx)
