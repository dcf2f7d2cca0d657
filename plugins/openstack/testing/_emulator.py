"""The emulator: one emulated cloud (one project) on one local HTTP port."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from tempano.plugins.openstack.testing._compute import Compute
from tempano.plugins.openstack.testing._http import ApiError, HttpServer, Request, Response, Router
from tempano.plugins.openstack.testing._identity import Identity
from tempano.plugins.openstack.testing._network import Network
from tempano.plugins.openstack.testing._state import Faults, State, now
from tempano.plugins.openstack.testing._storage import Storage


class OpenStackEmulator:
    """Keystone v3, Nova, Neutron, Glance and Cinder for the real openstacksdk, in one local HTTP server.

    Seeded with flavors ``m1.tiny``/``m1.small``, an image ``cirros``, an external network ``public`` (with a
    subnet) and the project's ``default`` security group; :meth:`leftovers` shows everything else.

    ::

        with OpenStackEmulator(name="site-a") as cloud:
            clouds_yaml = write_clouds_yaml(tmp_path / "clouds.yaml", [cloud])
            cloud.faults.error_rate = 0.1
    """

    def __init__(
        self,
        name: str = "emulated",
        *,
        username: str = "admin",
        password: str = "secret",
        project: str = "demo",
        region: str = "RegionOne",
        faults: Faults | None = None,
    ) -> None:
        self.name = name
        self.faults = faults or Faults()
        self.state = State(self.faults)
        self._router = Router()
        self._http = HttpServer(self._dispatch)
        base = self._http.url
        self.identity = Identity(base, username=username, password=password, project=project, region=region)
        self.network = Network(self.state, self.identity.project_id)
        self.compute = Compute(self.state, self.network, base, self.identity.project_id, self.identity.user_id)
        self.storage = Storage(self.state, self.identity.project_id, self.identity.user_id)
        for service in (self.identity, self.network, self.compute, self.storage):
            service.register(self._router)
        self._seed()

    # -- lifecycle
    # ---------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._http.url

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v3"

    def start(self) -> OpenStackEmulator:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> OpenStackEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def cloud_config(self) -> dict[str, Any]:
        """This cloud's entry for clouds.yaml."""
        return {
            "auth": {
                "auth_url": self.auth_url,
                "username": self.identity.username,
                "password": self.identity.password,
                "project_name": self.identity.project,
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
            "region_name": self.identity.region,
            "identity_api_version": 3,
            "interface": "public",
        }

    # -- test-facing state
    # -------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """A deep copy of every resource, by kind (see ``KINDS``)."""
        return self.state.snapshot()

    def leftovers(self) -> dict[str, list[dict[str, Any]]]:
        """The resources that were not seeded (what a test created and did not remove), kinds with some
        only."""
        found: dict[str, list[dict[str, Any]]] = {}
        for kind, items in self.snapshot().items():
            mine = [item for item in items if item["id"] not in self.state.seeded]
            if mine:
                found[kind] = mine
        return found

    def count(self, kind: str) -> int:
        """How many objects of ``kind`` exist now (seeded included)."""
        return len(self.state.all(kind))

    @property
    def created(self) -> Counter[str]:
        """How many objects of each kind the APIs created since start."""
        return Counter(self.state.created)

    @property
    def injected_errors(self) -> int:
        return self.state.injected_errors

    def find(self, kind: str, **attrs: Any) -> list[dict[str, Any]]:
        """Resources of ``kind`` whose attributes equal ``attrs``."""
        return [item for item in self.snapshot()[kind] if all(item.get(k) == v for k, v in attrs.items())]

    def fail_server(self, server_id: str, message: str = "Emulated failure of the server's host") -> None:
        """Put an existing server in ERROR with ``message`` as its fault, as Nova does when its host dies."""
        with self.state.lock:
            server = self.state.get("server", server_id)
            if server is None:
                raise KeyError(f"no server {server_id} on emulated cloud {self.name!r}")
            server.update(status="ERROR", fault={"code": 500, "created": now(), "message": message})
            server.update({"OS-EXT-STS:vm_state": "error", "OS-EXT-STS:power_state": 0, "OS-EXT-STS:task_state": None})

    def seed_image(self, name: str, **attrs: Any) -> dict[str, Any]:
        return self.storage.add_image(name, **attrs)

    def seed_flavor(self, name: str, *, vcpus: int = 1, ram: int = 512, disk: int = 1) -> dict[str, Any]:
        return self.compute.add_flavor({"name": name, "vcpus": vcpus, "ram": ram, "disk": disk}, seed=True)

    def _seed(self) -> None:
        self.seed_flavor("m1.tiny", vcpus=1, ram=512, disk=1)
        self.seed_flavor("m1.small", vcpus=1, ram=2048, disk=20)
        self.seed_image("cirros")
        public = self.network.new_item(name="public")
        self.network._build_network(public, {"router:external": True, "shared": True})
        self.state.add("network", public, seed=True)
        subnet = self.network.new_item(name="public-subnet")
        self.network._build_subnet(subnet, {"network_id": public["id"], "cidr": "203.0.113.0/24"})
        self.state.add("subnet", subnet, seed=True)
        group = self.network.new_item(name="default", description="Default security group")
        self.network._build_security_group(group, {})
        self.state.add("security_group", group, seed=True)
        for rule in group["security_group_rules"]:
            self.state.seeded.add(rule["id"])

    # -- request dispatch
    # --------------------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Response:
        try:
            found = self._router.match(request.method, request.path)
            if found is None:
                raise ApiError(404, {"itemNotFound": {"code": 404, "message": f"No route for {request.path}"}})
            handler, params, api = found
            request.params = params
            if not api:
                return handler(request)
            self.identity.check_token(request)
            faults = self.faults
            if faults.latency:
                time.sleep(faults.latency)
            with self.state.lock:
                self.state.calls[f"{request.method} {request.path}"] += 1
                fail = self.state.random.random() < faults.error_rate
                after = fail and self.state.random.random() < faults.error_after_share
                if fail:
                    self.state.injected_errors += 1
            if fail and not after:
                return _server_error(500)
            response = handler(request)
            # the call took effect but its answer is "lost": the client must cope with a resource it never saw
            return _server_error(503) if after else response
        except ApiError as error:
            return Response(error.status, error.body)


def _server_error(status: int) -> Response:
    return Response(
        status,
        {"computeFault": {"code": status, "message": "Injected fault: the service is unavailable, retry."}},
    )


def write_clouds_yaml(path: Path, clouds: list[OpenStackEmulator]) -> Path:
    """Write a clouds.yaml naming each emulator by its ``name``; point OS_CLIENT_CONFIG_FILE at it."""
    path.write_text(yaml.safe_dump({"clouds": {cloud.name: cloud.cloud_config() for cloud in clouds}}))
    return path
