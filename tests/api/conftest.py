"""The API served for real (uvicorn on a free port, in the test's event loop) over the real stack, and an
httpx client per role."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio
import uvicorn

from tempano.api.app import create_app
from tempano.api.auth import issue_token
from tempano.api.service import Tempano
from tempano.api.up import free_port

__all__ = ["Api"]


@dataclass
class Api:
    """A served API: its URL and a client per role (``anonymous`` sends no token)."""

    url: str
    tempano: Tempano
    tokens: dict[str, str]
    clients: dict[str, httpx.AsyncClient]

    @property
    def admin(self) -> httpx.AsyncClient:
        return self.clients["admin"]

    @property
    def operator(self) -> httpx.AsyncClient:
        return self.clients["operator"]

    @property
    def viewer(self) -> httpx.AsyncClient:
        return self.clients["viewer"]

    @property
    def anonymous(self) -> httpx.AsyncClient:
        return self.clients["anonymous"]


@pytest_asyncio.fixture(loop_scope="session")
async def api(tempano: Tempano) -> AsyncIterator[Api]:
    settings = tempano.settings.model_copy(
        update={"admin_token": "adm-" + secrets.token_urlsafe(24), "max_upload_bytes": 256 * 1024}
    )
    tempano.settings = settings
    app = create_app(settings, service=tempano)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    assert settings.admin_token
    tokens = {
        "admin": settings.admin_token,
        "operator": issue_token(tempano.store, "test-operator", "operator")[1],
        "viewer": issue_token(tempano.store, "test-viewer", "viewer")[1],
    }
    clients = {
        role: httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        for role, token in tokens.items()
    }
    clients["anonymous"] = httpx.AsyncClient(base_url=url, timeout=60)
    try:
        yield Api(url, tempano, tokens, clients)
    finally:
        for client in clients.values():
            await client.aclose()
        server.should_exit = True
        await task
