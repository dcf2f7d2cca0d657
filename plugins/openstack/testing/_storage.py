"""Glance v2 images (read, delete, seeded by tests) and Cinder v3 volumes (creating -> available; from an image:
bootable)."""

from __future__ import annotations

import time
from typing import Any

from tempano.plugins.openstack.testing._common import filter_items
from tempano.plugins.openstack.testing._http import ApiError, Request, Response, Router
from tempano.plugins.openstack.testing._state import State, new_id, now

IMAGES = "/image/v2/images"
VOLUMES = r"/volume/v3/(?P<project>[^/]+)/volumes"
ID = r"(?P<id>[^/]+)"


def cinder_error(status: int, message: str) -> ApiError:
    """An error in Cinder's body format."""
    key = {400: "badRequest", 404: "itemNotFound", 413: "overLimit"}.get(status, "computeFault")
    return ApiError(status, {key: {"code": status, "message": message}})


class Storage:
    """Images and volumes over the shared state."""

    def __init__(self, state: State, project_id: str, user_id: str) -> None:
        self.state = state
        self.project_id = project_id
        self.user_id = user_id

    def register(self, router: Router) -> None:
        router.add("GET", IMAGES, self.list_images)
        router.add("GET", f"{IMAGES}/{ID}", self.show_image)
        router.add("DELETE", f"{IMAGES}/{ID}", self.delete_image)
        router.add("GET", VOLUMES, self.list_volumes)
        router.add("GET", f"{VOLUMES}/detail", self.list_volumes)
        router.add("POST", VOLUMES, self.create_volume)
        router.add("GET", f"{VOLUMES}/{ID}", self.show_volume)
        router.add("PUT", f"{VOLUMES}/{ID}", self.update_volume)
        router.add("DELETE", f"{VOLUMES}/{ID}", self.delete_volume)
        router.add("GET", f"{VOLUMES}/{ID}/metadata", self.get_volume_metadata)
        router.add("POST", f"{VOLUMES}/{ID}/metadata", self.merge_volume_metadata)

    # -- glance ----------------------------------------------------------------------------------------------

    def add_image(self, name: str, *, min_disk: int = 0, min_ram: int = 0) -> dict[str, Any]:
        """Seed an active public image."""
        image_id = new_id()
        image = {
            "id": image_id,
            "name": name,
            "status": "active",
            "visibility": "public",
            "protected": False,
            "os_hidden": False,
            "disk_format": "qcow2",
            "container_format": "bare",
            "min_disk": min_disk,
            "min_ram": min_ram,
            "size": 21430272,
            "virtual_size": 117440512,
            "checksum": None,
            "os_hash_algo": "sha512",
            "os_hash_value": None,
            "owner": self.project_id,
            "tags": [],
            "created_at": now(),
            "updated_at": now(),
            "self": f"/v2/images/{image_id}",
            "file": f"/v2/images/{image_id}/file",
            "schema": "/v2/schemas/image",
        }
        return self.state.add("image", image, seed=True)

    def list_images(self, request: Request) -> Response:
        images = filter_items(self.state.all("image"), request, skip=frozenset({"member_status", "visibility"}))
        return Response(200, {"images": images, "first": "/v2/images", "schema": "/v2/schemas/images"})

    def _image(self, image_id: str) -> dict[str, Any]:
        image = self.state.get("image", image_id)
        if image is None:
            raise ApiError(
                404,
                {
                    "message": f"No image found with ID {image_id}",
                    "code": "404 Not Found",
                    "title": "Not Found",
                },
            )
        return image

    def show_image(self, request: Request) -> Response:
        return Response(200, self._image(request.params["id"]))

    def delete_image(self, request: Request) -> Response:
        self.state.remove("image", self._image(request.params["id"])["id"])
        return Response(204)

    # -- cinder ----------------------------------------------------------------------------------------------

    def _volume(self, volume_id: str) -> dict[str, Any]:
        volume = self.state.get("volume", volume_id)
        if volume is None:
            raise cinder_error(404, f"Volume {volume_id} could not be found.")
        hidden = self.state.hidden[volume_id]
        if volume["status"] == "creating" and time.monotonic() >= hidden["ready_at"]:
            volume["status"] = "available"
        return volume

    def list_volumes(self, request: Request) -> Response:
        with self.state.lock:
            volumes = [self._volume(v["id"]) for v in self.state.all("volume")]
            volumes = filter_items(volumes, request, skip=frozenset({"metadata"}))
            if not request.path.endswith("/detail"):
                volumes = [{"id": v["id"], "name": v["name"], "links": v["links"]} for v in volumes]
        return Response(200, {"volumes": volumes})

    def show_volume(self, request: Request) -> Response:
        with self.state.lock:
            return Response(200, {"volume": self._volume(request.params["id"])})

    def create_volume(self, request: Request) -> Response:
        attrs = (request.body or {}).get("volume") or {}
        try:
            size = int(attrs["size"])
        except (KeyError, TypeError, ValueError):
            raise cinder_error(400, "Invalid input received: size must be an integer greater than 0.") from None
        image_ref = attrs.get("imageRef")
        with self.state.lock:
            image = self.state.get("image", image_ref) if image_ref else None
            if image_ref and image is None:
                raise cinder_error(400, "Invalid image identifier or unable to access requested image.")
            if image is not None and image["min_disk"] > size:
                raise cinder_error(
                    400,
                    f"Invalid input received: Image minDisk size {image['min_disk']} is larger than the volume "
                    f"size {size}.",
                )
            over = self.state.over_quota("volume")
            if over:
                raise cinder_error(
                    413,
                    f"VolumeLimitExceeded: Maximum number of volumes allowed ({over[0]}) exceeded for quota 'volumes'.",
                )
            volume_id = new_id()
            link = f"/volume/v3/{self.project_id}/volumes/{volume_id}"
            volume = {
                "id": volume_id,
                "name": attrs.get("name"),
                "description": attrs.get("description"),
                "size": size,
                "status": "creating",
                "availability_zone": attrs.get("availability_zone") or "nova",
                "attachments": [],
                "bootable": "true" if image is not None else "false",
                "encrypted": False,
                "multiattach": False,
                "metadata": dict(attrs.get("metadata") or {}),
                "volume_type": attrs.get("volume_type") or "lvmdriver-1",
                "snapshot_id": attrs.get("snapshot_id"),
                "source_volid": None,
                "user_id": self.user_id,
                "os-vol-tenant-attr:tenant_id": self.project_id,
                "created_at": now(),
                "updated_at": now(),
                "replication_status": None,
                "consistencygroup_id": None,
                "links": [{"rel": "self", "href": link}],
            }
            if image is not None:
                volume["volume_image_metadata"] = {
                    "image_id": image["id"],
                    "image_name": image["name"],
                    "disk_format": image["disk_format"],
                    "container_format": image["container_format"],
                    "min_disk": str(image["min_disk"]),
                    "min_ram": str(image["min_ram"]),
                }
            self.state.hidden[volume_id] = {"ready_at": time.monotonic() + self.state.faults.volume_build_seconds}
            self.state.add("volume", volume)
        return Response(202, {"volume": volume})

    def update_volume(self, request: Request) -> Response:
        attrs = (request.body or {}).get("volume") or {}
        with self.state.lock:
            volume = self._volume(request.params["id"])
            for key in ("name", "description", "metadata"):
                if key in attrs:
                    volume[key] = attrs[key]
            return Response(200, {"volume": volume})

    def delete_volume(self, request: Request) -> Response:
        with self.state.lock:
            volume = self._volume(request.params["id"])
            if volume["status"] not in ("available", "error", "error_restoring", "error_extending"):
                raise cinder_error(
                    400,
                    "Invalid volume: Volume status must be available or error or "
                    "error_restoring or error_extending or error_managing and must not be migrating, "
                    "attached, belong to a group, have snapshots, awaiting a transfer, or be "
                    "disassociated from snapshots after volume transfer.",
                )
            self.state.remove("volume", volume["id"])
        return Response(202)

    def get_volume_metadata(self, request: Request) -> Response:
        return Response(200, {"metadata": self._volume(request.params["id"])["metadata"]})

    def merge_volume_metadata(self, request: Request) -> Response:
        with self.state.lock:
            volume = self._volume(request.params["id"])
            volume["metadata"].update((request.body or {}).get("metadata") or {})
            return Response(200, {"metadata": volume["metadata"]})
