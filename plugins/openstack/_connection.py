"""openstacksdk connections: one per (clouds.yaml file, cloud name) per process, created once, thread-safe."""

from __future__ import annotations

import os
import threading
from typing import Any

import openstack

from tempano.plugins.contract import ConfigurationError, OperationContext

_lock = threading.Lock()
_connections: dict[tuple[str, str], Any] = {}

SITE_TYPE = "tempano.nodes.Site"


def cloud_name(ctx: OperationContext) -> str:
    """The clouds.yaml entry this node uses: its ``cloud`` property or input, a related Site's, or
    OS_CLOUD."""
    for source in (ctx.properties, ctx.inputs):
        if source.get("cloud"):
            return str(source["cloud"])
    for site in ctx.targets(node_type=SITE_TYPE):
        cloud = site.properties.get("cloud") or site.attributes.get("cloud")
        if cloud:
            return str(cloud)
    if os.environ.get("OS_CLOUD"):
        return os.environ["OS_CLOUD"]
    raise ConfigurationError(
        f"node instance {ctx.instance.id} does not say which OpenStack cloud to use: set its `cloud` "
        "property "
        "to the name of an entry of clouds.yaml (or relate it to a Site that has one, or set OS_CLOUD on "
        "the worker)"
    )


def connect(cloud: str) -> Any:
    """The cached ``openstack.connection.Connection`` for ``cloud`` (lazy: no request is made here)."""
    key = (os.environ.get("OS_CLIENT_CONFIG_FILE", ""), cloud)
    with _lock:
        conn = _connections.get(key)
        if conn is None:
            try:
                conn = openstack.connect(cloud=cloud)
            except openstack.exceptions.ConfigException as exc:
                where = key[0] or "the standard locations (./clouds.yaml, ~/.config/openstack/, /etc/openstack/)"
                raise ConfigurationError(
                    f"cloud {cloud!r} is not usable from clouds.yaml in {where}: {exc}; add an entry named "
                    f"{cloud!r} there (OS_CLIENT_CONFIG_FILE chooses the file) or fix the node's `cloud` "
                    "property"
                ) from exc
            _connections[key] = conn
        return conn


def forget_connections() -> None:
    """Close and drop every cached connection (tests, or after clouds.yaml changed)."""
    with _lock:
        for conn in _connections.values():
            conn.close()
        _connections.clear()
