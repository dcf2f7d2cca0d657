"""A tempano worker in its own OS process, for the durability tests (which SIGKILL it), with the ``crashtest``
plugin: a stand-in for a VIM that keeps its own record of what it made, in a SQLite file shared with the test.

``python tests/engine/durability/worker.py --address HOST:PORT --task-queue Q --store-url URL --records FILE``
(with ``--standby``: connect and build the worker, then wait for a line on stdin before polling: a restart then takes a
second, not the many seconds Python's imports take on a loaded machine).

The plugin's "VIM" names what it makes by the operation's idempotency key, as a real plugin tags a server with it:
a create that finds a resource under its key adopts it (a retry after a crash) instead of making a second one.
Every real create is a row of ``creates``; every adoption a row of ``adoptions``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tempano.api.worker import build_worker
from tempano.plugins import builtin
from tempano.plugins.contract import OperationContext, Plugin
from tempano.plugins.registry import PluginRegistry
from tempano.store import Store

SCHEMA = """
create table if not exists resources (key text primary key, instance text not null, resource_id text not null);
create table if not exists creates (
    id integer primary key autoincrement, key text not null, instance text not null, resource_id text not null,
    pid integer not null, ts real not null);
create table if not exists adoptions (
    id integer primary key autoincrement, key text not null, instance text not null, pid integer not null,
    ts real not null);
create table if not exists deletes (
    id integer primary key autoincrement, key text not null, instance text not null, resource_id text not null,
    pid integer not null, ts real not null);
create table if not exists work (
    id integer primary key autoincrement, instance text not null, operation text not null, pid integer not null,
    ts real not null);
"""


@contextmanager
def records(path: str | os.PathLike[str]) -> Iterator[sqlite3.Connection]:
    """One write transaction on the plugin's record (BEGIN IMMEDIATE: processes take turns)."""
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        conn.execute("begin immediate")
        yield conn
        conn.execute("commit")
    except BaseException:
        if conn.in_transaction:
            conn.execute("rollback")
        raise
    finally:
        conn.close()


def init_records(path: str | os.PathLike[str]) -> None:
    conn = sqlite3.connect(path, timeout=60)
    try:
        conn.execute("pragma journal_mode=wal")
        conn.executescript(SCHEMA)
    finally:
        conn.close()


def make_plugin(records_path: str) -> Plugin:
    plugin = Plugin("crashtest", "a VIM stand-in that records what it makes (durability tests)")

    def pause(ctx: OperationContext) -> None:
        time.sleep(random.uniform(0, float(ctx.inputs.get("delay", 0.2))))

    @plugin.operation("create")
    def create(ctx: OperationContext) -> Mapping[str, Any]:
        key, instance = ctx.idempotency_key, ctx.instance.id
        pause(ctx)  # the API call's latency
        with records(records_path) as db:
            row = db.execute("select resource_id from resources where key = ?", (key,)).fetchone()
            if row is not None:
                resource_id, adopted = str(row[0]), True
                db.execute(
                    "insert into adoptions (key, instance, pid, ts) values (?, ?, ?, ?)",
                    (key, instance, os.getpid(), time.time()),
                )
            else:
                resource_id, adopted = f"thing-{uuid.uuid4().hex[:12]}", False
                db.execute("insert into resources values (?, ?, ?)", (key, instance, resource_id))
                db.execute(
                    "insert into creates (key, instance, resource_id, pid, ts) values (?, ?, ?, ?, ?)",
                    (key, instance, resource_id, os.getpid(), time.time()),
                )
        ctx.record_resource("thing", resource_id, {"key": key})
        if adopted:
            ctx.log("%s: adopted %s (made by an earlier attempt)", instance, resource_id)
        pause(ctx)  # waiting for the resource to become ready
        ctx.set_attribute("resource_id", resource_id)
        return {"resource_id": resource_id, "adopted": adopted}

    @plugin.operation("work")
    def work(ctx: OperationContext) -> None:
        pause(ctx)
        with records(records_path) as db:
            db.execute(
                "insert into work (instance, operation, pid, ts) values (?, ?, ?, ?)",
                (ctx.instance.id, ctx.operation, os.getpid(), time.time()),
            )

    @plugin.operation("delete")
    def delete(ctx: OperationContext) -> None:
        for resource in ctx.resources("thing"):
            pause(ctx)
            with records(records_path) as db:
                gone = db.execute("delete from resources where resource_id = ?", (resource.resource_id,)).rowcount
                if gone:
                    db.execute(
                        "insert into deletes (key, instance, resource_id, pid, ts) values (?, ?, ?, ?, ?)",
                        (resource.idempotency_key, ctx.instance.id, resource.resource_id, os.getpid(), time.time()),
                    )
            ctx.forget_resource("thing", resource.resource_id)

    return plugin


async def serve(address: str, task_queue: str, store_url: str, records_path: str, threads: int, standby: bool) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    store = Store(store_url)
    store.create_schema()
    plugins = PluginRegistry([builtin.plugin, make_plugin(records_path)])
    # A killed worker's workflows wait on its sticky queue before another worker takes them: 10 s by default, a
    # dozen times a test. The test is of what survives a kill, not of how soon work resumes.
    worker, pool = build_worker(
        client, store, task_queue=task_queue, plugins=plugins, threads=threads, sticky_timeout=timedelta(seconds=2)
    )
    if standby and not await asyncio.to_thread(sys.stdin.readline):
        return  # the test ended without needing this worker
    logging.getLogger("tempano.worker").info("worker %d polling %s", os.getpid(), task_queue)
    try:
        await worker.run()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--store-url", required=True)
    parser.add_argument("--records", required=True)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--standby", action="store_true", help="wait for a line on stdin before polling")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [{os.getpid()}] %(name)s %(levelname)s %(message)s")
    init_records(Path(args.records))
    asyncio.run(serve(args.address, args.task_queue, args.store_url, args.records, args.threads, args.standby))


if __name__ == "__main__":
    main()
