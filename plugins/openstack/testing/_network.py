"""Neutron v2.0: networks, subnets (with IPAM), ports, routers, floating IPs, security groups, tags."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from tempano.plugins.openstack.testing._common import filter_items
from tempano.plugins.openstack.testing._http import ApiError, Request, Response, Router
from tempano.plugins.openstack.testing._state import State, new_id, now

PREFIX = "/network/v2.0"
ID = r"(?P<id>[^/]+)"

# URL collection -> (state kind, JSON singular key, JSON plural key)
COLLECTIONS = {
    "networks": ("network", "network", "networks"),
    "subnets": ("subnet", "subnet", "subnets"),
    "ports": ("port", "port", "ports"),
    "routers": ("router", "router", "routers"),
    "floatingips": ("floatingip", "floatingip", "floatingips"),
    "security-groups": ("security_group", "security_group", "security_groups"),
    "security-group-rules": ("security_group_rule", "security_group_rule", "security_group_rules"),
}

EXTENSIONS = (
    "router",
    "external-net",
    "security-group",
    "port-security",
    "allowed-address-pairs",
    "binding",
    "standard-attr-tag",
    "tag-creation",
    "quotas",
    "extraroute",
    "standard-attr-description",
)


def neutron_error(status: int, kind: str, message: str) -> ApiError:
    """An error in Neutron's body format."""
    return ApiError(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})


