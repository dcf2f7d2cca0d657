"""The ``ietf-l2vpn`` driver: a WAN link is an RFC 8466 vpn-service with a site-network-access per end.

It speaks RESTCONF (RFC 8040) with ``application/yang-data+json`` under
``/restconf/data/ietf-l2vpn-svc:l2vpn-svc``:

* site.create makes (or, with a ``site_id`` property, uses) a ``sites/site=<id>``;
* link.create POSTs ``vpn-services/vpn-service`` (a point-to-point ``vpws`` service), then one
  ``site-network-access`` under each site attached to it. A 409 ``data-exists`` means an earlier
  attempt made it: the driver adopts it and PUTs the wanted content to converge;
* deletes remove the accesses before the vpn-service (a server refuses to delete a service in use).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tempano.plugins.contract import ConfigurationError, Resource
from tempano.plugins.sdn._http import ControllerClient
from tempano.plugins.sdn.driver import (
    Credentials,
    LinkSpec,
    LinkState,
    LinkStatus,
    Recorder,
    SdnDriver,
    SiteSpec,
    register_driver,
    short_hash,
)

MODULE = "ietf-l2vpn-svc"
ROOT = f"/restconf/data/{MODULE}:l2vpn-svc"
YANG_JSON = "application/yang-data+json"
SITE_KIND = "sdn.ietf.site"
SERVICE_KIND = "sdn.ietf.vpn-service"
ACCESS_KIND = "sdn.ietf.access"
NAME_PREFIX = "tempano-"
DEFAULT_MTU = 1500


def _key(value: str) -> str:
    """A list key in a RESTCONF URI: percent-encoded (RFC 8040, section 3.5.3)."""
    return quote(value, safe="")


def service_path(vpn_id: str) -> str:
    return f"{ROOT}/vpn-services/vpn-service={_key(vpn_id)}"


def site_path(site_id: str) -> str:
    return f"{ROOT}/sites/site={_key(site_id)}"


def access_path(site_id: str, access_id: str) -> str:
    return f"{site_path(site_id)}/site-network-accesses/site-network-access={_key(access_id)}"


def vpn_id(link: LinkSpec) -> str:
    return f"{NAME_PREFIX}{short_hash(link.key, 12)}"


class IetfL2vpnDriver(SdnDriver):
    """An RFC 8466 L2VPN service model over RESTCONF."""

    name = "ietf-l2vpn"

    def __init__(self, client: ControllerClient) -> None:
        self.client = client

    # -- sites ---------------------------------------------------------------------------------

    def prepare_site(self, site: SiteSpec, record: Recorder) -> dict[str, Any]:
        subject = f"site {site.name!r}"
        if site.site_id_given and site.site_id:
            response = self.client.request("GET", site_path(site.site_id), subject=subject, tolerate=(404,))
            if response.status_code == 404:
                raise ConfigurationError(
                    f"site {site.name!r} names L2VPN site {site.site_id!r}, which the controller at "
                    f"{self.client.base_url} does not have; fix the site_id property or drop it so that "
                    "tempano creates the site"
                )
            return {"site_id": site.site_id}
        site_id = f"{NAME_PREFIX}{short_hash(site.key, 12)}"
        body = {
            f"{MODULE}:site": [
                {
                    "site-id": site_id,
                    "description": f"tempano site {site.name}",
                    "management": {"type": f"{MODULE}:provider-managed"},
                    "site-vpn-flavor": f"{MODULE}:site-vpn-flavor-single",
                }
            ]
        }
        self._create(f"{ROOT}/sites", site_path(site_id), body, subject, converge=False)
        record(SITE_KIND, site_id, {"path": site_path(site_id)})
        return {"site_id": site_id}

    def check_site(self, site: SiteSpec) -> LinkStatus:
        if not site.site_id:
            return LinkStatus(LinkState.ABSENT, (f"site {site.name!r} has no L2VPN site id yet",))
        response = self.client.request("GET", site_path(site.site_id), subject=f"site {site.name!r}", tolerate=(404,))
        if response.status_code == 404:
            return LinkStatus(
                LinkState.BROKEN,
                (f"the controller at {self.client.base_url} no longer has L2VPN site {site.site_id}",),
            )
        return LinkStatus(LinkState.UP)

    # -- links ---------------------------------------------------------------------------------

    def connect(self, link: LinkSpec, record: Recorder) -> dict[str, Any]:
        subject = f"link {link.name!r}"
        vid = vpn_id(link)
        service = {
            f"{MODULE}:vpn-service": [
                {
                    "vpn-id": vid,
                    "customer-name": "tempano",
                    "description": f"tempano WAN link {link.name} ({link.key})",
                    "vpn-svc-type": f"{MODULE}:vpws",
                    "svc-topo": f"{MODULE}:any-to-any",
                    "ce-vlan-preservation": True,
                    "ce-vlan-cos-preservation": True,
                }
            ]
        }
        self._create(f"{ROOT}/vpn-services", service_path(vid), service, subject)
        record(SERVICE_KIND, vid, {"path": service_path(vid)})
        accesses = []
        for side, (site_id, access) in zip("ab", self._accesses(link, vid), strict=True):
            aid = access["network-access-id"]
            self._create(
                f"{site_path(site_id)}/site-network-accesses",
                access_path(site_id, aid),
                {f"{MODULE}:site-network-access": [access]},
                subject,
            )
            record(ACCESS_KIND, f"{site_id}/{aid}", {"path": access_path(site_id, aid), "side": side})
            accesses.append(f"{site_id}/{aid}")
        return {"vpn_id": vid, "site_network_accesses": accesses}

    def disconnect(self, resource: Resource) -> None:
        path = str(resource.data["path"])
        self.client.request("DELETE", path, subject=f"{resource.kind} {resource.resource_id}", tolerate=(404,))

    def status(self, link: LinkSpec) -> LinkStatus:
        subject = f"link {link.name!r}"
        where = f"the controller at {self.client.base_url}"
        vid = vpn_id(link)
        problems: list[str] = []
        found = 0
        if self._get(service_path(vid), subject) is None:
            problems.append(f"{where} has no vpn-service {vid}")
        else:
            found += 1
        for site_id, access in self._accesses(link, vid):
            aid = access["network-access-id"]
            current = self._get(access_path(site_id, aid), subject)
            if current is None:
                problems.append(f"{where} has no site-network-access {aid} at site {site_id}")
                continue
            found += 1
            attached = current.get("vpn-attachment", {}).get("vpn-id")
            if attached != vid:
                problems.append(f"{where}: site-network-access {aid} is attached to {attached}, not {vid}")
        if not problems:
            return LinkStatus(LinkState.UP, details={"vpn_id": vid})
        return LinkStatus(LinkState.ABSENT if found == 0 else LinkState.BROKEN, tuple(problems))

    def list_links(self) -> list[str]:
        response = self.client.request("GET", f"{ROOT}/vpn-services", subject="an audit", tolerate=(404,))
        if response.status_code == 404:
            return []
        services = response.json().get(f"{MODULE}:vpn-services", {}).get("vpn-service", [])
        return sorted(s["vpn-id"] for s in services if str(s.get("vpn-id", "")).startswith(NAME_PREFIX))

    def close(self) -> None:
        self.client.close()

    # -- helpers -------------------------------------------------------------------------------

    def _accesses(self, link: LinkSpec, vid: str) -> list[tuple[str, dict[str, Any]]]:
        if link.service_type != "L2":
            raise ConfigurationError(
                f"link {link.name!r}: the ietf-l2vpn driver provides L2 links only (RFC 8466), not "
                f"{link.service_type}; set service_type to L2"
            )
        result = []
        for side, end in zip("ab", link.ends, strict=True):
            if not end.site.site_id:
                raise ConfigurationError(
                    f"link {link.name!r}: site {end.site.name!r} has no L2VPN site id; install the site "
                    "(site.create) before the link, or give it a site_id property"
                )
            connection: dict[str, Any] = {
                "encapsulation-type": f"{MODULE}:ethernet",
                "eth-inf-type": "untagged",
            }
            if link.vlan_id is not None:
                connection = {
                    "encapsulation-type": f"{MODULE}:vlan",
                    "eth-inf-type": f"{MODULE}:tagged",
                    "tagged-interface": {
                        "type": f"{MODULE}:dot1q",
                        "dot1q-vlan-tagged": {"tg-type": f"{MODULE}:c-vlan", "cvlan-id": link.vlan_id},
                    },
                }
            service: dict[str, Any] = {"svc-mtu": DEFAULT_MTU}
            if link.bandwidth_mbps is not None:
                bps = link.bandwidth_mbps * 1_000_000
                service["svc-bandwidth"] = {
                    "bandwidth": [
                        {
                            "direction": f"{MODULE}:{direction}",
                            "type": f"{MODULE}:bw-per-port",
                            "cir": bps,
                            "cbs": bps // 8,
                        }
                        for direction in ("input-bw", "output-bw")
                    ]
                }
            access = {
                "network-access-id": f"{vid}-{side}",
                "connection": connection,
                "vpn-attachment": {"vpn-id": vid, "site-role": f"{MODULE}:any-to-any-role"},
                "service": service,
            }
            result.append((end.site.site_id, access))
        return result

    def _create(self, parent: str, path: str, body: dict[str, Any], subject: str, *, converge: bool = True) -> None:
        """POST a list entry; on 409 (an earlier attempt made it) adopt it and PUT the wanted content.

        Sites are adopted as they are (``converge=False``): a PUT replaces the whole entry, and would
        drop the site-network-accesses that links keep under it.
        """
        response = self.client.request("POST", parent, json=body, subject=subject, ok=(201,), tolerate=(409,))
        if response.status_code == 409 and converge:
            self.client.request("PUT", path, json=body, subject=subject, ok=(201, 204))

    def _get(self, path: str, subject: str) -> dict[str, Any] | None:
        response = self.client.request("GET", path, subject=subject, tolerate=(404,))
        if response.status_code == 404:
            return None
        entries: Any = next(iter(response.json().values()), [])
        return entries[0] if isinstance(entries, list) and entries else None


def _factory(site: SiteSpec, credentials: Credentials | None) -> SdnDriver:
    client = ControllerClient(
        site,
        credentials,
        controller="L2VPN controller",
        headers={"Accept": YANG_JSON},
        content_type=YANG_JSON,
    )
    return IetfL2vpnDriver(client)


register_driver("ietf-l2vpn", _factory)
