"""A real install and uninstall with the runtime store on PostgreSQL (the multi-machine setup)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from temporalio.client import Client

from tempano.api.service import Tempano
from tempano.api.settings import Settings
from tempano.api.worker import build_worker

HELLO = Path(__file__).resolve().parents[2] / "blueprints" / "examples" / "hello" / "hello.yaml"

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_install_and_uninstall_on_postgresql(client: Client, postgres: Any, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=postgres.new_database(),
        temporal_address="unused:0",
        task_queue=f"tq-{uuid.uuid4().hex[:12]}",
        secret_key=None,
    )
    store = settings.store
    assert store.engine.dialect.name == "postgresql"
    worker, pool = build_worker(client, store, task_queue=settings.task_queue, threads=16)
    try:
        async with worker:
            tempano = Tempano(settings, client, store)
            tempano.upload_blueprint("hello", HELLO)
            await tempano.create_deployment("hello-pg", "hello", {"greeting": "hej"})
            install = await tempano.run("hello-pg", "install", timeout=180)
            assert install.status == "succeeded", install.error
            assert {i.node: i.state for i in store.node_instances("hello-pg")} == {
                "database": "started",
                "backend": "started",
                "frontend": "started",
            }
            assert (
                tempano.outputs("hello-pg")["frontend_message"] == "frontend in front of: backend uses db on port 5432"
            )

            uninstall = await tempano.run("hello-pg", "uninstall", timeout=180)
            assert uninstall.status == "succeeded", uninstall.error
            assert {i.state for i in store.node_instances("hello-pg")} == {"deleted"}
            assert store.get_deployment("hello-pg").status == "uninstalled"
    finally:
        pool.shutdown(wait=False, cancel_futures=True)

    # What the engine wrote really is in PostgreSQL's tables.
    with store.engine.connect() as conn:
        statuses = conn.execute(text("select workflow, status from executions order by seq")).all()
        succeeded = conn.execute(
            text("select count(*) from events where type = 'operation_succeeded' and deployment_id = 'hello-pg'")
        ).scalar()
    assert [tuple(r) for r in statuses] == [("install", "succeeded"), ("uninstall", "succeeded")]
    assert succeeded == 3 * 3 + 3 * 2  # create, configure, start; then stop, delete: on 3 instances
    store.close()
