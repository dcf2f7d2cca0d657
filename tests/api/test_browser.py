"""Headless Chromium (Debian's package, driven by playwright with the system browser: nothing is downloaded):
the Temporal web UI filtered by a deployment id lists its install execution, and the API's topology SVG renders.
Screenshots are kept under tmp/artifacts/."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio

from tempano.api.settings import deployment_ui_link
from tests.api.conftest import Api

pytestmark = pytest.mark.asyncio(loop_scope="session")

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tmp" / "artifacts"
HELLO = REPO / "blueprints" / "examples" / "hello" / "hello.yaml"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest_asyncio.fixture(loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: run `make setup` (installs Debian's chromium package)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def test_temporal_ui_lists_the_deployments_install_and_the_topology_renders(api: Api, browser: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    t = api.tempano
    t.upload_blueprint("hello", HELLO)
    await t.create_deployment("ui-1", "hello")
    execution = await t.run("ui-1", "install", timeout=120)
    assert execution.status == "succeeded", execution.error

    page = await browser.new_page(viewport={"width": 1600, "height": 900})
    url = deployment_ui_link(t.settings, "ui-1")
    assert f"query={quote('TempanoDeployment=')}" in url
    # Visibility lags a little behind the workflow: reload until the list shows the install.
    found = False
    for _ in range(20):
        try:  # a slow first load is one more try, not a failure
            await page.goto(url, wait_until="networkidle", timeout=60_000)
            await page.get_by_text(execution.workflow_id, exact=True).first.wait_for(timeout=5000)
            found = True
            break
        except Exception:
            continue
    await page.screenshot(path=str(ARTIFACTS / "temporal-ui-deployment.png"), timeout=120_000)
    assert found, f"the Temporal UI at {url} did not list {execution.workflow_id}"
    body = await page.inner_text("body")
    assert "dep:ui-1" in body  # the deployment workflow itself is listed too
    assert "hello-" not in body  # nothing of other deployments (filtered by the search attribute)

    # The execution's own page (the link the API and the SVG give).
    await page.goto(f"{t.settings.ui_url}/namespaces/default/workflows/{quote(execution.workflow_id, safe='')}")
    await page.get_by_text("Completed").first.wait_for(timeout=30000)
    await page.screenshot(path=str(ARTIFACTS / "temporal-ui-install.png"), timeout=120_000)

    # The topology picture, rendered by the browser from the API.
    svg_page = await browser.new_page(extra_http_headers={"Authorization": f"Bearer {api.tokens['viewer']}"})
    response = await svg_page.goto(f"{api.url}/api/v1/deployments/ui-1/graph")
    assert response is not None and response.status == 200
    for instance in ("database_1", "backend_1", "frontend_1"):
        await svg_page.locator("svg text", has_text=instance).first.wait_for(timeout=5000)
    box = await svg_page.locator("svg").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100
    href = await svg_page.locator("svg a").first.get_attribute("xlink:href")
    assert href is not None and href.startswith(t.settings.ui_url)
    await svg_page.screenshot(path=str(ARTIFACTS / "topology-ui-1.png"), timeout=120_000)
    await page.close()
    await svg_page.close()
