"""Deterministic names for what the lab VIM creates.

Linux interface names hold at most 15 characters, so they are built from short hashes:
``tl`` + 5 hex of the deployment + a one-letter kind + 6 hex of (deployment, node instance) = 14 characters.
Every object of one deployment therefore starts with :func:`deployment_tag`, which is what
:func:`tempano.plugins.lab.cleanup` looks for.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "tl"
IFNAMSIZ = 15

# One letter per kind of object, so two objects of one node instance never share a name.
BRIDGE = "b"
MGMT_VETH = "h"
PORT_VETH = "v"


def _hex(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def deployment_tag(deployment_id: str) -> str:
    """The prefix of every namespace and interface of a deployment (7 characters)."""
    return PREFIX + _hex(deployment_id, 5)


def interface_name(deployment_id: str, instance_id: str, kind: str) -> str:
    """A host interface name (14 characters) unique to (deployment, node instance, kind)."""
    name = f"{deployment_tag(deployment_id)}{kind}{_hex(deployment_id + '/' + instance_id, 6)}"
    assert len(name) <= IFNAMSIZ
    return name


def mgmt_bridge_name(deployment_id: str) -> str:
    """The deployment's management bridge on the host."""
    return f"{deployment_tag(deployment_id)}mgmt"


def namespace_name(deployment_id: str, instance_id: str) -> str:
    """A readable namespace name: the deployment tag, then the node instance id (made file-name safe)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]", "-", instance_id)[:40]
    if slug != instance_id:
        slug += "-" + _hex(instance_id, 4)
    return f"{deployment_tag(deployment_id)}-{slug}"


def safe_filename(text: str) -> str:
    """A file or directory name for an id that may hold any character."""
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:60]
    return slug if slug == text and slug not in {".", ".."} else f"{slug}-{_hex(text, 8)}"
