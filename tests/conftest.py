"""Shared fixtures: the real Temporal dev server (once per session, free ports, temporary database), a store per
test, and a worker on a fresh task queue per test."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
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
from tempano.api.up import UpError, connect_when_ready, free_port, stop_process, temporal_command, worker_polls
from tempano.api.worker import build_worker
from tempano.store import Store

REPO = Path(__file__).resolve().parent.parent


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
        try:
            asyncio.run(connect_when_ready(self.address, self.proc))
        except UpError as e:
            raise RuntimeError(f"{e}: {self.log_file.read_text()[-2000:]}") from None

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to flush or close anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


async def worker_polling(
    address: str, task_queue: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 240.0
) -> None:
    """Until a worker process polls ``task_queue``. It spends seconds importing, a minute or more on a loaded
    machine, and an execution asked for before it polls is refused when the API's 60 s update timeout passes."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await worker_polls(address, "default", task_queue):
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        assert proc.poll() is None, f"the worker exited with code {proc.returncode}:\n{tail}"
        assert asyncio.get_running_loop().time() < deadline, f"no worker polled {task_queue} in {timeout:.0f}s:\n{tail}"
        await asyncio.sleep(0.2)


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    tmp = tmp_path_factory.mktemp("temporal")
    server = DevServer(f"127.0.0.1:{free_port()}", free_port(), tmp / "temporal.db", tmp / "temporal.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class PostgresCluster:
    """A throwaway PostgreSQL cluster from the Debian packages' initdb/pg_ctl, in a temporary directory, on a free
    port. PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user the package creates."""

    def __init__(self) -> None:
        bindir = _postgres_bindir()
        if bindir is None:
            pytest.exit("PostgreSQL is missing (no initdb): run `make setup` (installs the postgresql package)", 2)
        self.bindir = bindir
        self.port = free_port()
        self.user: pwd.struct_passwd | None = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        # As root, under /tmp: the postgres user must reach it (a root TMPDIR may be private).
        self.dir = Path(tempfile.mkdtemp(prefix="tempano-pg-", dir="/tmp" if self.user is not None else None))
        if self.user is not None:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._databases = 0

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user.pw_name, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed: {result.stdout}{result.stderr}{log}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "tempano", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://tempano@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg

        self._databases += 1
        name = f"t{self._databases}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(f"postgresql://tempano@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _postgres_bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL server for the whole session (started on first use)."""
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def own_dev_server(tmp_path: Path) -> Iterator[DevServer]:
    """A dev server of the test's own (free ports, database file in tmp_path) that it may kill and restart."""
    server = DevServer(f"127.0.0.1:{free_port()}", free_port(), tmp_path / "own.db", tmp_path / "own-temporal.log")
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
