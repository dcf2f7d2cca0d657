"""The ``lab`` plugin object; operation modules register on it (kept apart to avoid import cycles)."""

from typing import Any

from tempano.plugins.contract import Plugin

plugin = Plugin("lab", "a local VIM made of network namespaces, Linux bridges, veth pairs and sshd")


def unhealthy(reason: str) -> dict[str, Any]:
    """A health check's answer for a broken instance (an answer, not an error: heal acts on it); the engine puts
    the reason in the execution's history."""
    return {"healthy": False, "reason": reason}
