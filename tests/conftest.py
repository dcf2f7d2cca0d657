"""Shared fixtures: the real Temporal dev server (once per session, free ports, temporary database), a store per
test, and a worker on a fresh task queue per test."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tempano.api.service import Tempano
from tempano.api.settings import Settings
from tempano.api.up import temporal_command
from tempano.api.worker import build_worker
from tempano.store import Store

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DevServer:
    """A running `temporal server start-dev` (restartable on the same database file)."""

    address: str
    ui_port: int
    db_file: Path
    log_file: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        temporal = Settings(temporal_binary=os.environ.get("TEMPANO_TEMPORAL_BINARY")).find_temporal()
        if temporal is None:
            pytest.exit("the temporal CLI is missing: run `make setup` (builds it from source)", returncode=2)
        port = int(self.address.rsplit(":", 1)[1])
        settings = Settings(temporal_address=self.address, temporal_namespace="default")
        cmd = temporal_command(settings, temporal, self.db_file, port, self.ui_port)
        self.proc = subprocess.Popen(
            cmd, stdout=self.log_file.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"temporal dev server exited: {self.log_file.read_text()[-2000:]}")
            try:
                asyncio.run(_check(self.address))
                return
            except Exception:
                time.sleep(0.3)
        raise RuntimeError("temporal dev server did not start within 60s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def _check(address: str) -> None:
    client = await Client.connect(address)
    await client.service_client.check_health()


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    tmp = tmp_path_factory.mktemp("temporal")
    server = DevServer(f"127.0.0.1:{free_port()}", free_port(), tmp / "temporal.db", tmp / "temporal.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def client(dev_server: DevServer) -> Client:
    return await Client.connect(dev_server.address, data_converter=pydantic_data_converter)


@pytest.fixture
def settings(dev_server: DevServer, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        temporal_address=dev_server.address,
        temporal_ui_port=dev_server.ui_port,
        task_queue=f"tq-{uuid.uuid4().hex[:12]}",
        secret_key=None,
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store: Store = settings.store
    yield store
    store.close()


@pytest_asyncio.fixture(loop_scope="session")
async def tempano(settings: Settings, client: Client, store: Store) -> AsyncIterator[Tempano]:
    """tempano's service with a real worker polling a fresh task queue."""
    worker, pool = build_worker(client, store, task_queue=settings.task_queue, threads=32)
    async with worker:
        yield Tempano(settings, client, store)
    pool.shutdown(wait=False, cancel_futures=True)


def example(*parts: str) -> Path:
    return REPO / "blueprints" / "examples" / Path(*parts)


def have_root() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None
