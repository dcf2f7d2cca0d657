"""The topology picture (SVG, instances colored by state, executions linked to the Temporal UI) and the
Prometheus metrics."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest

from tempano.api.topology import STATE_COLORS
from tests.api.conftest import Api

pytestmark = pytest.mark.asyncio(loop_scope="session")

HELLO = Path(__file__).resolve().parents[2] / "blueprints" / "examples" / "hello" / "hello.yaml"
SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"


async def test_topology_svg_colors_instances_and_links_executions(api: Api) -> None:
    t = api.tempano
    t.upload_blueprint("hello", HELLO)
    await t.create_deployment("g1", "hello")
    assert (await t.run("g1", "install", timeout=120)).status == "succeeded"
    t.store.set_states("g1", ["frontend_1"], "error")

    r = await api.viewer.get("/api/v1/deployments/g1/graph")
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    root = ElementTree.fromstring(r.content)
    nodes = {g.findtext(f"{SVG}title"): g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("node")}
    fills = {title: [p.get("fill") for p in g.iter(f"{SVG}path")] for title, g in nodes.items()}
    assert STATE_COLORS["started"] in fills["ni:database_1"] and STATE_COLORS["started"] in fills["ni:backend_1"]
    assert STATE_COLORS["error"] in fills["ni:frontend_1"]
    links = [a.get(f"{XLINK}href") for a in root.iter(f"{SVG}a")]
    assert any(link and link.endswith("/workflows/dep%3Ag1%3Aexec%3A1%3Ainstall") for link in links), links
    edges = {g.findtext(f"{SVG}title") for g in root.iter(f"{SVG}g") if g.get("class") == "edge"}
    assert "ni:backend_1->ni:database_1" in edges and "ni:frontend_1->ni:backend_1" in edges

    dot = await api.viewer.get("/api/v1/deployments/g1/graph", params={"format": "dot"})
    assert dot.text.startswith('digraph "g1"')
    assert (await api.viewer.get("/api/v1/deployments/g1/graph", params={"format": "png"})).status_code == 422


async def test_prometheus_metrics(api: Api) -> None:
    t = api.tempano
    t.upload_blueprint("hello", HELLO)
    await t.create_deployment("m1", "hello")
    assert (await t.run("m1", "install", timeout=120)).status == "succeeded"
    await api.viewer.get("/api/v1/deployments/m1")
    await api.viewer.get("/api/v1/deployments/nope")

    text = (await api.viewer.get("/metrics")).text
    assert (
        'tempano_api_requests_total{method="GET",route="/api/v1/deployments/{deployment_id}",status="200"} 1.0' in text
    )
    assert 'route="/api/v1/deployments/{deployment_id}",status="404"} 1.0' in text
    assert (
        'tempano_api_request_duration_seconds_count{method="GET",route="/api/v1/deployments/{deployment_id}"} 2.0'
        in text
    )
    assert 'tempano_executions{status="succeeded",workflow="install"} 1.0' in text
    assert 'tempano_deployments{status="installed"} 1.0' in text
    assert 'tempano_operation_duration_seconds_count{operation="Standard.configure",outcome="succeeded"} 3.0' in text
    assert (
        'tempano_operation_duration_seconds_bucket{le="+Inf",operation="Standard.configure",outcome="succeeded"} 3.0'
        in text
    )
