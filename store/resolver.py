"""Answers a plan's run-time functions (get_attribute, get_operation_output, get_secret) from the store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tempano.blueprints.functions import FunctionError
from tempano.blueprints.plan import HOSTED_ON, Plan
from tempano.store._store import Store
from tempano.store.records import NodeInstanceRecord
from tempano.store.topology import host_chain, relationship_targets


class StoreResolver:
    """Evaluation context of one operation (SELF, SOURCE, TARGET, HOST) or of the deployment's outputs."""

    def __init__(
        self,
        store: Store,
        plan: Plan,
        deployment_id: str,
        instances: Mapping[str, NodeInstanceRecord],
        *,
        self_id: str | None = None,
        source_id: str | None = None,
        target_id: str | None = None,
    ) -> None:
        self.store = store
        self.plan = plan
        self.deployment_id = deployment_id
        self.instances = instances
        self.self_id = self_id
        self.source_id = source_id
        self.target_id = target_id

    def instance_for(self, entity: str) -> NodeInstanceRecord:
        ids = {"SELF": self.self_id, "SOURCE": self.source_id, "TARGET": self.target_id}
        if entity in ids:
            found = ids[entity]
            if found is None:
                raise FunctionError(f"{entity} has no meaning here (no such instance in this context)")
            return self.instances[found]
        if entity == "HOST":
            me = self.instance_for("SELF")
            if me.host_id is None:
                raise FunctionError(f"HOST: node instance {me.id} is not hosted on anything")
            return self.instances[me.host_id]
        if entity not in self.plan.nodes:
            raise FunctionError(f"no node named {entity!r} in the deployment")
        return self._related(entity)

    def _related(self, node: str) -> NodeInstanceRecord:
        """The instance of ``node`` that SELF is related to, else its first live instance."""
        if self.self_id is not None:
            me = self.instances[self.self_id]
            for hop in host_chain(me, self.instances):
                if self.instances[hop].node == node:
                    return self.instances[hop]
            for rel in self.plan.nodes[me.node].relationships:
                if rel.target == node:
                    targets = relationship_targets(self.plan, me, rel, self.instances)
                    if targets:
                        return self.instances[targets[0]]
        candidates = sorted(
            (i for i in self.instances.values() if i.node == node and not i.removed), key=lambda i: i.index
        )
        if not candidates:
            raise FunctionError(f"node {node!r} has no instance")
        return candidates[0]

    def get_attribute(self, entity: str, path: Sequence[str | int]) -> Any:
        instance = self.instance_for(entity)
        name, rest = path[0], list(path[1:])
        if name in instance.attributes:
            value: Any = instance.attributes[name]
        else:
            node = self.plan.nodes[instance.node]
            value = node.attributes.get(str(name), node.properties.get(str(name)))
        for step in rest:
            try:
                value = value[step]
            except (KeyError, IndexError, TypeError):
                raise FunctionError(
                    f"get_attribute [{entity}, {', '.join(map(str, path))}]: {instance.id} has no {step!r} there"
                ) from None
        return value

    def get_operation_output(self, entity: str, interface: str, operation: str, name: str) -> Any:
        instance = self.instance_for(entity)
        outputs = instance.outputs.get(f"{interface}.{operation}")
        if outputs is None or name not in outputs:
            raise FunctionError(
                f"get_operation_output: {instance.id} {interface}.{operation} has produced no output {name!r} (yet)"
            )
        return outputs[name]

    def get_secret(self, name: str) -> str:
        return self.store.get_secret(name)


def related_nodes(plan: Plan, node: str) -> set[str]:
    """The nodes an operation on ``node`` may read: its own, its host chain's, its relationship targets' and
    those its operations' inputs name in get_attribute/get_operation_output."""
    spec = plan.nodes[node]
    nodes = {node, *(r.target for r in spec.relationships)}
    host = spec.host
    while host is not None:
        nodes.add(host)
        host = plan.nodes[host].host
    operations = [*spec.operations.values(), *(op for r in spec.relationships for op in r.operations.values())]
    for operation in operations:
        nodes.update(n for n in _named_nodes(operation.inputs) if n in plan.nodes)
    return nodes


def sibling_nodes(plan: Plan, node: str) -> set[str]:
    """The nodes an operation on an instance of ``node`` may need *every* live instance of: its relationship
    targets (but a host, found by id), and the nodes its operations' inputs name. ``node`` itself only when one
    of those names it: the instance's own siblings are not read otherwise (reading them for every operation
    would make a large install quadratic)."""
    spec = plan.nodes[node]
    nodes = {r.target for r in spec.relationships if not (r.is_a(HOSTED_ON) and r.target == spec.host)}
    operations = [*spec.operations.values(), *(op for r in spec.relationships for op in r.operations.values())]
    for operation in operations:
        nodes.update(n for n in _named_nodes(operation.inputs) if n in plan.nodes)
    return nodes


def operation_instances(
    store: Store, plan: Plan, deployment_id: str, owners: Iterable[NodeInstanceRecord]
) -> dict[str, NodeInstanceRecord]:
    """What operations on ``owners`` may read: the owners, their host chains, and every live instance of their
    :func:`sibling_nodes` (loaded once per node, not per instance)."""
    out = {o.id: o for o in owners}
    nodes: set[str] = set()
    for node in {o.node for o in out.values()}:
        nodes |= sibling_nodes(plan, node)
    for node in sorted(nodes):
        for inst in store.node_instances(deployment_id, node=node):
            out.setdefault(inst.id, inst)
    # Host chains, a level at a time (hosts of hosts are few).
    missing = {o.host_id for o in out.values() if o.host_id is not None and o.host_id not in out}
    while missing:
        found = store.node_instances(deployment_id, ids=sorted(missing))
        for inst in found:
            out[inst.id] = inst
        missing = {o.host_id for o in found if o.host_id is not None and o.host_id not in out}
    return out


def _named_nodes(value: Any) -> Iterable[str]:
    """Node template names that get_attribute/get_operation_output calls inside ``value`` refer to."""
    if isinstance(value, Mapping):
        for key, arg in value.items():
            if key in ("get_attribute", "get_operation_output") and isinstance(arg, list) and arg:
                yield str(arg[0])
            yield from _named_nodes(arg)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _named_nodes(item)


def load_instances(
    store: Store, plan: Plan, deployment_id: str, nodes: Iterable[str] | None = None
) -> dict[str, NodeInstanceRecord]:
    """Live instances of the given nodes (default: all), so large deployments are read only where needed."""
    if nodes is None:
        return {i.id: i for i in store.node_instances(deployment_id)}
    out: dict[str, NodeInstanceRecord] = {}
    for node in sorted(set(nodes)):
        for inst in store.node_instances(deployment_id, node=node):
            out[inst.id] = inst
    return out
