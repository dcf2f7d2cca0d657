"""The emulated cloud's state: resources by kind, counters, quotas and the fault plan."""

from __future__ import annotations

import copy
import random
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

KINDS = (
    "server",
    "flavor",
    "keypair",
    "server_group",
    "network",
    "subnet",
    "port",
    "router",
    "floatingip",
    "security_group",
    "security_group_rule",
    "image",
    "volume",
)
"""Every resource kind the emulator keeps; quota limits and counters use these names."""


@dataclass
class Faults:
    """What the emulator does wrong, on purpose. Change fields at any time (they are read per request)."""

    error_rate: float = 0.0
    """Share of API calls (not discovery or auth) answered 500/503."""
    error_after_share: float = 0.5
    """Share of those errors sent after the call took effect (the answer is lost, the resource exists)."""
    latency: float = 0.0
    """Seconds added before every API answer."""
    server_build_seconds: float = 0.05
    """Time a new server spends in BUILD before ACTIVE."""
    volume_build_seconds: float = 0.05
    """Time a new volume spends in ``creating`` before ``available``."""
    servers_to_error: int = 0
    """The next N servers created go to ERROR instead of ACTIVE."""
    servers_stay_building: bool = False
    """New servers never leave BUILD."""
    volumes_to_error_on_attach: int = 0
    """The next N volumes attached go to ``error`` instead of ``in-use`` (Nova answers the attach first)."""
    attach_errors_roll_back: bool = False
    """A volume that goes to ``error`` on attach loses its attachment, as when Nova's compute manager undoes a failed
    attach; by default Nova keeps it and still lists it."""
    volumes_to_error_on_detach: int = 0
    """The next N volumes asked to detach go to ``error`` instead of ``available`` (and stay attached)."""
    volumes_stay_detaching: bool = False
    """Volumes asked to detach stay ``detaching`` (and attached)."""
    quotas: dict[str, int] = field(default_factory=dict)
    """Limit of objects per kind (see KINDS), answered the way Nova, Neutron and Cinder refuse."""
    seed: int | None = None
    """Seed of the random generator deciding which calls fail (None: not reproducible)."""


def now() -> str:
    """The current time in the ISO format the OpenStack APIs use."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    return str(uuid.uuid4())


class State:
    """Resources by kind and id, guarded by one re-entrant lock (the HTTP server is threaded)."""

    def __init__(self, faults: Faults) -> None:
        self.lock = threading.RLock()
        self.faults = faults
        self.random = random.Random(faults.seed)
        self.resources: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self.created: Counter[str] = Counter()
        self.deleted: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.injected_errors = 0
        self.seeded: set[str] = set()
        self.hidden: dict[str, dict[str, Any]] = {}
        """Per-resource emulator bookkeeping (build deadlines, hosts) that the APIs never show."""

    def add(self, kind: str, obj: dict[str, Any], *, seed: bool = False, count: bool = True) -> dict[str, Any]:
        """Store a new object; ``seed`` marks it as part of the cloud's furniture (not a leftover),
        ``count=False``
        keeps side objects (default rules, router interface ports) out of the creation counters."""
        with self.lock:
            self.resources[kind][obj["id"]] = obj
            if seed:
                self.seeded.add(obj["id"])
            elif count:
                self.created[kind] += 1
            return obj

    def get(self, kind: str, resource_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.resources[kind].get(resource_id)

    def remove(self, kind: str, resource_id: str) -> None:
        with self.lock:
            if self.resources[kind].pop(resource_id, None) is not None:
                self.deleted[kind] += 1
                self.seeded.discard(resource_id)
                self.hidden.pop(resource_id, None)

    def all(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.resources[kind].values())

    def over_quota(self, kind: str, adding: int = 1) -> tuple[int, int] | None:
        """(limit, in use) if adding ``adding`` objects of ``kind`` would pass its quota, else None."""
        with self.lock:
            limit = self.faults.quotas.get(kind)
            used = len(self.resources[kind])
            if limit is not None and used + adding > limit:
                return limit, used
            return None

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        with self.lock:
            return {kind: copy.deepcopy(list(items.values())) for kind, items in self.resources.items()}
