"""The activity layer's operation context: relationships given as a function are built once, on first use."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from tempano.activities.context import ActivityContext
from tempano.plugins.contract import InstanceView, Relationship
from tempano.store import Store


def view(instance_id: str, node_type: str) -> InstanceView:
    return InstanceView(instance_id, instance_id.rsplit("_", 1)[0], node_type, (node_type,), {}, {})


def context(tmp_path: Path, relationships: object) -> ActivityContext:
    return ActivityContext(
        store=Store(f"sqlite:///{tmp_path}/store.db"),
        plugin="builtin",
        deployment_id="d",
        execution_id="d:1",
        operation="create",
        inputs={},
        idempotency_key="d.vm_1.Standard.create",
        attempt=1,
        instance=view("vm_1", "tosca.nodes.Compute"),
        host=None,
        relationships=relationships,  # type: ignore[arg-type]
        source=None,
        target=None,
        blueprint_dir=None,
        heartbeat_details={},
        logger=logging.getLogger("test"),
    )


def test_relationships_are_built_on_first_use_and_once(tmp_path: Path) -> None:
    calls: list[int] = []
    net = view("net_1", "tosca.nodes.network.Network")

    def build() -> tuple[Relationship, ...]:
        calls.append(1)
        time.sleep(0.05)  # long enough for concurrent readers to overlap
        return (Relationship("link", "tosca.relationships.network.LinksTo", ("tosca.relationships.Root",), net),)

    ctx = context(tmp_path, build)
    assert calls == []  # an operation that never looks at them costs nothing
    seen: list[tuple[Relationship, ...]] = []
    readers = [threading.Thread(target=lambda: seen.append(ctx.relationships)) for _ in range(8)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert len(calls) == 1
    assert len(seen) == 8 and all(r is seen[0] for r in seen)
    assert ctx.targets(node_type="tosca.nodes.network.Network") == [net]
    assert ctx.targets("tosca.relationships.network.BindsTo") == []
    assert len(calls) == 1


def test_relationships_given_as_a_tuple_are_kept(tmp_path: Path) -> None:
    rel = Relationship("host", "tosca.relationships.HostedOn", (), view("host_1", "tosca.nodes.Compute"))
    ctx = context(tmp_path, (rel,))
    assert ctx.relationships == (rel,)
    ctx.relationships = ()
    assert ctx.relationships == ()
