"""The ``onos`` driver: a WAN link is an ONOS VPLS joining two port interfaces.

ONOS keeps both in its network configuration (REST ``/onos/v1/network/configuration``):

* ``ports -> <connect point> -> interfaces``: a named interface per link end (connect point + VLAN);
* ``apps -> org.onosproject.vpls -> vpls -> vplsList``: the VPLS ``{name, interfaces, encapsulation}``.

ONOS replaces a whole config on POST, so every change is read-modify-write of the current document,
and a change is verified by reading it back (another writer may have posted in between).
"""

from __future__ import annotations

from typing import Any

from tempano.plugins.contract import ConfigurationError, Resource, RetryableError
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

CONFIG = "/onos/v1/network/configuration"
VPLS_PATH = f"{CONFIG}/apps/org.onosproject.vpls/vpls"
PORTS_PATH = f"{CONFIG}/ports"
VPLS_KIND = "sdn.onos.vpls"
INTERFACE_KIND = "sdn.onos.interface"
NAME_PREFIX = "tempano-"


def vpls_name(link: LinkSpec) -> str:
    return f"{NAME_PREFIX}{short_hash(link.key, 12)}"


class OnosVplsDriver(SdnDriver):
    """ONOS VPLS through the network configuration REST API (HTTP basic auth)."""

    name = "onos"

    def __init__(self, client: ControllerClient) -> None:
        self.client = client

    # -- sites ---------------------------------------------------------------------------------

    def prepare_site(self, site: SiteSpec, record: Recorder) -> dict[str, Any]:
        self._attachment(site)
        self.client.request("GET", PORTS_PATH, subject=f"site {site.name!r}")  # reachable, credentials good
        return {"controller_url": self.client.base_url, "attachment_point": site.attachment_point}

    def check_site(self, site: SiteSpec) -> LinkStatus:
        self.client.request("GET", PORTS_PATH, subject=f"site {site.name!r}")
        return LinkStatus(LinkState.UP)

    # -- links ---------------------------------------------------------------------------------

    def connect(self, link: LinkSpec, record: Recorder) -> dict[str, Any]:
        wanted = self._interfaces(link)
        subject = f"link {link.name!r}"
        for connect_point, interface in wanted:
            self._ensure_interface(connect_point, interface, subject)
            record(
                INTERFACE_KIND,
                f"{connect_point}#{interface['name']}",
                {
                    "connect_point": connect_point,
                    "interface": interface["name"],
                },
            )
        name = vpls_name(link)
        vpls = {
            "name": name,
            "interfaces": [i["name"] for _, i in wanted],
            "encapsulation": "VLAN" if link.vlan_id is not None else "NONE",
        }
        document = self._vpls_document(subject)
        entries = [v for v in document.get("vplsList", []) if v.get("name") != name]
        current = next((v for v in document.get("vplsList", []) if v.get("name") == name), None)
        if current is None or self._differs(current, vpls):
            document["vplsList"] = [*entries, vpls]
            self.client.request("POST", VPLS_PATH, json=document, subject=subject)
        record(VPLS_KIND, name, {"vpls": name})
        if self._find_vpls(name, subject) is None:
            raise RetryableError(
                f"ONOS at {self.client.base_url} lost VPLS {name} of {subject} right after it was written "
                "(another client rewrote the VPLS config at the same time); the engine retries"
            )
        return {"vpls_name": name, "interfaces": vpls["interfaces"]}

    def disconnect(self, resource: Resource) -> None:
        subject = f"link {resource.node_instance_id!r}"
        if resource.kind == VPLS_KIND:
            document = self._vpls_document(subject)
            kept = [v for v in document.get("vplsList", []) if v.get("name") != resource.resource_id]
            if len(kept) != len(document.get("vplsList", [])):
                document["vplsList"] = kept
                self.client.request("POST", VPLS_PATH, json=document, subject=subject)
        elif resource.kind == INTERFACE_KIND:
            connect_point = str(resource.data["connect_point"])
            interfaces = self._port_interfaces(connect_point, subject)
            kept = [i for i in interfaces if i.get("name") != resource.data["interface"]]
            if len(kept) != len(interfaces):
                self.client.request("POST", PORTS_PATH, json={connect_point: {"interfaces": kept}}, subject=subject)

    def status(self, link: LinkSpec) -> LinkStatus:
        subject = f"link {link.name!r}"
        where = f"ONOS at {self.client.base_url}"
        problems: list[str] = []
        found = 0
        wanted = self._interfaces(link)
        ports = self._ports(subject)  # one read for both ends
        for connect_point, interface in wanted:
            have = {i.get("name"): i for i in _interfaces_at(ports, connect_point)}
            if interface["name"] not in have:
                problems.append(f"{where} has no interface {interface['name']} on {connect_point}")
            else:
                found += 1
                if have[interface["name"]].get("vlan") != interface.get("vlan"):
                    problems.append(f"{where}: interface {interface['name']} is not on VLAN {link.vlan_id}")
        name = vpls_name(link)
        vpls = self._find_vpls(name, subject)
        if vpls is None:
            problems.append(f"{where} has no VPLS {name}")
        else:
            found += 1
            expected = {i["name"] for _, i in wanted}
            if set(vpls.get("interfaces", [])) != expected:
                problems.append(f"{where}: VPLS {name} joins {vpls.get('interfaces')}, not {sorted(expected)}")
        if not problems:
            return LinkStatus(LinkState.UP, details={"vpls_name": name})
        return LinkStatus(LinkState.ABSENT if found == 0 else LinkState.BROKEN, tuple(problems))

    def list_links(self) -> list[str]:
        document = self._vpls_document("an audit")
        return sorted(v["name"] for v in document.get("vplsList", []) if v.get("name", "").startswith(NAME_PREFIX))

    def close(self) -> None:
        self.client.close()

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _attachment(site: SiteSpec) -> str:
        if not site.attachment_point:
            raise ConfigurationError(
                f"site {site.name!r} uses the onos SDN driver but has no attachment_point; set it to the "
                "ONOS connect point where the site enters the WAN (e.g. of:0000000000000001/1)"
            )
        return site.attachment_point

    def _interfaces(self, link: LinkSpec) -> list[tuple[str, dict[str, Any]]]:
        if link.service_type != "L2":
            raise ConfigurationError(
                f"link {link.name!r}: ONOS VPLS provides L2 links only, not {link.service_type}; set service_type to L2"
            )
        base = vpls_name(link)
        result = []
        for side, end in zip("ab", link.ends, strict=True):
            interface: dict[str, Any] = {"name": f"{base}-{side}"}
            if link.vlan_id is not None:
                interface["vlan"] = str(link.vlan_id)  # ONOS's InterfaceConfig reads the VLAN as a string
            result.append((self._attachment(end.site), interface))
        if result[0][0] == result[1][0]:
            raise ConfigurationError(
                f"link {link.name!r}: both sites attach at {result[0][0]}; each end needs its own connect point"
            )
        return result

    def _ports(self, subject: str) -> dict[str, Any]:
        ports: dict[str, Any] = self.client.request("GET", PORTS_PATH, subject=subject).json() or {}
        return ports

    def _port_interfaces(self, connect_point: str, subject: str) -> list[dict[str, Any]]:
        return _interfaces_at(self._ports(subject), connect_point)

    def _ensure_interface(self, connect_point: str, interface: dict[str, Any], subject: str) -> None:
        interfaces = self._port_interfaces(connect_point, subject)
        current = next((i for i in interfaces if i.get("name") == interface["name"]), None)
        if current == interface:
            return
        kept = [i for i in interfaces if i.get("name") != interface["name"]]
        body = {connect_point: {"interfaces": [*kept, interface]}}
        self.client.request("POST", PORTS_PATH, json=body, subject=subject)

    def _vpls_document(self, subject: str) -> dict[str, Any]:
        response = self.client.request("GET", VPLS_PATH, subject=subject, tolerate=(404,))
        if response.status_code == 404:  # the VPLS app has no config yet
            return {"vplsList": []}
        document: dict[str, Any] = response.json()
        return document

    def _find_vpls(self, name: str, subject: str) -> dict[str, Any] | None:
        return next((v for v in self._vpls_document(subject).get("vplsList", []) if v.get("name") == name), None)

    @staticmethod
    def _differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
        return bool(
            set(current.get("interfaces", [])) != set(wanted["interfaces"])
            or current.get("encapsulation", "NONE") != wanted["encapsulation"]
        )


def _interfaces_at(ports: dict[str, Any], connect_point: str) -> list[dict[str, Any]]:
    """The interfaces the ONOS ports config defines on one connect point."""
    interfaces: list[dict[str, Any]] = ports.get(connect_point, {}).get("interfaces", [])
    return interfaces


def _factory(site: SiteSpec, credentials: Credentials | None) -> SdnDriver:
    return OnosVplsDriver(ControllerClient(site, credentials, controller="ONOS"))


register_driver("onos", _factory)
