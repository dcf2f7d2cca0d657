"""Remove everything of one deployment from the host by name prefix, whatever the ledger says.

For tests, for ``tempano`` maintenance commands, and for operators after a lost database::

    from tempano.plugins.lab import cleanup
    cleanup("vfw-demo")
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from tempano.plugins.lab import _naming, _sshd, _state, _system


def cleanup(deployment_id: str) -> list[str]:
    """Kill the deployment's processes and delete its namespaces, interfaces and files. Returns what went."""
    _system.require_privileges()
    tag = _naming.deployment_tag(deployment_id)
    removed: list[str] = []
    directory = _state.deployment_dir(deployment_id, create=False)
    servers = directory / "servers"
    if servers.exists():
        for server_dir in servers.iterdir():
            if _sshd.stop_sshd(server_dir):
                removed.append(f"sshd of {server_dir.name}")
    for namespace in _system.netns_list():
        if namespace.startswith(tag + "-") and _system.delete_netns(namespace):
            removed.append(f"namespace {namespace}")
    # veths first (their peers vanish with them), bridges last
    for rec in sorted(_system.links(), key=lambda r: "bridge" in str(r.get("linkinfo", ""))):
        name = str(rec.get("ifname", ""))
        if name.startswith(tag) and _system.delete_link(name):
            removed.append(f"interface {name}")
    for table, rule in _host_rules(deployment_id):
        _system.run(
            ["iptables", "-t", table, *shlex.split(rule.replace("-A ", "-D ", 1))],
            what=f"removing host rule {rule}",
            check=False,
        )
        removed.append(f"host rule {rule}")
    _state.release_mgmt_subnet(deployment_id)
    if directory.exists():
        shutil.rmtree(directory)
        removed.append(f"directory {directory}")
    return removed


def _host_rules(deployment_id: str) -> list[tuple[str, str]]:
    """Host iptables rules added by routers of the deployment (comment ``tempano-lab <deployment> ...``)."""
    if shutil.which("iptables") is None:
        return []
    found: list[tuple[str, str]] = []
    for table in ("nat", "filter"):
        listing = _system.run(["iptables", "-t", table, "-S"], what="listing host rules", check=False).stdout
        found += [
            (table, line)
            for line in listing.splitlines()
            if line.startswith("-A ") and f'"tempano-lab {deployment_id} ' in line
        ]
    return found


def leftovers(deployment_id: str) -> list[str]:
    """What of the deployment is still on the host (namespaces, interfaces, sshd processes, files)."""
    tag = _naming.deployment_tag(deployment_id)
    found = [f"namespace {ns}" for ns in _system.netns_list() if ns.startswith(tag + "-")]
    found += [f"interface {r['ifname']}" for r in _system.links() if str(r.get("ifname", "")).startswith(tag)]
    directory = _state.deployment_dir(deployment_id, create=False)
    for proc in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmdline = proc.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(directory) + "/" in cmdline:
            found.append(f"process {proc.parent.name}: {cmdline.strip()}")
    found += [f"host rule {rule}" for _, rule in _host_rules(deployment_id)]
    if directory.exists():
        found.append(f"directory {directory}")
    return found
