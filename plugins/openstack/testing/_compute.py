"""Nova v2.1: servers (BUILD -> ACTIVE/ERROR), actions, metadata, tags, flavors and extra specs, keypairs,
server groups (with affinity over a few emulated hosts) and volume attachments."""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from tempano.plugins.openstack.testing._common import filter_items
from tempano.plugins.openstack.testing._http import ApiError, Request, Response, Router
from tempano.plugins.openstack.testing._identity import COMPUTE_MAX_MICROVERSION
from tempano.plugins.openstack.testing._network import Network
from tempano.plugins.openstack.testing._state import State, new_id, now

PREFIX = "/compute/v2.1"
ID = r"(?P<id>[^/]+)"
HOSTS = ("compute-1", "compute-2", "compute-3")
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."


def nova_error(status: int, message: str) -> ApiError:
    """An error in Nova's body format."""
    key = {400: "badRequest", 403: "forbidden", 404: "itemNotFound", 409: "conflictingRequest"}.get(
        status, "computeFault"
    )
    return ApiError(status, {key: {"code": status, "message": message}})


class Compute:
    """The Nova API over the shared state; ports come from the emulated Neutron."""

    def __init__(self, state: State, network: Network, base_url: str, project_id: str, user_id: str) -> None:
        self.state = state
        self.network = network
        self.base_url = base_url
        self.project_id = project_id
        self.user_id = user_id

    def register(self, router: Router) -> None:
        add = router.add
        add("GET", f"{PREFIX}/servers", self.list_servers)
        add("GET", f"{PREFIX}/servers/detail", self.list_servers)
        add("POST", f"{PREFIX}/servers", self.create_server)
        add("GET", f"{PREFIX}/servers/{ID}", self.show_server)
        add("PUT", f"{PREFIX}/servers/{ID}", self.update_server)
        add("DELETE", f"{PREFIX}/servers/{ID}", self.delete_server)
        add("POST", f"{PREFIX}/servers/{ID}/action", self.server_action)
        add("GET", f"{PREFIX}/servers/{ID}/metadata", self.get_metadata)
        add("POST", f"{PREFIX}/servers/{ID}/metadata", self.merge_metadata)
        add("PUT", f"{PREFIX}/servers/{ID}/metadata", self.replace_metadata)
        add("DELETE", f"{PREFIX}/servers/{ID}/metadata/(?P<key>[^/]+)", self.delete_metadata_item)
        add("GET", f"{PREFIX}/servers/{ID}/tags", self.get_tags)
        add("PUT", f"{PREFIX}/servers/{ID}/tags", self.replace_tags)
        add("PUT", f"{PREFIX}/servers/{ID}/tags/(?P<tag>[^/]+)", self.add_tag)
        add("GET", f"{PREFIX}/servers/{ID}/os-volume_attachments", self.list_attachments)
        add("POST", f"{PREFIX}/servers/{ID}/os-volume_attachments", self.attach_volume)
        add("GET", f"{PREFIX}/servers/{ID}/os-volume_attachments/(?P<volume>[^/]+)", self.show_attachment)
        add("DELETE", f"{PREFIX}/servers/{ID}/os-volume_attachments/(?P<volume>[^/]+)", self.detach_volume)
        add("GET", f"{PREFIX}/flavors", self.list_flavors)
        add("GET", f"{PREFIX}/flavors/detail", self.list_flavors)
        add("POST", f"{PREFIX}/flavors", self.create_flavor)
        add("GET", f"{PREFIX}/flavors/{ID}", self.show_flavor)
        add("DELETE", f"{PREFIX}/flavors/{ID}", self.delete_flavor)
        add("GET", f"{PREFIX}/flavors/{ID}/os-extra_specs", self.get_extra_specs)
        add("POST", f"{PREFIX}/flavors/{ID}/os-extra_specs", self.set_extra_specs)
        add("GET", f"{PREFIX}/os-keypairs", self.list_keypairs)
        add("POST", f"{PREFIX}/os-keypairs", self.create_keypair)
        add("GET", f"{PREFIX}/os-keypairs/(?P<name>[^/]+)", self.show_keypair)
        add("DELETE", f"{PREFIX}/os-keypairs/(?P<name>[^/]+)", self.delete_keypair)
        add("GET", f"{PREFIX}/os-server-groups", self.list_server_groups)
        add("POST", f"{PREFIX}/os-server-groups", self.create_server_group)
        add("GET", f"{PREFIX}/os-server-groups/{ID}", self.show_server_group)
        add("DELETE", f"{PREFIX}/os-server-groups/{ID}", self.delete_server_group)

    @staticmethod
    def _version(request: Request) -> tuple[int, int]:
        return request.microversion("compute", "2.1")

    @staticmethod
    def _headers(request: Request) -> dict[str, str]:
        major, minor = request.microversion("compute", "2.1")
        version = f"{major}.{minor}"
        return {
            "OpenStack-API-Version": f"compute {version}",
            "X-OpenStack-Nova-API-Version": version,
            "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
        }

    def _ok(self, request: Request, body: Any, status: int = 200) -> Response:
        return Response(status, body, self._headers(request))

    # -- servers -------------------------------------------------------------------------------------------

    def _server(self, server_id: str) -> dict[str, Any]:
        server = self.state.get("server", server_id)
        if server is None:
            raise nova_error(404, f"Instance {server_id} could not be found.")
        self._advance(server)
        return server

    def _advance(self, server: dict[str, Any]) -> None:
        """Move a building server on once its build time has passed (decided lazily, on every read)."""
        hidden = self.state.hidden[server["id"]]
        if server["status"] == "BUILD" and hidden["fate"] != "BUILD" and time.monotonic() >= hidden["ready_at"]:
            if hidden["fate"] == "ERROR":
                server.update(status="ERROR", fault={"code": 500, "created": now(), "message": hidden["fault"]})
                server["OS-EXT-STS:vm_state"] = "error"
                server["OS-EXT-STS:power_state"] = 0
            else:
                server["status"] = "ACTIVE"
                server["OS-EXT-STS:vm_state"] = "active"
                server["OS-EXT-STS:power_state"] = 1
            server["OS-EXT-STS:task_state"] = None
            server["progress"] = 100

    def _view(self, server: dict[str, Any], request: Request) -> dict[str, Any]:
        view = dict(server)
        flavor = server["flavor"]
        if self._version(request) >= (2, 47):
            view["flavor"] = {key: flavor[key] for key in ("vcpus", "ram", "disk", "swap")}
            view["flavor"]["ephemeral"] = flavor["OS-FLV-EXT-DATA:ephemeral"]
            view["flavor"]["original_name"] = flavor["name"]
            view["flavor"]["extra_specs"] = dict(flavor["extra_specs"])
        else:
            view["flavor"] = {"id": flavor["id"], "links": []}
        addresses: dict[str, list[dict[str, Any]]] = {}
        volumes = []
        for port in self.state.all("port"):
            if port["device_id"] != server["id"]:
                continue
            network = self.state.get("network", port["network_id"])
            entries = addresses.setdefault(network["name"] if network else port["network_id"], [])
            for ip in port["fixed_ips"]:
                entries.append(
                    {
                        "version": 4 if "." in ip["ip_address"] else 6,
                        "addr": ip["ip_address"],
                        "OS-EXT-IPS:type": "fixed",
                        "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                    }
                )
            for fip in self.state.all("floatingip"):
                if fip["port_id"] == port["id"]:
                    entries.append(
                        {
                            "version": 4,
                            "addr": fip["floating_ip_address"],
                            "OS-EXT-IPS:type": "floating",
                            "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                        }
                    )
        for volume in self.state.all("volume"):
            if any(a["server_id"] == server["id"] for a in volume["attachments"]):
                volumes.append({"id": volume["id"], "delete_on_termination": False})
        view["addresses"] = addresses
        view["os-extended-volumes:volumes_attached"] = volumes
        return view

    def list_servers(self, request: Request) -> Response:
        with self.state.lock:
            servers = [self._server(s["id"]) for s in self.state.all("server")]
            pattern = request.arg("name")
            if pattern:
                servers = [s for s in servers if re.search(pattern, s["name"])]
            servers = filter_items(servers, request, skip=frozenset({"name", "image", "flavor"}))
            if request.path.endswith("/detail"):
                body = [self._view(s, request) for s in servers]
            else:
                body = [{"id": s["id"], "name": s["name"], "links": s["links"]} for s in servers]
        return self._ok(request, {"servers": body})

    def show_server(self, request: Request) -> Response:
        with self.state.lock:
            return self._ok(request, {"server": self._view(self._server(request.params["id"]), request)})

    def update_server(self, request: Request) -> Response:
        attrs = (request.body or {}).get("server") or {}
        with self.state.lock:
            server = self._server(request.params["id"])
            for key in ("name", "description"):
                if key in attrs:
                    server[key] = attrs[key]
            return self._ok(request, {"server": self._view(server, request)})

    def _lookup_flavor(self, flavor_ref: str) -> dict[str, Any]:
        flavor = self.state.get("flavor", flavor_ref)
        if flavor is None:
            raise nova_error(400, f"Flavor {flavor_ref} could not be found.")
        return flavor

    def create_server(self, request: Request) -> Response:
        body = request.body or {}
        attrs = body.get("server")
        if not isinstance(attrs, dict) or not attrs.get("name"):
            raise nova_error(400, "Invalid input for field/attribute server. Value: missing 'name'.")
        hints = body.get("os:scheduler_hints") or body.get("OS-SCH-HNT:scheduler_hints") or {}
        with self.state.lock:
            over = self.state.over_quota("server")
            if over:
                limit, used = over
                raise nova_error(
                    403,
                    f"Quota exceeded for instances: Requested 1, but already used {used} of {limit} instances",
                )
            flavor = self._lookup_flavor(str(attrs.get("flavorRef", "")))
            image_ref = attrs.get("imageRef")
            if image_ref and self.state.get("image", image_ref) is None:
                raise nova_error(400, f"Image {image_ref} could not be found.")
            mappings = attrs.get("block_device_mapping_v2") or []
            if not image_ref and not mappings:
                raise nova_error(
                    400,
                    "Block Device Mapping is Invalid: You specified more local devices than the limit allows",
                )
            boot_volumes = self._boot_volumes(mappings)
            key_name = attrs.get("key_name")
            if key_name and self.state.get("keypair", key_name) is None:
                raise nova_error(400, "Invalid key_name provided.")
            group = None
            if hints.get("group"):
                group = self.state.get("server_group", hints["group"])
                if group is None:
                    raise nova_error(400, f"Invalid server group: {hints['group']} could not be found.")
            networks = attrs.get("networks", "auto")
            if networks is None and self._version(request) >= (2, 37):
                raise nova_error(400, "Invalid input for field/attribute networks. Value: None.")
            server_id = new_id()
            # validate every requested NIC before anything is allocated, as Nova does
            ports_to_bind: list[dict[str, Any]] = []
            networks_to_plug: list[dict[str, Any]] = []
            for nic in networks if isinstance(networks, list) else []:
                if nic.get("port"):
                    port = self.state.get("port", nic["port"])
                    if port is None:
                        raise nova_error(400, f"Port id {nic['port']} could not be found.")
                    if port["device_id"]:
                        raise nova_error(409, f"Port {port['id']} is still in use.")
                    ports_to_bind.append(port)
                else:
                    network = self.state.get("network", nic.get("uuid", ""))
                    if network is None:
                        raise nova_error(400, f"Network {nic.get('uuid')} could not be found.")
                    networks_to_plug.append({"network": network, "fixed_ip": nic.get("fixed_ip")})
            host, fault = self._place(group)
            for port in ports_to_bind:
                port.update(device_id=server_id, device_owner="compute:nova", status="ACTIVE")
            for plug in networks_to_plug:
                port = self.network.new_item()
                wanted = {
                    "network_id": plug["network"]["id"],
                    "device_id": server_id,
                    "device_owner": "compute:nova",
                }
                if plug["fixed_ip"]:
                    wanted["fixed_ips"] = [{"ip_address": plug["fixed_ip"]}]
                self.network._build_port(port, wanted)
                self.state.add("port", port, count=False)
                self.state.hidden[port["id"]] = {"nova_owned": True}
            faults = self.state.faults
            fate = "ACTIVE"
            if faults.servers_stay_building:
                fate = "BUILD"
            elif faults.servers_to_error > 0:
                faults.servers_to_error -= 1
                fate = "ERROR"
                fault = fault or (
                    "Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures "
                    f"for instance {server_id}."
                )
            elif fault:
                fate = "ERROR"
            link = f"{self.base_url}{PREFIX}/servers/{server_id}"
            server = {
                "id": server_id,
                "name": attrs["name"],
                "status": "BUILD",
                "tenant_id": self.project_id,
                "user_id": self.user_id,
                "metadata": dict(attrs.get("metadata") or {}),
                "tags": list(attrs.get("tags") or []),
                "hostId": hashlib.sha224((self.project_id + (host or "")).encode()).hexdigest() if host else "",
                "image": {"id": image_ref, "links": []} if image_ref else "",
                "flavor": flavor,
                "created": now(),
                "updated": now(),
                "addresses": {},
                "accessIPv4": "",
                "accessIPv6": "",
                "links": [{"rel": "self", "href": link}, {"rel": "bookmark", "href": link}],
                "OS-DCF:diskConfig": "MANUAL",
                "progress": 0,
                "OS-EXT-AZ:availability_zone": attrs.get("availability_zone") or "nova",
                "OS-EXT-SRV-ATTR:host": host,
                "OS-EXT-SRV-ATTR:hypervisor_hostname": host,
                "OS-EXT-STS:power_state": 0,
                "OS-EXT-STS:task_state": "spawning",
                "OS-EXT-STS:vm_state": "building",
                "config_drive": "True" if attrs.get("config_drive") else "",
                "key_name": key_name,
                "security_groups": [{"name": g["name"]} for g in attrs.get("security_groups") or [{"name": "default"}]],
                "locked": False,
                "description": attrs.get("description"),
                "user_data": attrs.get("user_data"),
                "server_groups": [group["id"]] if group else [],
            }
            self.state.hidden[server_id] = {
                "ready_at": time.monotonic() + faults.server_build_seconds,
                "fate": fate,
                "fault": fault or "",
                "scheduler_hints": dict(hints),
            }
            self.state.add("server", server)
            for index, (volume, delete_on_termination) in enumerate(boot_volumes):
                volume["status"] = "in-use"
                volume["attachments"].append(
                    {
                        "server_id": server_id,
                        "attachment_id": new_id(),
                        "id": volume["id"],
                        "volume_id": volume["id"],
                        "device": f"/dev/vd{chr(ord('a') + index)}",
                        "host_name": host,
                        "attached_at": now(),
                    }
                )
                self.state.hidden[server_id].setdefault("delete_on_termination", [])
                if delete_on_termination:
                    self.state.hidden[server_id]["delete_on_termination"].append(volume["id"])
            if group is not None:
                group["members"].append(server_id)
        created = {
            "id": server_id,
            "links": server["links"],
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": server["security_groups"],
            "adminPass": "emulated",
        }
        return self._ok(request, {"server": created}, 202)

    def _boot_volumes(self, mappings: Any) -> list[tuple[dict[str, Any], bool]]:
        """The existing volumes a block device mapping attaches at boot (validated as Nova does)."""
        found: list[tuple[dict[str, Any], bool]] = []
        for mapping in mappings if isinstance(mappings, list) else []:
            if not isinstance(mapping, dict):
                raise nova_error(400, "Invalid input for field/attribute block_device_mapping_v2.")
            if mapping.get("source_type") != "volume" or mapping.get("destination_type", "volume") != "volume":
                # images and blanks copied into new volumes at boot are not emulated
                raise nova_error(
                    400,
                    f"Block Device Mapping is Invalid: source_type {mapping.get('source_type')!r} is not emulated "
                    "(only existing volumes)",
                )
            volume = self.state.get("volume", str(mapping.get("uuid", "")))
            if volume is None:
                raise nova_error(400, f"Block Device Mapping is Invalid: failed to get volume {mapping.get('uuid')}.")
            ready_at = self.state.hidden.get(volume["id"], {}).get("ready_at", 0.0)
            if volume["status"] == "creating" and time.monotonic() >= ready_at:
                volume["status"] = "available"
            if volume["status"] != "available":
                raise nova_error(
                    400,
                    f"Invalid volume: volume {volume['id']} status must be 'available'. Currently in "
                    f"'{volume['status']}'",
                )
            if mapping.get("boot_index") in (0, "0") and volume["bootable"] != "true":
                raise nova_error(400, f"Block Device Mapping is Invalid: Volume {volume['id']} is not bootable.")
            found.append((volume, bool(mapping.get("delete_on_termination", False))))
        return found

    def _place(self, group: dict[str, Any] | None) -> tuple[str | None, str | None]:
        """A host for a new server honouring its group's policy, or a 'no valid host' fault."""
        if group is None:
            return HOSTS[len(self.state.all("server")) % len(HOSTS)], None
        used = [
            self.state.get("server", member)["OS-EXT-SRV-ATTR:host"]  # type: ignore[index]
            for member in group["members"]
            if self.state.get("server", member) is not None
        ]
        if group["policy"] in ("anti-affinity", "soft-anti-affinity"):
            free = [h for h in HOSTS if h not in used]
            if free:
                return free[0], None
            return (None, NO_VALID_HOST) if group["policy"] == "anti-affinity" else (HOSTS[0], None)
        return (used[0] if used else HOSTS[0]), None

    def delete_server(self, request: Request) -> Response:
        with self.state.lock:
            server = self._server(request.params["id"])
            for port in self.state.all("port"):
                if port["device_id"] != server["id"]:
                    continue
                if self.state.hidden.get(port["id"], {}).get("nova_owned"):
                    self.network._release_port(port)
                    self.state.remove("port", port["id"])
                else:
                    port.update(device_id="", device_owner="", status="DOWN")
            doomed = self.state.hidden[server["id"]].get("delete_on_termination", [])
            for volume in self.state.all("volume"):
                if any(a["server_id"] == server["id"] for a in volume["attachments"]):
                    volume.update(attachments=[], status="available")
                    if volume["id"] in doomed:
                        self.state.remove("volume", volume["id"])
            for group in self.state.all("server_group"):
                if server["id"] in group["members"]:
                    group["members"].remove(server["id"])
            self.state.remove("server", server["id"])
        return Response(204, None, self._headers(request))

    def server_action(self, request: Request) -> Response:
        body = request.body or {}
        with self.state.lock:
            server = self._server(request.params["id"])
            if "os-start" in body:
                if server["status"] != "SHUTOFF":
                    raise nova_error(
                        409,
                        f"Cannot 'start' instance {server['id']} while it is in vm_state "
                        f"{server['OS-EXT-STS:vm_state']}",
                    )
                server.update({"status": "ACTIVE", "OS-EXT-STS:vm_state": "active", "OS-EXT-STS:power_state": 1})
            elif "os-stop" in body:
                if server["status"] not in ("ACTIVE", "ERROR"):
                    raise nova_error(
                        409,
                        f"Cannot 'stop' instance {server['id']} while it is in vm_state "
                        f"{server['OS-EXT-STS:vm_state']}",
                    )
                server.update({"status": "SHUTOFF", "OS-EXT-STS:vm_state": "stopped", "OS-EXT-STS:power_state": 4})
            elif "reboot" in body:
                if server["status"] not in ("ACTIVE", "SHUTOFF"):
                    raise nova_error(
                        409,
                        f"Cannot 'reboot' instance {server['id']} while it is in vm_state "
                        f"{server['OS-EXT-STS:vm_state']}",
                    )
                server.update({"status": "ACTIVE", "OS-EXT-STS:vm_state": "active", "OS-EXT-STS:power_state": 1})
            else:
                raise nova_error(400, f"Unsupported server action: {', '.join(body) or 'none'}")
        return Response(202, None, self._headers(request))

    def get_metadata(self, request: Request) -> Response:
        with self.state.lock:
            return self._ok(request, {"metadata": self._server(request.params["id"])["metadata"]})

    def merge_metadata(self, request: Request) -> Response:
        with self.state.lock:
            server = self._server(request.params["id"])
            server["metadata"].update((request.body or {}).get("metadata") or {})
            return self._ok(request, {"metadata": server["metadata"]})

    def replace_metadata(self, request: Request) -> Response:
        with self.state.lock:
            server = self._server(request.params["id"])
            server["metadata"] = dict((request.body or {}).get("metadata") or {})
            return self._ok(request, {"metadata": server["metadata"]})

    def delete_metadata_item(self, request: Request) -> Response:
        with self.state.lock:
            server = self._server(request.params["id"])
            if request.params["key"] not in server["metadata"]:
                raise nova_error(404, "Metadata item was not found")
            del server["metadata"][request.params["key"]]
        return Response(204, None, self._headers(request))

    def get_tags(self, request: Request) -> Response:
        with self.state.lock:
            return self._ok(request, {"tags": self._server(request.params["id"])["tags"]})

    def replace_tags(self, request: Request) -> Response:
        with self.state.lock:
            server = self._server(request.params["id"])
            server["tags"] = list((request.body or {}).get("tags") or [])
            return self._ok(request, {"tags": server["tags"]})

    def add_tag(self, request: Request) -> Response:
        with self.state.lock:
            server = self._server(request.params["id"])
            if request.params["tag"] not in server["tags"]:
                server["tags"].append(request.params["tag"])
        return Response(201, None, self._headers(request))

    # -- volume attachments --------------------------------------------------------------------------------

    def _attachment(self, server_id: str, volume: dict[str, Any]) -> dict[str, Any] | None:
        for attachment in volume["attachments"]:
            if attachment["server_id"] == server_id:
                return {
                    "id": volume["id"],
                    "volumeId": volume["id"],
                    "serverId": server_id,
                    "device": attachment["device"],
                    "tag": None,
                    "delete_on_termination": False,
                    "attachment_id": attachment["attachment_id"],
                }
        return None

    def list_attachments(self, request: Request) -> Response:
        with self.state.lock:
            server = self._server(request.params["id"])
            found = [self._attachment(server["id"], v) for v in self.state.all("volume")]
            return self._ok(request, {"volumeAttachments": [a for a in found if a]})

    def show_attachment(self, request: Request) -> Response:
        with self.state.lock:
            server = self._server(request.params["id"])
            volume = self.state.get("volume", request.params["volume"])
            attachment = self._attachment(server["id"], volume) if volume else None
            if attachment is None:
                raise nova_error(404, f"Volume {request.params['volume']} is not attached to {server['id']}")
            return self._ok(request, {"volumeAttachment": attachment})

    def attach_volume(self, request: Request) -> Response:
        attrs = (request.body or {}).get("volumeAttachment") or {}
        with self.state.lock:
            server = self._server(request.params["id"])
            volume = self.state.get("volume", attrs.get("volumeId", ""))
            if volume is None:
                raise nova_error(404, f"Volume {attrs.get('volumeId')} could not be found.")
            if volume["status"] != "available":
                raise nova_error(
                    400,
                    f"Invalid volume: volume {volume['id']} status must be 'available'. "
                    f"Currently in '{volume['status']}'",
                )
            if server["status"] not in ("ACTIVE", "SHUTOFF"):
                raise nova_error(
                    409,
                    f"Cannot 'attach_volume' instance {server['id']} while it is in vm_state "
                    f"{server['OS-EXT-STS:vm_state']}",
                )
            taken = sum(1 for v in self.state.all("volume") for a in v["attachments"] if a["server_id"] == server["id"])
            device = attrs.get("device") or f"/dev/vd{chr(ord('b') + taken)}"
            volume["attachments"].append(
                {
                    "server_id": server["id"],
                    "attachment_id": new_id(),
                    "id": volume["id"],
                    "volume_id": volume["id"],
                    "device": device,
                    "host_name": None,
                    "attached_at": now(),
                }
            )
            volume["status"] = "in-use"
            answer = self._attachment(server["id"], volume)
            # Nova answers the attach and Cinder fails it later: the caller only sees it by polling the volume
            faults = self.state.faults
            if faults.volumes_to_error_on_attach > 0:
                faults.volumes_to_error_on_attach -= 1
                volume["status"] = "error"
                if faults.attach_errors_roll_back:
                    volume["attachments"].pop()
            return self._ok(request, {"volumeAttachment": answer})

    def detach_volume(self, request: Request) -> Response:
        with self.state.lock:
            server = self._server(request.params["id"])
            volume = self.state.get("volume", request.params["volume"])
            if volume is None or self._attachment(server["id"], volume) is None:
                raise nova_error(404, f"Volume {request.params['volume']} is not attached to {server['id']}")
            # Nova accepts the detach (202) and Cinder fails it later: the volume keeps its attachment
            faults = self.state.faults
            if faults.volumes_to_error_on_detach > 0:
                faults.volumes_to_error_on_detach -= 1
                volume["status"] = "error"
            elif faults.volumes_stay_detaching:
                volume["status"] = "detaching"
            else:
                volume["attachments"] = [a for a in volume["attachments"] if a["server_id"] != server["id"]]
                volume["status"] = "available" if not volume["attachments"] else "in-use"
        return Response(202, None, self._headers(request))

    # -- flavors ---------------------------------------------------------------------------------------------

    def _flavor(self, flavor_id: str) -> dict[str, Any]:
        flavor = self.state.get("flavor", flavor_id)
        if flavor is None:
            raise nova_error(404, f"Flavor {flavor_id} could not be found.")
        return flavor

    def list_flavors(self, request: Request) -> Response:
        flavors = filter_items(self.state.all("flavor"), request, skip=frozenset({"is_public", "minDisk", "minRam"}))
        if not request.path.endswith("/detail"):
            flavors = [{"id": f["id"], "name": f["name"], "links": f["links"]} for f in flavors]
        return self._ok(request, {"flavors": flavors})

    def show_flavor(self, request: Request) -> Response:
        return self._ok(request, {"flavor": self._flavor(request.params["id"])})

    def create_flavor(self, request: Request) -> Response:
        attrs = (request.body or {}).get("flavor") or {}
        return self._ok(request, {"flavor": self.add_flavor(attrs)})

    def add_flavor(self, attrs: dict[str, Any], *, seed: bool = False) -> dict[str, Any]:
        """Create a flavor (API or seeding)."""
        with self.state.lock:
            name = attrs.get("name")
            if not name:
                raise nova_error(400, "Invalid input for field/attribute flavor. Value: missing 'name'.")
            if any(f["name"] == name for f in self.state.all("flavor")):
                raise nova_error(409, f"Flavor with name {name} already exists.")
            flavor_id = str(attrs.get("id") or new_id())
            flavor = {
                "id": flavor_id,
                "name": name,
                "ram": int(attrs.get("ram", 512)),
                "vcpus": int(attrs.get("vcpus", 1)),
                "disk": int(attrs.get("disk", 1)),
                "swap": int(attrs.get("swap") or 0),
                "OS-FLV-EXT-DATA:ephemeral": int(attrs.get("OS-FLV-EXT-DATA:ephemeral", 0)),
                "OS-FLV-DISABLED:disabled": False,
                "os-flavor-access:is_public": attrs.get("os-flavor-access:is_public", True),
                "rxtx_factor": 1.0,
                "description": attrs.get("description"),
                "extra_specs": {},
                "links": [{"rel": "self", "href": f"{self.base_url}{PREFIX}/flavors/{flavor_id}"}],
            }
            return self.state.add("flavor", flavor, seed=seed)

    def delete_flavor(self, request: Request) -> Response:
        with self.state.lock:
            self.state.remove("flavor", self._flavor(request.params["id"])["id"])
        return Response(202, None, self._headers(request))

    def get_extra_specs(self, request: Request) -> Response:
        return self._ok(request, {"extra_specs": self._flavor(request.params["id"])["extra_specs"]})

    def set_extra_specs(self, request: Request) -> Response:
        with self.state.lock:
            flavor = self._flavor(request.params["id"])
            specs = (request.body or {}).get("extra_specs") or {}
            flavor["extra_specs"].update({str(k): str(v) for k, v in specs.items()})
            return self._ok(request, {"extra_specs": flavor["extra_specs"]})

    # -- keypairs
    # ----------------------------------------------------------------------------------------------

    def list_keypairs(self, request: Request) -> Response:
        return self._ok(
            request, {"keypairs": [{"keypair": k} for k in filter_items(self.state.all("keypair"), request)]}
        )

    def show_keypair(self, request: Request) -> Response:
        keypair = self.state.get("keypair", request.params["name"])
        if keypair is None:
            raise nova_error(404, f"Keypair {request.params['name']} not found for user {self.user_id}")
        return self._ok(request, {"keypair": keypair})

    def create_keypair(self, request: Request) -> Response:
        attrs = (request.body or {}).get("keypair") or {}
        name = attrs.get("name", "")
        with self.state.lock:
            if not re.fullmatch(r"[A-Za-z0-9_ .@-]{1,255}", name):
                raise nova_error(400, "Keypair data is invalid: Keypair name contains unsafe characters")
            if self.state.get("keypair", name) is not None:
                raise nova_error(409, f"Key pair '{name}' already exists.")
            over = self.state.over_quota("keypair")
            if over:
                raise nova_error(403, "Quota exceeded, too many key pairs.")
            public_key = attrs.get("public_key")
            private_key = None
            if not public_key:
                private_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nemulated\n-----END OPENSSH PRIVATE KEY-----\n"
                public_key = f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{new_id().replace('-', '')} Generated-by-Nova"
            digest = hashlib.md5(public_key.encode(), usedforsecurity=False).hexdigest()
            keypair = {
                "id": name,
                "name": name,
                "public_key": public_key,
                "type": attrs.get("type", "ssh"),
                "fingerprint": ":".join(digest[i : i + 2] for i in range(0, 32, 2)),
                "user_id": self.user_id,
                "created_at": now(),
                "deleted": False,
            }
            self.state.add("keypair", keypair)
        answer = dict(keypair)
        if private_key:
            answer["private_key"] = private_key
        return self._ok(request, {"keypair": answer}, 201 if self._version(request) >= (2, 2) else 200)

    def delete_keypair(self, request: Request) -> Response:
        with self.state.lock:
            if self.state.get("keypair", request.params["name"]) is None:
                raise nova_error(404, f"Keypair {request.params['name']} not found for user {self.user_id}")
            self.state.remove("keypair", request.params["name"])
        return Response(204 if self._version(request) >= (2, 2) else 202, None, self._headers(request))

    # -- server groups
    # ----------------------------------------------------------------------------------------

    def _group_view(self, group: dict[str, Any], request: Request) -> dict[str, Any]:
        view = {key: group[key] for key in ("id", "name", "members", "project_id", "user_id")}
        if self._version(request) >= (2, 64):
            view.update(policy=group["policy"], rules=group["rules"])
        else:
            view.update(policies=[group["policy"]], metadata={})
        return view

    def list_server_groups(self, request: Request) -> Response:
        groups = filter_items(self.state.all("server_group"), request)
        return self._ok(request, {"server_groups": [self._group_view(g, request) for g in groups]})

    def show_server_group(self, request: Request) -> Response:
        group = self.state.get("server_group", request.params["id"])
        if group is None:
            raise nova_error(404, f"Server group {request.params['id']} could not be found.")
        return self._ok(request, {"server_group": self._group_view(group, request)})

    def create_server_group(self, request: Request) -> Response:
        attrs = (request.body or {}).get("server_group") or {}
        policy = attrs.get("policy") or (attrs.get("policies") or [None])[0]
        if policy not in ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"):
            raise nova_error(400, f"Invalid input for field/attribute policy. Value: {policy}.")
        with self.state.lock:
            if self.state.over_quota("server_group"):
                raise nova_error(403, "Quota exceeded, too many server groups.")
            group = {
                "id": new_id(),
                "name": attrs.get("name", ""),
                "policy": policy,
                "rules": attrs.get("rules", {}),
                "members": [],
                "project_id": self.project_id,
                "user_id": self.user_id,
            }
            self.state.add("server_group", group)
        return self._ok(request, {"server_group": self._group_view(group, request)})

    def delete_server_group(self, request: Request) -> Response:
        with self.state.lock:
            if self.state.get("server_group", request.params["id"]) is None:
                raise nova_error(404, f"Server group {request.params['id']} could not be found.")
            self.state.remove("server_group", request.params["id"])
        return Response(204, None, self._headers(request))


__all__ = ["COMPUTE_MAX_MICROVERSION", "Compute"]
