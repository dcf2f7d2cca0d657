"""Keystone v3 password authentication, the service catalog, and the version documents of every service."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from tempano.plugins.openstack.testing._http import ApiError, Request, Response, Router
from tempano.plugins.openstack.testing._state import new_id, now

COMPUTE_MAX_MICROVERSION = "2.96"
VOLUME_MAX_MICROVERSION = "3.70"


def _unauthorized() -> ApiError:
    """Keystone's 401, which every service answers to a missing or wrong token too."""
    message = "The request you have made requires authentication."
    return ApiError(401, {"error": {"code": 401, "title": "Unauthorized", "message": message}})


class Identity:
    """One project, one user; tokens are random strings kept in a set."""

    def __init__(self, base_url: str, *, username: str, password: str, project: str, region: str) -> None:
        self.base_url = base_url
        self.username = username
        self.password = password
        self.project = project
        self.region = region
        self.project_id = new_id().replace("-", "")
        self.user_id = new_id().replace("-", "")
        self.tokens: set[str] = set()

    def endpoints(self) -> dict[str, str]:
        """Catalog type -> public URL, all on this emulator."""
        return {
            "identity": f"{self.base_url}/identity",
            "compute": f"{self.base_url}/compute/v2.1",
            "network": f"{self.base_url}/network",
            "image": f"{self.base_url}/image",
            "volumev3": f"{self.base_url}/volume/v3/{self.project_id}",
        }

    def register(self, router: Router) -> None:
        router.add("GET", "/identity", self.identity_versions, api=False)
        router.add("GET", "/identity/v3", self.identity_version, api=False)
        router.add("POST", "/identity/v3/auth/tokens", self.issue_token, api=False)
        router.add("GET", "/compute", self.compute_versions, api=False)
        router.add("GET", "/compute/v2.1", self.compute_version, api=False)
        router.add("GET", "/network", self.network_versions, api=False)
        router.add("GET", "/network/v2.0", self.network_versions, api=False)
        router.add("GET", "/image", self.image_versions, api=False)
        router.add("GET", "/image/v2", self.image_versions, api=False)
        router.add("GET", "/volume", self.volume_versions, api=False)
        router.add("GET", "/volume/v3", self.volume_version, api=False)
        router.add("GET", r"/volume/v3/(?P<project>[^/]+)", self.volume_version, api=False)

    def check_token(self, request: Request) -> None:
        """Refuse a request without a valid token, as every OpenStack service does."""
        if request.header("X-Auth-Token") not in self.tokens:
            raise _unauthorized()

    # -- keystone ---------------------------------------------------------------------------------------

    def _v3(self) -> dict[str, Any]:
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{self.base_url}/identity/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
        }

    def identity_versions(self, request: Request) -> Response:
        return Response(300, {"versions": {"values": [self._v3()]}})

    def identity_version(self, request: Request) -> Response:
        return Response(200, {"version": self._v3()})

    def issue_token(self, request: Request) -> Response:
        auth = (request.body or {}).get("auth", {})
        identity = auth.get("identity", {})
        user = identity.get("password", {}).get("user", {})
        if (
            "password" not in identity.get("methods", [])
            or user.get("password") != self.password
            or (user.get("name") not in (self.username, None) or user.get("id") not in (self.user_id, None))
        ):
            raise _unauthorized()
        token = secrets.token_hex(16)
        self.tokens.add(token)
        domain = {"id": "default", "name": "Default"}
        catalog = [
            {
                "id": new_id(),
                "type": kind,
                "name": kind,
                "endpoints": [
                    {
                        "id": new_id(),
                        "interface": interface,
                        "region": self.region,
                        "region_id": self.region,
                        "url": url,
                    }
                    for interface in ("public", "internal")
                ],
            }
            for kind, url in self.endpoints().items()
        ]
        issued = datetime.now(UTC)
        body = {
            "token": {
                "methods": ["password"],
                "user": {
                    "id": self.user_id,
                    "name": self.username,
                    "domain": domain,
                    "password_expires_at": None,
                },
                "project": {"id": self.project_id, "name": self.project, "domain": domain},
                "roles": [{"id": new_id(), "name": "admin"}, {"id": new_id(), "name": "member"}],
                "catalog": catalog,
                "audit_ids": [secrets.token_hex(8)],
                "is_domain": False,
                "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
                "expires_at": (issued + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            }
        }
        return Response(201, body, {"X-Subject-Token": token})

    # -- discovery documents ------------------------------------------------------------------------------

    def _compute_v21(self) -> dict[str, Any]:
        return {
            "id": "v2.1",
            "status": "CURRENT",
            "version": COMPUTE_MAX_MICROVERSION,
            "min_version": "2.1",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{self.base_url}/compute/v2.1/"}],
        }

    def compute_versions(self, request: Request) -> Response:
        return Response(200, {"versions": [self._compute_v21()]})

    def compute_version(self, request: Request) -> Response:
        return Response(200, {"version": self._compute_v21()})

    def network_versions(self, request: Request) -> Response:
        link = {"rel": "self", "href": f"{self.base_url}/network/v2.0/"}
        return Response(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [link]}]})

    def image_versions(self, request: Request) -> Response:
        link = {"rel": "self", "href": f"{self.base_url}/image/v2/"}
        return Response(200, {"versions": [{"id": "v2.16", "status": "CURRENT", "links": [link]}]})

    def _volume_v3(self) -> dict[str, Any]:
        return {
            "id": "v3.0",
            "status": "CURRENT",
            "version": VOLUME_MAX_MICROVERSION,
            "min_version": "3.0",
            "updated": now(),
            "links": [{"rel": "self", "href": f"{self.base_url}/volume/v3/"}],
        }

    def volume_versions(self, request: Request) -> Response:
        return Response(200, {"versions": [self._volume_v3()]})

    def volume_version(self, request: Request) -> Response:
        return Response(200, {"version": self._volume_v3()})
