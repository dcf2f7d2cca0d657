"""Thin wrappers over the ``ip``, ``iptables`` and process tools the lab VIM drives.

Every failure becomes a sentence naming the command, what it was for and what to try next.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tempano.plugins.contract import NonRetryableError, RetryableError

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
COMMAND_TIMEOUT = 30.0
TOOLS = {"ip": "iproute2", "ssh-keygen": "openssh-client"}


class LabCommandError(NonRetryableError):
    """A Linux tool the lab VIM runs exited with an error."""


def _capabilities() -> int:
    """The effective capability mask of this process (0 when /proc says nothing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def require_privileges() -> None:
    """Fail at once, with a sentence, when this process cannot build namespaces and bridges."""
    caps = _capabilities()
    needed = (1 << CAP_NET_ADMIN) | (1 << CAP_SYS_ADMIN)
    if os.geteuid() != 0 and caps & needed != needed:
        raise NonRetryableError(
            "the lab VIM needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces, "
            f"bridges and veth pairs, but this worker runs as uid {os.geteuid()} without them: run the "
            "tempano worker as root (e.g. with sudo) or grant those capabilities "
            "(systemd AmbientCapabilities=CAP_NET_ADMIN CAP_SYS_ADMIN)"
        )
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            raise NonRetryableError(
                f"the lab VIM needs the `{tool}` command, which is not installed on this worker: install the "
                f"Debian package {package} (scripts/setup does)"
            )


def run(
    args: Sequence[str], *, what: str, check: bool = True, timeout: float = COMMAND_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise a :class:`LabCommandError` saying ``what`` it was for."""
    command = " ".join(args)
    try:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise NonRetryableError(
            f"{what}: the command `{args[0]}` is not installed on this worker; install it (scripts/setup does)"
        ) from None
    except subprocess.TimeoutExpired:
        raise RetryableError(f"{what}: `{command}` did not finish within {timeout:.0f} s; retrying") from None
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise LabCommandError(f"{what}: `{command}` failed: {detail}")
    return done


def ip_json(args: Sequence[str], *, namespace: str | None = None) -> list[dict[str, Any]]:
    """``ip -j ...`` parsed; an empty list when the object does not exist."""
    prefix = ["ip", "-n", namespace] if namespace else ["ip"]
    done = run([*prefix, "-j", *args], what="reading network state", check=False)
    if done.returncode != 0 or not done.stdout.strip():
        return []
    parsed: list[dict[str, Any]] = json.loads(done.stdout)
    return parsed


def netns_list() -> list[str]:
    """Names of the network namespaces on this host."""
    return [str(entry["name"]) for entry in ip_json(["netns", "list"])]


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def link(name: str, *, namespace: str | None = None) -> dict[str, Any] | None:
    """The ``ip -j link show`` record of one interface, or None."""
    found = ip_json(["link", "show", "dev", name], namespace=namespace) if name else []
    return found[0] if found else None


def links(*, namespace: str | None = None) -> list[dict[str, Any]]:
    return ip_json(["link", "show"], namespace=namespace)


def addresses(name: str, *, namespace: str | None = None) -> list[str]:
    """The IPv4 addresses (``a.b.c.d/len``) on an interface."""
    found = ip_json(["-4", "addr", "show", "dev", name], namespace=namespace)
    return [f"{a['local']}/{a['prefixlen']}" for rec in found for a in rec.get("addr_info", [])]


def delete_link(name: str, *, namespace: str | None = None) -> bool:
    """Delete an interface if it exists (a veth takes its peer along). True if something was removed."""
    if link(name, namespace=namespace) is None:
        return False
    prefix = ["ip", "-n", namespace] if namespace else ["ip"]
    done = run([*prefix, "link", "del", "dev", name], what=f"deleting interface {name}", check=False)
    if done.returncode != 0 and link(name, namespace=namespace) is not None:
        raise LabCommandError(f"deleting interface {name} failed: {done.stderr.strip()}")
    return True


def netns_pids(name: str) -> list[int]:
    done = run(["ip", "netns", "pids", name], what=f"listing processes in namespace {name}", check=False)
    return [int(p) for p in done.stdout.split() if p.isdigit()]


def kill_pids(pids: Sequence[int], *, grace: float = 3.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL what is left."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if pid_alive(pid):
            _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def delete_netns(name: str) -> bool:
    """Kill what runs inside a namespace, then delete it. True if something was removed."""
    if not netns_exists(name):
        return False
    kill_pids(netns_pids(name))
    done = run(["ip", "netns", "del", name], what=f"deleting namespace {name}", check=False)
    if done.returncode != 0 and netns_exists(name):
        raise LabCommandError(f"deleting namespace {name} failed: {done.stderr.strip()}")
    return True
