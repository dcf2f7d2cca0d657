"""Routers: a server namespace that forwards between its ports and NATs to the outside through the host.

The outside is reached over the router's management interface: inside the namespace, a default route via the
host's management address and a MASQUERADE on mgmt0; on the host, a MASQUERADE (and FORWARD accepts, for
hosts whose FORWARD policy drops) for the router's management address, each tagged with an iptables comment
and kept in the ledger. Networks whose ports use the router's port address as gateway_ip reach the outside.

Operations: ``lab.router.create``, ``lab.router.start``, ``lab.router.stop``, ``lab.router.delete``,
``lab.router.check``. Property ``nat`` (default true): false gives a plain forwarding router.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tempano.plugins.contract import NonRetryableError, OperationContext, unhealthy
from tempano.plugins.lab import _system, server
from tempano.plugins.lab._plugin import plugin

FORWARDING = Path("/proc/sys/net/ipv4/ip_forward")


def _host_rules(ctx: OperationContext, address: str, mgmt_cidr: str) -> list[list[str]]:
    """The host iptables rules of this router, each ``[table, chain, *match]`` (comment included)."""
    comment = ["-m", "comment", "--comment", f"tempano-lab {ctx.deployment_id} {ctx.instance.id}"]
    return [
        ["nat", "POSTROUTING", "-s", f"{address}/32", "!", "-d", mgmt_cidr, *comment, "-j", "MASQUERADE"],
        ["filter", "FORWARD", "-s", f"{address}/32", *comment, "-j", "ACCEPT"],
        [
            "filter",
            "FORWARD",
            "-d",
            f"{address}/32",
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            *comment,
            "-j",
            "ACCEPT",
        ],
    ]


def _rule_exists(rule: list[str], namespace: str | None = None) -> bool:
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    table, chain, *spec = rule
    done = _system.run([*prefix, "iptables", "-t", table, "-C", chain, *spec], what="checking a rule", check=False)
    return done.returncode == 0


def _add_rule(rule: list[str], where: str, namespace: str | None = None) -> None:
    if _rule_exists(rule, namespace):
        return
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    table, chain, *spec = rule
    verb = "-A" if chain == "POSTROUTING" else "-I"
    _system.run([*prefix, "iptables", "-t", table, verb, chain, *spec], what=f"adding an iptables rule on {where}")


def _delete_rule(rule: list[str]) -> bool:
    removed = False
    while _rule_exists(rule):  # a rule added twice by hand would otherwise survive
        table, chain, *spec = rule
        _system.run(["iptables", "-t", table, "-D", chain, *spec], what="removing a host iptables rule")
        removed = True
    return removed


@plugin.operation("router.create")
def create_router(ctx: OperationContext) -> dict[str, Any]:
    """A server namespace with forwarding on and, unless ``nat`` is false, NAT to the outside via the host."""
    attributes = server.build(ctx)
    for name, value in attributes.items():
        ctx.set_attribute(name, value)
    namespace = str(attributes["namespace"])
    _system.run(
        ["ip", "netns", "exec", namespace, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
        what=f"enabling forwarding in router namespace {namespace}",
    )
    nat = ctx.properties.get("nat", True) is not False
    if nat:
        if shutil.which("iptables") is None:
            raise NonRetryableError(
                f"router {ctx.instance.id} needs iptables for NAT, which is not installed on this worker: "
                "install the Debian package iptables (scripts/setup does)"
            )
        host = str(attributes["mgmt_host_address"])
        _system.run(
            ["ip", "-n", namespace, "route", "replace", "default", "via", host, "dev", "mgmt0"],
            what=f"routing router {ctx.instance.id} to the outside via the host {host}",
        )
        _add_rule(["nat", "POSTROUTING", "-o", "mgmt0", "-j", "MASQUERADE"], f"router {namespace}", namespace)
        if FORWARDING.read_text().strip() != "1":
            ctx.record_resource("host_forwarding", "net.ipv4.ip_forward", {"previous": "0"})
            FORWARDING.write_text("1\n")
        for rule in _host_rules(ctx, str(attributes["ip"]), str(attributes["mgmt_cidr"])):
            ctx.record_resource("host_rule", " ".join(rule), {"rule": rule})
            _add_rule(rule, "the host")
    ctx.set_attribute("nat", nat)
    ctx.log("%s: router namespace %s, NAT to the outside %s", ctx.instance.id, namespace, "on" if nat else "off")
    return {**attributes, "nat": nat}


@plugin.operation("router.start")
def start_router(ctx: OperationContext) -> dict[str, Any]:
    """Start the router's sshd (as lab.server.start)."""
    return server.start(ctx)


@plugin.operation("router.stop")
def stop_router(ctx: OperationContext) -> None:
    """Stop the router's sshd; forwarding and NAT stay."""
    server.stop_server(ctx)


@plugin.operation("router.delete")
def delete_router(ctx: OperationContext) -> None:
    """Remove the host rules of the router, then everything of its server part."""
    _system.require_privileges()
    removed: list[str] = []
    for res in reversed(ctx.resources("host_rule")):
        if _delete_rule([str(part) for part in res.data["rule"]]):
            removed.append(f"host rule {res.resource_id}")
        ctx.forget_resource(res.kind, res.resource_id)
    for res in ctx.resources("host_forwarding"):
        if not _tempano_rules_left():  # other routers still need forwarding on
            FORWARDING.write_text(str(res.data.get("previous", "0")) + "\n")
            removed.append("host forwarding (restored)")
        ctx.forget_resource(res.kind, res.resource_id)
    removed += server.destroy(ctx)
    ctx.log("%s: removed %s", ctx.instance.id, ", ".join(removed) or "nothing (already gone)")


def _tempano_rules_left() -> bool:
    done = _system.run(["iptables", "-t", "nat", "-S", "POSTROUTING"], what="listing host NAT rules", check=False)
    return "tempano-lab " in done.stdout


@plugin.operation("router.check")
def check_router(ctx: OperationContext) -> dict[str, Any]:
    """Health check: the server checks, plus forwarding on and the host NAT rules present."""
    facts = server.health(ctx)
    if not facts["healthy"]:
        return facts
    namespace = facts["namespace"]
    done = _system.run(
        ["ip", "netns", "exec", namespace, "sysctl", "-n", "net.ipv4.ip_forward"],
        what=f"reading forwarding in {namespace}",
    )
    if done.stdout.strip() != "1":
        return unhealthy(f"router {ctx.instance.id} is unhealthy: forwarding is off in {namespace}")
    for res in ctx.resources("host_rule"):
        if not _rule_exists([str(part) for part in res.data["rule"]]):
            return unhealthy(f"router {ctx.instance.id} is unhealthy: its host rule `{res.resource_id}` is gone")
    return facts
