"""The plan drawn as a Graphviz DOT graph: the topology, and the install order as waves."""

from __future__ import annotations

import json

from tempano.blueprints._graph import dependencies
from tempano.blueprints.plan import HOSTED_ON, Plan


def install_waves(plan: Plan) -> dict[str, int]:
    """Each node's install wave: 1 without dependencies, else one more than its latest dependency's."""
    deps = dependencies(plan.nodes)
    waves: dict[str, int] = {}

    def wave(name: str, seen: frozenset[str]) -> int:
        if name in waves:
            return waves[name]
        if name in seen:  # a cycle (refused by compile; guarded here for hand-made plans)
            return 1
        value = 1 + max((wave(d, seen | {name}) for d in deps[name]), default=0)
        waves[name] = value
        return value

    for name in sorted(plan.nodes):
        wave(name, frozenset())
    return waves


def _quote(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid DOT quoted ID


def plan_to_dot(plan: Plan, title: str = "plan") -> str:
    """DOT source: a box per node (name, type, instances, install wave), an edge per relationship."""
    waves = install_waves(plan)
    lines = [
        f"digraph {_quote(title)} {{",
        "  rankdir=BT;",
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for wave in sorted(set(waves.values())):
        members = " ".join(_quote(n) for n in sorted(n for n, w in waves.items() if w == wave))
        lines.append(f"  {{ rank=same; {members} }}")
    for name, node in sorted(plan.nodes.items()):
        count = node.instances.default
        label = f"{name}\\n{node.type}\\ninstall wave {waves[name]}" + (f", {count} instances" if count != 1 else "")
        lines.append(f"  {_quote(name)} [label={_quote(label).replace(chr(92) * 2, chr(92))}];")
    for name, node in sorted(plan.nodes.items()):
        for rel in node.relationships:
            style = "solid" if rel.is_a(HOSTED_ON) else "dashed"
            label = f"{rel.name} ({rel.type.rsplit('.', 1)[-1]})"
            lines.append(f"  {_quote(name)} -> {_quote(rel.target)} [label={_quote(label)}, style={style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
