"""Where the lab VIM keeps its files, and IP address management (IPAM) kept in JSON files under a lock.

Layout under ``$TEMPANO_LAB_DIR`` (default ``/var/lib/tempano/lab``)::

    mgmt.json                      host-wide: management subnet of each deployment
    <deployment>/id_ed25519[.pub]  the deployment's ssh key pair
    <deployment>/ipam/<net>.json   one address pool per network (and ``mgmt`` for the management network)
    <deployment>/servers/<inst>/   per server: host key, sshd_config, authorized_keys, pid file
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tempano.plugins.contract import ConfigurationError, NonRetryableError
from tempano.plugins.lab._naming import safe_filename

DEFAULT_LAB_DIR = "/var/lib/tempano/lab"
DEFAULT_MGMT_POOL = "10.213.0.0/16"


def lab_root() -> Path:
    """The lab VIM's state directory (``TEMPANO_LAB_DIR``)."""
    root = Path(os.environ.get("TEMPANO_LAB_DIR") or DEFAULT_LAB_DIR)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


def deployment_dir(deployment_id: str, *, create: bool = True) -> Path:
    path = lab_root() / safe_filename(deployment_id)
    if create:
        path.mkdir(exist_ok=True, mode=0o700)
    return path


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (a lock file), so parallel operations of a deployment don't race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def deployment_lock(deployment_id: str) -> Path:
    return deployment_dir(deployment_id) / ".lock"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)  # atomic: a crash never leaves half a file


@dataclass
class Pool:
    """One network's addresses: the subnet, its reserved addresses and the allocation of each key."""

    cidr: str
    gateway: str | None = None
    start: str | None = None
    end: str | None = None
    allocations: dict[str, str] = field(default_factory=dict)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    def candidates(self) -> Iterator[ipaddress.IPv4Address]:
        low = ipaddress.IPv4Address(self.start) if self.start else None
        high = ipaddress.IPv4Address(self.end) if self.end else None
        for host in self.network.hosts():
            if (low is None or host >= low) and (high is None or host <= high):
                yield host


