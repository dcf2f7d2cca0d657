"""Node-instance expansion and relationship wiring: deterministic functions of a plan and existing instances.

Instance ids are ``<node>_<n>`` with ``n`` counting up per node and never reused, so a scale-out after a
scale-in cannot collide with (or adopt resources of) a removed instance.

Wiring rules for a relationship from a source instance to a target node:
- HostedOn: the source's own host instance;
- the target node is on the source's host chain: that ancestor instance;
- both are in the same scaling group: the target instance of the same group instance;
- both are hosted on the same host node: the target instance on the same host;
- otherwise every instance of the target node (all-to-all, as Cloudify's connected_to).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tempano.blueprints.plan import HOSTED_ON, NodeSpec, Plan, RelationshipSpec
from tempano.store.records import NewInstance, NodeInstanceRecord

BINDS_TO = "tosca.relationships.network.BindsTo"


class TopologyError(ValueError):
    """A scale request outside the plan's bounds, or a node that does not exist."""


def host_order(plan: Plan) -> list[str]:
    """Node names, every host before what it hosts (then by name)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name in trail:
            raise TopologyError(f"node {name!r} is (indirectly) hosted on itself: {' -> '.join((*trail, name))}")
        host = plan.nodes[name].host
        if host is not None:
            visit(host, (*trail, name))
        seen.add(name)
        order.append(name)

    for name in sorted(plan.nodes):
        visit(name, ())
    return order


def group_of(plan: Plan, node: str) -> str | None:
    for name in sorted(plan.groups):
        if node in plan.groups[name].members:
            return name
    return None


def expand(plan: Plan) -> list[NewInstance]:
    """The instances of a fresh deployment, hosts first."""
    created: list[NewInstance] = []
    counters: dict[str, int] = {}
    by_node: dict[str, list[NewInstance]] = {}
    for name in host_order(plan):
        node = plan.nodes[name]
        for instance in _instances_for(plan, node, by_node, counters):
            created.append(instance)
            by_node.setdefault(name, []).append(instance)
    return created


def _instances_for(
    plan: Plan, node: NodeSpec, by_node: Mapping[str, Sequence[NewInstance]], counters: dict[str, int]
) -> list[NewInstance]:
    group = group_of(plan, node.name)
    out: list[NewInstance] = []
    if node.host is None:
        if group is not None:
            for k in range(1, plan.groups[group].instances.default + 1):
                out.append(_new(node.name, counters, None, f"{group}_{k}"))
        else:
            for _ in range(node.instances.default):
                out.append(_new(node.name, counters, None, None))
        return out
    for host in by_node.get(node.host, ()):
        if group is not None and host.group_instance and host.group_instance.startswith(f"{group}_"):
            out.append(_new(node.name, counters, host.id, host.group_instance))
        else:
            for _ in range(node.instances.default):
                out.append(_new(node.name, counters, host.id, None))
    return out


def _new(node: str, counters: dict[str, int], host_id: str | None, group_instance: str | None) -> NewInstance:
    counters[node] = counters.get(node, 0) + 1
    n = counters[node]
    return NewInstance(id=f"{node}_{n}", node=node, index=n, host_id=host_id, group_instance=group_instance)


def scale_out(plan: Plan, target: str, delta: int, existing: Sequence[NodeInstanceRecord]) -> list[NewInstance]:
    """New instances for ``delta`` more of a node or scaling group (with what they contain)."""
    if delta <= 0:
        raise TopologyError(f"scale-out needs a positive delta, got {delta}")
    live = [i for i in existing if not i.removed]
    counters: dict[str, int] = {}
    for inst in existing:  # removed ones too: ids are never reused
        counters[inst.node] = max(counters.get(inst.node, 0), inst.index)
    if target in plan.groups:
        group = plan.groups[target]
        used = {
            int(i.group_instance.rsplit("_", 1)[1])
            for i in existing
            if i.group_instance and i.group_instance.startswith(f"{target}_")
        }
        current = len(
            {i.group_instance for i in live if i.group_instance and i.group_instance.startswith(f"{target}_")}
        )
        _check_bounds(target, current, delta, group.instances.min, group.instances.max)
        members = [n for n in host_order(plan) if n in group.members]
        roots: list[NewInstance] = []
        next_k = max(used, default=0)
        for _ in range(delta):
            next_k += 1
            made: dict[str, NewInstance] = {}
            for name in members:
                node = plan.nodes[name]
                host_id = made[node.host].id if node.host in made else None
                if node.host is not None and host_id is None:
                    raise TopologyError(
                        f"scaling group {target!r}: member {name!r} is hosted on {node.host!r}, which is not a member"
                    )
                made[name] = _new(name, counters, host_id, f"{target}_{next_k}")
            roots.extend(made.values())
        return roots + _contained(plan, roots, counters, skip=set(group.members))
    if target not in plan.nodes:
        raise TopologyError(f"no node or scaling group named {target!r} (nodes: {', '.join(sorted(plan.nodes))})")
    node = plan.nodes[target]
    if group_of(plan, target) is not None:
        raise TopologyError(f"node {target!r} is in scaling group {group_of(plan, target)!r}: scale the group instead")
    current = sum(1 for i in live if i.node == target)
    _check_bounds(target, current, delta, node.instances.min, node.instances.max)
    if node.host is None:
        roots = [_new(target, counters, None, None) for _ in range(delta)]
    else:
        hosts = [i for i in live if i.node == node.host]
        if not hosts:
            raise TopologyError(f"node {target!r} is hosted on {node.host!r}, which has no instance to host more")
        # Spread the new instances over the hosts that have the fewest.
        load = {h.id: sum(1 for i in live if i.host_id == h.id and i.node == target) for h in hosts}
        roots = []
        for _ in range(delta):
            host_id = min(sorted(load), key=lambda h: load[h])
            load[host_id] += 1
            roots.append(_new(target, counters, host_id, None))
    return roots + _contained(plan, roots, counters, skip=set())


def _contained(
    plan: Plan, roots: Sequence[NewInstance], counters: dict[str, int], *, skip: set[str]
) -> list[NewInstance]:
    out: list[NewInstance] = []
    by_node: dict[str, list[NewInstance]] = {}
    for r in roots:
        by_node.setdefault(r.node, []).append(r)
    for name in host_order(plan):
        node = plan.nodes[name]
        if name in skip or node.host is None or node.host not in by_node or name in {r.node for r in roots}:
            continue
        for host in by_node[node.host]:
            for _ in range(node.instances.default):
                inst = _new(name, counters, host.id, None)
                out.append(inst)
                by_node.setdefault(name, []).append(inst)
    return out


def _check_bounds(target: str, current: int, delta: int, minimum: int, maximum: int | None) -> None:
    wanted = current + delta
    if wanted < minimum:
        raise TopologyError(f"{target!r} cannot go below {minimum} instances (it has {current}, asked {delta:+d})")
    if maximum is not None and wanted > maximum:
        raise TopologyError(f"{target!r} cannot go above {maximum} instances (it has {current}, asked {delta:+d})")


def scale_in_choice(
    plan: Plan, target: str, delta: int, existing: Sequence[NodeInstanceRecord], chosen: Sequence[str] = ()
) -> list[str]:
    """The instances a scale-in of ``delta`` (negative) removes: the chosen ones, else the newest."""
    live = [i for i in existing if not i.removed]
    count = -delta
    if count <= 0:
        raise TopologyError(f"scale-in needs a negative delta, got {delta}")
    if target in plan.groups:
        group = plan.groups[target]
        units = sorted(
            {i.group_instance for i in live if i.group_instance and i.group_instance.startswith(f"{target}_")},
            key=lambda g: int(g.rsplit("_", 1)[1]),
        )
        _check_bounds(target, len(units), delta, group.instances.min, group.instances.max)
        if chosen:
            picked = {i.group_instance for i in live if i.id in chosen and i.group_instance in units}
            if len(picked) != count:
                raise TopologyError(
                    f"chosen instances {list(chosen)} do not name {count} instance(s) of group {target!r}"
                )
        else:
            picked = set(units[-count:])
        roots = [i.id for i in live if i.group_instance in picked]
    else:
        if target not in plan.nodes:
            raise TopologyError(f"no node or scaling group named {target!r}")
        mine = [i for i in live if i.node == target]
        node = plan.nodes[target]
        _check_bounds(target, len(mine), delta, node.instances.min, node.instances.max)
        if chosen:
            unknown = [c for c in chosen if c not in {i.id for i in mine}]
            if unknown or len(chosen) != count:
                raise TopologyError(f"chosen instances {list(chosen)} are not {count} live instance(s) of {target!r}")
            roots = list(chosen)
        else:
            roots = [i.id for i in sorted(mine, key=lambda i: i.index)[-count:]]
    return subgraph(roots, existing, plan)


def subgraph(roots: Sequence[str], existing: Sequence[NodeInstanceRecord], plan: Plan | None = None) -> list[str]:
    """The roots and every live instance contained in them, transitively (hosts first).

    With the plan, an instance bound to one of them (a port's BindsTo to its server) belongs to it too: it dies
    with its server, so heal and scale-in must take it along."""
    live = [i for i in existing if not i.removed]
    by_id = {i.id: i for i in live}
    out = list(dict.fromkeys(roots))
    frontier = set(out)
    while frontier:
        children = [i.id for i in live if i.host_id in frontier and i.id not in out]
        if plan is not None:
            inside = set(out) | set(children)
            children += [
                i.id
                for i in live
                if i.id not in inside
                and any(
                    t in frontier
                    for rel in plan.nodes[i.node].relationships
                    if rel.is_a(BINDS_TO)
                    for t in relationship_targets(plan, i, rel, by_id)
                )
            ]
        out.extend(children)
        frontier = set(children)
    return out


def relationship_targets(
    plan: Plan,
    source: NodeInstanceRecord,
    rel: RelationshipSpec,
    instances: Mapping[str, NodeInstanceRecord],
) -> list[str]:
    """The target instances a source instance's relationship connects to (see the module's rules)."""
    candidates = [i for i in instances.values() if i.node == rel.target and not i.removed]
    if rel.is_a(HOSTED_ON) and source.host_id is not None:
        return [source.host_id]
    chain = host_chain(source, instances)
    on_chain = [c for c in candidates if c.id in chain]
    if on_chain:
        return [on_chain[0].id]
    if source.group_instance:
        same_group = [c for c in candidates if c.group_instance == source.group_instance]
        if same_group:
            return sorted(c.id for c in same_group)
    if source.host_id is not None:
        same_host = [c for c in candidates if c.host_id == source.host_id]
        if same_host:
            return sorted(c.id for c in same_host)
    return sorted(c.id for c in candidates)


def host_chain(instance: NodeInstanceRecord, instances: Mapping[str, NodeInstanceRecord]) -> list[str]:
    chain: list[str] = []
    current = instance.host_id
    while current is not None and current in instances and current not in chain:
        chain.append(current)
        current = instances[current].host_id
    return chain
