"""The SDN driver contract: what a WAN backend (Linux VXLAN, ONOS, an RFC 8466 controller) must offer.

A driver is built for one site or link (with that site's controller and credentials) and speaks in
terms of :class:`LinkSpec` and ledger :class:`~tempano.plugins.contract.Resource` entries. Every method
is idempotent and keyed by the operation's idempotency key, so the engine may call any of them again
after a crash or a timeout.
"""

from __future__ import annotations

import abc
import enum
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tempano.plugins.contract import ConfigurationError, Resource

ServiceType = Literal["L2", "L3"]

Recorder = Callable[[str, str, Mapping[str, Any]], None]
"""``record(kind, resource_id, data)``: writes a resource to the ledger as soon as it exists."""


@dataclass(frozen=True)
class Credentials:
    """What a controller secret holds: ``user:password`` (basic auth) or a bare bearer token."""

    secret_name: str
    username: str | None
    password: str

    @classmethod
    def parse(cls, secret_name: str, value: str) -> Credentials:
        user, sep, password = value.partition(":")
        if sep:
            return cls(secret_name, user, password)
        return cls(secret_name, None, value)


@dataclass(frozen=True)
class SiteSpec:
    """One WAN site as the blueprint describes it (a ``tempano.nodes.sdn.Site`` instance)."""

    name: str
    """The site's node instance id, used in messages and to derive names."""
    driver: str
    controller_url: str | None = None
    credentials_secret: str | None = None
    underlay_address: str | None = None
    edge_namespace: str | None = None
    attachment_point: str | None = None
    """Controller drivers: where the site's networks enter the WAN (ONOS connect point ``of:.../1``)."""
    site_id: str | None = None
    """The controller-side site (IETF L2VPN): given by the blueprint, or made by site.create."""
    site_id_given: bool = False
    """True when the blueprint named an existing site_id: tempano uses it and never deletes it."""
    key: str = ""
    """The idempotency key of the operation (site.create names what it makes from it)."""


@dataclass(frozen=True)
class LinkEnd:
    """One end of a WAN link: a network at a site."""

    site: SiteSpec
    network: str
    """The site-local network: the Linux bridge for the lab, a name for messages elsewhere."""
    cidr: str | None = None
    """The network's subnet (its ``cidr`` attribute or property), which an L3 link routes to."""
    gateway: str | None = None
    """L3: the address the WAN side takes on this network (the link's ``gateway_a``/``gateway_b``)."""


@dataclass(frozen=True)
class LinkSpec:
    """A WAN link between two networks at two sites."""

    key: str
    """The idempotency key of the create operation: every backend object is named from it."""
    name: str
    """The link's node instance id, for messages."""
    a: LinkEnd
    b: LinkEnd
    service_type: ServiceType = "L2"
    bandwidth_mbps: int | None = None
    vlan_id: int | None = None
    vni: int | None = None

    @property
    def ends(self) -> tuple[LinkEnd, LinkEnd]:
        return (self.a, self.b)

    @property
    def short_hash(self) -> str:
        """Eight hex digits derived from the key: fits Linux's 15-character interface names."""
        return short_hash(self.key)


def short_hash(key: str, length: int = 8) -> str:
    """A stable hex digest of an idempotency key, for names with tight length limits."""
    return hashlib.sha256(key.encode()).hexdigest()[:length]


class LinkState(enum.Enum):
    UP = "up"
    BROKEN = "broken"
    """Some of the link's objects are missing or wrong."""
    ABSENT = "absent"
    """Nothing of the link exists."""


@dataclass(frozen=True)
class LinkStatus:
    state: LinkState
    problems: tuple[str, ...] = ()
    """One sentence per missing or wrong object."""
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.state is LinkState.UP


class SdnDriver(abc.ABC):
    """A WAN backend. Methods are synchronous and idempotent; errors are the contract's PluginError tree."""

    name: str
    logger: logging.Logger = logging.getLogger("tempano.plugins.sdn")
    """Where the driver says what it decided on its own (the operations hand it the operation's logger)."""

    def prepare_site(self, site: SiteSpec, record: Recorder) -> dict[str, Any]:
        """Check (or create) what the site needs on the backend; returns attributes for the site."""
        return {}

    def check_site(self, site: SiteSpec) -> LinkStatus:
        """Whether the site is usable (controller reachable, edge namespace present...)."""
        return LinkStatus(LinkState.UP)

    @abc.abstractmethod
    def connect(self, link: LinkSpec, record: Recorder) -> dict[str, Any]:
        """Create the link, adopting whatever part of it already exists; returns its attributes."""

    @abc.abstractmethod
    def disconnect(self, resource: Resource) -> None:
        """Remove one ledger entry's object; succeeds when it is already gone."""

    @abc.abstractmethod
    def status(self, link: LinkSpec) -> LinkStatus:
        """The link's state on the backend, with a sentence for each problem."""

    @abc.abstractmethod
    def list_links(self) -> list[str]:
        """Names of the links tempano made on this backend (for audits and leak checks)."""

    def close(self) -> None:  # noqa: B027  (most drivers hold nothing to release)
        """Release connections; the driver is not used afterwards."""


DriverFactory = Callable[[SiteSpec, Credentials | None], SdnDriver]

_DRIVERS: dict[str, DriverFactory] = {}


def register_driver(name: str, factory: DriverFactory) -> None:
    """Make a driver available to sites and links under ``name`` (a Site's ``driver`` property)."""
    _DRIVERS[name] = factory


def driver_names() -> list[str]:
    return sorted(_DRIVERS)


def make_driver(site: SiteSpec, credentials: Credentials | None) -> SdnDriver:
    """The driver a site names, built for that site's controller and credentials."""
    factory = _DRIVERS.get(site.driver)
    if factory is None:
        raise ConfigurationError(
            f"site {site.name!r} asks for SDN driver {site.driver!r}, which does not exist; "
            f"set its driver property to one of: {', '.join(driver_names())}"
        )
    return factory(site, credentials)