class Network:
    """The Neutron API over the shared state."""

    def __init__(self, state: State, project_id: str) -> None:
        self.state = state
        self.project_id = project_id

    def register(self, router: Router) -> None:
        for collection in COLLECTIONS:
            base = f"{PREFIX}/{collection}"
            router.add("GET", base, self._lister(collection))
            router.add("POST", base, self._creator(collection))
            router.add("GET", f"{base}/{ID}", self._shower(collection))
            router.add("PUT", f"{base}/{ID}", self._updater(collection))
            router.add("DELETE", f"{base}/{ID}", self._deleter(collection))
            router.add("GET", f"{base}/{ID}/tags", self._tags_get(collection))
            router.add("PUT", f"{base}/{ID}/tags", self._tags_set(collection))
            router.add("PUT", f"{base}/{ID}/tags/(?P<tag>[^/]+)", self._tag_add(collection))
            router.add("DELETE", f"{base}/{ID}/tags/(?P<tag>[^/]+)", self._tag_remove(collection))
        router.add("PUT", f"{PREFIX}/routers/{ID}/add_router_interface", self.add_router_interface)
        router.add("PUT", f"{PREFIX}/routers/{ID}/remove_router_interface", self.remove_router_interface)
        router.add("GET", f"{PREFIX}/extensions", self.extensions)

    # -- generic collection handlers -------------------------------------------------------------------

    def new_item(self, **fields: Any) -> dict[str, Any]:
        """A new Neutron object of this project: a fresh id, empty name and tags, timestamps, then ``fields``."""
        stamp = now()
        return {
            "id": new_id(),
            "name": "",
            "description": "",
            "tenant_id": self.project_id,
            "project_id": self.project_id,
            "tags": [],
            "created_at": stamp,
            "updated_at": stamp,
            "revision_number": 1,
            **fields,
        }

    def _find(self, collection: str, resource_id: str) -> dict[str, Any]:
        kind, _, _ = COLLECTIONS[collection]
        item = self.state.get(kind, resource_id)
        if item is None:
            name = "".join(part.capitalize() for part in kind.split("_"))
            raise neutron_error(
                404,
                f"{name}NotFound",
                f"{kind.replace('_', ' ').capitalize()} {resource_id} could not be found.",
            )
        return item

    def _lister(self, collection: str) -> Any:
        kind, _, plural = COLLECTIONS[collection]

        def handler(request: Request) -> Response:
            return Response(200, {plural: filter_items(self.state.all(kind), request)})

        return handler

    def _shower(self, collection: str) -> Any:
        _, singular, _ = COLLECTIONS[collection]

        def handler(request: Request) -> Response:
            return Response(200, {singular: self._find(collection, request.params["id"])})

        return handler

    def _creator(self, collection: str) -> Any:
        kind, singular, _ = COLLECTIONS[collection]
        build = getattr(self, f"_build_{kind}")

        def handler(request: Request) -> Response:
            attrs = (request.body or {}).get(singular)
            if not isinstance(attrs, dict):
                raise neutron_error(400, "BadRequest", f"Bad {collection} request: body must hold '{singular}'.")
            with self.state.lock:
                if self.state.over_quota(kind):
                    raise neutron_error(409, "OverQuota", f"Quota exceeded for resources: ['{kind}'].")
                item = self.new_item(
                    name=attrs.get("name", ""),
                    description=attrs.get("description", ""),
                    tags=list(attrs.get("tags", [])),
                )
                build(item, attrs)
                self.state.add(kind, item)
            return Response(201, {singular: item})

        return handler

    def _updater(self, collection: str) -> Any:
        kind, singular, _ = COLLECTIONS[collection]

        def handler(request: Request) -> Response:
            attrs = dict((request.body or {}).get(singular) or {})
            with self.state.lock:
                item = self._find(collection, request.params["id"])
                if kind == "floatingip" and "port_id" in attrs:
                    self._associate(item, attrs.pop("port_id"))
                if (
                    kind == "port"
                    and attrs.get("port_security_enabled") is False
                    and (attrs.get("security_groups", item["security_groups"]))
                ):
                    raise neutron_error(
                        409,
                        "PortSecurityAndIPRequiredForSecurityGroups",
                        "Port security must be enabled and port must have an IP address in order "
                        "to use security groups.",
                    )
                item.update(attrs)
                item["updated_at"] = now()
                item["revision_number"] += 1
            return Response(200, {singular: item})

        return handler

    def _deleter(self, collection: str) -> Any:
        kind, _, _ = COLLECTIONS[collection]

        def handler(request: Request) -> Response:
            with self.state.lock:
                item = self._find(collection, request.params["id"])
                getattr(self, f"_check_delete_{kind}", lambda _item: None)(item)
                self.state.remove(kind, item["id"])
                if kind == "security_group":
                    for rule in self.state.all("security_group_rule"):
                        if rule["security_group_id"] == item["id"]:
                            self.state.remove("security_group_rule", rule["id"])
                elif kind == "security_group_rule":
                    group = self.state.get("security_group", item["security_group_id"])
                    if group is not None:
                        group["security_group_rules"] = [
                            r for r in group["security_group_rules"] if r["id"] != item["id"]
                        ]
                elif kind == "port":
                    self._release_port(item)
            return Response(204)

        return handler

    def _tags_get(self, collection: str) -> Any:
        def handler(request: Request) -> Response:
            return Response(200, {"tags": self._find(collection, request.params["id"])["tags"]})

        return handler

    def _tags_set(self, collection: str) -> Any:
        def handler(request: Request) -> Response:
            with self.state.lock:
                item = self._find(collection, request.params["id"])
                item["tags"] = list((request.body or {}).get("tags", []))
            return Response(200, {"tags": item["tags"]})

        return handler

    def _tag_add(self, collection: str) -> Any:
        def handler(request: Request) -> Response:
            with self.state.lock:
                item = self._find(collection, request.params["id"])
                if request.params["tag"] not in item["tags"]:
                    item["tags"].append(request.params["tag"])
            return Response(201)

        return handler

    def _tag_remove(self, collection: str) -> Any:
        def handler(request: Request) -> Response:
            with self.state.lock:
                item = self._find(collection, request.params["id"])
                if request.params["tag"] not in item["tags"]:
                    raise neutron_error(404, "TagNotFound", f"Tag {request.params['tag']} could not be found.")
                item["tags"].remove(request.params["tag"])
            return Response(204)

        return handler

    def extensions(self, request: Request) -> Response:
        return Response(
            200,
            {"extensions": [{"alias": a, "name": a, "description": a, "updated": now()} for a in EXTENSIONS]},
        )

    # -- networks and subnets ----------------------------------------------------------------------------

    def _build_network(self, item: dict[str, Any], attrs: dict[str, Any]) -> None:
        item.update(
            status="ACTIVE",
            admin_state_up=attrs.get("admin_state_up", True),
            shared=attrs.get("shared", False),
            subnets=[],
            mtu=attrs.get("mtu", 1450),
            port_security_enabled=attrs.get("port_security_enabled", True),
            is_default=False,
            availability_zones=["nova"],
            availability_zone_hints=[],
            ipv4_address_scope=None,
            ipv6_address_scope=None,
            qos_policy_id=None,
            dns_domain="",
        )
        item["router:external"] = attrs.get("router:external", False)
        item["provider:network_type"] = attrs.get("provider:network_type", "vxlan")
        item["provider:physical_network"] = attrs.get("provider:physical_network")
        item["provider:segmentation_id"] = attrs.get("provider:segmentation_id", random.randint(1, 4094))

    def _check_delete_network(self, item: dict[str, Any]) -> None:
        for port in self.state.all("port"):
            if port["network_id"] == item["id"]:
                raise neutron_error(
                    409,
                    "NetworkInUse",
                    f"Unable to complete operation on network {item['id']}. "
                    "There are one or more ports still in use on the network.",
                )
        for subnet_id in list(item["subnets"]):
            self.state.remove("subnet", subnet_id)

    def _build_subnet(self, item: dict[str, Any], attrs: dict[str, Any]) -> None:
        network = self.state.get("network", attrs.get("network_id", ""))
        if network is None:
            raise neutron_error(404, "NetworkNotFound", f"Network {attrs.get('network_id')} could not be found.")
        try:
            cidr = ipaddress.ip_network(attrs["cidr"], strict=False)
        except (KeyError, ValueError) as exc:
            raise neutron_error(400, "BadRequest", f"Invalid input for cidr: {exc}") from None
        hosts = list(cidr.hosts())
        gateway = attrs.get("gateway_ip", str(hosts[0]))
        pools = attrs.get("allocation_pools") or [{"start": str(hosts[1]), "end": str(hosts[-1])}]
        item.update(
            network_id=network["id"],
            cidr=str(cidr),
            ip_version=cidr.version,
            gateway_ip=gateway,
            allocation_pools=pools,
            enable_dhcp=attrs.get("enable_dhcp", True),
            dns_nameservers=attrs.get("dns_nameservers", []),
            host_routes=attrs.get("host_routes", []),
            ipv6_address_mode=attrs.get("ipv6_address_mode"),
            ipv6_ra_mode=attrs.get("ipv6_ra_mode"),
            subnetpool_id=None,
            segment_id=None,
            service_types=[],
        )
        network["subnets"].append(item["id"])

    def _check_delete_subnet(self, item: dict[str, Any]) -> None:
        for port in self.state.all("port"):
            if any(ip["subnet_id"] == item["id"] for ip in port["fixed_ips"]):
                raise neutron_error(
                    409,
                    "SubnetInUse",
                    f"Unable to complete operation on subnet {item['id']}: "
                    "One or more ports have an IP allocation from this subnet.",
                )
        network = self.state.get("network", item["network_id"])
        if network is not None:
            network["subnets"] = [s for s in network["subnets"] if s != item["id"]]

    def allocate_ip(self, subnet: dict[str, Any], wanted: str | None = None) -> str:
        """A free address of the subnet (or ``wanted`` if it is free), as Neutron's IPAM gives one."""
        used = {
            ip["ip_address"]
            for port in self.state.all("port")
            for ip in port["fixed_ips"]
            if ip["subnet_id"] == subnet["id"]
        } | {subnet["gateway_ip"]}
        if wanted is not None:
            if wanted in used:
                raise neutron_error(
                    409,
                    "IpAddressAlreadyAllocated",
                    f"IP address {wanted} already allocated in subnet {subnet['id']}",
                )
            return wanted
        for pool in subnet["allocation_pools"]:
            first, last = int(ipaddress.ip_address(pool["start"])), int(ipaddress.ip_address(pool["end"]))
            for number in range(first, last + 1):
                address = str(
                    ipaddress.ip_address(number) if subnet["ip_version"] == 4 else ipaddress.IPv6Address(number)
                )
                if address not in used:
                    return address
        raise neutron_error(
            409,
            "IpAddressGenerationFailure",
            f"No more IP addresses available on network {subnet['network_id']}.",
        )

    # -- ports ---------------------------------------------------------------------------------------------

    def _build_port(self, item: dict[str, Any], attrs: dict[str, Any]) -> None:
        network = self.state.get("network", attrs.get("network_id", ""))
        if network is None:
            raise neutron_error(404, "NetworkNotFound", f"Network {attrs.get('network_id')} could not be found.")
        fixed_ips = []
        for wanted in attrs.get("fixed_ips", [{}]):
            subnet_id = wanted.get("subnet_id") or (network["subnets"][0] if network["subnets"] else None)
            if subnet_id is None:
                continue
            subnet = self.state.get("subnet", subnet_id)
            if subnet is None:
                raise neutron_error(404, "SubnetNotFound", f"Subnet {subnet_id} could not be found.")
            fixed_ips.append({"subnet_id": subnet_id, "ip_address": self.allocate_ip(subnet, wanted.get("ip_address"))})
        port_security = attrs.get("port_security_enabled", network["port_security_enabled"])
        groups = attrs.get("security_groups")
        if groups is None:
            groups = (
                [g["id"] for g in self.state.all("security_group") if g["name"] == "default"][:1]
                if (
                    (port_security and attrs.get("device_owner", "").startswith("compute"))
                    or (port_security and not attrs.get("device_owner"))
                )
                else []
            )
        if groups and not port_security:
            raise neutron_error(
                400,
                "PortSecurityAndIPRequiredForSecurityGroups",
                "Port security must be enabled and port must have an IP address in order to use security groups.",
            )
        for group_id in groups:
            if self.state.get("security_group", group_id) is None:
                raise neutron_error(404, "SecurityGroupNotFound", f"Security group {group_id} does not exist")
        item.update(
            network_id=network["id"],
            mac_address=attrs.get("mac_address") or "fa:16:3e:" + ":".join(f"{b:02x}" for b in random.randbytes(3)),
            fixed_ips=fixed_ips,
            device_id=attrs.get("device_id", ""),
            device_owner=attrs.get("device_owner", ""),
            status="ACTIVE" if attrs.get("device_id") else "DOWN",
            admin_state_up=attrs.get("admin_state_up", True),
            security_groups=list(groups),
            port_security_enabled=port_security,
            allowed_address_pairs=attrs.get("allowed_address_pairs", []),
            extra_dhcp_opts=[],
            dns_name="",
            qos_policy_id=None,
        )
        item["binding:vnic_type"] = attrs.get("binding:vnic_type", "normal")
        item["binding:profile"] = attrs.get("binding:profile", {})
        item["binding:host_id"] = ""
        item["binding:vif_type"] = "ovs"

    def _check_delete_port(self, item: dict[str, Any]) -> None:
        if item["device_owner"] == "network:router_interface":
            raise neutron_error(
                409,
                "L3PortInUse",
                f"Port {item['id']} has owner network:router_interface and "
                "therefore cannot be deleted directly via the port API.",
            )

    def _release_port(self, port: dict[str, Any]) -> None:
        for fip in self.state.all("floatingip"):
            if fip["port_id"] == port["id"]:
                fip.update(port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")

    # -- routers ---------------------------------------------------------------------------------------------

    def _gateway(self, info: dict[str, Any] | None) -> dict[str, Any] | None:
        if not info or not info.get("network_id"):
            return None
        network = self.state.get("network", info["network_id"])
        if network is None or not network["router:external"]:
            raise neutron_error(400, "BadRequest", f"Network {info['network_id']} is not a valid external network")
        subnet = self.state.get("subnet", network["subnets"][0]) if network["subnets"] else None
        ips = [{"subnet_id": subnet["id"], "ip_address": self.allocate_ip(subnet)}] if subnet else []
        return {
            "network_id": network["id"],
            "enable_snat": info.get("enable_snat", True),
            "external_fixed_ips": ips,
        }

    def _build_router(self, item: dict[str, Any], attrs: dict[str, Any]) -> None:
        item.update(
            status="ACTIVE",
            admin_state_up=attrs.get("admin_state_up", True),
            external_gateway_info=self._gateway(attrs.get("external_gateway_info")),
            routes=attrs.get("routes", []),
            distributed=False,
            ha=False,
            availability_zones=["nova"],
            availability_zone_hints=[],
            flavor_id=None,
        )

    def _check_delete_router(self, item: dict[str, Any]) -> None:
        for port in self.state.all("port"):
            if port["device_id"] == item["id"] and port["device_owner"] == "network:router_interface":
                raise neutron_error(409, "RouterInUse", f"Router {item['id']} still has ports")

    def add_router_interface(self, request: Request) -> Response:
        body = request.body or {}
        with self.state.lock:
            router = self._find("routers", request.params["id"])
            if "subnet_id" in body:
                subnet = self._find("subnets", body["subnet_id"])
                for port in self.state.all("port"):
                    if port["device_id"] == router["id"] and any(
                        ip["subnet_id"] == subnet["id"] for ip in port["fixed_ips"]
                    ):
                        raise neutron_error(400, "BadRequest", f"Router already has a port on subnet {subnet['id']}")
                port = self.new_item()
                # the interface takes the subnet's gateway address, which IPAM never hands out to other ports
                self._build_port(
                    port,
                    {
                        "network_id": subnet["network_id"],
                        "device_owner": "network:router_interface",
                        "device_id": router["id"],
                        "security_groups": [],
                        "fixed_ips": [],
                    },
                )
                port["fixed_ips"] = [{"subnet_id": subnet["id"], "ip_address": subnet["gateway_ip"]}]
                self.state.add("port", port, count=False)
            elif "port_id" in body:
                port = self._find("ports", body["port_id"])
                if port["device_id"]:
                    raise neutron_error(409, "PortInUse", f"Port {port['id']} is in use by {port['device_id']}")
                port.update(device_id=router["id"], device_owner="network:router_interface", status="ACTIVE")
            else:
                raise neutron_error(400, "BadRequest", "Either subnet_id or port_id must be specified")
        subnet_ids = [ip["subnet_id"] for ip in port["fixed_ips"]]
        return Response(
            200,
            {
                "id": router["id"],
                "tenant_id": self.project_id,
                "project_id": self.project_id,
                "port_id": port["id"],
                "network_id": port["network_id"],
                "subnet_id": subnet_ids[0],
                "subnet_ids": subnet_ids,
            },
        )

    def remove_router_interface(self, request: Request) -> Response:
        body = request.body or {}
        with self.state.lock:
            router = self._find("routers", request.params["id"])
            for port in self.state.all("port"):
                if port["device_id"] != router["id"] or port["device_owner"] != "network:router_interface":
                    continue
                if port["id"] == body.get("port_id") or any(
                    ip["subnet_id"] == body.get("subnet_id") for ip in port["fixed_ips"]
                ):
                    self.state.remove("port", port["id"])
                    subnet_ids = [ip["subnet_id"] for ip in port["fixed_ips"]]
                    return Response(
                        200,
                        {
                            "id": router["id"],
                            "tenant_id": self.project_id,
                            "port_id": port["id"],
                            "network_id": port["network_id"],
                            "subnet_id": subnet_ids[0],
                            "subnet_ids": subnet_ids,
                        },
                    )
        raise neutron_error(
            404,
            "RouterInterfaceNotFoundForSubnet",
            f"Router {router['id']} has no interface on subnet {body.get('subnet_id') or body.get('port_id')}",
        )

    # -- floating IPs ---------------------------------------------------------------------------------------

    def _build_floatingip(self, item: dict[str, Any], attrs: dict[str, Any]) -> None:
        network = self.state.get("network", attrs.get("floating_network_id", ""))
        if network is None or not network["router:external"]:
            raise neutron_error(
                404,
                "ExternalNetworkNotFound",
                f"External network {attrs.get('floating_network_id')} could not be found.",
            )
        if not network["subnets"]:
            raise neutron_error(
                409,
                "IpAddressGenerationFailure",
                f"No more IP addresses available on network {network['id']}.",
            )
        subnet = self.state.get("subnet", network["subnets"][0])
        assert subnet is not None
        address = attrs.get("floating_ip_address")
        # floating addresses come from the external subnet too: mark them as used with a hidden port-like
        # entry
        taken = {f["floating_ip_address"] for f in self.state.all("floatingip")}
        if address is None:
            for pool in subnet["allocation_pools"]:
                candidate = ipaddress.ip_address(pool["end"])
                while str(candidate) in taken:
                    candidate -= 1
                address = str(candidate)
                break
        elif address in taken:
            raise neutron_error(
                409,
                "IpAddressInUse",
                f"Unable to complete operation for network {network['id']}. The IP address {address} is in use.",
            )
        item.update(
            floating_network_id=network["id"],
            floating_ip_address=address,
            port_id=None,
            fixed_ip_address=None,
            router_id=None,
            status="DOWN",
            port_details=None,
            port_forwardings=[],
            qos_policy_id=None,
            dns_domain="",
            dns_name="",
        )
        if attrs.get("port_id"):
            self._associate(item, attrs["port_id"])

    def _associate(self, fip: dict[str, Any], port_id: str | None) -> None:
        if port_id is None:
            fip.update(port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")
            return
        port = self._find("ports", port_id)
        if fip["port_id"] and fip["port_id"] != port_id:
            raise neutron_error(
                409,
                "FloatingIPPortAlreadyAssociated",
                f"Cannot associate floating IP "
                f"{fip['floating_ip_address']} ({fip['id']}) with port {port_id} using fixed IP, "
                f"as that fixed IP already has a floating IP on external network "
                f"{fip['floating_network_id']}.",
            )
        fip.update(
            port_id=port_id,
            fixed_ip_address=port["fixed_ips"][0]["ip_address"] if port["fixed_ips"] else None,
            status="ACTIVE",
        )

    # -- security groups ----------------------------------------------------------------------------------

    def _build_security_group(self, item: dict[str, Any], attrs: dict[str, Any]) -> None:
        item.update(stateful=attrs.get("stateful", True), security_group_rules=[])
        for ethertype in ("IPv4", "IPv6"):
            rule = {
                "id": new_id(),
                "tenant_id": self.project_id,
                "project_id": self.project_id,
                "description": "",
                "tags": [],
                "created_at": now(),
                "updated_at": now(),
                "revision_number": 1,
            }
            self._fill_rule(rule, {"security_group_id": item["id"], "direction": "egress", "ethertype": ethertype})
            item["security_group_rules"].append(rule)
            self.state.add("security_group_rule", rule, count=False)

    def _fill_rule(self, item: dict[str, Any], attrs: dict[str, Any]) -> None:
        item.update(
            security_group_id=attrs["security_group_id"],
            direction=attrs.get("direction", "ingress"),
            ethertype=attrs.get("ethertype", "IPv4"),
            protocol=attrs.get("protocol"),
            port_range_min=attrs.get("port_range_min"),
            port_range_max=attrs.get("port_range_max"),
            remote_ip_prefix=attrs.get("remote_ip_prefix"),
            remote_group_id=attrs.get("remote_group_id"),
            remote_address_group_id=None,
        )

    def _build_security_group_rule(self, item: dict[str, Any], attrs: dict[str, Any]) -> None:
        group = self.state.get("security_group", attrs.get("security_group_id", ""))
        if group is None:
            raise neutron_error(
                404,
                "SecurityGroupNotFound",
                f"Security group {attrs.get('security_group_id')} does not exist",
            )
        self._fill_rule(item, attrs)
        fields = (
            "direction",
            "ethertype",
            "protocol",
            "port_range_min",
            "port_range_max",
            "remote_ip_prefix",
            "remote_group_id",
        )
        for rule in group["security_group_rules"]:
            if all(rule[f] == item[f] for f in fields):
                raise neutron_error(
                    409,
                    "SecurityGroupRuleExists",
                    f"Security group rule already exists. Rule id is {rule['id']}.",
                )
        item.pop("name", None)
        group["security_group_rules"].append(item)

    def _check_delete_security_group(self, item: dict[str, Any]) -> None:
        for port in self.state.all("port"):
            if item["id"] in port["security_groups"]:
                raise neutron_error(409, "SecurityGroupInUse", f"Security Group {item['id']} in use.")
