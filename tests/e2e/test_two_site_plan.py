"""The compiled two-site plan orders the WAN link after both its ends and removes it before them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tempano.blueprints import compile_path
from tempano.blueprints.plan import Plan, WorkflowGraph

TWO_SITE = Path(__file__).resolve().parents[2] / "blueprints" / "examples" / "two_site" / "two_site.yaml"
LINK_TYPE = "tempano.nodes.sdn.WanLink"
ENDS = ("site_a", "site_b", "endpoint_a", "endpoint_b")


def runs_before(graph: WorkflowGraph, first: str, then: str) -> bool:
    """Whether step ``then`` waits (directly or through other steps) for step ``first``."""
    seen: set[str] = set()
    todo = [then]
    while todo:
        step = todo.pop()
        for dep in graph.steps[step].after:
            if dep == first:
                return True
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return False


@pytest.fixture(scope="module")
def plan() -> Plan:
    return compile_path(TWO_SITE)


def test_the_link_is_created_after_both_sites_and_both_networks(plan: Plan) -> None:
    link = plan.nodes["wan_link"]
    ends = {r.name: r.target for r in link.relationships if r.name in ENDS}

    assert link.type == LINK_TYPE
    assert ends == {"site_a": "site_a", "site_b": "site_b", "endpoint_a": "wan_a_net", "endpoint_b": "server_net"}
    for end in ends.values():
        assert runs_before(plan.workflows["install"], end, "wan_link"), f"install: wan_link may start before {end}"
    # The sites themselves come after their edge routers are on the underlay.
    for side in "ab":
        assert runs_before(plan.workflows["install"], f"edge_{side}_uplink", f"site_{side}")
        assert runs_before(plan.workflows["install"], f"edge_{side}", f"site_{side}")


def test_the_link_is_removed_before_both_sites_and_both_networks(plan: Plan) -> None:
    uninstall = plan.workflows["uninstall"]
    for end in ("site_a", "site_b", "wan_a_net", "server_net", "edge_a", "edge_b", "underlay"):
        assert runs_before(uninstall, "wan_link", end), f"uninstall: {end} may go before wan_link"
    assert not any(runs_before(uninstall, other, "wan_link") for other in uninstall.steps if other != "wan_link")