class Ipam:
    """Persistent, idempotent address allocation for one network of one deployment.

    ``allocate(key)`` returns the same address for the same key until ``release(key)``; the gateway address is
    only handed out when asked for explicitly (the port that *is* the gateway).
    """

    def __init__(self, deployment_id: str, network: str) -> None:
        self.deployment_id = deployment_id
        self.network = network
        self.path = deployment_dir(deployment_id) / "ipam" / f"{safe_filename(network)}.json"

    @contextmanager
    def _pool(self) -> Iterator[Pool]:
        with locked(self.path.with_suffix(".lock")):
            data = _read_json(self.path)
            if not data:
                raise NonRetryableError(
                    f"network {self.network} of deployment {self.deployment_id} has no address pool "
                    f"({self.path} is missing): create the network (lab.network.create) before its ports"
                )
            pool = Pool(**data)
            yield pool
            _write_json(self.path, pool.__dict__)

    def define(
        self, cidr: str, *, gateway: str | None = None, start: str | None = None, end: str | None = None
    ) -> Pool:
        """Create the pool, or check that an existing one has the same subnet (adoption)."""
        network = _parse_network(cidr, f"network {self.network}")
        for label, value in (("gateway_ip", gateway), ("start_ip", start), ("end_ip", end)):
            if value is not None and _parse_address(value, f"network {self.network} {label}") not in network:
                raise ConfigurationError(
                    f"network {self.network}: {label} {value} is outside its cidr {network}; fix the blueprint"
                )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.path.with_suffix(".lock")):
            existing = _read_json(self.path)
            if existing:
                if existing["cidr"] != str(network):
                    raise ConfigurationError(
                        f"network {self.network} of deployment {self.deployment_id} already exists with cidr "
                        f"{existing['cidr']}, not {network}: delete it first or keep its cidr"
                    )
                return Pool(**existing)
            pool = Pool(cidr=str(network), gateway=gateway, start=start, end=end)
            _write_json(self.path, pool.__dict__)
            return pool

    def allocate(self, key: str, fixed: str | None = None) -> str:
        """The address of ``key``: the one it already has, ``fixed`` if given, else the first free one."""
        with self._pool() as pool:
            if key in pool.allocations and (fixed is None or pool.allocations[key] == fixed):
                return pool.allocations[key]
            taken = {ip: owner for owner, ip in pool.allocations.items()}
            if fixed is not None:
                address = _parse_address(fixed, f"fixed address for {key}")
                if address not in pool.network or address in (
                    pool.network.network_address,
                    pool.network.broadcast_address,
                ):
                    raise ConfigurationError(
                        f"address {fixed} asked for {key} is not a host address of network {self.network} "
                        f"({pool.cidr}); pick one inside it"
                    )
                if fixed in taken and taken[fixed] != key:
                    raise ConfigurationError(
                        f"address {fixed} of network {self.network} ({pool.cidr}) is already held by "
                        f"{taken[fixed]}; give {key} another address or let the lab allocate one"
                    )
                pool.allocations[key] = fixed
                return fixed
            for host in pool.candidates():
                if str(host) not in taken and str(host) != pool.gateway:
                    pool.allocations[key] = str(host)
                    return str(host)
            raise NonRetryableError(
                f"network {self.network} ({pool.cidr}) has no free address left for {key}: widen its cidr "
                "(or start_ip/end_ip) or remove ports"
            )

    def release(self, key: str) -> None:
        if not self.path.exists():
            return
        with self._pool() as pool:
            pool.allocations.pop(key, None)

    def read(self) -> Pool | None:
        data = _read_json(self.path)
        return Pool(**data) if data else None

    def remove(self) -> None:
        for path in (self.path, self.path.with_suffix(".lock"), self.path.with_suffix(".tmp")):
            path.unlink(missing_ok=True)


def _parse_network(text: str, where: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=False)
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {text!r} is not an IPv4 subnet like 10.0.1.0/24 ({exc})") from None


def _parse_address(text: str, where: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise ConfigurationError(f"{where}: {text!r} is not an IPv4 address") from None


def mgmt_subnet(deployment_id: str, routed: Callable[[], set[ipaddress.IPv4Network]]) -> ipaddress.IPv4Network:
    """The deployment's management /24, allocated once from ``TEMPANO_LAB_MGMT_POOL`` host-wide.

    ``routed()`` gives the subnets already routed on the host (by anything), which are skipped; it is only
    asked when the deployment has no subnet yet.
    """
    pool = _parse_network(os.environ.get("TEMPANO_LAB_MGMT_POOL") or DEFAULT_MGMT_POOL, "TEMPANO_LAB_MGMT_POOL")
    path = lab_root() / "mgmt.json"
    with locked(lab_root() / "mgmt.lock"):
        table = _read_json(path)
        if deployment_id in table:
            return ipaddress.IPv4Network(table[deployment_id])
        mine = {ipaddress.IPv4Network(n) for n in table.values()}
        used = routed()
        for subnet in pool.subnets(new_prefix=24) if pool.prefixlen <= 24 else [pool]:
            if subnet in mine or any(subnet.overlaps(u) for u in used):
                continue
            table[deployment_id] = str(subnet)
            _write_json(path, table)
            return subnet
    raise NonRetryableError(
        f"no free management /24 is left in {pool} for deployment {deployment_id}: set TEMPANO_LAB_MGMT_POOL "
        "to a larger unused range, or uninstall old lab deployments"
    )


def release_mgmt_subnet(deployment_id: str) -> None:
    path = lab_root() / "mgmt.json"
    with locked(lab_root() / "mgmt.lock"):
        table = _read_json(path)
        if table.pop(deployment_id, None) is not None:
            _write_json(path, table)
