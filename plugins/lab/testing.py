"""Drive lab operations the way the engine does, through :class:`LocalContext` with one shared ledger.

For tests and the REPL::

    lab = LabDeployment("demo")
    net = lab.network("net", cidr="10.9.0.0/24")
    a = lab.server("a"); lab.port("a_port", a, net)
    ...
    lab.uninstall()      # deletes in reverse order using the ledger
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tempano.plugins.contract import InstanceView, OperationFn, Relationship, Resource
from tempano.plugins.lab._plugin import plugin
from tempano.plugins.lab.cleanup import cleanup, leftovers
from tempano.plugins.lab.port import BINDS_TO, LINKS_TO
from tempano.plugins.testing import LocalContext, instance

SERVER = "tempano.nodes.lab.Server"
NETWORK = "tempano.nodes.lab.Network"
PORT = "tempano.nodes.lab.Port"
ROUTER = "tempano.nodes.lab.Router"
HIERARCHY = {
    SERVER: (SERVER, "tosca.nodes.Compute", "tosca.nodes.Root"),
    NETWORK: (NETWORK, "tosca.nodes.network.Network", "tosca.nodes.Root"),
    PORT: (PORT, "tosca.nodes.network.Port", "tosca.nodes.Root"),
    ROUTER: (ROUTER, SERVER, "tosca.nodes.Compute", "tosca.nodes.Root"),
}


def relationship(name: str, type_name: str, target: InstanceView) -> Relationship:
    return Relationship(
        name, type_name, (type_name, "tosca.relationships.DependsOn", "tosca.relationships.Root"), target
    )


class LabDeployment:
    """One deployment's node instances, ledger and lifecycle calls, in creation order."""

    def __init__(self, deployment_id: str) -> None:
        self.deployment_id = deployment_id
        self.ledger: list[Resource] = []
        self.created: list[tuple[str, InstanceView, tuple[Relationship, ...]]] = []
        self.last_context: LocalContext | None = None

    def call(
        self,
        reference: str | OperationFn,
        inst: InstanceView,
        operation: str,
        *,
        relationships: tuple[Relationship, ...] = (),
        inputs: Mapping[str, Any] | None = None,
        host: InstanceView | None = None,
        blueprint_dir: Path | None = None,
    ) -> Mapping[str, Any] | None:
        """Run ``lab.<reference>`` (``server.create``) as lifecycle ``operation`` (``create``) of ``inst``."""
        ctx = LocalContext(
            inst,
            operation=operation,
            inputs=inputs,
            deployment_id=self.deployment_id,
            plugin="lab",
            ledger=self.ledger,
            relationships=relationships,
            host=host,
            blueprint_dir=blueprint_dir,
        )
        self.last_context = ctx
        fn = plugin.operations[reference] if isinstance(reference, str) else reference
        return fn(ctx)

    def server(self, name: str, **properties: Any) -> InstanceView:
        """create + start a server."""
        inst = instance(name, type=SERVER, type_hierarchy=HIERARCHY[SERVER], properties=properties)
        self.created.append(("server", inst, ()))
        self.call("server.create", inst, "create")
        self.call("server.start", inst, "start")
        return inst

    def router(self, name: str, **properties: Any) -> InstanceView:
        """create + start a router (NAT to the outside unless ``nat=False``)."""
        inst = instance(name, type=ROUTER, type_hierarchy=HIERARCHY[ROUTER], properties=properties)
        self.created.append(("router", inst, ()))
        self.call("router.create", inst, "create")
        self.call("router.start", inst, "start")
        return inst

    def network(self, name: str, cidr: str, **properties: Any) -> InstanceView:
        inst = instance(name, type=NETWORK, type_hierarchy=HIERARCHY[NETWORK], properties={"cidr": cidr, **properties})
        self.created.append(("network", inst, ()))
        self.call("network.create", inst, "create")
        return inst

    def port(self, name: str, server: InstanceView, network: InstanceView, **properties: Any) -> InstanceView:
        inst = instance(name, type=PORT, type_hierarchy=HIERARCHY[PORT], properties=properties)
        rels = (relationship("binding", BINDS_TO, server), relationship("link", LINKS_TO, network))
        self.created.append(("port", inst, rels))
        self.call("port.create", inst, "create", relationships=rels)
        return inst

    def uninstall(self) -> None:
        """stop + delete every instance, newest first, from the ledger."""
        for kind, inst, rels in reversed(self.created):
            if kind in ("server", "router"):
                self.call(f"{kind}.stop", inst, "stop")
            self.call(f"{kind}.delete", inst, "delete", relationships=rels)
        self.created.clear()


@contextlib.contextmanager
def lab_deployment(prefix: str = "labtest") -> Iterator[LabDeployment]:
    """A deployment with a unique id; everything of it is removed afterwards, even when the body fails.

    Raises AssertionError after the cleanup if something survived (a bug in the delete operations).
    """
    deployment = LabDeployment(f"{prefix}-{uuid.uuid4().hex[:8]}")
    try:
        yield deployment
    finally:
        cleanup(deployment.deployment_id)
    left = leftovers(deployment.deployment_id)
    assert left == [], f"cleanup left {left}"


PROBE = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as conn:
        conn.settimeout(float(sys.argv[3]))
        print(conn.recv(200).decode(errors="replace").strip() or "connected")
except OSError as exc:
    print(f"error: {exc}")
"""


def tcp_probe(namespace: str, address: str, port: int, timeout: float = 1.5) -> str:
    """Connect from inside ``namespace``; the peer's greeting (or ``connected``), else ``error: ...``."""
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", PROBE, address, str(port), str(timeout)],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
        check=False,
    )
    return done.stdout.strip() or f"error: {done.stderr.strip()}"
