"""A deployment's topology as a picture: node instances colored by state, containment and relationships as
edges, and its recent executions linked to their pages in the Temporal web UI."""

from __future__ import annotations

import asyncio
import shutil
from collections import defaultdict
from collections.abc import Sequence

from tempano.blueprints.plan import Plan
from tempano.store import ExecutionRecord, NodeInstanceRecord

STATE_COLORS = {
    "uninitialized": "#e0e0e0",
    "creating": "#fff59d",
    "created": "#fff176",
    "configuring": "#ffee58",
    "configured": "#ffe082",
    "starting": "#c5e1a5",
    "started": "#81c784",
    "stopping": "#ffcc80",
    "stopped": "#90caf9",
    "deleting": "#ffab91",
    "deleted": "#bdbdbd",
    "error": "#e57373",
}
EXECUTION_COLORS = {
    "pending": "#e0e0e0",
    "running": "#fff176",
    "succeeded": "#81c784",
    "failed": "#e57373",
    "cancelled": "#bdbdbd",
    "terminated": "#bdbdbd",
}


class RenderError(Exception):
    """Graphviz is missing or failed."""


def _q(text: str) -> str:
    """A DOT quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def topology_dot(
    deployment_id: str,
    plan: Plan,
    instances: Sequence[NodeInstanceRecord],
    executions: Sequence[ExecutionRecord],
    *,
    execution_link: dict[str, str],
    deployment_link: str,
) -> str:
    """The DOT source: instances (colored by state) with containment (dashed) and relationships (solid)."""
    lines = [
        f"digraph {_q(deployment_id)} {{",
        "  rankdir=BT; fontname=Helvetica; fontsize=12;",
        f"  label={_q(f'deployment {deployment_id}')}; labelloc=t;",
        f"  URL={_q(deployment_link)}; target=_blank;",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=10];',
        "  edge [fontname=Helvetica, fontsize=8];",
    ]
    by_node: dict[str, list[NodeInstanceRecord]] = defaultdict(list)
    for inst in instances:
        by_node[inst.node].append(inst)
    for inst in instances:
        spec = plan.nodes.get(inst.node)
        kind = spec.type.rsplit(".", 1)[-1] if spec else "?"
        color = STATE_COLORS.get(inst.state, "#ffffff")
        label = f"{inst.id}\n{kind}\n{inst.state}"
        lines.append(
            f"  {_q('ni:' + inst.id)} [label={_q(label)}, fillcolor={_q(color)}, "
            f"tooltip={_q(f'{inst.node} ({spec.type if spec else kind}): {inst.state}')}, "
            f"class={_q('state-' + inst.state)}];"
        )
    for inst in instances:
        if inst.host_id:
            lines.append(f'  {_q("ni:" + inst.id)} -> {_q("ni:" + inst.host_id)} [style=dashed, label="contained in"];')
        spec = plan.nodes.get(inst.node)
        if spec is None:
            continue
        for rel in spec.relationships:
            if rel.target == spec.host:
                continue
            for target in by_node.get(rel.target, []):
                lines.append(f"  {_q('ni:' + inst.id)} -> {_q('ni:' + target.id)} [label={_q(rel.name)}];")
    if executions:
        lines.append("  subgraph cluster_executions {")
        lines.append('    label="executions (open in the Temporal web UI)"; style=dashed; fontsize=10;')
        for e in executions:
            color = EXECUTION_COLORS.get(e.status, "#ffffff")
            link = execution_link.get(e.id, "")
            label = f"#{e.seq} {e.workflow}\n{e.status}"
            lines.append(
                f"    {_q('ex:' + e.id)} [shape=note, label={_q(label)}, "
                f"fillcolor={_q(color)}, URL={_q(link)}, target=_blank, tooltip={_q(e.workflow_id)}, "
                f"class={_q('execution-' + e.status)}];"
            )
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


async def render_svg(dot: str, *, timeout: float = 30.0) -> bytes:
    """Runs Graphviz's ``dot -Tsvg`` without blocking the event loop."""
    binary = shutil.which("dot")
    if binary is None:
        raise RenderError("Graphviz's dot program is not installed (Debian: apt-get install graphviz)")
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-Tsvg",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(dot.encode()), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RenderError(f"dot took longer than {timeout:.0f}s") from None
    if proc.returncode != 0:
        raise RenderError(f"dot failed: {err.decode(errors='replace').strip()[:500]}")
    return out
